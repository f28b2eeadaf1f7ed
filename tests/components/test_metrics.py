"""The metrics registry: declarations, varz rendering, take/merge, misuse."""

from __future__ import annotations

import pickle

import pytest

from fobs.components.metrics import Counter, Gauge, Registry, Summary, overlay


@pytest.fixture
def registry() -> Registry:
    return Registry()


def test_varz_follows_the_declared_paths(registry: Registry) -> None:
    requests = Counter("shop", "requests", "HTTP requests", tags=("method",),
                       varz="http.requests.{method}", registry=registry)
    queue = Gauge("shop", "queue_length", "Orders waiting", registry=registry)
    orders = [1, 2, 3]
    queue.set_function(lambda: len(orders))
    requests.labels("GET").inc()
    requests.labels("GET").inc(2)
    requests.labels("POST").inc()
    assert registry.varz() == {"http": {"requests": {"GET": 3, "POST": 1}}, "queue_length": 3.0}
    orders.pop()
    assert registry.varz()["queue_length"] == 2.0


def test_declarations_are_published_with_their_series(registry: Registry) -> None:
    c = Counter("out", "written", "Points written", tags=("output", "kind"),
                varz="outputs.{output}.written", registry=registry)
    c.labels("influx", "influxdb_v1").inc(5)
    tree, wire = registry.render()
    assert tree == {"outputs": {"influx": {"written": 5}}}
    assert wire == [{"measurement": "out", "field": "written", "type": "int", "kind": "counter",
                     "tags": ["output", "kind"], "path": ["outputs", "{output}", "written"],
                     "series": [["influx", "influxdb_v1"]]}]


def test_unlabelled_instruments_render_zero_from_the_start(registry: Registry) -> None:
    Counter("d", "events", "Events", registry=registry)
    Gauge("d", "level", "Level", type="int", registry=registry)
    assert registry.varz() == {"events": 0, "level": 0}


def test_a_function_returning_none_leaves_the_value_out(registry: Registry) -> None:
    Gauge("d", "rtt_seconds", "Round trip", registry=registry).set_function(lambda: None)
    tree, wire = registry.render()
    assert tree == {}
    assert wire[0]["series"] == []


def test_overlay_merges_nested_objects_without_changing_either() -> None:
    base = {"http": {"version": "1.1", "requests": 0}, "up": 1}
    tree = {"http": {"requests": {"GET": 2}}}
    assert overlay(base, tree) == {"http": {"version": "1.1", "requests": {"GET": 2}}, "up": 1}
    assert base == {"http": {"version": "1.1", "requests": 0}, "up": 1}


def test_a_broken_reader_or_hook_leaves_only_its_value_out(registry: Registry) -> None:
    Gauge("d", "broken", "Raises", registry=registry).set_function(lambda: 1 / 0)
    Gauge("d", "text", "Not a number", registry=registry).set_function(lambda: "x")  # type: ignore[arg-type,return-value]
    Counter("d", "fine", "Fine", registry=registry).inc()

    def hook() -> None:
        raise RuntimeError("bug")

    registry.on_collect(hook)
    assert registry.varz() == {"fine": 1}


def test_gauge_set_inc_dec(registry: Registry) -> None:
    g = Gauge("d", "in_flight", "In flight", registry=registry)
    g.inc()
    g.inc(2)
    g.dec()
    assert registry.value("d", "in_flight") == 2
    g.set(7.5)
    assert registry.varz() == {"in_flight": 7.5}


def test_summary_renders_quantiles_and_declares_one_field_each(registry: Registry) -> None:
    s = Summary("scrape", "duration_{q}_seconds", "Scrape duration", tags=("target_endpoint",),
                varz="scrapes.duration_seconds.{target_endpoint}", registry=registry)
    s.labels("healthz")
    for value in range(1, 101):
        s.labels("varz").observe(value / 100)
    assert registry.varz() == {"scrapes": {"duration_seconds": {
        "healthz": {}, "varz": {"50": 0.51, "90": 0.91, "99": 1.0, "max": 1.0}}}}
    assert registry.value("scrape", "duration_{q}_seconds", "healthz") == 0
    fields = [(d.field, d.path[-1], d.type) for d in registry.declarations()]
    assert fields == [("duration_p50_seconds", "50", "float"),
                      ("duration_p90_seconds", "90", "float"),
                      ("duration_p99_seconds", "99", "float"),
                      ("duration_max_seconds", "max", "float")]


def test_collect_hooks_refill_labelled_gauges(registry: Registry) -> None:
    by_type = Gauge("c", "known", "Targets by type", tags=("target_job",), registry=registry)
    live = {"DEA": 3}

    def refill() -> None:
        by_type.clear()
        for job, n in live.items():
            by_type.labels(job).set(n)

    registry.on_collect(refill)
    assert registry.varz() == {"known": {"DEA": 3.0}}
    live = {"Router": 1}
    assert registry.varz() == {"known": {"Router": 1.0}}


def test_take_and_merge_carry_counter_deltas_across_processes(registry: Registry) -> None:
    def declare(r: Registry) -> Counter:
        return Counter("syslog", "received", "Datagrams", tags=("transport",), registry=r)

    worker, main = Registry(), registry
    sent, total = declare(worker), declare(main)
    sent.labels("udp").inc(3)
    delta = pickle.loads(pickle.dumps(worker.take()))
    assert delta == {"syslog.received": {("udp",): 3}}
    assert worker.take() == {}
    main.merge(delta)
    main.merge(delta)
    assert total.labels("udp").get() == 6
    with pytest.raises(KeyError):
        main.merge({"syslog.unknown": {(): 1}})


def test_misuse_raises(registry: Registry) -> None:
    c = Counter("d", "events", "Events", tags=("kind",), registry=registry)
    with pytest.raises(ValueError, match="incorrect label count"):
        c.labels()
    with pytest.raises(ValueError, match="non-negative"):
        c.labels("a").inc(-1)
    with pytest.raises(ValueError, match="Duplicated metric"):
        Counter("d", "events", "Again", registry=registry)
    with pytest.raises(ValueError, match="is taken by d.events"):
        Gauge("d", "other", "Same place", tags=("x",), varz="events.{x}", registry=registry)
    with pytest.raises(ValueError, match="must name each"):
        Gauge("d", "bad", "Unknown tag", varz="a.{nope}")
    with pytest.raises(ValueError, match="Invalid metric name"):
        Gauge("d", "Bad-Name", "Name")
    with pytest.raises(ValueError, match="target identity"):
        Gauge("d", "by_job", "Job is the collector's tag", tags=("job",))
    with pytest.raises(ValueError, match="must contain"):
        Summary("d", "duration", "No quantile placeholder")
