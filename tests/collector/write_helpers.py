"""Shared pieces of the write-path tests: point factories, an influxd with a small body limit, and a
scripted fake server for the answers a real influxd cannot be made to give (429, 503, a hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest
from aiohttp import web

from fobs.collector.buffer import SpoolConfig
from fobs.collector.config import InfluxV1OutputConfig, InfluxV2OutputConfig
from fobs.collector.output import RetryConfig
from fobs.collector.point import Point
from tests.services import Influxd

T0 = 1_700_000_000_000_000_000
FAST_RETRY = RetryConfig(initial_delay=0.02, max_delay=0.2, retry_after_max=5.0)
FAST_SPOOL = SpoolConfig(max_bytes=64 << 20, segment_bytes=256 << 10, fsync="never")


def scrape(i: int, per: int = 10, measurement: str = "load", host: str = "h1") -> list[Point]:
    """`per` points as one scrape of one target would make them (shared tags and time)."""
    tags = {"host": host, "type": "DEA"}
    return [Point(measurement, {**tags, "n": str(k)}, {"v": float(i * per + k), "i": i}, T0 + i)
            for k in range(per)]


def v1(url: str, database: str, **kw: object) -> InfluxV1OutputConfig:
    options: dict[str, object] = {"flush_interval": 0.05, "retry": FAST_RETRY,
                                  "spool": FAST_SPOOL, "timeout": 2.0}
    options.update(kw)
    return InfluxV1OutputConfig(url=url, database=database, **options)  # type: ignore[arg-type]


def v2(url: str, bucket: str, **kw: object) -> InfluxV2OutputConfig:
    options: dict[str, object] = {"flush_interval": 0.05, "retry": FAST_RETRY,
                                  "spool": FAST_SPOOL, "timeout": 2.0, "org": "fobs"}
    options.update(kw)
    return InfluxV2OutputConfig(url=url, bucket=bucket, **options)  # type: ignore[arg-type]


_databases = count()


def new_database(influxd: Influxd) -> str:
    """A fresh database on a shared influxd (names never repeat within a test run)."""
    name = f"w{next(_databases)}"
    influxd.create_database(name)
    return name


@pytest.fixture
def db(influxd_shared: Influxd) -> Iterator[str]:
    """A database of its own on the session's influxd, dropped afterwards."""
    name = new_database(influxd_shared)
    yield name
    influxd_shared.query(f'DROP DATABASE "{name}"')


@pytest.fixture
def small_body_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private influxd that refuses request bodies over 4,000 bytes with 413."""
    server = Influxd(tmp_path / "influxd-small", http_options="  max-body-size = 4000\n")
    with server:
        yield server


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    hang: bool = False


@dataclass
class Seen:
    at: float
    path: str
    body: bytes
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeInflux:
    """Answers /write and /api/v2/write from a script (then `default`), recording each request."""

    url: str = ""
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    requests: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(time.monotonic(), request.path, body, dict(request.query),
                                  dict(request.headers)))
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer.hang:
            await asyncio.sleep(3600)
        return web.Response(status=answer.status, headers=answer.headers, text=answer.body)


@pytest.fixture
async def fake_influx() -> AsyncIterator[FakeInflux]:
    """A fake server: only for answers real influxd cannot produce on demand (429, 503, hangs)."""
    fake = FakeInflux()
    app = web.Application()
    app.router.add_post("/write", fake.handle)
    app.router.add_post("/api/v2/write", fake.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()
