"""UDP, TCP and TLS listeners feeding one bounded intake queue.

Receiving does the least work possible: frame, cut to `max_message_size`, stamp and queue. The
pipeline parses and writes off that queue, so a burst is absorbed by the queue (and the kernel
buffer behind it) instead of being lost in the kernel. When the queue is full, UDP datagrams are
dropped and counted; TCP connections stop being read (back-pressure to the sender) until the
queue has drained to half, and the frames of a read that did not fit wait in their framer.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import operator
import os
import socket
import ssl
import termios
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger

from fobs.syslog_agg.framing import Framer
from fobs.syslog_agg.mmsg import BATCH, BatchReceiver
from fobs.syslog_agg.stats import IntakeStats, ListenerStats

__all__ = ["Intake", "UdpListener", "TcpListener", "Item", "bind_udp", "udp_drops",
           "rcvbuf_granted", "tls_context"]

# (data, peer address, received_at (time.time()), truncated)
Item = tuple[bytes, str, float, bool]

_UDP_BATCH = 256  # datagrams read per readiness callback before letting others run
# Linux's SO_RCVBUFFORCE (asm-generic/socket.h); Python's socket module does not export it
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_QUIET = 0.1      # a connection silent this long (seconds) is taken as drained at stop
_ACCEPT_BATCH = 64  # connections accepted per readiness callback before letting others run
_ACCEPT_RETRY = 1.0  # seconds accepting pauses when out of descriptors (as asyncio does)
_OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class Intake:
    """The bounded queue between receiving and writing, and the receive-side counters."""

    def __init__(self, capacity: int, max_message_size: int) -> None:
        self.capacity = capacity
        self.max_message_size = max_message_size
        self.queue: deque[Item] = deque()
        self.ready = asyncio.Event()
        self._held: dict[_Session, None] = {}  # TCP/TLS sessions waiting for room, in order
        self.peak = 0  # most items the queue has held (the consumer notes it, `note_depth`)
        self.stats = IntakeStats()

    def hold(self, session: _Session) -> None:
        """`session` stopped reading because the queue is full; `drained` resumes it."""
        self._held[session] = None

    def note_depth(self) -> None:
        """Called by the consumer before each slice: the queue only shrinks while it works,
        so this sees every peak."""
        if len(self.queue) > self.peak:
            self.peak = len(self.queue)

    def drained(self) -> bool:
        """Called by the consumer: once the queue is half empty, resume the held TCP/TLS
        sessions (each frames what it holds, and may be held again). True if any was."""
        if not self._held or len(self.queue) > self.capacity // 2:
            return False
        held, self._held = self._held, {}
        for session in held:
            session.resume()
        return True

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
    """One UDP socket read in batches from the loop's reader callback: `recvmmsg` (mmsg.py), 64
    datagrams a system call, or `recvfrom` where it is missing."""

    def __init__(self, intake: Intake, host: str = "", port: int = 0, *, rcvbuf: int = 8 << 20,
                 reuse_port: bool = False, sock: socket.socket | None = None) -> None:
        self.intake = intake
        self.sock = sock if sock is not None else bind_udp(host, port, rcvbuf, reuse_port)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.rcvbuf_granted = rcvbuf_granted(self.sock)
        self._inode = os.fstat(self.sock.fileno()).st_ino
        self._peers: dict[Any, str] = {}  # sender address (raw bytes or tuple) -> its text
        self._loop: asyncio.AbstractEventLoop | None = None
        batch = BatchReceiver.open(self.sock, intake.max_message_size + 1)
        self._receive: Callable[[], tuple[list[bytes], list[Any]]] = (
            self._recvfrom if batch is None else batch.receive)
        self._peer: Callable[[Any], str] = (
            operator.itemgetter(0) if batch is None else batch.peer)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        logger.info("Listening for syslog on udp {}:{} (receive buffer {} bytes)",
                    self.address[0], self.address[1], self.rcvbuf_granted)

    def _on_readable(self) -> None:
        intake = self.intake
        stats = intake.stats
        limit = intake.max_message_size
        queue = intake.queue
        capacity = intake.capacity
        peers = self._peers
        now = time.time()
        n = nbytes = 0
        for _ in range(_UDP_BATCH // BATCH):
            try:
                datagrams, senders = self._receive()
            except OSError as e:  # e.g. ICMP errors surfacing on the socket: keep reading
                logger.warning("UDP receive error: {}", e)
                break
            if not datagrams:
                break
            for data, sender in zip(datagrams, senders, strict=True):
                size = len(data)
                if size <= 1 and (size == 0 or data == b"\x00"):
                    stats.probes += 1  # monit's UDP port test sends one NUL byte
                    continue
                n += 1
                nbytes += size
                if len(queue) >= capacity:
                    stats.dropped += 1
                    continue
                peer = peers.get(sender)
                if peer is None:
                    if len(peers) > 10000:
                        peers.clear()
                    peer = peers[sender] = self._peer(sender)
                if size > limit:
                    stats.truncated += 1
                    queue.append((data[:limit], peer, now, True))
                else:
                    queue.append((data, peer, now, False))
            if len(datagrams) < BATCH:
                break  # the socket is empty
        stats.received += n
        stats.received_bytes += nbytes
        if n:
            intake.ready.set()

    def _recvfrom(self) -> tuple[list[bytes], list[Any]]:
        """`BatchReceiver.receive` with one `recvfrom` per datagram (no recvmmsg)."""
        recvfrom = self.sock.recvfrom
        bufsize = self.intake.max_message_size + 1
        datagrams: list[bytes] = []
        senders: list[Any] = []
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if not datagrams:
                    raise
                logger.warning("UDP receive error: {}", e)  # keep what was read before it
                break
            datagrams.append(data)
            senders.append(addr)
        return datagrams, senders

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
    """One TCP/TLS connection, counted from accept: limits, TLS handshake, framing and
    back-pressure.

    The listener admits it at accept (`TcpListener._on_acceptable`), so a TLS connection holds
    a slot and is subject to the per-source cap before its handshake; it is upgraded here
    (`loop.start_tls`) with the handshake bounded by `handshake_timeout`: a client that
    connects and never says hello holds a descriptor for that long only.

    Back-pressure: when the intake queue is full the framer stops mid-buffer (`held`), the
    socket stops being read, and the session waits in the intake until the queue has drained;
    the frames already read stay in the framer, so the queue never grows past its bound.
    """

    def __init__(self, listener: TcpListener, peer: str) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.last_activity = time.monotonic()
        self.framer = Framer(self._emit, listener.intake.max_message_size)
        self._errors_seen = 0
        self._now = time.time()
        self._counted = True       # holds a slot in the listener (sessions, per source)
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.transport is not None:
            return  # the TLS layer's transport, set by _handshake
        self.transport = transport
        listener = self.listener
        if listener.ssl_context is not None:
            transport.pause_reading()  # nothing is read before the TLS layer takes over
            listener.tasks.add(asyncio.create_task(self._handshake(transport)))
        elif listener.intake.full:
            self._hold()

    async def _handshake(self, raw: asyncio.Transport) -> None:
        listener = self.listener
        assert listener.ssl_context is not None
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, listener.ssl_context, server_side=True,
                ssl_handshake_timeout=listener.handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as e:
            if "taking longer" in str(e) or isinstance(e, TimeoutError):
                listener.stats.handshake_timeouts += 1
            else:
                listener.stats.handshake_failures += 1
            raw.abort()
            self._release()
            return
        finally:
            task = asyncio.current_task()
            if task is not None:
                listener.tasks.discard(task)
        if tls is None or self._lost:
            self._release()
            return
        self.transport = tls
        self.last_activity = time.monotonic()
        if listener.intake.full:
            self._hold()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self._now = time.time()
        self.framer.feed(data)
        self._count_errors()
        if self.framer.held:
            self._hold()

    def _emit(self, frame: bytes, truncated: bool) -> None:
        intake = self.listener.intake
        stats = intake.stats
        stats.received += 1
        stats.received_bytes += len(frame)
        if truncated:
            stats.truncated += 1
        queue = intake.queue
        queue.append((frame, self.peer, self._now, truncated))
        intake.ready.set()
        if len(queue) >= intake.capacity:
            self.framer.held = True  # the framer keeps the rest until `resume`

    def _count_errors(self) -> None:
        framer = self.framer
        if framer.framing_errors != self._errors_seen:
            self.listener.intake.stats.framing_errors += framer.framing_errors - self._errors_seen
            self._errors_seen = framer.framing_errors

    def _hold(self) -> None:
        """Stop reading the socket until the intake has drained (Intake.drained → resume)."""
        transport = self.transport
        if transport is not None and not self._lost and not transport.is_closing():
            transport.pause_reading()
        self.listener.intake.hold(self)

    def resume(self) -> None:
        """The queue has room again: frame what was held back, then read the socket again."""
        self.framer.held = False
        self.framer.feed(b"")
        self._count_errors()
        if self.framer.held:
            self.listener.intake.hold(self)
        elif self._lost:
            self.framer.close()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._now = time.time()
        if not self.framer.held:  # else the held frames go in first (see resume)
            self.framer.close()
        self._release()

    def _release(self) -> None:
        self._lost = True
        if self._counted:
            self._counted = False
            self.listener.release(self)


class TcpListener:
    """A TCP (or, with `ssl_context`, TLS) syslog server: a connection holds a slot from accept
    to close; at most `max_connections` slots, `max_per_source` per peer address; a TLS
    handshake must finish within `handshake_timeout` seconds; a connection silent for
    `idle_timeout` seconds is closed.

    Accepting is done here, one socket at a time, rather than by `loop.create_server`, whose
    accept loop takes up to a whole backlog of sockets before any protocol sees one: a flood
    would hold all those descriptors (and hit the open-file limit) before a refusal could
    close them. Here a refused socket is closed before the next is accepted.
    """

    def __init__(self, intake: Intake, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, idle_timeout: float = 60.0,
                 max_connections: int = 1024, max_per_source: int = 64,
                 handshake_timeout: float = 10.0, reuse_port: bool = False) -> None:
        self.intake = intake
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.handshake_timeout = handshake_timeout
        self.reuse_port = reuse_port
        self.sessions: set[_Session] = set()
        self.per_source: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()  # connections being set up, handshakes
        self.stats = ListenerStats()
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] = (host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._accept_failing = False

    @property
    def transport_name(self) -> str:
        return "tls" if self.ssl_context is not None else "tcp"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.create_server((self.host, self.port), family=family, backlog=1024,
                                         reuse_port=self.reuse_port)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self._loop.add_reader(self.sock.fileno(), self._on_acceptable)
        self._sweeper = asyncio.create_task(self._sweep())
        logger.info("Listening for syslog on {} {}:{}", self.transport_name, *self.address)

    def _on_acceptable(self) -> None:
        assert self.sock is not None and self._loop is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    continue  # e.g. ECONNABORTED: that client is gone, the next may wait
                self.stats.accept_errors += 1
                if not self._accept_failing:
                    self._accept_failing = True
                    logger.error("Cannot accept {} connections: {}; pausing for {} s",
                                 self.transport_name, e.strerror or e, _ACCEPT_RETRY)
                self._loop.remove_reader(self.sock.fileno())
                self._loop.call_later(_ACCEPT_RETRY, self._resume_accepting)
                return
            self._accept_failing = False
            peer = str(addr[0])
            refusal = self._refusal(peer)
            if refusal is not None:
                setattr(self.stats, refusal, getattr(self.stats, refusal) + 1)
                conn.close()
                continue
            session = _Session(self, peer)
            self.sessions.add(session)
            self.per_source[peer] = self.per_source.get(peer, 0) + 1
            self.stats.connections += 1
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(session, conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _resume_accepting(self) -> None:
        if self.sock is not None and self.sock.fileno() >= 0 and self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self._on_acceptable)

    async def _connect(self, session: _Session, conn: socket.socket) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(lambda: session, conn)
        except (OSError, asyncio.CancelledError) as e:
            conn.close()
            session._release()
            if isinstance(e, asyncio.CancelledError):
                raise

    def _refusal(self, peer: str) -> str | None:
        """None if a new connection from `peer` may have a slot, else the ListenerStats
        counter of the refusal."""
        if len(self.sessions) >= self.max_connections:
            return "rejected_connections"
        if self.per_source.get(peer, 0) >= self.max_per_source:
            return "rejected_per_source"
        return None

    def release(self, session: _Session) -> None:
        self.sessions.discard(session)
        count = self.per_source.get(session.peer, 0) - 1
        if count > 0:
            self.per_source[session.peer] = count
        else:
            self.per_source.pop(session.peer, None)

    async def _sweep(self) -> None:
        interval = max(min(self.idle_timeout / 4, 5.0), 0.05)
        while True:
            await asyncio.sleep(interval)
            limit = time.monotonic() - self.idle_timeout
            for session in [s for s in self.sessions if s.last_activity < limit]:
                if session.transport is not None and not session.transport.is_closing():
                    self.stats.idle_closed += 1
                    session.transport.close()

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting; read open connections until they are quiet (at most `grace`
        seconds) so that what clients sent before the stop gets in, then close them."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.sock is not None and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
        for task in list(self.tasks):
            task.cancel()
        deadline = time.monotonic() + grace
        while self.sessions and time.monotonic() < deadline:
            # quiet: nothing waits in the kernel and nothing came for a while. The kernel is
            # asked first: a loop busy with the pipeline (or the UDP drain) leaves sessions
            # unread for longer than _QUIET while their bytes wait.
            quiet = time.monotonic() - _QUIET
            if all(s.last_activity < quiet and not _unread(s.transport) for s in self.sessions):
                break
            await asyncio.sleep(_QUIET / 5)  # no event tells "the client has nothing more"
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
            else:
                session._release()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the transports' connection_lost run


def _unread(transport: asyncio.Transport | None) -> int:
    """Bytes waiting in the kernel's receive buffer of this connection (FIONREAD), or 0."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    try:
        return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4)), "little")
    except (OSError, ValueError):  # closed meanwhile
        return 0


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
