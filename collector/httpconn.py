"""One HTTP/1.1 connection of `fobs.collector.http.HttpClient` and the response read on it.

An asyncio Protocol: it writes a GET, reads the answer as the transport hands it over (one
pass, no copies of a body: each part goes to the request's `Sink` as it comes) and says when
the response is complete, failed, or whether the connection may serve another request.

What it refuses (`BadResponse`, and the connection is closed): a status line that is not
`HTTP/1.x NNN`, a response head over `MAX_HEAD` bytes or `MAX_HEADERS` lines, header lines that
are folded, have no name or carry a bare CR or LF, a Content-Length that is not digits or
conflicts with another, a Transfer-Encoding other than `chunked`, malformed chunks, and a body
cut short by the connection closing (`ServerDisconnected`). A body framed by neither length nor
chunks runs until the server closes, and that connection is not reused.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from fobs.collector.errors import BadResponse, ServerDisconnected

MAX_HEAD = 64 * 1024          # status line + headers
MAX_HEADERS = 100             # header lines
MAX_CHUNK_LINE = 1024         # a chunk-size line with its extensions

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _IDLE = range(8)
_HEX = b"0123456789abcdefABCDEF"


class Sink(Protocol):
    """Where a response goes; any method may raise to fail the request (and its connection)."""

    def head(self, status: int, length: int | None, encoding: str) -> bool:
        """Status, Content-Length (None: chunked or until close) and Content-Encoding (lower
        case, "" when absent) are known: whether to read the body (False: the request ends)."""

    def feed(self, data: bytes) -> None:
        """The next part of the body as it came off the wire (transfer framing removed)."""

    def done(self) -> None:
        """The body is complete."""


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response being read on it."""

    __slots__ = ("live", "key", "transport", "state", "waiter", "sink", "buffer", "remaining",
                 "status", "received", "reusable", "closed", "idle_since")

    def __init__(self, live: set[Connection]) -> None:
        self.live = live                   # the client's open connections
        self.key: tuple[str, str, int] = ("", "", 0)
        self.transport: asyncio.Transport | None = None
        self.state = _IDLE
        self.waiter: asyncio.Future[int] | None = None
        self.sink: Sink | None = None
        self.buffer = b""                  # an unfinished head, chunk line or trailer
        self.remaining = 0                 # body bytes (or chunk bytes) still to come
        self.status = 0
        self.received = False              # any byte of the current response
        self.reusable = False
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's are not subclasses
        self.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.live.discard(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.state == _UNTIL_CLOSE and exc is None:
            try:
                self._finish(b"")
            except Exception as e:         # the sink's verdict on the whole body
                self._fail(e)
            return
        what = "the response's" if self.received else "a response's first"
        reason = f": {exc}" if exc else ""
        self._fail(ServerDisconnected(f"connection closed before {what} end{reason}",
                                      self.received))

    def eof_received(self) -> bool:
        return False                       # close: a response never continues after a FIN

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():   # nothing asked for: not a response of ours
            self.abort()
            return
        self.received = True
        try:
            self._received(data)
        except Exception as e:             # the sink's verdict or a malformed response
            self._fail(e)

    # -- one request ----------------------------------------------------------------------

    def start(self, request: bytes, sink: Sink, waiter: asyncio.Future[int]) -> None:
        self.state, self.sink, self.waiter = _HEAD, sink, waiter
        self.buffer, self.received, self.reusable = b"", False, False
        assert self.transport is not None
        self.transport.write(request)

    def expire(self, timeout: float) -> None:
        """The request's time is up."""
        self._fail(TimeoutError(f"no complete response within {timeout:g} s"))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.abort()

    def _finish(self, rest: bytes) -> None:
        """The response is complete; `rest` is what came after it (never expected)."""
        self.state = _IDLE
        if rest:
            self.reusable = False
        assert self.sink is not None and self.waiter is not None
        self.sink.done()
        self.waiter.set_result(self.status)

    def _received(self, data: bytes) -> None:
        while True:
            state = self.state
            if state == _LENGTH:
                if len(data) < self.remaining:
                    self.remaining -= len(data)
                    self._feed(data)
                    return
                self._feed(data[:self.remaining])
                self._finish(data[self.remaining:])
                return
            if state == _HEAD:
                data = self._read_head(data)
            elif state == _CHUNK_DATA:
                take = data[:self.remaining]
                self.remaining -= len(take)
                self._feed(take)
                data = data[len(take):]
                if not self.remaining:
                    self.state = _CHUNK_END
            elif state == _CHUNK_SIZE:
                data = self._read_chunk_size(data)
            elif state == _CHUNK_END:
                data = self.buffer + data
                if len(data) < 2:
                    self.buffer = data
                    return
                if data[:2] != b"\r\n":
                    raise BadResponse("chunk not followed by CRLF")
                self.buffer, data, self.state = b"", data[2:], _CHUNK_SIZE
            elif state == _TRAILER:
                taken = self._take(data, b"\r\n\r\n", MAX_HEAD, "chunked trailer")
                if taken is not None:
                    self._finish(taken[1])
                return
            elif state == _UNTIL_CLOSE:
                self._feed(data)
                return
            else:                          # _IDLE: the response ended, more came
                self.reusable = False
                return
            if not data:
                return

    def _feed(self, data: bytes) -> None:
        if data:
            assert self.sink is not None
            self.sink.feed(data)

    def _take(self, data: bytes, mark: bytes, limit: int, what: str
              ) -> tuple[bytes, bytes] | None:
        """(what comes before `mark`, what follows it) once `mark` has come, joined to what
        earlier reads left; None until then. Past `limit` bytes without it: BadResponse."""
        if self.buffer:
            data = self.buffer + data
        end = data.find(mark, 0, limit + len(mark))
        if end < 0:
            if len(data) > limit:
                raise BadResponse(f"{what} longer than {limit} bytes")
            self.buffer = data
            return None
        self.buffer = b""
        return data[:end], data[end + len(mark):]

    def _read_head(self, data: bytes) -> bytes:
        """Consume the status line and headers once all have come; returns what follows."""
        taken = self._take(data, b"\r\n\r\n", MAX_HEAD, "response head")
        if taken is None:
            return b""
        self._parse_head(taken[0])
        return taken[1]

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        if len(lines) > MAX_HEADERS + 1:
            raise BadResponse(f"more than {MAX_HEADERS} header lines")
        line = lines[0]
        if (line[:7] != b"HTTP/1." or line[7:8] not in (b"0", b"1") or line[8:9] != b" "
                or not line[9:12].isdigit() or line[12:13] not in (b"", b" ")):
            raise BadResponse(f"bad status line {line[:64]!r}")
        status = int(line[9:12])
        close = line[7:8] == b"0"          # HTTP/1.0: one response a connection
        length: int | None = None
        chunked = False
        encoding = ""
        for raw in lines[1:]:
            name, colon, value = raw.partition(b":")
            if not colon or not name or name != name.strip() or b"\r" in raw or b"\n" in raw:
                raise BadResponse(f"bad header line {raw[:64]!r}")
            name = name.lower()
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit() or len(value) > 18 or (
                        length is not None and int(value) != length):
                    raise BadResponse(f"bad Content-Length {value[:32]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise BadResponse(f"unsupported Transfer-Encoding {value[:32]!r}")
                chunked = True
            elif name == b"content-encoding":
                part = value.strip().lower().decode("latin-1")
                encoding = f"{encoding}, {part}" if encoding else part
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    close = True
        if status < 200:                   # 1xx interim answers: the real one follows
            if status == 101:
                raise BadResponse("unexpected 101 Switching Protocols")
            return
        if chunked and length is not None:  # allowed, but a sign of a confused server
            close, length = True, None
        self.status, self.reusable = status, not close
        assert self.sink is not None
        if not self.sink.head(status, length, encoding):
            self.reusable = False
            self.state = _IDLE
            assert self.waiter is not None
            self.waiter.set_result(status)
        elif status in (204, 304) or length == 0:
            self._finish(b"")
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.state, self.remaining = _LENGTH, length
        else:
            self.state, self.reusable = _UNTIL_CLOSE, False

    def _read_chunk_size(self, data: bytes) -> bytes:
        taken = self._take(data, b"\r\n", MAX_CHUNK_LINE, "chunk-size line")
        if taken is None:
            return b""
        line, rest = taken
        size = line.partition(b";")[0].strip()
        if not size or len(size) > 15 or size.strip(_HEX):
            raise BadResponse(f"bad chunk size {size[:32]!r}")
        self.remaining = int(size, 16)
        if self.remaining:
            self.state = _CHUNK_DATA
            return rest
        self.state = _TRAILER               # the trailer section ends at the first empty line:
        return b"\r\n" + rest             # keep the size line's CRLF to find it as CRLFCRLF
