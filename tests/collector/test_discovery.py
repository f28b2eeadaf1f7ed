"""Discovery: Cloud Foundry payloads as they were, and the NATS discoverer on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import nats
import pytest

from fobs.collector.config import StaticTarget
from fobs.collector.discovery import (
    NatsDiscoverer,
    StaticDiscoverer,
    Update,
    parse_announcement,
    static_target,
)
from fobs.components.bus import Bus, NatsConfig
from fobs.components.wire import ANNOUNCE, UNREGISTER, PayloadError

RUBY = {"type": "DEA", "index": 0, "uuid": "0-8e1b2e0db73172fe61f9c27e5bb26638",
        "host": "10.10.17.11:53736", "credentials": ["8f3a", "c2d1"],
        "start": "2013-07-02 17:28:03 +0000", "uptime": "0d:0h:5m:3s"}
GO = {"type": "Router", "index": 2, "host": "10.0.16.5:35461",
      "credentials": ["user", "pass"], "uuid": "2-1f0c0d1c-5b8e-4bd4-7a2e-5c9e0f3a1b2c",
      "start": "2014-05-05 10:11:12 -0700", "uptime": "0d:3h:1m:7s"}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def test_ruby_announce() -> None:
    found = parse_announcement(encode(RUBY))
    assert found is not None
    assert (found.uuid, found.type, found.index, found.host) == (
        RUBY["uuid"], "DEA", 0, "10.10.17.11:53736")
    assert found.credentials == ("8f3a", "c2d1") and found.ip == "10.10.17.11"
    assert found.start == datetime(2013, 7, 2, 17, 28, 3, tzinfo=UTC)
    assert found.url("varz") == "http://10.10.17.11:53736/varz"


def test_go_announce_with_a_local_offset() -> None:
    found = parse_announcement(encode(GO))
    assert found is not None and found.type == "Router" and found.index == 2
    assert found.start == datetime(2014, 5, 5, 10, 11, 12,
                                   tzinfo=timezone(-timedelta(hours=7)))


@pytest.mark.parametrize("change,expected", [
    ({"index": "3"}, 3),                        # index as a string
    ({"index": " 7 "}, 7),
    ({"start": "yesterday"}, 0),                # unusable start: kept, start unknown
    ({"credentials": "user:pass"}, 0),          # not a 2-list: scraped without auth
    ({"uuid": None}, 0),                        # no uuid: keyed by type/index
    ({"extra": {"nested": [1, 2]}}, 0),
])
def test_lenient_fields(change: dict[str, Any], expected: int) -> None:
    found = parse_announcement(encode({**RUBY, **change}))
    assert found is not None and found.index == expected
    if "start" in change:
        assert found.start is None
    if "credentials" in change:
        assert found.credentials is None
    if "uuid" in change:
        assert found.uuid == "DEA/0"


@pytest.mark.parametrize("payload", [{k: v for k, v in RUBY.items() if k != "index"},
                                     {**RUBY, "index": None}])
def test_without_index_is_ignored_as_cf_did(payload: dict[str, Any]) -> None:
    assert parse_announcement(encode(payload)) is None


@pytest.mark.parametrize("data,reason", [
    (b"not json", "not JSON"), (b"[1]", "not a JSON object"),
    (encode({**RUBY, "host": "nohost"}), "HOST:PORT"),
    (encode({**RUBY, "host": "h:99999"}), "HOST:PORT"),
    (encode({**RUBY, "index": "x"}), "not an integer"),
    (encode({**RUBY, "index": True}), "boolean"),
    (encode({**RUBY, "index": -1}), "negative"),
    (encode({**RUBY, "type": 5}), "component type"),
    (b"[" * 60_000, "not JSON"),
    (b" " * 70_000, "too large"),
])
def test_unusable_payloads(data: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_announcement(data)


def test_static_targets() -> None:
    found = static_target(StaticTarget(type="Router", index=1, url="https://lb.example:8443/cf",
                                       credentials=("a", "b")))
    assert (found.uuid, found.host, found.source) == ("static-Router-1", "lb.example:8443",
                                                      "static")
    assert found.url("varz") == "https://lb.example:8443/cf/varz"
    plain = static_target(StaticTarget(type="DEA", url="http://10.1.1.1", uuid="dea-x"))
    assert plain.host == "10.1.1.1:80" and plain.credentials is None and plain.uuid == "dea-x"


async def test_static_discoverer_sends_the_full_set_once() -> None:
    updates: list[Update] = []
    await StaticDiscoverer((StaticTarget(type="DEA", url="http://h:1"),)).run(updates.append)
    assert len(updates) == 1 and updates[0].full and len(updates[0].upserts) == 1


@pytest.fixture
async def discovered(nats_server: Any) -> AsyncIterator[tuple[NatsDiscoverer, asyncio.Queue]]:
    bus = await Bus.connect(NatsConfig(servers=(nats_server.url,), reconnect_wait=0.1), "test")
    discoverer = NatsDiscoverer(bus, discover_interval=0.3)
    queue: asyncio.Queue[Update] = asyncio.Queue()
    task = asyncio.create_task(discoverer.run(queue.put_nowait))
    yield discoverer, queue
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await bus.close()


async def next_update(queue: asyncio.Queue, **match: Any) -> Update:
    while True:
        update = await asyncio.wait_for(queue.get(), 5)
        if all(getattr(update, k) == v for k, v in match.items()):
            return update


async def wait_for_uuid(queue: asyncio.Queue, uuid: str) -> Update:
    while True:
        update = await asyncio.wait_for(queue.get(), 5)
        if any(d.uuid == uuid for d in update.upserts) or uuid in update.removals:
            return update


async def test_nats_discovery_of_running_and_new_components(
        start_component: Any, nats_server: Any) -> None:
    before = await start_component("DEA", index=1)     # already running: found by discover
    bus = await Bus.connect(NatsConfig(servers=(nats_server.url,)), "test")
    discoverer = NatsDiscoverer(bus, discover_interval=0.3)
    queue: asyncio.Queue[Update] = asyncio.Queue()
    task = asyncio.create_task(discoverer.run(queue.put_nowait))
    try:
        first = await asyncio.wait_for(queue.get(), 5)
        assert first == Update("nats", full=True)      # the full set first: nothing yet
        update = await wait_for_uuid(queue, before.uuid)
        [found] = [d for d in update.upserts if d.uuid == before.uuid]
        assert (found.type, found.index, found.host) == ("DEA", 1, before.host)
        assert found.credentials == before.credentials
        after = await start_component("Router", index=0)   # announced
        await wait_for_uuid(queue, after.uuid)
        assert discoverer.stats.announces >= 1
        await after.stop()                                   # unregister
        update = await wait_for_uuid(queue, after.uuid)
        assert update.removals == (after.uuid,) and discoverer.stats.unregisters == 1
        while discoverer.stats.discover_requests < 3:        # every discover_interval
            await wait_for_uuid(queue, before.uuid)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


async def test_cf_payloads_over_nats_and_garbage(discovered: Any, nats_server: Any) -> None:
    discoverer, queue = discovered
    await next_update(queue, full=True)
    nc = await nats.connect(nats_server.url)
    try:
        await nc.publish(ANNOUNCE, b"garbage")
        await nc.publish(ANNOUNCE, encode({**RUBY, "index": None}))
        await nc.publish(ANNOUNCE, encode(RUBY))
        await nc.publish(ANNOUNCE, encode({**GO, "index": "2"}))
        await nc.publish(UNREGISTER, b"{}")
        await nc.flush()
        seen: set[str] = set()
        while seen != {RUBY["uuid"], GO["uuid"]}:
            update = await asyncio.wait_for(queue.get(), 5)
            seen |= {d.uuid for d in update.upserts}
        assert discoverer.stats.invalid == 2 and discoverer.stats.ignored_no_index == 1
    finally:
        await nc.close()


async def test_reconnect_marks_the_source_online_and_rediscovers(
        discovered: Any, nats_server: Any, start_component: Any) -> None:
    discoverer, queue = discovered
    comp = await start_component("DEA")
    await wait_for_uuid(queue, comp.uuid)
    nats_server.kill()
    nats_server.start()
    await next_update(queue, online=True)
    await wait_for_uuid(queue, comp.uuid)


async def test_a_flush_outlasted_by_a_frozen_server_leaves_the_bus_hearing(
        discovered: Any, nats_server: Any) -> None:
    """nats-py sets the result of a timed-out flush's PONG future when the PONG comes late, and
    its read loop dies of the InvalidStateError while the client still says connected (the
    scale-out test's thawed collector, deaf to the others). The bus skips that PONG."""
    discoverer, queue = discovered
    await next_update(queue, full=True)
    bus: Bus = discoverer.bus
    nats_server.freeze()
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await bus.client.flush(timeout=0.3)  # type: ignore[arg-type]
    finally:
        nats_server.thaw()
    await bus.client.flush(timeout=5)            # the late PONG, then this one
    nc = await nats.connect(nats_server.url)
    try:
        await nc.publish(ANNOUNCE, encode(RUBY))
        await nc.flush()
        await wait_for_uuid(queue, str(RUBY["uuid"]))   # heard within 5 s, not after 60 s
    finally:
        await nc.close()
    assert bus.client.is_connected and bus.reconnects == 0 and bus.errors == 0


async def test_a_read_loop_ended_by_an_unexpected_error_reconnects(
        discovered: Any, nats_server: Any) -> None:
    """Any other error the read loop only logs would leave the client connected and deaf as
    well: the bus reports it and reconnects, and the discoverer hears announces again."""
    discoverer, queue = discovered
    await next_update(queue, full=True)
    bus: Bus = discoverer.bus
    parser = bus.client._ps
    real_parse = parser.parse

    async def parse_once_wrong(data: bytes = b"") -> None:
        parser.parse = real_parse                 # type: ignore[method-assign]
        raise RuntimeError("a parser bug")

    parser.parse = parse_once_wrong               # type: ignore[method-assign]
    await bus.client.publish(ANNOUNCE, encode(GO))   # comes back to us: the parse fails
    await next_update(queue, online=True)            # the reconnect hook ran
    assert bus.reconnects == 1 and bus.errors >= 1
    nc = await nats.connect(nats_server.url)
    try:
        await nc.publish(ANNOUNCE, encode(RUBY))
        await nc.flush()
        await wait_for_uuid(queue, str(RUBY["uuid"]))
    finally:
        await nc.close()
