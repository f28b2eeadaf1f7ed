"""Handler tests: golden cases, the original collector's metrics from the CF fixtures, the registry.

Golden cases live in tests/collector/handlers/cases/<type>/<case>/ (see the README there);
`UPDATE_GOLDEN=1` rewrites their expected.lp from the current handlers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from fobs.collector.handlers import (
    GENERIC,
    HANDLERS,
    Handler,
    handler_for,
    patterns,
    register,
    role_for,
)
from fobs.collector.handlers.values import IDENTITY_TAGS, parse_uptime, tag_value, to_float, to_int
from fobs.collector.point import ListAppender, Point
from tests.collector.handlers.golden import (
    BASE_TAGS,
    CASES_DIR,
    case_dirs,
    load_varz,
    render,
    run,
    schema_from_docs,
)

MB = 1024 * 1024


# -- golden cases ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", case_dirs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(case: Path) -> None:
    points, stats = run(case.parent.name, load_varz(case))
    assert stats.error is None
    assert stats.points == len(points)
    text = render(points, stats)
    expected = case / "expected.lp"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert text == expected.read_text()


def test_every_case_type_resolves_to_the_intended_handler() -> None:
    intended = {"DEA": "dea", "Router": "router", "CloudController": "cloud_controller",
                "MarketplaceGateway": "service_gateway", "MyaaS-Provisioner": "service_gateway",
                "MyaaS-Node": "service_node", "RaaS-Node": "service_node",
                "HealthManager": "health_manager", "Stager": "stager", "HM9000": "contexts",
                "MetronAgent": "contexts", "etcd": "contexts", "Widget": GENERIC,
                "Collector": GENERIC, "SyslogAggregator": GENERIC, "Supervisor": GENERIC,
                "AlertEvaluator": GENERIC}
    assert {path.name for path in CASES_DIR.iterdir() if path.is_dir()} == set(intended)
    assert {t: handler_for(t).name for t in intended} == intended


def test_golden_points_follow_docs_schema() -> None:
    """Every emitted measurement, tag and field is documented, with the documented type."""
    schema = schema_from_docs()
    emitted = set()
    for case in case_dirs():
        points, _ = run(case.parent.name, load_varz(case))
        for point in points:
            doc = schema.get(point.measurement)
            assert doc is not None, f"{point.measurement} is not in docs/schema.md"
            emitted.add(point.measurement)
            own_tags = set(point.tags) - set(BASE_TAGS) - {"job"}
            assert doc.any_tag or own_tags <= doc.tags, (point.measurement, point.tags)
            for name, value in point.fields.items():
                assert doc.field_type(name) is type(value), (case, point.measurement, name, value)
    # Every documented handler measurement is exercised by some case (`scrape` is the scrape
    # code's).
    assert set(schema) - emitted == {"scrape"}


# -- the original collector's metrics, under our names ------------------------------------------
# One row per metric the original collector (cloudfoundry-attic/collector, cf-protocol.md §2)
# sent for the fixture: (original key, original extra tags, original value) →
# (our measurement, our tags, our field, our value). Units are converted where ours differ.

GENERIC_DEA: list[tuple[Any, ...]] = [
    ("mem_used_bytes", {}, 1278885888, "component", {}, "mem_used_bytes", 1278885888.0),
    ("mem_free_bytes", {}, 6550331392, "component", {}, "mem_free_bytes", 6550331392.0),
    ("cpu_load_avg", {}, 0.4, "component", {}, "cpu_load_avg", 0.4),
    ("uptime_in_seconds", {}, 270236, "component", {}, "uptime_seconds", 270236),
    ("log_count", {"level": "fatal"}, 0, "component", {}, "log_fatal", 0),
    ("log_count", {"level": "error"}, 0, "component", {}, "log_error", 0),
    ("log_count", {"level": "warn"}, 0, "component", {}, "log_warn", 0),
]
DEA_STACK = {"stack": "cflinuxfs2"}
DEA = GENERIC_DEA + [
    ("can_stage", {}, 1, "dea", DEA_STACK, "can_stage", 1.0),
    ("reservable_stagers", {}, 28, "dea", DEA_STACK, "reservable_stagers", 28.0),
    ("available_memory_ratio", {}, 5.678, "dea", DEA_STACK, "available_memory_ratio", 5.678),
    ("available_disk_ratio", {}, 1.234, "dea", DEA_STACK, "available_disk_ratio", 1.234),
    ("total_warden_response_time_in_ms", {}, 1010, "dea", DEA_STACK, "warden_response_time_ms",
     1010),
    ("warden_request_count", {}, 49, "dea", DEA_STACK, "warden_requests", 49),
    ("warden_error_response_count", {}, 3, "dea", DEA_STACK, "warden_errors", 3),
    *[(f"dea_registry_{state}", {}, count, "dea", DEA_STACK, f"instances_{state}", float(count))
      for state, count in [("born", 1), ("starting", 1), ("running", 2), ("stopping", 1),
                           ("stopped", 1), ("crashed", 1), ("resuming", 1), ("deleted", 1),
                           ("evacuating", 1)]],
    # limits.mem / limits.disk (MB) summed over BORN, STARTING, 2 × RUNNING, RESUMING, EVACUATING.
    ("dea_registry_mem_reserved", {}, 1536, "dea", DEA_STACK, "reserved_memory_bytes",
     1536.0 * MB),
    ("dea_registry_disk_reserved", {}, 6144, "dea", DEA_STACK, "reserved_disk_bytes",
     6144.0 * MB),
]
ROUTER_TOTALS: list[tuple[Any, ...]] = [
    ("router.total_requests", {}, 68213, "router", {}, "requests", 68213),
    # The original truncated requests_per_sec with to_i (→ 0); we keep the rate.
    ("router.requests_per_sec", {}, 0, "router", {}, "requests_per_sec", 0.22460493344950977),
    *[(f"router.responses.{c}", {}, n, "router", {}, f"responses_{c}", n)
      for c, n in [("2xx", 65021), ("3xx", 971), ("4xx", 2182), ("5xx", 1), ("xxx", 38)]],
]
ROUTE_RESPONSES = [("2xx", 200), ("3xx", 300), ("4xx", 400), ("5xx", 500), ("xxx", 1000)]


def _route_rows(original_tags: dict[str, Any], tags: dict[str, str]) -> list[tuple[Any, ...]]:
    return [
        ("router.requests", original_tags, 1234, "router_route", tags, "requests", 1234),
        # latency.1m was value/samples = 5, which gorouter fills with a constant; its
        # percentiles (seconds) replace it.
        ("router.latency.1m", original_tags, 5, "router_route", tags, "latency_p50_seconds",
         0.025036),
        *[("router.responses", {**original_tags, "status": c}, n, "router_route", tags,
           f"responses_{c}", n) for c, n in ROUTE_RESPONSES],
    ]


ROUTER = ROUTER_TOTALS + [("router.routed_app_requests", {}, 0, "router", {},
                           "routed_app_requests", 0)]
ROUTER_COMPONENTS = ROUTER_TOTALS + [
    ("router.routed_app_requests", {}, 1234, "router", {}, "routed_app_requests", 1234),
    *_route_rows({"component": "component-1"}, {"component": "component-1"}),
    *_route_rows({"component": "app", "dea_index": "1"}, {"component": "app", "dea_index": "1"}),
]
CLOUD_CONTROLLER: list[tuple[Any, ...]] = [
    ("uptime_in_seconds", {}, 180122, "component", {}, "uptime_seconds", 180122),
    ("cc.uptime", {}, 180122, "component", {}, "uptime_seconds", 180122),
    ("cc.requests.outstanding", {}, 22, "cloud_controller", {}, "requests_outstanding", 22.0),
    ("cc.requests.completed", {}, 9828, "cloud_controller", {}, "requests_completed", 9828),
    *[(f"cc.http_status.{d}XX", {}, n, "cloud_controller", {}, f"http_{d}xx", n)
      for d, n in [(1, 3), (2, 9308), (3, 33), (4, 723), (5, 22)]],
    ("cc.thread_info.thread_count", {}, 21, "cloud_controller", {}, "thread_count", 21.0),
    ("cc.thread_info.event_machine.connection_count", {}, 30, "cloud_controller", {},
     "em_connection_count", 30.0),
    *[(f"cc.thread_info.event_machine.{q}.{k}", {}, n, "cloud_controller", {}, f"em_{q}_{k}",
       float(n)) for q, k, n in [("threadqueue", "size", 40), ("threadqueue", "num_waiting", 10),
                                 ("resultqueue", "size", 4), ("resultqueue", "num_waiting", 2)]],
]
MARKETPLACE = {"service_type": "marketplace"}
MARKETPLACE_GATEWAY = [
    ("mem_used_bytes", {}, 271937536, "component", {}, "mem_used_bytes", 271937536.0),
    ("mem_free_bytes", {}, 1465544704, "component", {}, "mem_free_bytes", 1465544704.0),
    ("cpu_load_avg", {}, 0.04, "component", {}, "cpu_load_avg", 0.04),
    ("uptime_in_seconds", {}, 45, "component", {}, "uptime_seconds", 45),
    *[("services.http_status", {"status": c, **MARKETPLACE, "component": "gateway"}, n,
       "service_gateway", MARKETPLACE, f"responses_{c}", n)
      for c, n in [("2xx", 1), ("3xx", 0), ("4xx", 0), ("5xx", 0), ("xxx", 0)]],
]
ORIGINAL: dict[str, list[tuple[Any, ...]]] = {
    "DEA/dea_ng": DEA,
    "Router/gorouter": ROUTER,
    "Router/gorouter_components": ROUTER_COMPONENTS,
    "CloudController/cloud_controller": CLOUD_CONTROLLER,
    "MarketplaceGateway/marketplace_gateway": MARKETPLACE_GATEWAY,
}


def _point(points: list[Point], measurement: str, tags: dict[str, str]) -> Point:
    extra = {"deployment", "index", "job"}
    found = [p for p in points if p.measurement == measurement
             and {k: v for k, v in p.tags.items() if k not in extra} == tags]
    assert len(found) == 1, (measurement, tags, points)
    return found[0]


@pytest.mark.parametrize("fixture", sorted(ORIGINAL))
def test_fixture_yields_the_original_collectors_metrics(fixture: str) -> None:
    component_type = fixture.split("/")[0]
    points, stats = run(component_type, load_varz(CASES_DIR / fixture))
    assert stats.error is None and stats.skipped == 0
    for original, _tags, _value, measurement, tags, name, value in ORIGINAL[fixture]:
        point = _point(points, measurement, tags)
        assert name in point.fields, (original, measurement, name)
        got = point.fields[name]
        assert type(got) is type(value), (original, name, got)
        assert got == pytest.approx(value, rel=1e-12), (original, name, got, value)


def test_top10_apps_and_ids_never_become_tags() -> None:
    for case in case_dirs():
        points, _ = run(case.parent.name, load_varz(case))
        for point in points:
            for key, value in point.tags.items():
                assert key in IDENTITY_TAGS or tag_value(value) is not None \
                    or (key == "stack" and all(map(tag_value, value.split(",")))), (case, key,
                                                                                    value)
                assert key not in IDENTITY_TAGS or point.tags[key] == {**BASE_TAGS,
                                                                       "job": case.parent.name}[key]


# -- registry ----------------------------------------------------------------------------------

def test_duplicate_registration_raises_and_leaves_the_registry_alone() -> None:
    before, before_patterns = dict(HANDLERS), patterns()
    with pytest.raises(ValueError, match="DEA"):
        register("Fresh", "DEA")(lambda varz, rec: None)
    with pytest.raises(ValueError, match=r"\*-Node"):
        register(patterns=("*-Node",))(lambda varz, rec: None)
    assert before == HANDLERS and before_patterns == patterns()


@pytest.mark.parametrize(("component_type", "handler"), [
    ("DEA", "dea"), ("Router", "router"), ("Stager", "stager"),
    ("CloudController", "cloud_controller"), ("HealthManager", "health_manager"),
    ("MarketplaceGateway", "service_gateway"), ("AuaaS-Provisioner", "service_gateway"),
    ("Whatever-Provisioner", "service_gateway"), ("RMQaaS-Node", "service_node"),
    ("HM9000", "contexts"), ("MetronAgent", "contexts"), ("DopplerServer", "contexts"),
    ("etcd-diego", "contexts"), ("dea", GENERIC), ("", GENERIC), ("Collector", GENERIC),
    ("SyslogAggregator", GENERIC), ("Supervisor", GENERIC), ("AlertEvaluator", GENERIC),
    ("collector", GENERIC),
])
def test_handler_for(component_type: str, handler: str) -> None:
    assert handler_for(component_type).name == handler


def test_handler_for_a_non_string_type_is_generic() -> None:
    assert handler_for(None).name == GENERIC  # type: ignore[arg-type]


@pytest.mark.parametrize(("component_type", "role"), [
    ("CloudController", "core"), ("DEA", "core"), ("HealthManager", "core"), ("HM9000", "core"),
    ("Router", "core"), ("DopplerServer", "core"), ("LoggregatorTrafficcontroller", "core"),
    ("LoggregatorDeaAgent", "core"), ("Stager", "core"), ("MyaaS-Provisioner", "service"),
    ("VBlobaaS-Node", "service"), ("SerializationDataServer", "service"),
    ("BackupManager", "service"), ("MarketplaceGateway", None), ("Widget", None),
    ("Collector", None), (None, None),
])
def test_role_for(component_type: str, role: str | None) -> None:
    assert role_for(component_type) == role


def test_a_handler_bug_is_reported_not_raised() -> None:
    def broken(varz: Any, rec: Any) -> None:
        rec.add("partial", {"x": 1.0})
        raise KeyError("oops")

    out = ListAppender(BASE_TAGS, 0)
    stats = Handler("broken", broken)({"uptime": "0d:0h:0m:1s"}, out)
    assert stats.points == 2 and stats.error == "KeyError: 'oops'"
    assert [p.measurement for p in out.points] == ["component", "partial"]


def test_a_varz_that_is_not_an_object_is_one_skip() -> None:
    out = ListAppender(BASE_TAGS, 0)
    for varz in ([1, 2], "ok", None, 3.5):
        assert handler_for("DEA")(varz, out) == (0, 1, None)
    assert out.points == []


# -- values ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "as_float", "as_int"), [
    (3, 3.0, 3), (2.9, 2.9, 2), (-2.9, -2.9, -2), (True, 1.0, 1), ("12", 12.0, 12),
    (" 1.5e3 ", 1500.0, 1500), ("0x10", None, None), ("nan", None, None), ("1e999", None, None),
    (math.nan, None, None), (math.inf, None, None), (2**63, float(2**63), None),
    (2**63 - 1, float(2**63 - 1), 2**63 - 1), (10**400, None, None), (1e30, 1e30, None),
    ("9" * 41, None, None), (None, None, None), ([1], None, None), ({}, None, None),
])
def test_coercion(raw: Any, as_float: float | None, as_int: int | None) -> None:
    assert to_float(raw) == as_float
    assert to_int(raw) == as_int


@pytest.mark.parametrize(("raw", "seconds"), [
    ("0d:0h:0m:0s", 0), ("3d:3h:3m:56s", 270236), (" 1d:0h:0m:1s\n", 86401), (42, 42),
    ("3d 3h", None), ("-1d:0h:0m:0s", None), ("", None), ([], None),
])
def test_parse_uptime(raw: Any, seconds: int | None) -> None:
    assert parse_uptime(raw) == seconds


@pytest.mark.parametrize(("raw", "ok"), [
    ("cflinuxfs2", True), ("dea-1", True), ("CloudController", True), ("compile failed", True),
    (7, True), ("", False), ("a\nb", False), ('quo"te', False), ("x" * 65, False),
    ("5a1c9e2b-7d3f-4a6b-9c8d-1e2f3a4b5c6d", False), ("b6f1c9a0d2e34f5a8b7c", False),
    ("10.0.0.1", False), (True, False), (None, False), (1.5, False),
])
def test_tag_value(raw: Any, ok: bool) -> None:
    assert (tag_value(raw) is not None) is ok
