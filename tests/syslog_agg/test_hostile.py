"""Issue 9's attacks on the syslog aggregator, reproduced against the real aggregator and real
clients, and shown to do no harm: stalled TLS handshakes, one huge TCP read, endless APP-NAMEs,
a full disk, idle connections from one source, terminal escapes in messages."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from fobs.syslog_agg.server import Aggregator
from fobs.syslog_agg.store import StoreConfig
from tests.services import NatsServer, free_port, self_signed_certificate, tcp_open, wait_until
from tests.syslog_agg.conftest import Running, agg_config, eventually

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """True once the server has closed (or reset) the connection; False if it is still open
    after `timeout` seconds."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def send_tls(port: int, cert: Path, *frames: bytes) -> None:
    """A real TLS client (Python's ssl) sending octet-counted frames (RFC 5425)."""
    ctx = ssl.create_default_context(cafile=str(cert))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    for frame in frames:
        writer.write(b"%d %s" % (len(frame), frame))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


# -- 2: stalled TLS handshakes ---------------------------------------------------------------

def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


async def test_stalled_tls_handshakes_do_not_exhaust_descriptors(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """The issue's attack: a real aggregator process with 128 open files, 150 clients that
    connect to the TLS port and never say hello, then 20 UDP lines. Connections over what the
    descriptors allow are refused at accept, the stalled ones are closed at the handshake
    timeout, every UDP line is written and a real TLS client gets in afterwards."""
    cert, key = certificate
    udp, tls = free_port(), free_port()
    root = tmp_path / "logs"
    config = tmp_path / "syslog.toml"
    config.write_text(f'register = false\n[listen]\nudp = "127.0.0.1:{udp}"\ntcp = ""\n'
                      f'tls = "127.0.0.1:{tls}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
                      "tls_handshake_timeout = 5.0\nmax_connections_per_source = 1000\n"
                      f'[store]\nroot = "{root}"\nflush_interval = 0.05\n')
    proc = subprocess.Popen([sys.executable, "-m", "fobs.syslog_agg", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
                            preexec_fn=_limit_open_files)
    stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        wait_until(lambda: proc.poll() is None and tcp_open(tls), "aggregator", 20)
        for _ in range(150):
            stalled.append(await asyncio.open_connection("127.0.0.1", tls))
        # 128 files - 64 for the store - 32 spare = 32 slots: 118 refused at once, the
        # others held until the handshake timeout (5 s)
        refused = await asyncio.gather(*(closed_by_server(r, 3.0) for r, _ in stalled))
        assert sum(refused) == 118
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20):
                s.sendto(b"<14>1 - h vcap.udp - - - line %d" % i, ("127.0.0.1", udp))
        await eventually(lambda: len(_lines(root, "udp")) == 20, what="20 UDP lines")
        held = [r for (r, _), gone in zip(stalled, refused, strict=True) if not gone]
        assert all(await asyncio.gather(*(closed_by_server(r, 10) for r in held)))
        await send_tls(tls, cert, b"<14>1 - h vcap.secure - - - after the attack")
        await eventually(lambda: len(_lines(root, "secure")) == 1, what="the TLS line")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        for _, writer in stalled:
            writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert b"max_connections lowered from 1024 to 32" in out and b"Traceback" not in out


def _lines(root: Path, component: str) -> list[str]:
    return [line for path in root.glob(f"{component}/*/*/*/{component}.log")
            for line in path.read_text().splitlines()]


async def test_handshakes_are_counted_from_accept_and_bounded(
        aggregator: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    run: Running = await aggregator(listen={
        "tls_cert": str(cert), "tls_key": str(key), "tls_handshake_timeout": 0.5,
        "max_connections": 4, "max_connections_per_source": 100})
    port = run.port("tls")
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
    closed = await asyncio.gather(*(closed_by_server(r, 10) for r, _ in conns))
    assert all(closed)  # 2 refused at once (4 slots during the handshake), 4 timed out
    listener = next(t for t in run.agg.tcp if t.transport_name == "tls")
    assert listener.stats.rejected_connections == 2
    assert listener.stats.handshake_timeouts == 4
    await eventually(lambda: not listener.sessions, what="slots released")
    await send_tls(port, cert, b"<14>1 - h vcap.secure - - - in")
    await eventually(lambda: len(run.lines("secure")) == 1)
    tls = run.agg.varz()["listeners"]["tls"]
    assert (tls["handshake_timeouts"], tls["rejected_connections"]) == (4, 2)
    for _, writer in conns:
        writer.close()


# -- 11: idle connections from one source ----------------------------------------------------

async def test_connections_per_source_are_capped(aggregator: Any) -> None:
    run: Running = await aggregator(listen={"max_connections_per_source": 2})
    port = run.port()
    mine = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    assert await closed_by_server(mine[2][0])
    # another source address still gets in, and is not refused by the first one's count
    other = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
    other.sendall(b"<14>1 - h vcap.other - - - from another source\n")
    other.close()
    await eventually(lambda: len(run.lines("other")) == 1)
    tcp = run.agg.varz()["listeners"]["tcp"]
    assert tcp["rejected_per_source"] == 1 and tcp["rejected_connections"] == 0
    for _, writer in mine:
        writer.close()


# -- 3: one huge TCP read --------------------------------------------------------------------

async def test_one_huge_tcp_write_keeps_the_queue_bounded(aggregator: Any) -> None:
    run: Running = await aggregator(listen={"queue_size": 1000})
    _, writer = await asyncio.open_connection("127.0.0.1", run.port())
    writer.write(b"a\n" * (128 << 10))  # 256 KiB: 131,072 frames
    await writer.drain()
    writer.close()
    await eventually(lambda: run.agg.store.stats.lines_written == 128 << 10, timeout=60,
                     what="every line written")
    varz = run.agg.varz()
    assert 0 < varz["queue_peak"] <= 1000, varz["queue_peak"]
    assert varz["dropped"] == 0 and len(run.lines("unparsed")) == 128 << 10


# -- 4: endless component names --------------------------------------------------------------

async def test_many_app_names_are_capped(aggregator: Any) -> None:
    run: Running = await aggregator(routing={"max_components": 100})
    _, writer = await asyncio.open_connection("127.0.0.1", run.port())
    for i in range(300):
        writer.write(b"<14>1 - h name%d - - - hello\n" % i)
    await writer.drain()
    writer.close()
    await eventually(lambda: run.agg.store.stats.lines_written == 300)
    names = {p.name for p in run.root.iterdir()}
    assert len(names) == 101 and "overflow" in names and "name99" in names
    assert len(run.lines("overflow")) == 200
    varz = run.agg.varz()
    assert varz["overflow_messages"] == 200 and varz["component_count"] == 101
    assert len(varz["components"]) == 64  # the busiest only (overflow first)
    assert varz["components"]["overflow"]["messages"] == 200
    assert StoreConfig().max_total_bytes == 10 << 30  # retention by size is on by default


# -- 5: a full disk --------------------------------------------------------------------------


async def test_a_full_disk_loses_whole_lines_and_counts_them(tmp_path: Path,
                                                             tiny_fs: Path) -> None:
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="INFO")
    agg = Aggregator(agg_config(tmp_path, store={"root": str(tiny_fs), "flush_bytes": 4096}))
    await agg.start()
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", next(t.address[1] for t in agg.tcp if t.transport_name == "tcp"))
        for i in range(15000):
            writer.write(b"<14>1 - h vcap.disk - - - line %05d %s\n" % (i, b"x" * 60))
        await writer.drain()
        writer.close()
        stats = agg.store.stats
        await eventually(lambda: stats.lines_written + stats.lines_lost == 15000, timeout=30,
                         what="every line written or counted lost")
    finally:
        await agg.stop()
        logger.remove(sink)
    [path] = tiny_fs.glob("disk/*/*/*/disk.log")
    data = path.read_bytes()
    assert data.endswith(b"\n")  # never half a line
    lines = data.decode().splitlines()
    pattern = re.compile(r"\S+ 127\.0\.0\.1 <14>1 - h vcap\.disk - - - line \d{5} x{60}\Z")
    assert all(pattern.match(line) for line in lines)
    assert stats.lines_written == len(lines) and stats.bytes_written == len(data)
    assert stats.lines_lost == 15000 - len(lines) > 0
    assert sum("Cannot write" in m for m in logged) == 1, logged


# -- 10: terminal escapes --------------------------------------------------------------------

ESCAPED = b"<14>1 - h vcap.color - - - \x1b[31mred\x1b[0m \xc2\x9b2J bell\x07 tab\tok"


async def test_escapes_in_the_text_file(aggregator: Any) -> None:
    run: Running = await aggregator()
    run.send_udp(ESCAPED)
    await eventually(lambda: len(run.lines("color")) == 1)
    [path] = run.root.glob("color/*/*/*/color.log")
    text = path.read_text()
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert text.endswith(" \\x1b[31mred\\x1b[0m \\u009b2J bell\\x07 tab\tok\n")


async def test_escapes_in_fobs_tail(tmp_path: Path, nats_server: NatsServer) -> None:
    sections: dict[str, Any] = {"register": True,
                                "component": {"nats": {"servers": [nats_server.url]}}}
    config = agg_config(tmp_path, **sections)
    agg = Aggregator(config)
    await agg.start()
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs", "tail", "color", "--nats", nats_server.url, "-n", "2",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    tail_json = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs", "tail", "color", "--nats", nats_server.url, "-n", "1",
        "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        for proc in (tail, tail_json):
            assert proc.stderr is not None
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line.startswith(b"# following"), line
        await eventually(lambda: agg.tail.nc is not None)
        assert agg.udp is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(ESCAPED, ("127.0.0.1", agg.udp.address[1]))
            s.sendto(b"<14>1 - h vcap.color - - - \x1b]0;owned\x07", ("127.0.0.1",
                                                                     agg.udp.address[1]))
        out, _ = await asyncio.wait_for(tail.communicate(), 30)
        out_json, _ = await asyncio.wait_for(tail_json.communicate(), 30)
    finally:
        for proc in (tail, tail_json):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await agg.stop()
    assert tail.returncode == 0 and tail_json.returncode == 0
    for printed in (out, out_json):
        assert b"\x1b" not in printed and b"\xc2\x9b" not in printed and b"\x07" not in printed
    first, second = out.decode().splitlines()
    assert first.endswith("h vcap.color: \\x1b[31mred\\x1b[0m \\u009b2J bell\\x07 tab\tok")
    assert second.endswith(": \\x1b]0;owned\\x07")
    assert json.loads(out_json)["message"].startswith("\x1b[31mred")  # escaped, not lost


async def test_udp_workers_names_are_capped_once_for_all(aggregator: Any) -> None:
    """Each worker process admits its own names; the aggregator caps what their batches
    bring, so two workers cannot file twice the cap."""
    run: Running = await aggregator(listen={"udp_workers": 2}, routing={"max_components": 10})
    assert run.agg.workers is not None
    port = run.agg.workers.address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(200):
            s.sendto(b"<14>1 - h name%d - - - hello" % (i % 40), ("127.0.0.1", port))
    await eventually(lambda: run.agg.store.stats.lines_written == 200, 20, "200 lines")
    names = {p.name for p in run.root.iterdir()}
    assert len(names - {"overflow"}) <= 10 and "overflow" in names, names
    varz = run.agg.varz()
    assert varz["component_count"] <= 11
    assert varz["overflow_messages"] == len(run.lines("overflow")) >= 150
