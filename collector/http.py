"""A keep-alive HTTP/1.1 GET client on an asyncio Protocol: the network half of every scrape.

Why not aiohttp's client, which the collector still uses for its servers and its writes: a scrape
is one small GET, a thousand a second, and aiohttp's client spends most of a scrape's fixed cost
around it (a ClientRequest, a ClientResponse, a StreamReader, a timer context, trace hooks and
header multidicts per request). Measured on the 2-core development machine (uvloop, 50 GETs in
flight on keep-alive connections to an aiohttp server in another process, CPU of the client
process per GET): `fetch.Fetcher` on aiohttp 69–71 µs for a 380-byte /varz and 74–79 µs for
20 KB; aiohttp's plainest use (`session.get` then `read()`, no limits at all) 63 and 63–70 µs,
so no cheaper way of calling it gets far; this client 17 and 21 µs. In `./dev bench scrape`
(1,000 targets a second, medians of 3, the same tree with only `fetch.py` swapped) the
collector's CPU per scrape fell from 0.218 to 0.125 ms on small payloads and from 0.328 to
0.218 ms on the real CF payloads, and its memory from 15.6 to 9.6 KB per target (small). The
whole client is the few HTTP/1.1 rules a scraper needs, and it refuses everything else.

What it does: GET only, HTTP/1.1 with keep-alive, connections reused per (scheme, host, port)
(the most recently used first) and closed after `idle_timeout` unused; at most `max_connections`
requests in flight (each holds one connection); TLS for https URLs; one total `timeout` per
request, connecting included; a reused connection that the server closed before answering is
retried once on a new one (the race every keep-alive client has). Redirects are not followed:
a 3xx is just a status.

What it leaves to the caller, through a `Sink`: the status and headers' verdict (`head`, which
may refuse the body by returning False or raising), the body's bytes as they arrive (`feed`,
which may raise to stop the read: size limits, inflating) and the end (`done`). A body is never
held here, so its bounds are the sink's (`fetch.Fetcher`'s).

The connection, and what it refuses of a response (a malformed status line or header, a head
over 64 KiB, framing it does not know, a body cut short): `fobs.collector.httpconn`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from fobs.collector.errors import ServerDisconnected
from fobs.collector.httpconn import Connection, Sink

IDLE_TIMEOUT = 15.0           # an unused keep-alive connection is closed after this (aiohttp's)
ROUTES = 65536                # parsed URLs kept (cleared whole when full)


@dataclass(frozen=True, slots=True)
class _Route:
    """What a URL means to the client, worked out once per URL."""

    key: tuple[str, str, int]          # (scheme, host, port): the pool a connection is in
    host: str
    port: int
    tls: bool
    request: bytes                     # request line, Host and the client's own headers


class HttpClient:
    """GETs over a pool of keep-alive connections; see the module's docstring."""

    def __init__(self, max_connections: int, headers: Mapping[str, str] | None = None,
                 idle_timeout: float = IDLE_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """`headers`: sent with every request; `ssl_context`: for https (default: the system's
        trusted CAs, hostname checked)."""
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._headers = _header_lines(headers)
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._routes: dict[URL | str, _Route] = {}
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._open: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open now (busy or idle)."""
        return sum(1 for c in self._open if not c.closed)

    async def get(self, url: URL | str, headers: Mapping[str, str] | None, timeout: float,
                  sink: Sink) -> int:
        """GET `url` with `headers` too, the response going to `sink`; the status.

        Raises TimeoutError past `timeout` (connecting, waiting and reading all counted),
        OSError when no connection can be made, `BadResponse` for a response this client
        refuses, and whatever `sink` raises."""
        if self._closed:
            raise RuntimeError("HttpClient is closed")
        route = self._routes.get(url) or self._route(url)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request = route.request + _header_lines(headers) + b"\r\n" if headers else (
            route.request + b"\r\n")
        if self._slots.locked():
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            conn = self._reuse(route.key, loop.time())
            if conn is not None:
                try:
                    return await self._exchange(conn, request, sink, deadline, timeout)
                except ServerDisconnected as e:
                    if e.answered:          # it had started to answer: that is a failure
                        raise
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(route)
            return await self._exchange(conn, request, sink, deadline, timeout)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Close every connection (requests in flight fail); the client is then unusable."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)            # let the transports' connection_lost run

    # -- internals ------------------------------------------------------------------------

    async def _exchange(self, conn: Connection, request: bytes, sink: Sink, deadline: float,
                        timeout: float) -> int:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        conn.start(request, sink, waiter)
        expiry = loop.call_at(deadline, conn.expire, timeout)
        try:
            status = await waiter
        except BaseException:
            conn.abort()
            raise
        finally:
            expiry.cancel()
        if conn.reusable and not conn.closed and not self._closed:
            conn.idle_since = loop.time()
            conn.waiter = conn.sink = None
            self._idle.setdefault(conn.key, []).append(conn)
            if self._sweep is None:
                self._sweep = loop.call_later(self.idle_timeout, self._close_idle)
        else:
            conn.abort()
        return status

    def _reuse(self, key: tuple[str, str, int], now: float) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since < self.idle_timeout:
                return conn
            conn.abort()
        return None

    async def _connect(self, route: _Route) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if route.tls:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        _, conn = await loop.create_connection(
            lambda: Connection(self._open), route.host, route.port, ssl=tls,
            server_hostname=route.host if tls else None)
        conn.key = route.key
        if self._closed:
            conn.abort()
            raise RuntimeError("HttpClient is closed")
        return conn

    def _close_idle(self) -> None:
        """Every idle_timeout: close what has been idle that long, forget closed ones."""
        now = asyncio.get_running_loop().time()
        for key, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if conn.closed:
                    continue
                if now - conn.idle_since >= self.idle_timeout:
                    conn.abort()
                else:
                    keep.append(conn)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        self._sweep = (asyncio.get_running_loop().call_later(self.idle_timeout, self._close_idle)
                       if self._idle else None)

    def _route(self, url: URL | str) -> _Route:
        parsed = url if isinstance(url, URL) else URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise ValueError(f"not an http(s) URL: {str(parsed)[:100]!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        target = parsed.raw_path_qs or "/"
        host = parsed.host_port_subcomponent or parsed.raw_host
        if any(c in target + host for c in "\r\n "):
            raise ValueError("CR, LF or space in a URL")
        line = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
        if len(self._routes) >= ROUTES:
            self._routes.clear()
        route = self._routes[url] = _Route(
            (parsed.scheme, parsed.raw_host, port), parsed.raw_host, port,
            parsed.scheme == "https", line.encode("latin-1") + self._headers)
        return route


def _header_lines(headers: Mapping[str, str] | None) -> bytes:
    """`Name: value` lines; refuses what would split a line (header injection)."""
    if not headers:
        return b""
    text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if text.count("\r") != len(headers) or text.count("\n") != len(headers):
        raise ValueError("CR or LF in a request header")
    return text.encode("latin-1")
