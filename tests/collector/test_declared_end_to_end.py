"""One declaration is all it takes: a counter added to the collector daemon, and the metrics of a
third-party service built on the runtime, reach a real influxd through the real collector with no
handler written for them (`fobs.collector.handlers.declared`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fobs.components import Counter, Gauge
from tests.collector.collector_helpers import collector_config
from tests.collector.test_end_to_end import influx_outputs, until
from tests.services import Influxd

FAST = {"varz_interval": 0.5, "healthz_interval": 5.0}


def last(influxd: Influxd, db: str, measurement: str, field: str, where: str = "") -> Any:
    q = f'SELECT last("{field}") FROM "{measurement}"' + (f" WHERE {where}" if where else "")
    series = influxd.query(q, db)["results"][0].get("series") or []
    return series[0]["values"][0][1] if series else None


def field_types(influxd: Influxd, db: str, measurement: str) -> dict[str, str]:
    result = influxd.query(f'SHOW FIELD KEYS FROM "{measurement}"', db)["results"][0]
    return {name: kind for s in result.get("series", []) for name, kind in s["values"]}


async def test_a_counter_added_to_the_collector_reaches_influxd(
        nats_server: Any, influxd_shared: Influxd, make_collector: Any, tmp_path: Path) -> None:
    db = "declared_collector"
    config = replace(collector_config([nats_server.url], scrape=FAST),
                     outputs=influx_outputs(influxd_shared, db, tmp_path / "spool"))
    collector = await make_collector(config, real_outputs=True)
    assert collector.component is not None
    widgets = Counter("collector", "test_widgets", "Widgets made (a test's one declaration)",
                      registry=collector.component.metrics)
    widgets.inc(7)

    await until(lambda: last(influxd_shared, db, "collector", "test_widgets") == 7,
                "the new collector.test_widgets field in influxd")
    assert field_types(influxd_shared, db, "collector")["test_widgets"] == "integer"
    assert last(influxd_shared, db, "collector", "targets_known") is not None   # and the rest


async def test_a_third_party_service_gets_its_declared_metrics_stored(
        nats_server: Any, influxd_shared: Influxd, make_collector: Any, start_component: Any,
        tmp_path: Path) -> None:
    db = "declared_shop"
    shop = await start_component("Shop", varz={"http": {"version": "1.1"}, "free": 2})
    requests = Counter("shop", "requests", "HTTP requests served", tags=("method",),
                       varz="http.requests.{method}", registry=shop.metrics)
    Gauge("shop", "queue_length", "Orders waiting", registry=shop.metrics).set_function(lambda: 4)
    requests.labels("GET").inc(5)
    requests.labels("POST").inc(2)
    config = replace(collector_config([nats_server.url], scrape=FAST),
                     outputs=influx_outputs(influxd_shared, db, tmp_path / "spool"))
    await make_collector(config, real_outputs=True)

    def stored() -> bool:
        return (last(influxd_shared, db, "shop", "requests", "\"method\" = 'GET'") == 5
                and last(influxd_shared, db, "shop", "requests", "\"method\" = 'POST'") == 2
                and last(influxd_shared, db, "shop", "queue_length") == 4.0
                and last(influxd_shared, db, "varz", "free", "\"job\" = 'Shop'") == 2.0)

    await until(stored, "the Shop's declared metrics (and its free varz) in influxd")
    assert field_types(influxd_shared, db, "shop") == {"requests": "integer",
                                                       "queue_length": "float"}
    assert set(field_types(influxd_shared, db, "varz")) == {"free"}   # not stored twice
