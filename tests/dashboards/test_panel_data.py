"""Every panel query returns data: synthetic fleet data (docs/schema.md) in a real influxd."""

from __future__ import annotations

import urllib.request

import pytest

from fobs.dashboards.build import load_dashboards
from fobs.dashboards.verify import verify
from tests.dashboards.fleetdata import fleet_lines
from tests.services import Influxd


def write(influxd: Influxd, db: str, lines: list[str]) -> None:
    influxd.create_database(db)
    for start in range(0, len(lines), 5000):
        body = "\n".join(lines[start:start + 5000]).encode()
        req = urllib.request.Request(f"{influxd.url}/write?db={db}", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 204


@pytest.fixture(scope="module")
def synthetic_db(influxd_shared: Influxd) -> str:
    write(influxd_shared, "dash_synthetic", fleet_lines())
    return "dash_synthetic"


async def test_every_panel_query_returns_data(influxd_shared: Influxd, synthetic_db: str) -> None:
    dashboards = load_dashboards()
    report = await verify(dashboards, influxd_shared.url, synthetic_db)
    assert report.problems == []
    assert report.queries == report.with_data > 80
    # Variables were resolved from the data, as Grafana would list them.
    assert report.variables["dea"]["job"] == ("DEA",)
    assert report.variables["dea"]["index"] == ("0", "1")
    assert report.variables["syslog"]["job"] == ("SyslogAggregator",)
    assert "Collector" in report.variables["fleet"]["job"]


def test_verify_command(influxd_shared: Influxd, synthetic_db: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from fobs.cli import main
    assert main(["dashboards", "verify", "--influxdb", influxd_shared.url, "--database",
                 synthetic_db]) == 0
    assert capsys.readouterr().out.strip().endswith("panel queries returned data")
    assert main(["dashboards", "verify", "--influxdb", influxd_shared.url, "--database",
                 "nothing_here"]) == 1
    assert "dea: template variables: InfluxDB: database not found" in capsys.readouterr().out


async def test_a_panel_without_data_is_reported(influxd_shared: Influxd) -> None:
    write(influxd_shared, "dash_partial",
          [line for line in fleet_lines(minutes=3) if not line.startswith("stager")])
    report = await verify(load_dashboards(), influxd_shared.url, "dash_partial")
    assert report.problems
    assert all(p.startswith("stager") for p in report.problems), report.problems
    assert any("stager: variable $job has no values" in p for p in report.problems)


def test_synthetic_data_follows_the_schema() -> None:
    """The synthetic fleet writes only documented measurements, tags and field types."""
    from tests.collector.handlers.golden import schema_from_docs
    schema = schema_from_docs()
    identity = {"deployment", "job", "index", "ip", "role", "endpoint"}
    kinds = {"i": int, '"': str}
    for line in fleet_lines(minutes=1):
        series, fields, _ = line.split(" ")
        measurement, *tags = series.split(",")
        doc = schema[measurement]
        assert {t.split("=")[0] for t in tags} - identity <= doc.tags, line
        for field in fields.split(","):
            name, value = field.split("=")
            kind = kinds.get(value[-1], float)
            assert doc.field_type(name) is kind, (measurement, name, value)
