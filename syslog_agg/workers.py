"""UDP worker processes: receive and parse on several cores, write in one place.

One Python process parses at most ~250k messages/s on a free core, and far less on a machine
where the sender and others compete for CPU. With `listen.udp_workers = N`, the aggregator binds
N UDP sockets on the port with SO_REUSEPORT. When N > 1, it attaches a classic BPF program to the
group that spreads datagrams at random, so a single busy sender is spread too; hashing by
address would give all its traffic to one socket. It then starts N worker processes, each
handed one socket. A worker receives, parses, routes, counts and formats exactly as the
aggregator does, and every 20 ms it ships one `Batch` (stats.py) to the aggregator over a
socketpair: its lines by (component, day), its tail candidates and what it counted since the
last batch. The aggregator keeps the only writer of the files, the varz, NATS and the tail. The
price is that the lines of one sender may interleave out of order across workers, by up to a
batch.

Stop: the aggregator sends SIGTERM; a worker reads what is left in its socket, ships the rest
and closes its end; the aggregator reads every batch until EOF. A worker that dies is
restarted (counted in `worker_restarts`) with the same socket, so nothing queued in the kernel
is lost; what the dead worker counted was merged batch by batch and stays counted.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

from loguru import logger

from fobs.syslog_agg.config import SyslogAggConfig
from fobs.syslog_agg.intake import Intake
from fobs.syslog_agg.pipeline import Pipeline
from fobs.syslog_agg.router import Router
from fobs.syslog_agg.stats import Batch
from fobs.syslog_agg.tail import Tail
from fobs.syslog_agg.udp import UdpListener, bind_udp, rcvbuf_granted, udp_drops

__all__ = ["WorkerPool", "spread_at_random"]

_HEADER = struct.Struct("!I")
_SHIP_INTERVAL = 0.02
_SHIP_BYTES = 512 * 1024
_SO_ATTACH_REUSEPORT_CBPF = 51
_SKF_AD_RANDOM = (-0x1000 + 56) & 0xFFFFFFFF  # SKF_AD_OFF + SKF_AD_RANDOM


def spread_at_random(sock: socket.socket, n: int) -> None:
    """Make the kernel pick one of the group's `n` sockets at random for each datagram."""
    program = [(0x20, 0, 0, _SKF_AD_RANDOM),  # ld  rand
               (0x94, 0, 0, n),               # mod #n
               (0x16, 0, 0, 0)]               # ret a
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)


@dataclass(frozen=True)
class _Setup:
    """The first frame on a worker's link, aggregator → worker: what it is to run."""

    config: SyslogAggConfig
    workers: int                # how many share the port (each takes its share of the tail)


def _frame(obj: _Setup | Batch) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class _Link(asyncio.Protocol):
    """The aggregator's end of one worker's socketpair: batches in, EOF when it is done."""

    def __init__(self, on_batch: Callable[[Batch], None]) -> None:
        self.on_batch = on_batch
        self.buf = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            self.on_batch(pickle.loads(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class WorkerPool:
    """N worker processes sharing the UDP port; batches go to `on_batch` in this process."""

    def __init__(self, config: SyslogAggConfig, host: str, port: int,
                 on_batch: Callable[[Batch], None]) -> None:
        self.config = config
        self.on_batch = on_batch
        listen = config.listen
        n = listen.udp_workers
        self.sockets = [bind_udp(host, port, listen.udp_rcvbuf, reuse_port=True)]
        port = self.sockets[0].getsockname()[1]  # an ephemeral port is shared too
        self.sockets += [bind_udp(host, port, listen.udp_rcvbuf, reuse_port=True)
                         for _ in range(n - 1)]
        if n > 1:
            try:
                spread_at_random(self.sockets[0], n)
            except OSError as e:
                logger.warning("Cannot spread UDP at random over workers ({}): hashing by "
                               "sender address instead", e)
        self.address = self.sockets[0].getsockname()[:2]
        self.rcvbuf_granted = rcvbuf_granted(self.sockets[0])
        self._inodes = [os.fstat(s.fileno()).st_ino for s in self.sockets]
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self.received = [0] * n  # datagrams each worker received: how well they are spread
        self.restarts = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        started = [asyncio.get_running_loop().create_future() for _ in self.sockets]
        self._tasks = [asyncio.create_task(self._keep(i, started[i]))
                       for i in range(len(self.sockets))]
        await asyncio.gather(*started)
        logger.info("Listening for syslog on udp {}:{} with {} worker processes "
                    "(receive buffer {} bytes each)", *self.address, len(self.sockets),
                    self.rcvbuf_granted)

    async def _keep(self, index: int, started: asyncio.Future[None]) -> None:
        """Run worker `index`, restarting it if it dies before the stop."""
        while True:
            proc, link = await self._spawn(index)
            if not started.done():
                started.set_result(None)
            code = await proc.wait()
            await link.closed
            if self._stopping:
                return
            self.restarts += 1
            logger.error("UDP worker {} exited with status {}; restarting it", index, code)
            await asyncio.sleep(1.0)

    async def _spawn(self, index: int) -> tuple[asyncio.subprocess.Process, _Link]:
        ours, theirs = socket.socketpair()
        udp_fd = self.sockets[index].fileno()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fobs.syslog_agg.workers", str(udp_fd), str(theirs.fileno()),
            pass_fds=(udp_fd, theirs.fileno()), stdin=asyncio.subprocess.DEVNULL)
        theirs.close()
        ours.sendall(_frame(_Setup(self.config, len(self.sockets))))

        def on_batch(batch: Batch) -> None:
            self.received[index] += batch.intake.received
            self.on_batch(batch)

        ready = asyncio.get_running_loop().create_future()

        def first_batch(batch: Batch) -> None:
            if not ready.done():
                ready.set_result(None)
            on_batch(batch)

        loop = asyncio.get_running_loop()
        _, link = await loop.connect_accepted_socket(lambda: _Link(first_batch), ours)
        self._procs[index] = proc
        await asyncio.wait([ready, link.closed], return_when=asyncio.FIRST_COMPLETED)
        return proc, link

    def kernel_drops(self) -> int | None:
        return udp_drops(self._inodes)

    async def stop(self, intake: Intake, make_room: Callable[[], None]) -> None:
        """SIGTERM the workers and take in everything they still ship; datagrams left in a
        socket (a worker was being restarted) are read into `intake` (`make_room` processes
        it when full)."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.sockets:
            UdpListener(intake, sock=s).drain(make_room)
            s.close()


# -- the worker process -----------------------------------------------------------------------

class _Shipper:
    """The worker's sink: lines and tail candidates gathered into the next batch."""

    def __init__(self, ctl: socket.socket, intake: Intake, tail: Tail) -> None:
        self.ctl = ctl
        self.intake = intake
        self.tail = tail
        self.lines: dict[tuple[str, str], list[str]] = {}
        self.tail_lines: list[tuple[str, str]] = []
        self.size = 0
        self.pipeline: Pipeline | None = None

    def append(self, component: str, day: str, line: str) -> None:
        key = (component, day)
        lines = self.lines.get(key)
        if lines is None:
            lines = self.lines[key] = []
        lines.append(line)
        self.size += len(line)
        if self.size >= _SHIP_BYTES:
            self.ship()

    def add_tail(self, component: str, line: str) -> None:
        self.tail_lines.append((component, line))

    def ship(self) -> None:
        assert self.pipeline is not None
        batch = Batch(lines={k: "".join(v) for k, v in self.lines.items()},
                      tail=self.tail_lines, intake=self.intake.stats.take(),
                      pipeline=self.pipeline.stats.take(), tail_stats=self.tail.stats.take())
        self.lines, self.tail_lines, self.size = {}, [], 0
        self.ctl.sendall(_frame(batch))


def _read_setup(sock: socket.socket) -> _Setup:
    header = sock.recv(4, socket.MSG_WAITALL)
    (size,) = _HEADER.unpack(header)
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("aggregator closed the link")
        data += chunk
    return cast(_Setup, pickle.loads(data))  # of fobs.syslog_agg.workers; we run as __main__


async def _work(udp: socket.socket, ctl: socket.socket, setup: _Setup) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a pending stop lands now
    config, count = setup.config, setup.workers
    listen = config.listen
    intake = Intake(listen.queue_size, listen.max_message_size)
    tail_cfg = replace(config.tail, rate=config.tail.rate / count,
                       burst=max(1, config.tail.burst // count))
    tail = Tail(tail_cfg)
    shipper = _Shipper(ctl, intake, tail)
    pipeline = Pipeline(Router(config.routing), config.store.format, shipper.append,
                        local_time=config.store.local_time,
                        tail=(tail.admit, shipper.add_tail, tail.limited)
                        if config.tail.enabled else None)
    shipper.pipeline = pipeline
    listener = UdpListener(intake, sock=udp)
    listener.start()
    shipper.ship()  # an empty first batch: "listening"
    consumer = asyncio.create_task(pipeline.consume(intake))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), _SHIP_INTERVAL)
        except TimeoutError:
            pass
        if consumer.done():
            consumer.result()  # a bug: let it surface, the aggregator restarts us
        shipper.ship()
    consumer.cancel()
    listener.close(lambda: pipeline.process(intake.queue, len(intake.queue)))  # what is left
    pipeline.process(intake.queue, len(intake.queue))
    shipper.ship()


def main(argv: list[str]) -> int:
    # a SIGTERM during start-up waits until the handler that ships the rest is in place
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the aggregator, which stops us
    udp = socket.socket(fileno=int(argv[0]))
    ctl = socket.socket(fileno=int(argv[1]))
    ctl.setblocking(True)
    setup = _read_setup(ctl)
    try:
        asyncio.run(_work(udp, ctl, setup))
    except (BrokenPipeError, ConnectionResetError):
        return 1  # the aggregator is gone
    finally:
        ctl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
