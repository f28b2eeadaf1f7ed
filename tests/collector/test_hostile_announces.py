"""Hostile announces (issue 9, findings 6 and 10) against a real collector on a real nats-server.

An announce must not choose the URL the collector GETs (only `host:port`), must not grow the
registry without bound (caps on targets and on types, counted), and its text must reach logs and
the status table with control characters escaped.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Callable
from typing import Any

import nats
import pytest
from aiohttp import web
from loguru import logger

from fobs.collector.config import load_config
from fobs.collector.daemon import Collector
from fobs.collector.status import print_components
from fobs.components.config import ConfigError
from fobs.components.text import escape_controls
from fobs.components.wire import ANNOUNCE, PayloadError, parse_host, parse_type
from tests.collector.collector_helpers import MemoryOutputs, collector_config, serve


class RecordingServer:
    """Answers every path (varz `{}`, anything else `ok`) and records each request's path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.runner: web.AppRunner | None = None
        self.host = ""

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        if request.path == "/varz":
            return web.json_response({"mem": 1})
        return web.Response(text="ok")

    async def start(self) -> RecordingServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner, self.host = await serve(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def announce(type: str, uuid: str, host: str, index: int = 0) -> bytes:
    return json.dumps({"type": type, "index": index, "uuid": uuid, "host": host,
                       "credentials": ["u", "p"]}).encode()


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a count to reach a value (messages are counted as NATS delivers them)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_announce_cannot_choose_the_path(nats_server: Any, make_collector: Any) -> None:
    server = await RecordingServer().start()
    port = server.host.rpartition(":")[2]
    nc = await nats.connect(nats_server.url)
    try:
        collector: Collector = await make_collector(collector_config([nats_server.url]))
        hostile = [f"127.0.0.1:{port}/internal/admin?action=dump#:80",
                   f"u:p@127.0.0.1:{port}", f"127.0.0.1:{port}?x=:1", f"127.0.0.1:{port}#:1"]
        for i, host in enumerate(hostile):
            await nc.publish(ANNOUNCE, announce("DEA", f"evil-{i}", host))
        await nc.publish(ANNOUNCE, announce("DEA", "good", server.host, index=1))
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: len(outputs.scrapes(index="1", endpoint="varz")) >= 1)
        assert collector.registry is not None
        assert not [u for u in collector.registry.targets if u.startswith("evil")]
        assert collector.discovery_stats.invalid == len(hostile)
        assert "/varz" in server.paths
        assert all(path in ("/varz", "/healthz") for path in server.paths), server.paths
        assert collector.component is not None
        varz = collector.component.metrics.varz()
        assert varz["discovery"]["invalid"] == len(hostile)
    finally:
        await nc.close()
        await server.stop()


async def test_announces_outside_allow_networks_are_refused(
        nats_server: Any, make_collector: Any) -> None:
    server = await RecordingServer().start()
    nc = await nats.connect(nats_server.url)
    try:
        collector: Collector = await make_collector(collector_config(
            [nats_server.url], discovery={"allow_networks": ("10.0.0.0/8", "::1/128")}))
        await nc.publish(ANNOUNCE, announce("DEA", "outside", server.host))
        await nc.publish(ANNOUNCE, announce("DEA", "by-name", "localhost:1"))
        await nc.publish(ANNOUNCE, announce("DEA", "inside", "10.255.255.1:9", index=1))
        registry = collector.registry
        assert registry is not None
        await until(lambda: "inside" in registry.targets)     # the two before it are handled
        assert {"outside", "by-name"}.isdisjoint(registry.targets)
        assert collector.discovery_stats.refused_network >= 2   # and the collector's own
        assert server.paths == []
    finally:
        await nc.close()
        await server.stop()


async def test_fifteen_hundred_fake_uuids_stop_at_the_target_cap(
        nats_server: Any, make_collector: Any) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        collector: Collector = await make_collector(collector_config(
            [nats_server.url], discovery={"max_targets": 1000},
            scrape={"varz_interval": 60.0, "healthz": False}))
        assert collector.registry is not None
        registry = collector.registry
        for i in range(1500):     # port 9 (discard): nothing answers; that does not matter
            await nc.publish(ANNOUNCE, announce("Fake", f"fake-{i}", "127.0.0.1:9", i))
        await nc.flush()
        await until(lambda: collector.discovery_stats.announces >= 1500
                    and len(registry.targets) == 1000 and registry.refused_targets >= 500)
        # the collector's own announce is one more target, refused or not by when it comes
        assert registry.refused_targets in (500, 501, 502)
        assert collector.component is not None
        varz = collector.component.metrics.varz()
        assert varz["targets"]["refused_targets"] == registry.refused_targets
    finally:
        await nc.close()


async def test_new_types_stop_at_the_type_cap(nats_server: Any, make_collector: Any) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        collector: Collector = await make_collector(collector_config(
            [nats_server.url], discovery={"max_types": 3},
            scrape={"varz_interval": 60.0, "healthz": False}))
        assert collector.registry is not None
        registry = collector.registry
        for i in range(6):
            await nc.publish(ANNOUNCE, announce(f"Type{i}", f"typed-{i}", "127.0.0.1:9", i))
            await nc.publish(ANNOUNCE, announce(f"Type{i}", f"more-{i}", "127.0.0.1:9", i))
        await nc.flush()
        await until(lambda: collector.discovery_stats.announces >= 12
                    and len({t.info.type for t in registry.targets.values()}) == 3
                    and registry.refused_types >= 6)
        types = {t.info.type for t in registry.targets.values()}
        assert len(types) == 3 and registry.refused_targets == 0
        assert all(sum(t.info.type == k for t in registry.targets.values()) == 2
                   for k in types - {"Collector"}), "a known type still takes new targets"
        assert collector.component is not None
        varz = collector.component.metrics.varz()
        assert varz["targets"]["refused_types"] == registry.refused_types >= 6
    finally:
        await nc.close()


async def test_control_characters_are_escaped_in_the_log_and_the_status_table(
        nats_server: Any, make_collector: Any) -> None:
    server = await RecordingServer().start()
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    nc = await nats.connect(nats_server.url)
    evil = "x\x1b]0;pwned\x07\x1b[2J\nFAKE LOG LINE"
    try:
        collector: Collector = await make_collector(collector_config([nats_server.url]))
        await nc.publish(ANNOUNCE, json.dumps({"type": "DEA\x1b[31m", "index": 0, "uuid": "t",
                                               "host": server.host}).encode())
        await nc.publish(ANNOUNCE, announce("DEA", evil[:40], server.host, index=1))
        await nc.publish(ANNOUNCE, json.dumps({"type": "DEA", "index": 2, "uuid": "ok",
                                               "host": server.host}).encode())
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: len(outputs.scrapes(index="2", endpoint="varz")) >= 1)
        assert collector.registry is not None
        assert "t" not in collector.registry.targets       # the type is refused outright
        assert collector.discovery_stats.invalid == 2      # so is a uuid with controls
        text = "".join(lines)
        assert "\x1b" not in text and "\x07" not in text
        assert escape_controls("DEA\x1b[31m") == "DEA\\x1b[31m"
        table = io.StringIO()      # a status document as a hostile server could send it
        print_components({"data": {"activeTargets": [
            {"uuid": "a", "scrapePool": "varz", "health": "down", "labels": {
                "job": "DEA\x1b[31m", "index": 1, "instance": "h:1\x1b]0;t\x07"},
             "lastError": "HTTP\x1b[2J\nFAKE"}]}}, table)
        assert "\x1b" not in table.getvalue() and "\x07" not in table.getvalue()
        assert "DEA\\x1b[31m" in table.getvalue() and "\\nFAKE" in table.getvalue()
    finally:
        logger.remove(sink)
        await nc.close()
        await server.stop()


@pytest.mark.parametrize("host", ["10.0.0.1:8080", "dea-1.example:80", "[::1]:9022",
                                  "[fd00::1]:1", " 10.0.0.1:65535 "])
def test_host_port_is_accepted(host: str) -> None:
    assert parse_host(host) == host.strip()


@pytest.mark.parametrize("host", [
    "127.0.0.1:1/internal/admin?action=dump#:80", "u:p@10.0.0.1:80", "10.0.0.1:80/",
    "10.0.0.1:80?a=:1", "10.0.0.1:80#:1", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:+80",
    "::1:80", "[::1]80", "[not-ip6]:80", "h\x1b[2J:80", "h :80", ":80", "h:", "-h:80",
    "http://h:80"])
def test_anything_but_host_port_is_refused(host: str) -> None:
    with pytest.raises(PayloadError, match="HOST:PORT"):
        parse_host(host)


@pytest.mark.parametrize("type,ok", [("DEA", True), ("CloudController", True),
                                     ("uaa.v2-x_y", True), ("a" * 64, True), ("a" * 65, False),
                                     ("1DEA", False), ("", False), ("DEA\x1b[31m", False),
                                     ("DEA/x", False), ("DEA x", False), (5, False)])
def test_type_names(type: Any, ok: bool) -> None:
    if ok:
        assert parse_type(type) == type
    else:
        with pytest.raises(PayloadError, match="component type"):
            parse_type(type)


@pytest.mark.parametrize("discovery,message", [
    ({"allow_networks": ["10.0.0.0/8", "nonsense"]}, "allow_networks[1]: 'nonsense'"),
    ({"max_targets": 0}, "max_targets: must be at least 1"),
    ({"max_types": -1}, "max_types: must be at least 1")])
def test_discovery_limits_are_validated(discovery: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides={"discovery": discovery})
