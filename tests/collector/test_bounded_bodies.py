"""A decompression bomb against a real collector (issue 9, finding 8): the scrape fails as
`too_large`, counted; the test process' peak RSS does not jump; another target is still scraped
on time. Compressed bodies that are fine still work."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fobs.collector.config import StaticTarget
from fobs.collector.daemon import Collector
from fobs.collector.errors import ResponseTooLarge
from fobs.collector.fetch import Fetcher
from tests.collector.collector_helpers import HttpTarget, MemoryOutputs, collector_config, serve

MIB = 1024 * 1024
# 60 MiB of JSON whitespace inside an object: 61 KB of gzip, below the old code's 64 KiB
# "small body" path, which read (and inflated) it whole before checking the size.
BOMB = gzip.compress(b"{" + b" " * (60 * MIB) + b"}", compresslevel=9)


class EncodedServer:
    """Serves one fixed body with a Content-Encoding at /varz (its real, small length)."""

    def __init__(self, body: bytes, encoding: str) -> None:
        self.body, self.encoding = body, encoding
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.host = ""

    async def _varz(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return web.Response(body=self.body, content_type="application/json",
                            headers={"Content-Encoding": self.encoding})

    async def start(self) -> EncodedServer:
        app = web.Application()
        app.router.add_get("/varz", self._varz)
        self.runner, self.host = await serve(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def rss_kib(field: str) -> int:
    """VmRSS or VmHWM (the peak since the last reset) of this process, KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as e:
        pytest.skip(f"cannot reset the peak RSS (/proc/self/clear_refs): {e}")


async def test_a_gzip_bomb_is_refused_and_costs_no_memory(make_collector: Any) -> None:
    assert len(BOMB) < 64 * 1024
    bomb = await EncodedServer(BOMB, "gzip").start()
    plain = await HttpTarget().start()
    plain.set_varz({"requests": 1})
    try:
        config = collector_config(
            discovery={"static": (StaticTarget(type="Bomb", url=f"http://{bomb.host}"),
                                  StaticTarget(type="Plain", url=f"http://{plain.host}"))},
            scrape={"healthz": False})
        reset_peak_rss()
        before = rss_kib("VmRSS")
        collector: Collector = await make_collector(config)
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: len(outputs.scrapes(job="Bomb")) >= 3
                               and len(outputs.scrapes(job="Plain")) >= 3)
        peak = rss_kib("VmHWM") - before
        assert peak < 40 * 1024, f"the peak RSS rose by {peak // 1024} MiB"
        assert {p.fields.get("error") for p in outputs.scrapes(job="Bomb")} == {"too_large"}
        stats = collector.scraper.stats
        assert stats.failed["varz"]["too_large"] >= 3
        assert all(p.fields["up"] == 1 for p in outputs.scrapes(job="Plain"))
        assert stats.late == 0 and stats.missed == 0, "every scrape started on time"
        assert collector.component is None or (
            collector.component.metrics.varz()["scrapes"]["failed"]["varz"]["too_large"] >= 3)
    finally:
        await bomb.stop()
        await plain.stop()


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("x-gzip", gzip.compress)])
async def test_compressed_varz_within_the_limit_is_read(
        make_collector: Any, encoding: str, compress: Any) -> None:
    body = json.dumps({"requests": 7, "pad": "x" * 300_000}).encode()
    server = await EncodedServer(compress(body), encoding).start()
    try:
        collector: Collector = await make_collector(collector_config(
            discovery={"static": (StaticTarget(type="Zipped", url=f"http://{server.host}"),)},
            scrape={"healthz": False}))
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: len(outputs.scrapes(job="Zipped")) >= 1)
        [scrape] = outputs.scrapes(job="Zipped")[:1]
        assert scrape.fields["up"] == 1, scrape.fields
        assert scrape.fields["response_bytes"] == len(body)
    finally:
        await server.stop()


@pytest.mark.parametrize("body,encoding", [(b"\x1f\x8b" + b"garbage" * 10, "gzip"),
                                           (gzip.compress(b"{}" * 100)[:-12], "gzip"),
                                           (b"{}", "br")])
async def test_bad_or_unknown_encodings_fail_the_scrape(
        make_collector: Any, body: bytes, encoding: str) -> None:
    server = await EncodedServer(body, encoding).start()
    try:
        collector: Collector = await make_collector(collector_config(
            discovery={"static": (StaticTarget(type="Odd", url=f"http://{server.host}"),)},
            scrape={"healthz": False}))
        outputs: MemoryOutputs = collector.outputs  # type: ignore[assignment]
        await outputs.wait_for(lambda: len(outputs.scrapes(job="Odd")) >= 1)
        assert outputs.scrapes(job="Odd")[0].fields["error"] == "other"
    finally:
        await server.stop()


async def test_bodies_in_flight_share_one_budget() -> None:
    """Four 650 KB bodies against a 2 MB budget: while each holds its first 600 KB (the server
    holds the rest back), one read goes past the budget and fails; the other three complete."""
    gate = asyncio.Event()
    first, rest = b"x" * 600_000, b"y" * 50_000

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(first) + len(rest)
        await resp.prepare(request)
        await resp.write(first)
        await gate.wait()
        await resp.write(rest)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/varz", slow)
    runner, host = await serve(app)
    fetcher = Fetcher(max_in_flight=10, max_response_bytes=1 << 20, max_buffered_bytes=2_000_000)
    fetcher.open()
    try:
        gets = [asyncio.create_task(fetcher.get(f"http://{host}/varz", None, 10.0))
                for _ in range(4)]
        done, _ = await asyncio.wait(gets, return_when=asyncio.FIRST_EXCEPTION, timeout=10)
        assert done, "no read went past the budget"
        assert fetcher.buffered <= 2_000_000
        gate.set()
        results = await asyncio.gather(*gets, return_exceptions=True)
        failed = [r for r in results if isinstance(r, ResponseTooLarge)]
        assert len(failed) == 1 and "in flight together" in str(failed[0])
        assert [len(r[1]) for r in results if isinstance(r, tuple)] == [650_000] * 3
        assert fetcher.buffered == 0, "every read gives its bytes back"
    finally:
        gate.set()
        await fetcher.close()
        await runner.cleanup()
