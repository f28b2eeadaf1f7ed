"""The HTTP side of a scrape: one shared aiohttp session, bounded bodies, failures named.

The scrape loop (`fobs.collector.scrape`) decides when and what to scrape; this module only
GETs a URL. Bodies are read in chunks and abandoned past `max_response_bytes`
(`ResponseTooLarge`), so a runaway target costs at most that much memory. Every exception a
request can end in is mapped onto the closed `scrape.error` vocabulary of docs/schema.md by
`error_class`, here at the one boundary where aiohttp's types are known.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp.typedefs import StrOrURL

from fobs.collector.errors import ResponseTooLarge

CHUNK = 64 * 1024


class Fetcher:
    """GETs for every scrape of one collector, through one connection pool."""

    def __init__(self, max_in_flight: int, max_response_bytes: int) -> None:
        self.max_in_flight = max_in_flight
        self.max_response_bytes = max_response_bytes
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def open(self) -> None:
        """Make the session (on the running loop)."""
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, limit_per_host=0,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "fobs-collector", "Accept": "application/json"})

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def get(self, url: StrOrURL, headers: Mapping[str, str] | None, timeout: float
                  ) -> tuple[int, bytes]:
        """(status, body) of a GET; the body only for a 2xx answer. Raises on every failure."""
        assert self.session is not None, "Fetcher.open() was not called"
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        limit = self.max_response_bytes
        async with self.session.get(url, headers=headers, timeout=client_timeout,
                                    allow_redirects=False) as resp:
            status = resp.status
            if not 200 <= status < 300:
                return status, b""
            length = resp.content_length
            if length is not None and length > limit:
                raise ResponseTooLarge(limit)
            if length is not None and length < CHUNK:
                body = await resp.content.read()
                if len(body) > limit:
                    raise ResponseTooLarge(limit)
                return status, body
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLarge(limit)
                chunks.append(chunk)
            return status, b"".join(chunks)


def error_class(exc: BaseException) -> str:
    """An exception of a scrape → the closed `scrape.error` vocabulary of docs/schema.md."""
    if isinstance(exc, ResponseTooLarge):
        return "too_large"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if (isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, ConnectionRefusedError)):
        return "refused"
    return "other"


def error_message(exc: BaseException) -> str:
    """A one-line description for the status page's lastError."""
    if isinstance(exc, ResponseTooLarge):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
