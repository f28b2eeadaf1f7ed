"""UDP intake: one socket read in batches from the event loop's reader callback.

`recvmmsg` (mmsg.py) takes 64 datagrams a system call; `recvfrom` where libc has none. When the
intake queue has no room for another batch, the socket is not read (the listener waits in the
intake, like a held TCP connection, until the queue has drained to half): the datagrams wait in
the kernel's receive buffer (8 MiB by default), which is far larger than dropping them here
would save. What the kernel drops when that buffer is full (RcvbufErrors of this socket) is read
from /proc/net/udp{,6} by `udp_drops`.
"""

from __future__ import annotations

import asyncio
import operator
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any

from loguru import logger

from fobs.syslog_agg.intake import GATHER, Intake, Item
from fobs.syslog_agg.mmsg import BATCH, BatchReceiver

__all__ = ["UdpListener", "bind_udp", "rcvbuf_granted", "udp_drops"]

_UDP_BATCH = 256  # datagrams read per readiness callback before letting others run
# Linux's SO_RCVBUFFORCE (asm-generic/socket.h); Python's socket module does not export it
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


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
        self._held = False
        self._batch = 0  # datagrams the last read took
        self._resting: asyncio.TimerHandle | None = None  # not reading for GATHER seconds
        self._overflow: deque[Item] = deque()  # read in the batch that filled the queue

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        logger.info("Listening for syslog on udp {}:{} (receive buffer {} bytes)",
                    self.address[0], self.address[1], self.rcvbuf_granted)

    def _on_readable(self) -> None:
        if self._read():
            self._hold()
        elif self._batch < _UDP_BATCH and self._loop is not None:
            # the socket is empty after a small batch: let datagrams gather in the kernel's
            # buffer for GATHER seconds rather than wake for every few (see intake.GATHER)
            self._loop.remove_reader(self.sock.fileno())
            self._resting = self._loop.call_later(GATHER, self._rested)

    def _rested(self) -> None:
        self._resting = None
        if not self._held and self._loop is not None and self.sock.fileno() >= 0:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def _hold(self) -> None:
        """The queue is full: stop reading until the consumer has made room (`resume`)."""
        if not self._held and self._loop is not None:
            self._held = True
            self._loop.remove_reader(self.sock.fileno())
            self.intake.hold(self)

    def resume(self) -> None:
        if self._held and self._loop is not None and self.sock.fileno() >= 0:
            self._held = False
            self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def _read(self) -> bool:
        """Read up to _UDP_BATCH datagrams into the intake; True if it stopped for want of
        room in the queue: the rest of the batch that filled it waits here, the rest of the
        traffic in the kernel's buffer."""
        intake = self.intake
        stats = intake.stats
        limit = intake.max_message_size
        queue = intake.queue
        capacity = intake.capacity
        overflow = self._overflow
        while overflow and len(queue) < capacity:
            queue.append(overflow.popleft())
        if overflow:
            intake.ready.set()
            return True
        peers = self._peers
        now = time.time()
        n = nbytes = 0
        for _ in range(_UDP_BATCH // BATCH):
            if len(queue) >= capacity:
                break
            try:
                datagrams, senders = self._receive()
            except OSError as e:  # e.g. ICMP errors surfacing on the socket: keep reading
                logger.warning("UDP receive error: {}", e)
                break
            if not datagrams:
                break
            k = len(datagrams)
            sizes = list(map(len, datagrams))
            if min(sizes) > 1 and max(sizes) <= limit and len(queue) + k <= capacity:
                # nearly every batch: no probe, nothing to cut, room for all; queued in C
                first = senders[0]
                if senders.count(first) == k:
                    peer = peers.get(first) or self._learn(first)
                    queue.extend(zip(datagrams, repeat(peer), repeat(now), repeat(False)))
                else:
                    texts = [peers.get(a) or self._learn(a) for a in senders]
                    queue.extend(zip(datagrams, texts, repeat(now), repeat(False)))
                n += k
                nbytes += sum(sizes)
                if k < BATCH:
                    break  # the socket is empty
                continue
            for data, sender in zip(datagrams, senders, strict=True):
                size = len(data)
                if size <= 1 and (size == 0 or data == b"\x00"):
                    stats.probes += 1  # monit's UDP port test sends one NUL byte
                    continue
                n += 1
                nbytes += size
                peer = peers.get(sender) or self._learn(sender)
                into = queue if len(queue) < capacity else overflow
                if size > limit:
                    stats.truncated += 1
                    into.append((data[:limit], peer, now, True))
                else:
                    into.append((data, peer, now, False))
            if len(datagrams) < BATCH:
                break  # the socket is empty
        stats.received += n
        stats.received_bytes += nbytes
        self._batch = n
        if n:
            intake.ready.set()
        return len(queue) >= capacity

    def _learn(self, sender: Any) -> str:
        """The text of a sender's address, remembered (for at most 10,000 senders)."""
        peers = self._peers
        if len(peers) > 10000:
            peers.clear()
        peer = peers[sender] = self._peer(sender)
        return peer

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

    def drain(self, make_room: Callable[[], None]) -> None:
        """Read everything the kernel holds for this socket into the intake, calling
        `make_room` (process the queue) whenever the queue is full."""
        stats = self.intake.stats
        before = -1
        while True:
            if self._read():
                waiting = len(self.intake.queue)
                make_room()
                if len(self.intake.queue) >= waiting:
                    return  # nothing processed it: what is left stays where it is
            elif stats.received + stats.probes == before and not self._overflow:
                return
            before = stats.received + stats.probes

    def close(self, make_room: Callable[[], None]) -> None:
        """Stop listening; datagrams already in the kernel buffer are read first."""
        if self._resting is not None:
            self._resting.cancel()
            self._resting = None
        elif self._loop is not None and not self._held:
            self._loop.remove_reader(self.sock.fileno())
        self._held = False
        self.drain(make_room)
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
