"""The declared-metrics handler: a registry's varz → points for any component type, bounded."""

from __future__ import annotations

from typing import Any

from fobs.collector import metrics as collector_metrics
from fobs.collector.handlers import declared
from fobs.components.metrics import DECLARATIONS_KEY, Counter, Gauge, Registry, Summary, overlay
from tests.collector.handlers.golden import CASES_DIR, load_varz, render_point, run


def _varz(registry: Registry, **free: Any) -> dict[str, Any]:
    """What the runtime serves: free-form varz with the declared metrics laid over it."""
    tree, wire = registry.render()
    return {**overlay(free, tree), DECLARATIONS_KEY: wire}


def _shop() -> Registry:
    registry = Registry()
    requests = Counter("shop", "requests", "Requests", tags=("method", "kind"),
                       varz="http.requests.{method}", registry=registry)
    Gauge("shop", "queue_length", "Queue", registry=registry).set(3)
    Gauge("shop", "rtt_seconds", "Not measured yet", registry=registry).set_function(lambda: None)
    latency = Summary("shop_http", "latency_{q}_seconds", "Latency", tags=("method",),
                      varz="http.latency.{method}", registry=registry)
    requests.labels("GET", "read").inc(5)
    requests.labels("POST", "write").inc()
    latency.labels("GET").observe(0.25)
    return registry


def test_any_component_type_gets_its_declared_metrics_stored() -> None:
    points, stats = run("Shop", _varz(_shop(), http={"version": "1.1"}, status="ok"))
    lines = sorted(render_point(p) for p in points)
    tags = "deployment=golden,index=0,job=Shop"
    assert lines == [
        f"shop,{tags} queue_length=3.0 1700000000000000000",
        f"shop,{tags},kind=read,method=GET requests=5i 1700000000000000000",
        f"shop,{tags},kind=write,method=POST requests=1i 1700000000000000000",
        f"shop_http,{tags},method=GET latency_max_seconds=0.25,latency_p50_seconds=0.25,"
        "latency_p90_seconds=0.25,latency_p99_seconds=0.25 1700000000000000000",
    ]
    assert stats.skipped == 0 and stats.error is None


def test_the_generic_flattener_does_not_store_declared_values_again() -> None:
    points, _ = run("Shop", _varz(_shop(), extra={"free": 2}))
    generic = [p for p in points if p.measurement == "varz"]
    assert [p.fields for p in generic] == [{"extra.free": 2.0}]


def test_the_rest_of_varz_is_left_untouched() -> None:
    varz = _varz(_shop(), http={"version": "1.1"})
    rest = declared.add(varz, _recorder())
    assert rest == {"http": {"version": "1.1"}}
    assert DECLARATIONS_KEY in varz and varz["queue_length"] == 3.0   # the input is not changed


def _recorder() -> Any:
    from fobs.collector.handlers.recorder import Recorder
    from fobs.collector.point import ListAppender
    return Recorder(ListAppender({}, 0))


GOOD = {"measurement": "m", "field": "f", "type": "int", "kind": "counter", "tags": ["t"],
        "path": ["a", "{t}"], "series": [["x"]]}


def test_malformed_declarations_are_counted_not_stored() -> None:
    bad = [
        "not an object",
        {**GOOD, "measurement": "Bad Name"},
        {**GOOD, "type": "string"},
        {**GOOD, "tags": ["job"]},                      # an identity tag
        {**GOOD, "tags": ["t", "t"]},
        {**GOOD, "path": ["a", "{other}"]},
        {**GOOD, "path": []},
        {**GOOD, "path": ["k"] * 9},
        {**GOOD, "field": None},
        {**GOOD, "measurement": "scrape"},              # the collector's own measurements
        {**GOOD, "measurement": "component"},
    ]
    varz = {"a": {"x": 1}, DECLARATIONS_KEY: [*bad, GOOD]}
    points, stats = run("Shop", varz)
    assert [(p.measurement, p.fields, p.tags["t"]) for p in points if p.measurement == "m"] == [
        ("m", {"f": 1}, "x")]
    assert stats.skipped == len(bad)
    assert not [p for p in points if p.measurement == "varz"]


def test_bad_series_and_values_are_counted() -> None:
    decl = {**GOOD, "series": [["x"], ["y"], ["1.2.3.4"], [], "z", ["w"]]}
    varz = {"a": {"x": 1, "y": "NaN", "w": None}, DECLARATIONS_KEY: [decl]}
    points, stats = run("Shop", varz)
    assert [p.fields for p in points if p.measurement == "m"] == [{"f": 1}]
    assert stats.skipped == 4          # y not a number, an IP tag value, a wrong length, not a list


def test_huge_declarations_are_capped_and_counted() -> None:
    many = [{**GOOD, "field": f"f{i}"} for i in range(declared.MAX_DECLARATIONS + 10)]
    wide = {**GOOD, "field": "g", "series": [[f"v{i}"] for i in range(declared.MAX_SERIES + 5)]}
    varz = {"a": {"x": 1}, DECLARATIONS_KEY: [wide, *many]}
    points, stats = run("Shop", varz)
    assert stats.error is None
    assert stats.skipped == 5 + 11     # series past MAX_SERIES, entries past MAX_DECLARATIONS
    assert len(points) <= declared.MAX_SERIES + 2


def test_declarations_that_are_not_a_list_are_one_skip() -> None:
    points, stats = run("Shop", {DECLARATIONS_KEY: {"x": 1}})
    assert stats.skipped == 1 and stats.error is None


def _shape(measurement: str, field: str, type: str, tags: Any, path: Any) -> tuple[Any, ...]:
    return measurement, field, type, tuple(tags), tuple(path)


def test_the_collector_golden_cases_carry_its_current_declarations() -> None:
    """The Collector cases were captured before a declaration changed? Regenerate them."""
    registry = Registry()
    collector_metrics.declare(registry)
    current = {_shape(d.measurement, d.field, d.type, d.tags, d.path)
               for d in registry.declarations()}
    for case in ("fobs_up", "trouble"):
        published = load_varz(CASES_DIR / "Collector" / case)[DECLARATIONS_KEY]
        assert {_shape(w["measurement"], w["field"], w["type"], w["tags"], w["path"])
                for w in published} == current, case


def test_reserved_measurements_are_the_ones_the_collector_writes() -> None:
    from fobs.collector import scrape
    from fobs.collector.handlers import component, generic
    assert declared.RESERVED == {scrape.MEASUREMENT, component.MEASUREMENT, generic.MEASUREMENT}
