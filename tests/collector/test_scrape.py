"""The scrape loop against real HTTP servers: errors, isolation, overlap, limits, phases."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from fobs.collector.config import ScrapeConfig, TypeScrapeConfig
from fobs.collector.point import Point
from fobs.collector.scrape import Scraper, next_on_grid, phase
from fobs.collector.target import Discovered, Target
from tests.collector.collector_helpers import HttpTarget, MemoryOutputs, SilentServer
from tests.services import free_port

CONFIG = ScrapeConfig(varz_interval=1.0, healthz_interval=1.0, max_response_bytes=64 * 1024)


def make_target(host: str, uuid: str = "0-abc", type: str = "Test", index: int = 0,
                credentials: tuple[str, str] | None = None) -> Target:
    return Target(Discovered(uuid, type, index, host, credentials), deployment="test",
                  role="core")


@pytest.fixture
async def scraper() -> Any:
    outputs = MemoryOutputs()
    made: list[Scraper] = []

    async def make(config: ScrapeConfig = CONFIG) -> tuple[Scraper, MemoryOutputs]:
        s = Scraper(config, outputs.add)
        await s.start()
        made.append(s)
        return s, outputs

    yield make
    for s in made:
        await s.stop(1.0)


@pytest.fixture
async def http_target() -> Any:
    servers: list[Any] = []

    async def make(cls: type = HttpTarget) -> Any:
        server = await cls().start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def scrape_point(points: list[Point]) -> Point:
    [point] = [p for p in points if p.measurement == "scrape"]
    return point


def test_phase_is_stable_and_spreads_targets() -> None:
    assert phase("0-abc", "varz") == phase("0-abc", "varz")
    assert phase("0-abc", "varz") != phase("0-abc", "healthz")
    deciles = Counter(int(phase(f"{i}-uuid", "varz") * 10) for i in range(2000))
    assert set(deciles) == set(range(10))
    assert all(140 <= n <= 260 for n in deciles.values()), deciles


@pytest.mark.parametrize("now,interval,offset,expected", [
    (100.0, 10.0, 3.0, 103.0), (103.0, 10.0, 3.0, 103.0), (103.5, 10.0, 3.0, 113.0),
    (0.2, 1.0, 0.5, 0.5)])
def test_next_on_grid(now: float, interval: float, offset: float, expected: float) -> None:
    assert next_on_grid(now, interval, offset) == pytest.approx(expected)


async def test_successful_scrape_has_identity_tags_and_scrape_point(scraper: Any,
                                                                    http_target: Any) -> None:
    s, _ = await scraper()
    server = await http_target()
    server.set_varz({"type": "DEA", "index": 3, "mem_bytes": 1024, "uptime": "0d:0h:1m:2s"})
    target = make_target(server.host, type="DEA", index=3)
    points = await s.scrape(target, "varz")
    point = scrape_point(points)
    assert point.tags == {"deployment": "test", "job": "DEA", "index": "3", "ip": "127.0.0.1",
                          "role": "core", "endpoint": "varz"}
    assert point.fields["up"] == 1 and "error" not in point.fields
    assert point.fields["response_bytes"] == len(server.varz_body)
    assert point.fields["points"] == len(points) - 1 >= 1
    component = [p for p in points if p.measurement == "component"]
    assert component and component[0].fields["uptime_seconds"] == 62
    assert all(p.time_ns == point.time_ns for p in points)
    assert target.endpoints["varz"].health == "up" and target.health == "up"
    healthz = scrape_point(await s.scrape(target, "healthz"))
    assert healthz.fields["healthy"] == 1 and healthz.fields["up"] == 1


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("body,error", [
    (b"not json at all", "bad_json"),
    (b'{"truncated": ', "bad_json"),
    (b"\xff\xfe\x00garbage", "bad_json"),
    (b"[1, 2, 3]", "bad_json"),
    (b'"a string"', "bad_json"),
    (DEEP, "too_large"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "too_large"),
    (b"x" * 200_000, "too_large"),
])
async def test_garbage_varz_is_a_counted_error(scraper: Any, http_target: Any, body: bytes,
                                               error: str) -> None:
    s, _ = await scraper()
    server = await http_target()
    server.set_varz(body)
    target = make_target(server.host)
    points = await s.scrape(target, "varz")
    assert points == [scrape_point(points)]      # the handler's points are rolled back
    fields = scrape_point(points).fields
    assert fields["up"] == 0 and fields["error"] == error and fields["points"] == 0
    assert s.stats.failed["varz"][error] == 1
    assert target.health == "down" and target.endpoints["varz"].last_error.startswith(error)
    server.set_varz({"mem_bytes": 5})             # the target recovers
    assert scrape_point(await s.scrape(target, "varz")).fields["up"] == 1
    # mypy still holds the "down" asserted above; the scrape just changed it
    assert target.health == "up"  # type: ignore[comparison-overlap]


async def test_deeply_nested_json_within_the_size_limit(scraper: Any, http_target: Any) -> None:
    s, _ = await scraper(replace(CONFIG, max_response_bytes=1024 * 1024))
    server = await http_target()
    server.set_varz(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    fields = scrape_point(await s.scrape(make_target(server.host), "varz")).fields
    assert fields["error"] == "bad_json" and fields["up"] == 0


async def test_wrong_types_are_skipped_values_not_errors(scraper: Any, http_target: Any) -> None:
    s, _ = await scraper()
    server = await http_target()
    server.set_varz({"mem_bytes": "lots", "cpu_load_avg": [1], "uptime": 42,
                     "log_counts": "many", "num_cores": {"x": 1}, "extra": {"n": [1, "a"]}})
    fields = scrape_point(await s.scrape(make_target(server.host), "varz")).fields
    skipped = fields["skipped"]
    assert fields["up"] == 1 and isinstance(skipped, int) and skipped >= 3
    assert s.stats.values_skipped == skipped


@asynccontextmanager
async def serve(varz: Any) -> AsyncIterator[str]:
    """An HTTP server whose /varz is `varz`; yields its host:port."""
    app = web.Application()
    app.router.add_get("/varz", varz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_chunked_body_is_cut_at_the_limit(scraper: Any) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(1000):       # 64 MB unless the client stops reading
            await resp.write(b" " * 65536)
            sent += 65536
        return resp

    s, _ = await scraper()
    async with serve(endless) as host:
        fields = scrape_point(await s.scrape(make_target(host), "varz")).fields
    assert fields["error"] == "too_large" and fields["response_bytes"] == 0
    assert sent < 64 * 1024 * 1024


async def test_http_errors_refused_and_timeout(scraper: Any, http_target: Any,
                                               start_component: Any) -> None:
    s, _ = await scraper(replace(CONFIG, varz_timeout=0.3, healthz_timeout=0.3))
    comp = await start_component("DEA")
    wrong = make_target(comp.host, credentials=("nobody", "wrong"))
    right = make_target(comp.host, credentials=comp.credentials)
    server = await http_target()
    server.varz_status = 500
    silent = await SilentServer().start()
    try:
        cases = {
            "http_401": make_target(comp.host),
            "http_401 ": wrong,
            "http_500": make_target(server.host),
            "refused": make_target(f"127.0.0.1:{free_port()}"),
            "timeout": make_target(silent.host),
        }
        for error, target in cases.items():
            fields = scrape_point(await s.scrape(target, "varz")).fields
            assert (fields["up"], fields.get("error")) == (0, error.strip())
        timed = scrape_point(await s.scrape(cases["timeout"], "healthz")).fields
        assert timed["error"] == "timeout" and timed["healthy"] == 0
        duration = timed["duration_seconds"]
        assert isinstance(duration, float) and 0.25 < duration < 0.6
        assert scrape_point(await s.scrape(right, "varz")).fields["up"] == 1
        assert s.stats.failed["varz"] == {"http_401": 2, "http_500": 1, "refused": 1,
                                          "timeout": 1}
    finally:
        await silent.stop()


async def test_unhealthy_component(scraper: Any, start_component: Any) -> None:
    s, _ = await scraper()
    comp = await start_component("DEA")
    comp.add_health_check("disk", lambda: "disk full")
    target = make_target(comp.host, credentials=comp.credentials)
    fields = scrape_point(await s.scrape(target, "healthz")).fields
    assert fields == {**fields, "up": 0, "healthy": 0, "error": "http_503"}
    assert target.endpoints["healthz"].healthy is False


async def test_hung_target_does_not_delay_the_others(scraper: Any, http_target: Any) -> None:
    """Five good targets on a 1 s interval beside one that accepts TCP and never answers."""
    s, outputs = await scraper(replace(CONFIG, varz_timeout=0.8, healthz=False,
                                       first_scrape_window=0.0))
    silent = await SilentServer().start()
    goods = [await http_target() for _ in range(5)]
    try:
        s.added(make_target(silent.host, uuid="hung", index=9))
        for i, server in enumerate(goods):
            s.added(make_target(server.host, uuid=f"good-{i}", index=i))
        await outputs.wait_for(
            lambda: all(len(outputs.scrapes(index=str(i))) >= 5 for i in range(5))
            and len(outputs.scrapes(index="9")) >= 3,
            timeout=15, what="five scrapes of every good target and three timeouts")
        assert {p.fields.get("error") for p in outputs.scrapes(index="9")} == {"timeout"}
        for i in range(5):
            own = sorted(outputs.scrapes(index=str(i)), key=lambda p: p.time_ns)
            assert all(p.fields["up"] == 1 for p in own)
            assert max(p.fields["duration_seconds"] for p in own) < 0.2
            # after the immediate first scrape, every scrape is on the target's phase
            gaps = [(b.time_ns - a.time_ns) / 1e9 for a, b in zip(own[1:], own[2:], strict=False)]
            assert all(0.8 < g < 1.2 for g in gaps), gaps   # on their phase, undelayed
        assert s.stats.late == 0
    finally:
        await silent.stop()


async def test_a_target_never_has_two_scrapes_in_flight(http_target: Any) -> None:
    """A scrape held up (waiting for the one slot of `max_in_flight`, which a hung target
    holds) makes later runs of its target skip, not pile up."""
    outputs = MemoryOutputs()
    config = replace(CONFIG, varz_interval=0.2, varz_timeout=0.1, healthz=False, max_in_flight=1,
                     types={"Hung": TypeScrapeConfig(varz_interval=30.0, varz_timeout=30.0)})
    s = Scraper(config, outputs.add)
    await s.start()
    silent = await SilentServer().start()
    server = await http_target()
    try:
        s.added(make_target(silent.host, uuid="hung", type="Hung"))
        deadline = time.monotonic() + 10
        while not silent.connections:        # no event from a server that never answers
            assert time.monotonic() < deadline, "the hung target was not scraped"
            await asyncio.sleep(0.02)
        s.added(make_target(server.host))
        while s.stats.skipped_overlap < 3:  # the timer's one-instance rule; no event to await
            assert time.monotonic() < deadline, "no overlap was skipped"
            await asyncio.sleep(0.05)
        assert s.stats.in_flight == 2 and server.requests == 0   # the hung one + one waiting
        await silent.stop()                  # the hung scrape fails: the slot is free
        await outputs.wait_for(lambda: bool(outputs.scrapes(job="Test")), timeout=5)
        assert outputs.scrapes(job="Test")[0].fields["up"] == 1
    finally:
        await s.stop(1.0)
        await silent.stop()


async def test_new_target_is_scraped_within_the_first_scrape_window(scraper: Any,
                                                                    http_target: Any) -> None:
    config = replace(CONFIG, varz_interval=30.0, healthz_interval=30.0)
    s, outputs = await scraper(config)
    servers = [await http_target() for _ in range(10)]
    began = time.monotonic()
    for i, server in enumerate(servers):
        s.added(make_target(server.host, uuid=f"{i}-new", index=i))
    await outputs.wait_for(lambda: len(outputs.scrapes(endpoint="varz")) == 10
                           and len(outputs.scrapes(endpoint="healthz")) == 10, timeout=5)
    assert time.monotonic() - began < 1.0
    assert s.stats.ok["varz"] == 10


async def test_per_type_intervals(scraper: Any) -> None:
    config = replace(CONFIG, types={"Router": TypeScrapeConfig(varz_interval=30.0,
                                                               healthz=False)})
    s, _ = await scraper(config)
    router = make_target("127.0.0.1:1", type="Router")
    dea = make_target("127.0.0.1:1", type="DEA")
    assert s.schedule_of(router, "varz") == (30.0, 5.0)
    assert s.schedule_of(dea, "varz") == (1.0, 1.0)
    assert s.endpoints_of(router) == ("varz",)
    assert s.endpoints_of(dea) == ("varz", "healthz")


async def test_requests_in_flight_are_bounded(scraper: Any) -> None:
    s, _ = await scraper(replace(CONFIG, max_in_flight=2, varz_timeout=0.4,
                                 healthz_timeout=0.4))
    silents = [await SilentServer().start() for _ in range(4)]
    try:
        began = time.monotonic()
        points = await s.scrape_all_once([make_target(x.host, uuid=str(i))
                                          for i, x in enumerate(silents)])
        elapsed = time.monotonic() - began
        assert len(points) == 8 and all(p.fields["error"] == "timeout" for p in points)
        assert elapsed > 4 * 0.4 - 0.1      # 8 requests, 2 at a time, 0.4 s each
    finally:
        for x in silents:
            await x.stop()


async def test_stop_lets_in_flight_scrapes_finish() -> None:
    outputs = MemoryOutputs()
    s = Scraper(replace(CONFIG, varz_interval=0.5, healthz=False), outputs.add)
    await s.start()
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        gate.set()
        await asyncio.sleep(0.3)
        return web.json_response({"mem_bytes": 1})

    async with serve(slow) as host:
        s.added(make_target(host))
        await asyncio.wait_for(gate.wait(), 5)
        cancelled = await s.stop(2.0)
    assert cancelled == 0
    assert [p.fields["up"] for p in outputs.scrapes()] == [1]


async def test_stop_cancels_what_outlives_its_bound() -> None:
    outputs = MemoryOutputs()
    s = Scraper(replace(CONFIG, varz_interval=2.0, varz_timeout=2.0, healthz=False),
                outputs.add)
    await s.start()
    silent = await SilentServer().start()
    try:
        s.added(make_target(silent.host))
        deadline = time.monotonic() + 5
        while not silent.connections:      # no event from a server that never answers
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        began = time.monotonic()
        assert await s.stop(0.2) == 1
        assert time.monotonic() - began < 1.5
    finally:
        await silent.stop()
