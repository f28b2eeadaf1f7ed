"""TCP and TLS intake (RFC 6587 framing, RFC 5425): connections counted from accept, a bounded
TLS handshake, caps per source, idle timeouts, and back-pressure when the intake queue is full.
This module is the listener (accept, count, close); one connection's reading, framing and
waiting for room in the queue is `fobs.syslog_agg.session`.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import socket
import ssl
import termios
import time

from loguru import logger

from fobs.syslog_agg.intake import Intake
from fobs.syslog_agg.session import Session
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
        self.sessions: set[Session] = set()
        # every session reads into this one buffer (see Session.get_buffer): its unfinished
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
            session = Session(self, peer)
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

    async def _connect(self, session: Session, conn: socket.socket) -> None:
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

    def release(self, session: Session) -> None:
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
