"""`fobs component fleet` as a real process: registration, file_sd, syslog, SIGTERM goodbye."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from fobs.components import wire
from fobs.components.fleet import parse_mix, plan
from tests.components.reference_helpers import subscribe
from tests.services import NatsServer

FOBS = [sys.executable, "-m", "fobs"]


async def start_fleet(nats_url: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *FOBS, "component", "fleet", "--no-simulation", "--nats", nats_url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def collect(sub: Any, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    return [json.loads((await sub.next_msg(timeout=timeout)).data) for _ in range(count)]


async def first_matching(receive: Callable[[], Awaitable[bytes]], needle: bytes) -> bytes:
    """The first syslog message containing `needle` (process-level lines come first)."""
    async def wait() -> bytes:
        while needle not in (data := await receive()):
            pass
        return data
    return await asyncio.wait_for(wait(), 20)


def test_plan_follows_the_mix() -> None:
    kinds = plan(10, parse_mix("dea=2,router=2,stager=1"))
    assert kinds.count("dea") == 4 and kinds.count("router") == 4 and kinds.count("stager") == 2
    assert set(kinds[:5]) == {"dea", "router", "stager"}  # interleaved, not in blocks


async def test_fleet_registers_writes_file_sd_and_says_goodbye(
        nats_server: NatsServer, tmp_path: Path) -> None:
    nc = await nats.connect(nats_server.url)
    announces = await subscribe(nc, wire.ANNOUNCE)
    goodbyes = await subscribe(nc, wire.UNREGISTER)
    targets = tmp_path / "targets.json"
    proc = await start_fleet(nats_server.url, "--count", "12", "--mix", "dea=1,router=1",
                             "--credentials", "fleet:secret", "--targets-file", str(targets))
    try:
        seen = await collect(announces, 12)
        assert sorted(a["type"] for a in seen) == ["DEA"] * 6 + ["Router"] * 6
        assert {tuple(a["credentials"]) for a in seen} == {("fleet", "secret")}
        assert len({a["host"] for a in seen}) == 12 and len({a["uuid"] for a in seen}) == 12
        assert sorted(a["index"] for a in seen if a["type"] == "DEA") == list(range(6))

        inbox = nc.new_inbox()
        replies = await subscribe(nc, inbox)
        await nc.publish(wire.DISCOVER, b"", reply=inbox)
        assert {r["uuid"] for r in await collect(replies, 12)} == {a["uuid"] for a in seen}

        # The targets file is written once every component is up.
        async def file_written() -> list[dict[str, Any]]:
            while not targets.exists() or not targets.read_text().endswith("]"):
                await asyncio.sleep(0.05)
            return json.loads(targets.read_text())
        sd = await asyncio.wait_for(file_written(), 20)
        assert sorted(t["targets"][0] for t in sd) == sorted(a["host"] for a in seen)
        assert all(set(t["labels"]) == {"job", "index", "uuid"} for t in sd)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()[-2000:]
    bye = await collect(goodbyes, 12)
    assert {b["uuid"] for b in bye} == {a["uuid"] for a in seen}
    await nc.close()


async def test_logs_reach_syslog_over_udp_as_rfc5424(nats_server: NatsServer) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    proc = await start_fleet(nats_server.url, "--count", "1", "--mix", "stager=1",
                             "--syslog", f"127.0.0.1:{port}")
    loop = asyncio.get_running_loop()
    try:
        data = await first_matching(lambda: loop.sock_recv(sock, 65536), b" vcap.stager ")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
        sock.close()
    line = data.decode()
    m = re.match(r'<(\d+)>1 (\S+) (\S+) vcap\.stager (\d+) - '
                 r'\[fobs@32473 job="Stager" index="0"\] \ufeff(.*)', line, re.S)
    assert m, line
    assert int(m.group(1)) == 1 * 8 + 6  # facility user, severity info
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", m.group(2))


async def test_logs_reach_syslog_over_tcp_with_octet_counting(nats_server: NatsServer) -> None:
    frames: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            length = await reader.readuntil(b" ")
            frames.put_nowait(await reader.readexactly(int(length)))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await start_fleet(nats_server.url, "--count", "1", "--mix", "router=1",
                             "--syslog", f"127.0.0.1:{port}", "--syslog-transport", "tcp")
    try:
        frame = await first_matching(frames.get, b" vcap.router ")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
        server.close()
    assert frame.startswith(b"<14>1 ") and b" vcap.router " in frame
    assert b'[fobs@32473 job="Router" index="0"]' in frame


async def test_bad_flags_are_one_line_errors(nats_server: NatsServer) -> None:
    for args, message in ((["--mix", "dea=x"], "--mix: expected KIND=WEIGHT"),
                          (["--credentials", "nopass"], "--credentials: expected USER:PASS"),
                          (["--syslog", "nowhere"], "--syslog: expected HOST:PORT"),
                          (["--count", "0"], "--count: must be at least 1")):
        proc = await start_fleet(nats_server.url, *args)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2, out
        assert message in out.decode() and "Traceback" not in out.decode()


def test_fleet_config_file_takes_every_kinds_section(tmp_path: Path) -> None:
    from fobs.cli import build_parser as build_parser_for_tests
    from fobs.components.cli import file_config
    from fobs.components.reference import COMPONENTS
    config = tmp_path / "fleet.toml"
    config.write_text('[component]\nlog_level = "DEBUG"\n[component.nats]\n'
                      'servers = ["nats://127.0.0.1:1"]\n[dea]\n[router]\n[stager]\n')
    args = build_parser_for_tests().parse_args(
        ["component", "fleet", "--config", str(config), "--nats", "nats://127.0.0.1:2"])
    reference = COMPONENTS
    comp, sims = file_config({k: v[1] for k, v in reference.items()}, args)
    assert comp.log_level == "DEBUG"
    assert comp.nats.servers == ("nats://127.0.0.1:2",)  # the flag overrides the file
    assert set(sims) == {"dea", "router", "stager"}
    config.write_text("[component]\nbogus = 1\n")
    from fobs.components.config import ConfigError
    with pytest.raises(ConfigError, match="unknown key 'component.bogus'"):
        file_config({k: v[1] for k, v in reference.items()}, args)


async def test_a_bad_log_level_is_named(nats_server: NatsServer) -> None:
    proc = await start_fleet(nats_server.url, "--log-level", "LOUD")
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "component.log_level: must be one of" in out.decode()
