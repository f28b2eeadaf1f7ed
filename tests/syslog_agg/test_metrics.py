"""The aggregator's declared self-metrics: what a real aggregator stores, and the golden cases
the collector is tested with publish exactly the declarations the code makes."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from fobs.components.metrics import DECLARATIONS_KEY, Registry, overlay
from fobs.syslog_agg.stats import Counts, IntakeStats, PipelineStats
from tests.collector.handlers.golden import CASES_DIR, run
from tests.collector.test_schema_declared import declarations
from tests.syslog_agg.conftest import eventually


def _published(registry: Registry, free: dict[str, Any]) -> dict[str, Any]:
    tree, wire = registry.render()
    return {**overlay(free, tree), DECLARATIONS_KEY: wire}


def without_series(published: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "series"} for d in published]


def golden_declarations(component_type: str, case: str) -> list[dict[str, Any]]:
    """The declarations a golden handler case publishes (tests/collector/handlers/cases)."""
    varz = json.loads((CASES_DIR / component_type / case / "varz.json").read_text())
    return without_series(varz[DECLARATIONS_KEY])


@pytest.mark.parametrize("case", ["fobs_up", "trouble", "garbage"])
@pytest.mark.parametrize(("component_type", "module"), [
    ("SyslogAggregator", "fobs.syslog_agg.metrics"),
    ("Supervisor", "fobs.syslog_agg.monit.metrics"),
    ("AlertEvaluator", "fobs.dashboards.alertd")])
def test_golden_cases_publish_the_declarations_of_the_code(component_type: str, module: str,
                                                           case: str) -> None:
    """The collector's golden cases for these daemons were laid out from their declarations;
    a declaration changed in the code must show up there (tests/collector/handlers/cases)."""
    code = [d.wire([]) for d in declarations(importlib.import_module(module))]
    assert without_series(code) == golden_declarations(component_type, case)


async def test_a_real_aggregator_stores_its_counts_as_declared(aggregator) -> None:
    run_ = await aggregator()
    router = [b"<11>1 - h vcap.router - - - boom", b"<14>1 - h vcap.router - - - ok"]
    run_.send_udp(*router, b"<13>May  1 10:00:00 h vcap.dea: up", b"junk")
    await run_.received(4)
    await eventually(lambda: run_.agg.store.stats.lines_written == 4)
    points, stats = run("SyslogAggregator", _published(run_.agg.metrics,
                                                         {"listeners": run_.agg.addresses()}))
    assert stats.skipped == 0
    by = {(p.measurement, p.tags.get("component") or p.tags.get("transport")): p.fields
          for p in points}
    totals = by["syslog", None]
    assert (totals["messages"], totals["messages_err"], totals["messages_info"],
            totals["parse_errors"], totals["formats_rfc3164"]) == (4, 1, 1, 1, 1)
    assert totals["components"] == 3.0 and totals["store_lines_written"] == 4
    severities = {"emerg": 0, "alert": 0, "crit": 0, "err": 1, "warning": 0, "notice": 0,
                  "info": 1, "debug": 0}
    assert by["syslog_component", "router"] == {
        "messages": 2, "bytes": sum(map(len, router)), "unparsed": 0,
        **{f"messages_{s}": n for s, n in severities.items()}}
    assert by["syslog_component", "unparsed"]["unparsed"] == 1
    assert by["syslog_listener", "udp"]["workers"] == 0.0
    assert by["syslog_listener", "tcp"]["connections"] == 0
    assert "varz" not in {p.measurement for p in points}  # nothing left for the flattener


def test_take_returns_the_counts_since_the_last_take_and_merge_adds_them() -> None:
    worker, total = IntakeStats(), IntakeStats(received=5)
    worker.received, worker.probes = 3, 1
    total.merge(worker.take())
    worker.received += 2
    total.merge(worker.take())
    assert (total.received, total.probes) == (10, 1) and worker == IntakeStats()

    shipped = PipelineStats()
    shipped.components["a"] = Counts(1, 10, [0, 0, 0, 1, 0, 0, 0, 0, 0])
    shipped.formats["rfc5424"] = 1
    held_by_the_loop = shipped.components  # Pipeline.process holds these dicts mid-slice
    delta = shipped.take()
    held_by_the_loop["a"] = Counts(1, 5, [0] * 9)  # counted after the take: the next batch
    aggregator = PipelineStats()
    aggregator.merge(delta)
    aggregator.merge(shipped.take())
    assert aggregator.components["a"] == Counts(2, 15, [0, 0, 0, 1, 0, 0, 0, 0, 0])
    assert aggregator.formats["rfc5424"] == 1 and shipped.formats["rfc5424"] == 0
