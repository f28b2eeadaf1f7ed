"""UDP, TCP and TLS listeners feeding one bounded intake queue.

Receiving does the least work possible: frame, cut to `max_message_size`, stamp and queue. The
pipeline parses and writes off that queue, so a burst is absorbed by the queue (and the kernel
buffer behind it) instead of being lost in the kernel. When the queue is full, UDP datagrams are
dropped and counted; TCP connections stop being read (back-pressure to the sender) until the
queue has drained to half.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable

from loguru import logger

from fobs.syslog_agg.framing import Framer
from fobs.syslog_agg.stats import IntakeStats, ListenerStats

__all__ = ["Intake", "UdpListener", "TcpListener", "Item", "bind_udp", "udp_drops",
           "rcvbuf_granted", "tls_context"]

# (data, peer address, received_at (time.time()), truncated)
Item = tuple[bytes, str, float, bool]

_UDP_BATCH = 256  # datagrams read per readiness callback before letting others run
# Linux's SO_RCVBUFFORCE (asm-generic/socket.h); Python's socket module does not export it
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_QUIET = 0.1      # a connection silent this long (seconds) is taken as drained at stop


class Intake:
    """The bounded queue between receiving and writing, and the receive-side counters."""

    def __init__(self, capacity: int, max_message_size: int) -> None:
        self.capacity = capacity
        self.max_message_size = max_message_size
        self.queue: deque[Item] = deque()
        self.ready = asyncio.Event()
        self._paused: set[asyncio.Transport] = set()
        self.stats = IntakeStats()

    def pause(self, transport: asyncio.Transport) -> None:
        if transport not in self._paused and not transport.is_closing():
            transport.pause_reading()
            self._paused.add(transport)

    def forget(self, transport: asyncio.Transport) -> None:
        self._paused.discard(transport)

    def drained(self) -> None:
        """Called by the consumer: resume paused TCP readers once the queue is half empty."""
        if self._paused and len(self.queue) <= self.capacity // 2:
            for transport in self._paused:
                if not transport.is_closing():
                    transport.resume_reading()
            self._paused.clear()

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.capacity


def bind_udp(host: str, port: int, rcvbuf: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if rcvbuf:
            try:  # with CAP_NET_ADMIN this bypasses net.core.rmem_max, as rsyslog does
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)
            except OSError:  # not privileged: the kernel caps it at net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpListener:
    """One UDP socket read with `recvfrom` in batches from the loop's reader callback."""

    def __init__(self, intake: Intake, host: str = "", port: int = 0, *, rcvbuf: int = 8 << 20,
                 reuse_port: bool = False, sock: socket.socket | None = None) -> None:
        self.intake = intake
        self.sock = sock if sock is not None else bind_udp(host, port, rcvbuf, reuse_port)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.rcvbuf_granted = rcvbuf_granted(self.sock)
        self._inode = os.fstat(self.sock.fileno()).st_ino
        self._peers: dict[tuple[str, int], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        logger.info("Listening for syslog on udp {}:{} (receive buffer {} bytes)",
                    self.address[0], self.address[1], self.rcvbuf_granted)

    def _on_readable(self) -> None:
        intake = self.intake
        stats = intake.stats
        recvfrom = self.sock.recvfrom
        bufsize = intake.max_message_size + 1
        limit = intake.max_message_size
        queue = intake.queue
        capacity = intake.capacity
        peers = self._peers
        now = time.time()
        n = nbytes = 0
        for _ in range(_UDP_BATCH):
            try:
                data, addr = recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # e.g. ICMP errors surfacing on the socket: keep reading
                logger.warning("UDP receive error: {}", e)
                break
            size = len(data)
            if size <= 1 and (size == 0 or data == b"\x00"):
                stats.probes += 1  # monit's UDP port test sends one NUL byte
                continue
            n += 1
            nbytes += size
            if len(queue) >= capacity:
                stats.dropped += 1
                continue
            peer = peers.get(addr)
            if peer is None:
                if len(peers) > 10000:
                    peers.clear()
                peer = peers[addr] = addr[0]
            if size > limit:
                stats.truncated += 1
                queue.append((data[:limit], peer, now, True))
            else:
                queue.append((data, peer, now, False))
        stats.received += n
        stats.received_bytes += nbytes
        if n:
            intake.ready.set()

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped for this socket (buffer full), or None."""
        return udp_drops([self._inode])

    def drain(self) -> None:
        """Read everything the kernel holds for this socket into the intake."""
        stats = self.intake.stats
        before = -1
        while stats.received + stats.probes != before:
            before = stats.received + stats.probes
            self._on_readable()

    def close(self) -> None:
        """Stop listening; datagrams already in the kernel buffer are read first."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self.drain()
        self.sock.close()


def udp_drops(inodes: list[int]) -> int | None:
    """Sum of the `drops` column of these sockets in /proc/net/udp{,6} (Linux), or None."""
    wanted = {str(i) for i in inodes}
    total, found = 0, False
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] in wanted:
                        total += int(fields[12])
                        found = True
        except (OSError, ValueError, StopIteration):
            continue
    return total if found else None


def rcvbuf_granted(sock: socket.socket) -> int:
    """The receive buffer the kernel granted (Linux reports twice that, with its overhead)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


class _Session(asyncio.Protocol):
    """One TCP/TLS connection: framing and back-pressure."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.last_activity = time.monotonic()
        self.framer = Framer(self._emit, listener.intake.max_message_size)
        self._errors_seen = 0
        self._now = time.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else "?"
        listener = self.listener
        if len(listener.sessions) >= listener.max_connections:
            listener.stats.rejected_connections += 1
            transport.abort()
            return
        listener.sessions.add(self)
        listener.stats.connections += 1
        if listener.intake.full:
            listener.intake.pause(transport)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self._now = time.time()
        self.framer.feed(data)
        intake = self.listener.intake
        if self.framer.framing_errors != self._errors_seen:
            intake.stats.framing_errors += self.framer.framing_errors - self._errors_seen
            self._errors_seen = self.framer.framing_errors
        if intake.full and self.transport is not None:
            intake.pause(self.transport)

    def _emit(self, frame: bytes, truncated: bool) -> None:
        intake = self.listener.intake
        stats = intake.stats
        stats.received += 1
        stats.received_bytes += len(frame)
        if truncated:
            stats.truncated += 1
        intake.queue.append((frame, self.peer, self._now, truncated))
        intake.ready.set()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._now = time.time()
        self.framer.close()
        self.listener.sessions.discard(self)
        if self.transport is not None:
            self.listener.intake.forget(self.transport)


class TcpListener:
    """A TCP (or, with `ssl_context`, TLS) syslog server with an idle timeout per connection."""

    def __init__(self, intake: Intake, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, idle_timeout: float = 300.0,
                 max_connections: int = 1024, reuse_port: bool = False) -> None:
        self.intake = intake
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.reuse_port = reuse_port
        self.sessions: set[_Session] = set()
        self.stats = ListenerStats()
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] = (host, port)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def transport_name(self) -> str:
        return "tls" if self.ssl_context is not None else "tcp"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = lambda: _Session(self)  # noqa: E731
        self.server = await loop.create_server(
            factory, self.host, self.port, ssl=self.ssl_context, reuse_port=self.reuse_port,
            backlog=1024, ssl_handshake_timeout=min(self.idle_timeout, 60.0)
            if self.ssl_context is not None else None)
        self.address = self.server.sockets[0].getsockname()[:2]
        self._sweeper = asyncio.create_task(self._sweep())
        logger.info("Listening for syslog on {} {}:{}", self.transport_name, *self.address)

    async def _sweep(self) -> None:
        interval = max(min(self.idle_timeout / 4, 5.0), 0.05)
        while True:
            await asyncio.sleep(interval)
            limit = time.monotonic() - self.idle_timeout
            for session in [s for s in self.sessions if s.last_activity < limit]:
                self.stats.idle_closed += 1
                if session.transport is not None:
                    session.transport.close()

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting; read open connections until they are quiet (at most `grace`
        seconds) so that what clients sent before the stop gets in, then close them."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
        deadline = time.monotonic() + grace
        while self.sessions and time.monotonic() < deadline:
            quiet = time.monotonic() - _QUIET
            if all(s.last_activity < quiet for s in self.sessions):
                break
            await asyncio.sleep(_QUIET / 5)  # no event tells "the client has nothing more"
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.wait_closed(), 5)
            except TimeoutError:
                pass


def tls_context(cert: str, key: str, ca: str = "", require_client_cert: bool = False
                ) -> ssl.SSLContext:
    """A server context for RFC 5425; `ca` + `require_client_cert` for mutual TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
