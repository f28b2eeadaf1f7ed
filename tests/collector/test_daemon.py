"""The collector daemon on a real nats-server with real components (points kept in memory)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import replace
from typing import Any

import nats

from fobs.collector.config import StaticTarget
from fobs.collector.daemon import Collector
from fobs.collector.status import fetch_targets, print_components
from fobs.collector.target import Target
from fobs.components.wire import ANNOUNCE, UNREGISTER
from tests.collector.collector_helpers import HttpTarget, MemoryOutputs, collector_config


class Events:
    """A registry listener turning target changes into awaitable events."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def _record(self, kind: str, target: Target) -> None:
        self.log.append((kind, target.uuid))
        self._changed.set()

    def added(self, target: Target) -> None:
        self._record("added", target)

    def removed(self, target: Target) -> None:
        self._record("removed", target)

    def taken(self, target: Target, since: float | None) -> None:
        self._record("taken", target)

    def changed(self, target: Target) -> None:
        self._record("changed", target)

    async def wait(self, kind: str, uuid: str, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while (kind, uuid) not in self.log:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout)


def listen(collector: Collector) -> Events:
    assert collector.registry is not None
    events = Events()
    collector.registry.listeners.append(events)
    return events


def first_varz_scrape(outputs: MemoryOutputs, job: str, index: int) -> Any:
    found = outputs.scrapes(job=job, index=str(index), endpoint="varz")
    return found[0] if found else None


async def test_announced_components_are_scraped_within_a_second(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    early = await start_component("Router", index=4)      # found by the discover at start
    collector = await make_collector(collector_config(
        [nats_server.url], scrape={"varz_interval": 10.0, "healthz_interval": 10.0}))
    outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
    await outputs.wait_for(lambda: first_varz_scrape(outputs, "Router", 4) is not None)
    delays = []
    for index in range(3):
        announced = time.time()
        await start_component("DEA", index=index)
        await outputs.wait_for(  # awaited within this iteration: `index` cannot move on
            lambda: first_varz_scrape(outputs, "DEA", index) is not None,  # noqa: B023
            timeout=5, what=f"first scrape of DEA/{index}")
        delays.append(first_varz_scrape(outputs, "DEA", index).time_ns / 1e9 - announced)
    assert max(delays) < 1.0, delays
    point = first_varz_scrape(outputs, "DEA", 0)
    assert point.tags == {"deployment": "untitled_dev", "job": "DEA", "index": "0",
                          "ip": "127.0.0.1", "role": "core", "endpoint": "varz",
                          "collector": "0"}
    assert point.fields["up"] == 1 and point.fields["points"] >= 1
    component = [p for p in outputs.points if p.measurement == "component"
                 and p.tags["job"] == "DEA" and p.tags["index"] == "0"]
    assert component and "role" in component[0].tags and component[0].tags["ip"] == "127.0.0.1"
    assert early.uuid in collector.registry.targets   # type: ignore[union-attr]


async def test_unregister_drops_and_a_host_change_is_followed(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    collector = await make_collector(collector_config([nats_server.url]))
    events = listen(collector)
    leaving = await start_component("Router", index=1)
    await events.wait("added", leaving.uuid)
    await leaving.stop()
    await events.wait("removed", leaving.uuid)
    assert leaving.uuid not in collector.registry.targets  # type: ignore[union-attr]

    old, new = await HttpTarget().start(), await HttpTarget().start()
    nc = await nats.connect(nats_server.url)
    try:
        payload = {"type": "Moving", "index": 0, "uuid": "0-moving", "host": old.host,
                   "credentials": ["u", "p"], "start": "2014-05-05 10:11:12 -0700"}
        await nc.publish(ANNOUNCE, json.dumps(payload).encode())
        await events.wait("added", "0-moving")
        await nc.publish(ANNOUNCE, json.dumps({**payload, "host": new.host}).encode())
        await events.wait("changed", "0-moving")
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: new.requests >= 1, what="a scrape at the new host")
        target = collector.registry.targets["0-moving"]  # type: ignore[union-attr]
        assert target.info.host == new.host and collector.registry.host_changes == 1
    finally:
        await nc.close()
        await old.stop()
        await new.stop()


async def test_silent_targets_are_pruned_live_ones_kept(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    live = await start_component("DEA")
    collector = await make_collector(collector_config(
        [nats_server.url], discovery={"discover_interval": 0.3, "prune_interval": 1.0}))
    events = listen(collector)
    nc = await nats.connect(nats_server.url)
    try:   # announced once by hand, then silent: it never answers a discover
        await nc.publish(ANNOUNCE, json.dumps({"type": "Ghost", "index": 0, "uuid": "ghost",
                                               "host": "127.0.0.1:9"}).encode())
        began = time.monotonic()
        await events.wait("added", "ghost")
        await events.wait("removed", "ghost", timeout=5)
        assert 0.9 < time.monotonic() - began < 3.0
        assert live.uuid in collector.registry.targets  # type: ignore[union-attr]
        assert collector.registry.pruned == 1  # type: ignore[union-attr]
    finally:
        await nc.close()


async def test_a_target_that_stops_answering_is_kept_and_reported_down(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    comp = await start_component("DEA")
    collector = await make_collector(collector_config([nats_server.url]))
    outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
    await outputs.wait_for(lambda: first_varz_scrape(outputs, "DEA", 0) is not None)
    await comp._server.close()       # HTTP gone, still on NATS (answers discover)
    comp._server = None
    await outputs.wait_for(lambda: any(p.fields.get("error") == "refused"
                                       for p in outputs.scrapes(job="DEA", endpoint="varz")))
    down = [p for p in outputs.scrapes(job="DEA") if p.fields["up"] == 0]
    assert all(p.fields.get("error") == "refused" for p in down)
    assert all(p.fields["healthy"] == 0 for p in down if p.tags["endpoint"] == "healthz")
    target = collector.registry.targets[comp.uuid]  # type: ignore[union-attr]
    assert target.health == "down" and target.endpoints["varz"].last_error.startswith("refused")
    assert collector.registry.counts().totals["down"] == 1  # type: ignore[union-attr]


async def test_nats_restart_rediscovers_and_scraping_never_stops(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    comps = [await start_component("DEA", index=i) for i in range(2)]
    collector = await make_collector(collector_config(
        [nats_server.url], discovery={"discover_interval": 0.5, "prune_interval": 1.0},
        nats_ping_interval=0.2))
    events = listen(collector)
    outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
    await outputs.wait_for(lambda: all(first_varz_scrape(outputs, "DEA", i) for i in range(2)))
    nats_server.kill()
    killed = time.time_ns()
    # NATS is down for longer than prune_interval: scraping goes on and nothing is pruned
    await outputs.wait_for(lambda: len([p for p in outputs.scrapes(job="DEA", endpoint="varz")
                                        if p.time_ns > killed and p.fields["up"] == 1]) >= 6,
                           timeout=10, what="scrapes while NATS is down")
    assert {u for e, u in events.log if e == "removed"} == set()
    assert all(c.uuid in collector.registry.targets for c in comps)  # type: ignore[union-attr]
    replies = collector.discovery_stats.discover_replies
    nats_server.start()
    newcomer = await start_component("Router", index=7)
    await events.wait("added", newcomer.uuid, timeout=15)
    assert collector.bus.reconnects >= 1  # type: ignore[union-attr]
    await outputs.wait_for(lambda: collector.discovery_stats.discover_replies >= replies + 3,
                           what="the known components answering a discover after the restart")
    await outputs.wait_for(lambda: first_varz_scrape(outputs, "Router", 7) is not None)
    assert {u for e, u in events.log if e == "removed"} == set()


async def test_static_targets_without_nats(make_collector: Any) -> None:
    server = await HttpTarget().start()
    server.set_varz({"type": "Edge", "index": 2, "mem_bytes": 4096, "requests": 17})
    try:
        config = collector_config(discovery={"static": (
            StaticTarget(type="Edge", index=2, url=f"http://{server.host}"),)})
        collector = await make_collector(config)
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: first_varz_scrape(outputs, "Edge", 2) is not None)
        assert first_varz_scrape(outputs, "Edge", 2).fields["up"] == 1
        varz_points = [p for p in outputs.points if p.measurement == "varz"]
        assert varz_points and varz_points[0].fields["requests"] == 17.0
        document = await asyncio.to_thread(
            fetch_targets, f"http://{collector.status.address}")  # type: ignore[union-attr]
        [entry] = [e for e in document["data"]["activeTargets"] if e["scrapePool"] == "varz"]
        assert entry["scrapeUrl"] == f"http://{server.host}/varz"
        assert entry["discoveredLabels"]["source"] == "static"
    finally:
        await server.stop()


async def test_status_api_and_the_components_table(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    comp = await start_component("DEA", index=3)
    collector = await make_collector(collector_config([nats_server.url],
                                                      scrape={"varz_timeout": 0.5}))
    outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
    await outputs.wait_for(lambda: len(outputs.scrapes(job="DEA", index="3")) >= 2)
    url = f"http://{collector.status.address}"  # type: ignore[union-attr]
    document = await asyncio.to_thread(fetch_targets, url)
    assert document["status"] == "success"
    entries = [e for e in document["data"]["activeTargets"] if e["uuid"] == comp.uuid]
    assert sorted(e["scrapePool"] for e in entries) == ["healthz", "varz"]
    varz = next(e for e in entries if e["scrapePool"] == "varz")
    assert varz["labels"] == {"job": "DEA", "index": "3", "instance": comp.host,
                              "deployment": "untitled_dev", "role": "core"}
    assert varz["health"] == "up" and varz["lastError"] == ""
    assert varz["scrapeInterval"] == "1s" and varz["scrapeTimeout"] == "0.5s"
    assert varz["lastScrape"].endswith("Z") and varz["lastScrapeDuration"] > 0
    assert next(e for e in entries if e["scrapePool"] == "healthz")["healthy"] is True
    out = io.StringIO()
    print_components(document, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["TYPE", "INDEX", "HOST", "UP", "HEALTHY", "LAST", "SCRAPE",
                                "ERROR"]
    row = next(line for line in lines if line.startswith("DEA"))
    assert row.split()[:5] == ["DEA", "3", comp.host, "up", "yes"]
    from fobs.collector.status import fetch
    assert await asyncio.to_thread(fetch, url, "/healthz") == (200, b"ok")


async def test_the_collector_observes_itself(nats_server: Any, make_collector: Any,
                                             start_component: Any) -> None:
    await start_component("DEA")
    collector = await make_collector(collector_config([nats_server.url],
                                                      nats_ping_interval=0.2))
    outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
    await outputs.wait_for(lambda: len(outputs.scrapes(job="Collector", endpoint="varz")) >= 2
                           and collector.nats_rtt_ms is not None)
    assert collector.component is not None
    assert collector.component.snapshot()["type"] == "Collector"
    varz = collector.component.metrics.varz()   # the snapshot is cached for a second
    assert varz["targets"]["known"] == 2 and varz["targets"]["by_type"]["DEA"]["known"] == 1
    assert varz["scrapes"]["ok"]["varz"] >= 2
    assert set(varz["scrapes"]["duration_seconds"]["varz"]) == {"50", "90", "99", "max"}
    assert varz["nats"]["connected"] == 1 and varz["nats"]["rtt_seconds"] >= 0
    free: dict[str, Any] = {}
    collector._refresh_varz(free)                # the free text beside the declared metrics
    assert free["outputs"] == {"accepted": len(outputs.points)}
    own = {p.measurement for p in outputs.points if p.tags.get("job") == "Collector"}
    assert {"collector", "collector_scrape", "collector_target"} <= own, (
        "the collector's declared metrics are stored like any other component's")


async def test_garbage_from_a_component_never_stops_the_collector(
        nats_server: Any, make_collector: Any, start_component: Any) -> None:
    hostile = await start_component("DEA", varz={"mem_bytes": "x" * 100, "stacks": 5,
                                                 "instance_registry": [1, 2],
                                                 "nested": {"a": [[[[[[1]]]]]]}})
    server = await HttpTarget().start()
    server.set_varz(b"{not json")
    nc = await nats.connect(nats_server.url)
    try:
        collector = await make_collector(collector_config([nats_server.url]))
        await nc.publish(ANNOUNCE, json.dumps({"type": "Broken", "index": 0, "uuid": "broken",
                                               "host": server.host}).encode())
        await nc.publish(ANNOUNCE, b"\x00garbage")
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(
            lambda: len(outputs.scrapes(job="Broken", endpoint="varz")) >= 2
            and len(outputs.scrapes(job="DEA", endpoint="varz")) >= 2)
        assert {p.fields.get("error") for p in outputs.scrapes(job="Broken", endpoint="varz")
                } == {"bad_json"}
        assert all(p.fields["up"] == 1 for p in outputs.scrapes(job="DEA"))
        assert collector.scraper.stats.failed["varz"]["bad_json"] >= 2
        assert collector.scraper.stats.values_skipped > 0
        assert collector.discovery_stats.invalid >= 1
        assert hostile.uuid in collector.registry.targets  # type: ignore[union-attr]
    finally:
        await nc.close()
        await server.stop()


async def test_stop_flushes_and_unregisters(nats_server: Any, start_component: Any) -> None:
    await start_component("DEA")
    nc = await nats.connect(nats_server.url)
    sub = await nc.subscribe(UNREGISTER)
    await nc.flush()
    outputs = MemoryOutputs()
    collector = Collector(collector_config([nats_server.url]), outputs)
    stop = asyncio.Event()
    run = asyncio.create_task(collector.run(stop))
    try:
        await outputs.wait_for(lambda: first_varz_scrape(outputs, "DEA", 0) is not None)
        stop.set()                                  # what SIGTERM does
        assert await asyncio.wait_for(run, 10) == 0
        msg = await sub.next_msg(timeout=5)
        assert json.loads(msg.data)["uuid"] == collector.uuid and outputs.closed
        assert not collector.scraper.running
    finally:
        await nc.close()


async def test_status_api_with_basic_auth(make_collector: Any) -> None:
    from fobs.collector.config import StatusConfig
    from fobs.collector.status import fetch
    config = replace(collector_config(), status=StatusConfig(address="127.0.0.1:0", user="ops",
                                                             password="s3cret"))
    collector = await make_collector(config)
    url = f"http://{collector.status.address}"  # type: ignore[union-attr]
    assert (await asyncio.to_thread(fetch, url, "/healthz"))[0] == 401
    assert await asyncio.to_thread(fetch, url, "/healthz", 5.0, ("ops", "s3cret")) == (200, b"ok")
    document = await asyncio.to_thread(fetch_targets, url, 5.0, ("ops", "s3cret"))
    assert document["data"] == {"activeTargets": [], "droppedTargets": []}
    from fobs.cli import main
    assert await asyncio.to_thread(main, ["status", "--collector", url, "--credentials",
                                          "ops:s3cret"]) == 0
