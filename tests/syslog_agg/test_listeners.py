"""Listeners against real sockets: UDP, TCP framings, many clients, limits, drops, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from fobs.syslog_agg.intake import Intake
from fobs.syslog_agg.tcp import TcpListener, tls_context
from fobs.syslog_agg.udp import UdpListener
from tests.syslog_agg.conftest import eventually


async def test_udp_probe_oversize_and_rcvbuf(aggregator) -> None:
    run = await aggregator(listen={"max_message_size": 600, "udp_rcvbuf": 4 << 20})
    big = b"<14>1 - h vcap.big - - - " + b"x" * 1000
    run.send_udp(b"\x00", b"<14>1 - h vcap.a - - - one", big)
    await run.received(3)
    stats = run.agg.intake.stats
    assert stats.probes == 1 and stats.received == 2 and stats.truncated == 1
    assert run.agg.udp is not None and run.agg.udp.rcvbuf_granted >= 4 << 20
    await eventually(lambda: len(run.lines("big")) == 1 and len(run.lines("a")) == 1)
    assert run.agg.varz()["truncated"] == 1
    assert run.agg.udp.kernel_drops() == 0


class _Consumer:
    """A started UDP listener on its own intake, and `make_room`, which takes the queued
    messages as the pipeline would (into `processed`)."""

    def __init__(self, capacity: int) -> None:
        self.intake = Intake(capacity=capacity, max_message_size=1024)
        self.udp = UdpListener(self.intake, "127.0.0.1", 0)
        self.udp.start()
        self.processed: list[bytes] = []

    def make_room(self) -> None:
        self.processed.extend(item[0] for item in self.intake.queue)
        self.intake.queue.clear()


async def test_udp_waits_in_the_kernel_when_the_queue_is_full() -> None:
    c = _Consumer(capacity=5)
    intake, udp, processed, make_room = c.intake, c.udp, c.processed, c.make_room
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(200):
                s.sendto(b"<14>1 - - - - - - %d" % i, udp.address)
        await eventually(lambda: len(intake.queue) == 5)
        assert intake.stats.dropped == 0 and intake.stats.received < 200  # not read: held
        assert udp.kernel_drops() == 0
        make_room()
        assert intake.drained()                     # the consumer's call resumes the socket
        await eventually(lambda: len(intake.queue) == 5 and intake.stats.received > 5)
    finally:
        udp.close(make_room)                        # at stop: everything read, in order
    assert processed == [b"<14>1 - - - - - - %d" % i for i in range(200)]
    assert intake.stats.received == 200 and intake.stats.dropped == 0


async def test_udp_rests_after_a_small_batch_and_reads_everything(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a read that emptied the socket with a small batch, the listener stops reading
    for GATHER seconds; what comes meanwhile waits in the kernel and is read after, or at
    close if the listener is closed while resting."""
    monkeypatch.setattr("fobs.syslog_agg.udp.GATHER", 0.3)  # long enough to see it rest
    c = _Consumer(capacity=1000)
    intake, udp, got, make_room = c.intake, c.udp, c.processed, c.make_room

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<14>1 - - - - - - first", udp.address)
        await eventually(lambda: intake.stats.received == 1)
        assert udp._resting is not None                 # not reading for a moment
        s.sendto(b"<14>1 - - - - - - second", udp.address)
        await eventually(lambda: intake.stats.received == 2)   # read once it has rested
        await eventually(lambda: udp._resting is not None)
        s.sendto(b"<14>1 - - - - - - third", udp.address)
        udp.close(make_room)                            # closed while resting: still read
    make_room()
    assert got == [b"<14>1 - - - - - - %s" % w for w in (b"first", b"second", b"third")]
    assert udp.kernel_drops() is None or intake.stats.dropped == 0


async def test_tcp_back_pressure_instead_of_drops() -> None:
    intake = Intake(capacity=10, max_message_size=1024)
    tcp = TcpListener(intake, "127.0.0.1", 0)
    await tcp.start()
    try:
        reader, writer = await asyncio.open_connection(*tcp.address)
        writer.write(b"".join(b"<14>1 - - - - - - %d\n" % i for i in range(50000)))
        await eventually(lambda: len(intake.queue) >= 10)
        await asyncio.sleep(0.1)  # give the loop a chance to (wrongly) keep reading
        assert len(intake.queue) == 10 and intake.stats.dropped == 0  # waiting in the session
        got = 0
        while got < 50000:  # consume like the pipeline does: resumes the reader
            await eventually(lambda: len(intake.queue) > 0)
            got += len(intake.queue)
            intake.queue.clear()
            intake.drained()
        assert got == 50000
        writer.close()
    finally:
        await tcp.close()


async def test_many_tcp_clients_and_a_silent_one(aggregator) -> None:
    run = await aggregator()
    port = run.port()
    silent = await asyncio.open_connection("127.0.0.1", port)
    silent[1].write(b"40 <14>1 - - vcap.silent - - - never fin")  # an unfinished frame

    async def client(i: int) -> None:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        for j in range(50):
            frame = b"<14>1 - h vcap.c%d - - - m%d" % (i % 5, j)
            w.write(b"%d %s" % (len(frame), frame) if i % 2 else frame + b"\n")
        await w.drain()
        w.close()
        await w.wait_closed()

    await asyncio.gather(*(client(i) for i in range(40)))
    await run.received(2000)
    await eventually(lambda: sum(len(run.lines(f"c{k}")) for k in range(5)) == 2000)
    assert run.agg.varz()["open_connections"] == 1
    silent[1].close()


async def test_idle_timeout_and_max_connections(aggregator) -> None:
    run = await aggregator(listen={"idle_timeout": 0.2, "max_connections": 2})
    port = run.port()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    # the third is over the limit and closed at once; the first two time out when idle
    for reader, _ in conns:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    listener = run.agg.tcp[0]
    assert listener.stats.rejected_connections == 1 and listener.stats.idle_closed == 2
    for _, writer in conns:
        writer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.services import self_signed_certificate
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


async def test_tls(aggregator, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    run = await aggregator(listen={"tls_cert": str(cert), "tls_key": str(key)})
    ctx = ssl.create_default_context(cafile=str(cert))
    _, writer = await asyncio.open_connection("127.0.0.1", run.port("tls"), ssl=ctx)
    for i in range(10):
        frame = b"<13>1 2024-05-01T10:00:00Z h vcap.secure - - - tls %d" % i
        writer.write(b"%d %s" % (len(frame), frame))
    await writer.drain()
    writer.close()
    await run.received(10)
    await eventually(lambda: len(run.lines("secure")) == 10)
    # a plain-text client on the TLS port gets nothing in
    r, w = await asyncio.open_connection("127.0.0.1", run.port("tls"))
    w.write(b"<13>1 - h vcap.secure - - - plain\n")
    await w.drain()
    await asyncio.wait_for(r.read(), 5)  # the server hangs up on a failed handshake
    w.close()
    assert len(run.lines("secure")) == 10


def test_tls_context_needs_files(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    assert tls_context(str(cert), str(key)).minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(FileNotFoundError):
        tls_context(str(cert) + ".missing", str(key))
