"""The simulated router: traffic, status classes, latency, route table; then on real NATS."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from loguru import logger

from fobs.components.config import ConfigError, load
from fobs.components.router import RouterConfig
from tests.components.conftest import eventually, http_get, varz
from tests.components.reference_helpers import (
    build,
    next_json,
    run_for,
    started,
    subscribe,
    varz_now,
)
from tests.components.varz_schema import check_router

__all__ = ["started"]

STEADY: dict[str, Any] = dict(bursts_per_hour=0.0)
ACCESS_LINE = re.compile(
    r'^\S+ - \[\d\d/\d\d/\d{4}:\d\d:\d\d:\d\d\.\d{3} \+0000\] "(GET|POST) \S+ HTTP/1\.1" '
    r'\d{1,3} \d+ \d+ "-" "[^"]+" [\d.]+:\d+ x_forwarded_for:"[\d.]+" '
    r'vcap_request_id:[0-9a-f-]{36} response_time:\d+\.\d{6} app_id:\S+$')


def route(app: str, n: int, dea: int = 0) -> dict[str, Any]:
    return {"dea": f"{dea}-uuid", "app": app, "uris": [f"{app}.apps.test"], "host": "10.0.0.1",
            "port": 61000 + n, "tags": {"component": f"dea-{dea}"},
            "private_instance_id": f"{app}-{n}"}


def register_all(router: Any, routes: list[dict[str, Any]]) -> None:
    for r in routes:
        router.on_register(r, "")


def test_traffic_fills_gorouter_varz() -> None:
    router, comp, clock = build("router", requests_per_second=200.0, **STEADY)
    routes = [route(f"app{a}", i, dea=i) for a in range(5) for i in range(2)]
    register_all(router, routes)
    router.step(clock())
    expected = 0.0
    for second in range(120):
        if second % 30 == 0:
            register_all(router, routes)
        expected += 200.0 * router.daily.factor(clock.advance(1.0))
        router.step(clock())
    v = varz_now(router, comp)
    check_router(v)
    arrived = v["requests"] + v["bad_requests"]
    assert arrived == pytest.approx(expected, rel=0.05)
    assert v["rate"][0] == pytest.approx(expected / 120, rel=0.25)
    assert v["urls"] == 5 and v["droplets"] == 10 and v["bad_gateways"] == 0
    assert 0.9 < v["responses_2xx"] / v["requests"] < 0.99
    assert v["responses_3xx"] > 0 and v["responses_4xx"] > 0
    assert 0.012 < v["latency"]["50"] < 0.06 and v["latency"]["99"] > 3 * v["latency"]["50"]
    assert v["latency"]["value"] / v["latency"]["samples"] == pytest.approx(
        1000 * v["latency"]["50"], rel=1.5)   # the mean in ms, a bit above the median
    tags = v["tags"]["component"]
    assert set(tags) == {"dea-0", "dea-1"}
    assert sum(t["requests"] for t in tags.values()) == v["requests"]
    top = v["top10_app_requests"]
    assert len(top) == 5 and top[0]["application_id"] in router.routes.popularity.keys[:2]
    assert sum(t["rpm"] for t in top) == pytest.approx(v["requests"] / 2, rel=0.1)  # per minute


def test_crashed_endpoint_answers_502_until_unregistered() -> None:
    router, comp, clock = build("router", requests_per_second=100.0, **STEADY)
    healthy, doomed = route("web", 1, dea=1), route("api", 2, dea=3)
    register_all(router, [healthy, doomed])
    run_for(router, clock, 10)
    before = varz_now(router, comp)
    assert before["bad_gateways"] == 0
    router.on_exited({"droplet": "api", "private_instance_id": "api-2",
                      "reason": "DEA_EVACUATION"}, "")      # not a crash: nothing changes
    router.on_exited({"droplet": "api", "private_instance_id": "api-2", "reason": "CRASHED"}, "")
    run_for(router, clock, 10)
    during = varz_now(router, comp)
    check_router(during)
    assert during["dead_endpoints"] == 1
    gateways = during["bad_gateways"]
    api = during["tags"]["component"]["dea-3"]
    new_api = api["requests"] - before["tags"]["component"]["dea-3"]["requests"]
    assert gateways > 0 and api["responses_5xx"] >= gateways == new_api
    assert during["tags"]["component"]["dea-1"]["responses_5xx"] <= 2   # background only
    router.on_unregister(doomed, "")
    run_for(router, clock, 10)
    after = varz_now(router, comp)
    assert after["bad_gateways"] == gateways and after["dead_endpoints"] == 0
    assert after["urls"] == 1 and after["ms_since_last_registry_update"] == 10_000


def test_stale_routes_are_pruned_and_no_route_means_bad_requests() -> None:
    router, comp, clock = build("router", requests_per_second=50.0, stale_route_seconds=30.0,
                                **STEADY)
    register_all(router, [route("web", 1)])
    run_for(router, clock, 20)
    assert varz_now(router, comp)["urls"] == 1
    run_for(router, clock, 20)
    v = varz_now(router, comp)
    assert v["urls"] == 0 and v["droplets"] == 0 and v["ms_since_last_registry_update"] < 6000
    bad = v["bad_requests"]
    run_for(router, clock, 10)
    assert varz_now(router, comp)["bad_requests"] > bad + 50


def test_bursts_overload_backends_into_5xx() -> None:
    def share_5xx(**options: Any) -> float:
        router, comp, clock = build("router", requests_per_second=100.0, **options)
        for _minute in range(30):
            register_all(router, [route("web", 1), route("api", 2)])
            run_for(router, clock, 60)
        v = varz_now(router, comp)
        return float(v["responses_5xx"]) / v["requests"]

    calm = share_5xx(bursts_per_hour=0.0)
    stormy = share_5xx(bursts_per_hour=60.0, burst_max_multiplier=8.0, burst_mean_seconds=120.0)
    assert calm < 0.003 and stormy > 3 * calm


def test_access_log_is_sampled_and_gorouter_like() -> None:
    router, comp, clock = build("router", requests_per_second=1000.0,
                                access_log_per_second=2.0, **STEADY)
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}",
                      filter=lambda r: r["extra"].get("uuid") == comp.uuid)
    try:
        register_all(router, [route("web", 1)])
        run_for(router, clock, 30)
    finally:
        logger.remove(sink)
    assert 55 <= len(lines) <= 60          # 2 a second, though ~15 000 requests went through
    assert varz_now(router, comp)["requests"] > 10_000
    for line in lines:
        assert ACCESS_LINE.match(line.rstrip("\n")), line
    assert varz_now(router, comp)["access_log_lines"] == len(lines)


def test_same_seed_same_traffic() -> None:
    def run(seed: int) -> str:
        router, comp, clock = build("router", seed=seed)
        register_all(router, [route(f"app{a}", a) for a in range(8)])
        run_for(router, clock, 60)
        v = varz_now(router, comp)
        return json.dumps({k: v[k] for k in ("requests", "responses_2xx", "latency", "tags",
                                             "top10_app_requests")})

    assert run(3) == run(3) and run(3) != run(4)


async def test_router_on_nats(started: Any, nc: Any) -> None:
    starts = await subscribe(nc, "router.start")
    router, comp = await started("router", index=1, tick_interval=0.1,
                                 requests_per_second=500.0, register_interval=9)
    hello = await next_json(starts)
    assert hello["id"] == comp.uuid and hello["minimumRegisterIntervalInSeconds"] == 9
    reply = await nc.request("router.greet", b"", timeout=5)
    assert json.loads(reply.data)["minimumRegisterIntervalInSeconds"] == 9
    for r in (route("web", 1, dea=0), route("web", 2, dea=1)):
        await nc.publish("router.register", json.dumps(r).encode())
    await nc.publish("router.register", b'{"host": 1}')
    await nc.publish("router.unregister", b"junk")

    async def routed() -> bool:
        status, body = await http_get(comp, "/routes")
        return status == 200 and json.loads(body) == {
            "web.apps.test": ["10.0.0.1:61001", "10.0.0.1:61002"]}
    await eventually(routed, what="/routes to list the registered endpoints")
    first = await varz(comp)
    check_router(first)

    async def busy() -> bool:
        v = await varz(comp)
        check_router(v)
        return v["requests"] > first["requests"] and len(v["tags"]["component"]) == 2 and \
            v["latency"]["samples"] > 0 and v["bad_messages"] == 2
    await eventually(busy, what="router traffic to show in varz")
    assert await http_get(comp, "/healthz") == (200, "ok")


def test_config_rejects_mistakes() -> None:
    assert load(RouterConfig, overrides={"requests_per_second": 5}).requests_per_second == 5.0
    for overrides, message in (({"share_4xx": 0.9, "share_5xx": 0.2}, "add up to more than 1"),
                               ({"request_groups": 0}, "must be greater than 0"),
                               ({"access_log_per_second": -1.0}, "0 or more")):
        with pytest.raises(ConfigError, match=message):
            load(RouterConfig, overrides=overrides)
