"""The HTTP side of a scrape: one connection pool, bounded bodies, failures named.

The scrape loop (`fobs.collector.scrape`) decides when and what to scrape; this module only
GETs a URL, through `fobs.collector.http.HttpClient` (why that and not aiohttp's client: its
docstring). Bodies are counted as they come off the wire and abandoned past
`max_response_bytes` (`ResponseTooLarge`; a Content-Length over it is refused before any body
byte), counting the *decoded* bytes: a gzip or deflate body is inflated here, a network read at
a time with `max_length` set to what is left of the limit, so a decompression bomb (61 KB of
gzip that inflates to 60 MiB) costs at most the limit plus one read.
The bodies being read at one time share a budget too (`max_buffered_bytes`, by default
BUFFERED_BODIES × `max_response_bytes`: 64 MiB), so 256 scrapes of bombs in flight cost that,
not 256 × 8 MiB; a scrape that would go past it fails as `too_large`.
Every exception a request can end in is mapped onto the closed `scrape.error` vocabulary of
docs/schema.md by `error_class`.

The parse of a body is not moved off the loop: neither `json.loads` nor msgspec releases the GIL,
so in a thread the loop stalls just as long (measured: an 8 MiB varz parses in 0.18–0.56 s on
the 2-core reference machine, and the loop's longest gap was the parse time either way). The
bound on that stall is `max_response_bytes` itself: 25–70 ms per MiB.
"""

from __future__ import annotations

import errno
import ssl
import zlib
from collections.abc import Mapping

from yarl import URL

from fobs.collector.errors import BadResponse, ResponseTooLarge
from fobs.collector.http import HttpClient

BUFFERED_BODIES = 8      # default budget of all bodies in flight, in max_response_bytes
ENCODINGS = ("gzip", "x-gzip", "deflate")       # what we ask for and inflate ourselves
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS             # zlib: detect a gzip or a zlib header
HEADERS = {"User-Agent": "fobs-collector", "Accept": "application/json",
           "Accept-Encoding": "gzip, deflate"}


class Fetcher:
    """GETs for every scrape of one collector, through one connection pool."""

    def __init__(self, max_in_flight: int, max_response_bytes: int,
                 max_buffered_bytes: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        """`max_buffered_bytes`: all bodies being read at once (0 = BUFFERED_BODIES bodies);
        `ssl_context`: for https targets (default: the system's CAs)."""
        self.max_in_flight = max_in_flight
        self.max_response_bytes = max_response_bytes
        self.max_buffered_bytes = max_buffered_bytes or BUFFERED_BODIES * max_response_bytes
        self.buffered = 0        # decoded bytes held by the reads in flight now
        self.ssl_context = ssl_context
        self.client: HttpClient | None = None

    def open(self) -> None:
        """Make the connection pool (on the running loop)."""
        self.client = HttpClient(self.max_in_flight, HEADERS, ssl_context=self.ssl_context)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def get(self, url: URL | str, headers: Mapping[str, str] | None, timeout: float
                  ) -> tuple[int, bytes]:
        """(status, body) of a GET; the body only for a 2xx answer. Raises on every failure."""
        assert self.client is not None, "Fetcher.open() was not called"
        body = Body(self, self.max_response_bytes)
        try:
            status = await self.client.get(url, headers, timeout, body)
            return status, b"".join(body.parts)
        finally:
            body.release()


class Body:
    """One response's body as `HttpClient` hands it over (its `Sink`): counted as it comes, both
    what arrives and what it inflates to, so neither a long body nor a small compressed one that
    inflates to a large one is ever held past `limit`; every decoded part is also counted
    against the fetcher's shared budget of bodies in flight."""

    __slots__ = ("fetcher", "limit", "received", "size", "held", "parts", "inflate", "encoding")

    def __init__(self, fetcher: Fetcher, limit: int) -> None:
        self.fetcher, self.limit = fetcher, limit
        self.received = self.size = self.held = 0
        self.parts: list[bytes] = []
        self.inflate: zlib._Decompress | None = None
        self.encoding = ""

    def head(self, status: int, length: int | None, encoding: str) -> bool:
        if not 200 <= status < 300:
            return False
        if length is not None and length > self.limit:
            raise ResponseTooLarge(self.limit)
        if encoding in ENCODINGS:
            self.inflate = zlib.decompressobj(_GZIP_OR_ZLIB)
        elif encoding not in ("", "identity"):
            raise BadResponse(f"unsupported Content-Encoding {encoding[:40]!r}")
        self.encoding = encoding
        return True

    def feed(self, data: bytes) -> None:
        try:
            self._feed(data)
        except BaseException:
            self.release()              # at once: other reads may be counting in this callback
            raise

    def _feed(self, data: bytes) -> None:
        limit = self.limit
        self.received += len(data)
        if self.received > limit:
            raise ResponseTooLarge(limit)
        inflate = self.inflate
        if inflate is None:
            self.size += len(data)
            self._hold(data)
            return
        while data and not inflate.eof:
            try:
                out = inflate.decompress(data, limit - self.size + 1)
            except zlib.error as e:
                raise BadResponse(f"bad {self.encoding} body: {e}") from None
            self.size += len(out)
            if self.size > limit:
                raise ResponseTooLarge(limit)
            self._hold(out)
            data = inflate.unconsumed_tail

    def done(self) -> None:
        if self.inflate is not None and not self.inflate.eof:
            raise BadResponse(f"truncated {self.encoding} body")

    def release(self) -> None:
        """Give this body's bytes back to the shared budget (and drop them)."""
        self.fetcher.buffered -= self.held
        self.held = 0
        self.parts.clear()

    def _hold(self, part: bytes) -> None:
        """Keep `part`, counting it against the budget of all bodies in flight."""
        fetcher = self.fetcher
        self.held += len(part)
        fetcher.buffered += len(part)
        self.parts.append(part)
        if fetcher.buffered > fetcher.max_buffered_bytes:
            raise ResponseTooLarge(fetcher.max_buffered_bytes, "responses in flight together")


def error_class(exc: BaseException) -> str:
    """An exception of a scrape → the closed `scrape.error` vocabulary of docs/schema.md."""
    if isinstance(exc, ResponseTooLarge):
        return "too_large"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "refused"
    return "other"


def error_message(exc: BaseException) -> str:
    """A one-line description for the status page's lastError."""
    if isinstance(exc, ResponseTooLarge):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
