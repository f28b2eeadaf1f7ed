"""UDP intake: one socket read in batches from the event loop's reader callback.

`recvmmsg` (mmsg.py) takes 64 datagrams a system call; `recvfrom` where libc has none. A full
intake queue drops and counts; the kernel's own drops (RcvbufErrors of this socket) are read
from /proc/net/udp{,6} by `udp_drops`.
"""

from __future__ import annotations

import asyncio
import operator
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from fobs.syslog_agg.intake import Intake
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
