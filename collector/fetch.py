"""The HTTP side of a scrape: one shared aiohttp session, bounded bodies, failures named.

The scrape loop (`fobs.collector.scrape`) decides when and what to scrape; this module only
GETs a URL. Bodies are read in chunks and abandoned past `max_response_bytes`
(`ResponseTooLarge`), counting the *decoded* bytes: a gzip or deflate body is inflated here, a
chunk at a time with `max_length` set to what is left of the limit, so a decompression bomb (61 KB
of gzip that inflates to 60 MiB) costs at most the limit plus one chunk. aiohttp's own
`auto_decompress` is off because it inflates each network chunk whole before anyone can count.
The bodies being read at one time share a budget too (`max_buffered_bytes`, by default
BUFFERED_BODIES × `max_response_bytes`: 64 MiB), so 256 scrapes of bombs in flight cost that,
not 256 × 8 MiB; a scrape that would go past it fails as `too_large`.
Every exception a request can end in is mapped onto the closed `scrape.error` vocabulary of
docs/schema.md by `error_class`, here at the one boundary where aiohttp's types are known.

The parse of a body is not moved off the loop: neither `json.loads` nor msgspec releases the GIL,
so in a thread the loop stalls just as long (measured: an 8 MiB varz parses in 0.18–0.56 s on
the 2-core reference machine, and the loop's longest gap was the parse time either way). The
bound on that stall is `max_response_bytes` itself: 25–70 ms per MiB.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from functools import partial

import aiohttp
from aiohttp import hdrs
from aiohttp.typedefs import StrOrURL

from fobs.collector.errors import ResponseTooLarge

CHUNK = 64 * 1024
BUFFERED_BODIES = 8      # default budget of all bodies in flight, in max_response_bytes
ENCODINGS = ("gzip", "x-gzip", "deflate")       # what we ask for and inflate ourselves
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS             # zlib: detect a gzip or a zlib header


class Fetcher:
    """GETs for every scrape of one collector, through one connection pool."""

    def __init__(self, max_in_flight: int, max_response_bytes: int,
                 max_buffered_bytes: int = 0) -> None:
        """`max_buffered_bytes`: all bodies being read at once (0 = BUFFERED_BODIES bodies)."""
        self.max_in_flight = max_in_flight
        self.max_response_bytes = max_response_bytes
        self.max_buffered_bytes = max_buffered_bytes or BUFFERED_BODIES * max_response_bytes
        self.buffered = 0        # decoded bytes held by the reads in flight now
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def open(self) -> None:
        """Make the session (on the running loop)."""
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, limit_per_host=0,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "fobs-collector", "Accept": "application/json",
                     "Accept-Encoding": "gzip, deflate"})

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
            held = [0]
            try:
                return status, await read_body(resp, limit, partial(self._hold, held))
            finally:
                self.buffered -= held[0]

    def _hold(self, held: list[int], size: int) -> None:
        """Count `size` more decoded bytes of one read against the shared budget."""
        held[0] += size
        self.buffered += size
        if self.buffered > self.max_buffered_bytes:
            raise ResponseTooLarge(self.max_buffered_bytes, "responses in flight together")


async def read_body(resp: aiohttp.ClientResponse, limit: int,
                    hold: Callable[[int], None] | None = None) -> bytes:
    """The decoded body of `resp`, at most `limit` bytes (else `ResponseTooLarge`).

    Both what arrives and what it inflates to are counted as they come, so neither a long body
    nor a small compressed one that inflates to a large one is ever held past the limit; `hold`
    is told each decoded part's size (and may raise to stop the read)."""
    encoding = resp.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding not in ("", "identity", *ENCODINGS):
        raise aiohttp.ClientPayloadError(f"unsupported Content-Encoding {encoding!r}")
    inflate = zlib.decompressobj(_GZIP_OR_ZLIB) if encoding in ENCODINGS else None
    parts: list[bytes] = []
    size = received = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        received += len(chunk)
        if received > limit:
            raise ResponseTooLarge(limit)
        if inflate is None:
            size += len(chunk)
            if hold is not None:
                hold(len(chunk))
            parts.append(chunk)
            continue
        while chunk and not inflate.eof:
            try:
                out = inflate.decompress(chunk, limit - size + 1)
            except zlib.error as e:
                raise aiohttp.ClientPayloadError(f"bad {encoding} body: {e}") from None
            size += len(out)
            if size > limit:
                raise ResponseTooLarge(limit)
            if hold is not None:
                hold(len(out))
            parts.append(out)
            chunk = inflate.unconsumed_tail
    if inflate is not None and not inflate.eof:
        raise aiohttp.ClientPayloadError(f"truncated {encoding} body")
    return b"".join(parts)


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
