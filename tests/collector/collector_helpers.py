"""Helpers for the collector's own tests: an in-memory outputs, collectors, odd HTTP targets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from fobs.collector.config import CollectorConfig, DiscoveryConfig, ScrapeConfig, StatusConfig
from fobs.collector.daemon import Collector
from fobs.collector.point import Point
from fobs.components.bus import NatsConfig
from fobs.components.runtime import ComponentConfig


class MemoryOutputs:
    """Keeps every committed point; lets a test await a condition on them."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.batches = 0
        self.closed = False
        self._changed = asyncio.Event()

    def add(self, points: Sequence[Point]) -> int:
        self.points.extend(points)
        self.batches += 1
        self._changed.set()
        return len(points)

    async def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def health(self) -> str | None:
        return None

    def varz(self) -> dict[str, Any]:
        return {"accepted": len(self.points)}

    def scrapes(self, **tags: str) -> list[Point]:
        return [p for p in self.points if p.measurement == "scrape"
                and all(p.tags.get(k) == v for k, v in tags.items())]

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0,
                       what: str = "points") -> None:
        """Wake at every commit until `check()` holds (no polling)."""
        async def loop() -> None:
            while not check():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def collector_config(nats_urls: Sequence[str] = (), **sections: Any) -> CollectorConfig:
    """A config for tests: fast intervals, ephemeral status port, the test's NATS."""
    scrape = replace(ScrapeConfig(varz_interval=1.0, healthz_interval=1.0),
                     **sections.pop("scrape", {}))
    discovery = replace(DiscoveryConfig(nats=bool(nats_urls), discover_interval=60.0,
                                        prune_interval=300.0), **sections.pop("discovery", {}))
    nats = NatsConfig(servers=tuple(nats_urls) or NatsConfig().servers, reconnect_wait=0.1)
    return CollectorConfig(
        component=ComponentConfig(nats=nats),
        status=StatusConfig(address="127.0.0.1:0"), scrape=scrape, discovery=discovery,
        stop_timeout=2.0, **sections)


@pytest.fixture
async def make_collector() -> AsyncIterator[Callable[..., Awaitable[Collector]]]:
    """Factory: start collectors (with a MemoryOutputs unless `real_outputs`); all are
    stopped at the end."""
    started: list[Collector] = []

    async def make(config: CollectorConfig, real_outputs: bool = False) -> Collector:
        collector = Collector(config, None if real_outputs else MemoryOutputs())
        await collector.start()
        started.append(collector)
        return collector

    yield make
    for collector in started:
        await collector.stop()                   # once: a stopped collector stays stopped




async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on an ephemeral loopback port: (runner to clean up, "127.0.0.1:PORT")."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"127.0.0.1:{runner.addresses[0][1]}"


class HttpTarget:
    """A plain HTTP server answering /varz and /healthz with whatever a test sets."""

    def __init__(self) -> None:
        self.varz_body: bytes = b"{}"
        self.varz_status = 200
        self.healthz_body = b"ok"
        self.hang = False
        self.requests = 0
        self.healthz_requests = 0
        self.runner: web.AppRunner | None = None
        self.host = ""

    def set_varz(self, value: Any) -> None:
        self.varz_body = value if isinstance(value, bytes) else json.dumps(value).encode()

    async def _varz(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.hang:
            await asyncio.Event().wait()
        return web.Response(body=self.varz_body, status=self.varz_status,
                            content_type="application/json")

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        self.healthz_requests += 1
        if self.hang:
            await asyncio.Event().wait()
        return web.Response(body=self.healthz_body)

    async def start(self) -> HttpTarget:
        app = web.Application()
        app.router.add_get("/varz", self._varz)
        app.router.add_get("/healthz", self._healthz)
        self.runner, self.host = await serve(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class SilentServer:
    """Accepts TCP connections and never answers (a hung component)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read(65536)   # read the request, then say nothing

    async def start(self) -> SilentServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
