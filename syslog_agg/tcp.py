"""TCP and TLS intake (RFC 6587 framing, RFC 5425): connections counted from accept, a bounded
TLS handshake, caps per source, idle timeouts, and back-pressure when the intake queue is full.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import socket
import ssl
import termios
import time
from collections import deque
from collections.abc import Iterable
from itertools import repeat

from loguru import logger

from fobs.syslog_agg.framing import Framer
from fobs.syslog_agg.intake import Intake, Item
from fobs.syslog_agg.stats import ListenerStats

__all__ = ["TcpListener", "tls_context"]

_QUIET = 0.1      # a connection silent this long (seconds) is taken as drained at stop
_ACCEPT_BATCH = 64  # connections accepted per readiness callback before letting others run
_ACCEPT_RETRY = 1.0  # seconds accepting pauses when out of descriptors (as asyncio does)
_OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
# Octets one read takes from a connection (into the listener's one buffer): up to READ_SIZE,
# about 300 messages of 200 B, so a read's system call and callback cost little per message;
# with many connections READ_BUDGET shared among them (at least MIN_READ each), as every held
# connection keeps up to one read's worth of frames that did not fit in the queue (100
# connections reading 64 KiB each held 10 MiB of them)
READ_SIZE = 64 * 1024
READ_BUDGET = 512 * 1024
MIN_READ = 4 * 1024


class _Session(asyncio.BufferedProtocol):
    """One TCP/TLS connection, counted from accept: limits, TLS handshake, framing and
    back-pressure.

    The listener admits it at accept (`TcpListener._on_acceptable`), so a TLS connection holds
    a slot and is subject to the per-source cap before its handshake; it is upgraded here
    (`loop.start_tls`) with the handshake bounded by `handshake_timeout`: a client that
    connects and never says hello holds a descriptor for that long only.

    Reading: the socket is read into the listener's one read buffer (`get_buffer`), behind a
    copy of the unfinished frame this connection had left over, and the whole read is framed
    at once and queued with one `deque.extend`. A connection owns no read buffer of its own,
    only that left-over (at most `max_message_size` + 11 octets), so 100 connections cost
    little more memory than one.

    Back-pressure: when the intake queue is full, the frames of the read that did not fit wait
    here (`_pending`, at most one read's worth), the socket stops being read, and the session
    waits in the intake until the queue has drained to half (`resume`).
    """

    def __init__(self, listener: TcpListener, peer: str) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.last_activity = time.monotonic()
        self.framer = Framer(listener.intake.max_message_size)
        self._pending: deque[Item] = deque()  # framed, waiting for room in the queue
        self._joined = 0           # length of the read buffer's copy of `framer.rest`
        self._errors_seen = 0
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

    def get_buffer(self, sizehint: int) -> memoryview:
        """The listener's read buffer, after a copy of this connection's unfinished frame (the
        loop reads into it and calls `buffer_updated` before anything else runs)."""
        rest = self.framer.rest
        n = self._joined = len(rest)
        listener = self.listener
        if n:
            listener.read_buffer[:n] = rest
        return listener.read_view[n:n + listener.read_size]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_activity = time.monotonic()
        framer = self.framer
        frames = framer.feed(bytes(self.listener.read_view[:self._joined + nbytes]),
                             joined=True)
        if framer.framing_errors != self._errors_seen:
            self.listener.intake.stats.framing_errors += framer.framing_errors - self._errors_seen
            self._errors_seen = framer.framing_errors
        if frames:
            self._queue(frames, framer.cut)

    def _queue(self, frames: list[bytes], cut: list[int]) -> None:
        """Count `frames` and queue them, or as many as fit; the rest wait in `_pending` and
        the socket is no longer read until the queue has room (`resume`)."""
        intake = self.listener.intake
        stats = intake.stats
        queue = intake.queue
        n = len(frames)
        stats.received += n
        stats.received_bytes += sum(map(len, frames))
        now = time.time()
        if cut:
            stats.truncated += len(cut)
            truncated = set(cut)
            items: Iterable[Item] = [(f, self.peer, now, i in truncated)
                                     for i, f in enumerate(frames)]
        else:
            items = zip(frames, repeat(self.peer), repeat(now), repeat(False))
        room = intake.capacity - len(queue)
        if n <= room and not self._pending:
            queue.extend(items)
        else:
            self._pending.extend(items)
            self._push()
        intake.ready.set()
        if len(queue) >= intake.capacity:
            self._hold()

    def _push(self) -> None:
        """Move pending frames into the queue while it has room."""
        intake = self.listener.intake
        queue, pending = intake.queue, self._pending
        room = intake.capacity - len(queue)
        if len(pending) <= room:
            queue.extend(pending)
            pending.clear()
        else:
            for _ in range(max(room, 0)):
                queue.append(pending.popleft())

    def _hold(self) -> None:
        """Stop reading the socket until the intake has drained (Intake.drained → resume)."""
        transport = self.transport
        if transport is not None and not self._lost and not transport.is_closing():
            transport.pause_reading()
        self.listener.intake.hold(self)

    def resume(self) -> None:
        """The queue has room again: the pending frames go in first, then the socket is read
        again (or, if the peer has gone, its last frame goes in)."""
        intake = self.listener.intake
        if self._pending:
            self._push()
            intake.ready.set()
            if self._pending:
                intake.hold(self)
                return
        if self._lost:
            self._close_framer()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _close_framer(self) -> None:
        """The peer has gone: its last frame without an LF goes in, even past the queue's
        bound (one frame per connection, as it ends)."""
        framer = self.framer
        frames = framer.close()
        if frames:
            intake = self.listener.intake
            intake.stats.received += 1
            intake.stats.received_bytes += len(frames[0])
            intake.stats.truncated += len(framer.cut)
            intake.queue.append((frames[0], self.peer, time.time(), bool(framer.cut)))
            intake.ready.set()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if not self._pending:  # else the pending frames go in first (see resume)
            self._close_framer()
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
        # every session reads into this one buffer (see _Session.get_buffer): its unfinished
        # frame (up to max_message_size + 11 octets) first, then up to READ_SIZE new octets
        self.read_buffer = bytearray(READ_SIZE + intake.max_message_size + 16)
        self.read_view = memoryview(self.read_buffer)
        self.read_size = READ_SIZE  # per read and connection, see READ_BUDGET
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
            self._size_reads()
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
        self._size_reads()

    def _size_reads(self) -> None:
        self.read_size = max(MIN_READ, min(READ_SIZE, READ_BUDGET // max(len(self.sessions), 1)))

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
