"""One TCP or TLS syslog connection: its TLS handshake, reading, framing and back-pressure.

The listener (`fobs.syslog_agg.tcp`) accepts, counts and closes connections; what happens between
accept and close, per connection, is here, so either can be read without the other.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Iterable
from itertools import repeat
from typing import TYPE_CHECKING

from fobs.syslog_agg.framing import Framer
from fobs.syslog_agg.intake import Item

if TYPE_CHECKING:
    from fobs.syslog_agg.tcp import TcpListener


class Session(asyncio.BufferedProtocol):
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
