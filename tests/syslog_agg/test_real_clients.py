"""Real senders: util-linux `logger`, a real rsyslogd forwarding with Cloud Foundry's template,
and the aggregator as a real process stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import find_binary, free_port, tcp_open, wait_until
from tests.syslog_agg.conftest import eventually

LOGGER = find_binary("logger")


async def logger_send(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(LOGGER, *args, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err


@pytest.mark.parametrize("transport", [["-d"], ["-T"], ["-T", "--octet-count"]],
                         ids=["udp", "tcp-lf", "tcp-octet-count"])
async def test_logger_rfc5424_and_rfc3164(aggregator, transport: list[str]) -> None:
    run = await aggregator(store={"format": "json"})
    port = run.udp_port if transport == ["-d"] else run.port()
    target = ["-n", "127.0.0.1", "-P", str(port), *transport]
    await logger_send("--rfc5424", *target, "-t", "vcap.dea_next", "--id=4242",
                      "-p", "local3.err", '{"message":"five","log_level":"error"}')
    await logger_send("--rfc3164", *target, "-t", "vcap.dea_next", "--id=77",
                      "-p", "user.info", "three one six four")
    await run.received(2)
    await eventually(lambda: len(run.lines("dea_next")) == 2, what="two lines")
    five, bsd = sorted(run.json_lines("dea_next"), key=lambda o: o["format"], reverse=True)
    assert five["format"] == "rfc5424" and bsd["format"] == "rfc3164"
    assert (five["facility"], five["severity"], five["procid"]) == (19, 3, "4242")
    assert five["app_name"] == "vcap.dea_next" and five["hostname"] == socket.gethostname()
    assert five["structured_data"]["timeQuality"]["tzKnown"] == "1"
    assert five["message"] == '{"message":"five","log_level":"error"}'
    assert five["timestamp"] is not None
    assert (bsd["facility"], bsd["severity"], bsd["procid"]) == (1, 6, "77")
    assert bsd["hostname"] == socket.gethostname() and bsd["message"] == "three one six four"
    assert abs(time.time() - _epoch(bsd["timestamp"])) < 120
    assert run.agg.varz()["components"]["dea_next"]["severity"]["err"] == 1


def _epoch(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp).timestamp()


async def test_logger_oversize_message_is_truncated(aggregator) -> None:
    run = await aggregator(store={"format": "json"}, listen={"max_message_size": 1024})
    await logger_send("--rfc5424", "-n", "127.0.0.1", "-P", str(run.port()), "-T",
                      "--octet-count", "--size", "20000", "-t", "vcap.big", "x" * 5000)
    await logger_send("--rfc5424", "-n", "127.0.0.1", "-P", str(run.port()), "-T",
                      "-t", "vcap.big", "small after big")
    await run.received(2)
    await eventually(lambda: len(run.lines("big")) == 2)
    big, small = run.json_lines("big")
    assert big["truncated"] is True and len(big["message"]) < 1024
    assert small["truncated"] is False and small["message"] == "small after big"
    assert run.agg.varz()["truncated"] == 1


async def test_many_logger_streams_under_back_pressure(aggregator, tmp_path: Path) -> None:
    """12 `logger -f` processes, each streaming 4,000 lines over its own TCP connection (half
    LF, half octet-counted) into a queue of 500: every line is stored once, in each sender's
    order, nothing is dropped and no frame is misread (the session frames whole reads and
    holds what does not fit)."""
    run = await aggregator(listen={"queue_size": 500})
    senders, n = 12, 4000
    for k in range(senders):
        (tmp_path / f"in{k}.txt").write_text("".join(f"s{k} line {i}\n" for i in range(n)))
    await asyncio.gather(*(
        logger_send("--rfc5424", "-n", "127.0.0.1", "-P", str(run.port()), "-T",
                    *(["--octet-count"] if k % 2 else []), "-t", f"vcap.s{k % 3}",
                    "-f", str(tmp_path / f"in{k}.txt"))
        for k in range(senders)))
    await run.received(senders * n, timeout=60)
    await eventually(lambda: sum(len(run.lines(f"s{c}")) for c in range(3)) == senders * n,
                     timeout=30, what="every line stored")
    for k in range(senders):
        mine = [line.rsplit(" ", 3)[1:] for c in range(3) for line in run.lines(f"s{c}")
                if f" s{k} line " in line]
        assert [int(i) for _, _, i in mine] == list(range(n))
    stats = run.agg.intake.stats
    assert stats.received == senders * n and stats.dropped == 0
    assert stats.framing_errors == 0 and stats.truncated == 0
    assert run.agg.intake.peak <= 500
    await eventually(lambda: run.agg.varz()["open_connections"] == 0)


# Cloud Foundry's forwarder template (cf-release jobs/*/templates/syslog_forwarder.conf.erb)
CF_TEMPLATE = ("<%PRI%>%TIMESTAMP:::date-rfc3339% 10.0.0.9 %programname% "
               "[job=dea_next index=3] %msg%\\n")
RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="CfForwarder" type="string"
         string="{template}")
*.* action(type="omfwd" target="127.0.0.1" port="{agg}" protocol="tcp" template="CfForwarder")
"""


async def test_rsyslog_forwarder_with_cloud_foundry_template(aggregator, tmp_path: Path) -> None:
    run = await aggregator(store={"format": "json"})
    work = tmp_path / "rsyslog"
    work.mkdir()
    udp = free_port()
    (work / "rsyslog.conf").write_text(RSYSLOG_CONF.format(work=work, udp=udp, agg=run.port(),
                                                          template=CF_TEMPLATE))
    rsyslogd = subprocess.Popen(
        [find_binary("rsyslogd"), "-n", "-f", str(work / "rsyslog.conf"), "-i",
         str(work / "rsyslogd.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):  # UDP has no handshake: probe until rsyslogd forwards
            await logger_send("-n", "127.0.0.1", "-P", str(udp), "-d", "-t", "vcap.probe", "?")
            if run.agg.counts.get("probe"):
                break
            await asyncio.sleep(0.1)
        for i in range(20):
            await logger_send("--rfc3164", "-n", "127.0.0.1", "-P", str(udp), "-d",
                              "-t", "vcap.dea_next", f'{{"log_level":"info","n":{i}}}')
            await logger_send("--rfc5424", "-n", "127.0.0.1", "-P", str(udp), "-d",
                              "-t", "vcap.router", "--id=9", f"request {i}")
        await eventually(lambda: len(run.lines("dea_next")) == 20 and
                         len(run.lines("router")) == 20, timeout=20, what="forwarded lines")
    finally:
        rsyslogd.terminate()
        rsyslogd.wait(10)
    dea = run.json_lines("dea_next")
    router = run.json_lines("router")
    for obj in dea + router:
        assert obj["format"] == "rfc3164" and obj["hostname"] == "10.0.0.9"
        assert obj["structured_data"] == {"cf": {"job": "dea_next", "index": "3"}}
        assert obj["peer"] == "127.0.0.1" and obj["timestamp"] is not None
    assert {o["app_name"] for o in dea} == {"vcap.dea_next"}
    assert dea[-1]["message"] == '{"log_level":"info","n":19}'
    assert router[-1]["message"] == "request 19" and router[-1]["app_name"] == "vcap.router"


def test_sigterm_flushes_everything(tmp_path: Path) -> None:
    """A real `python -m fobs.syslog_agg` process: SIGTERM → every line written, exit 0."""
    port = free_port()
    root = tmp_path / "logs"
    config = tmp_path / "syslog.toml"
    config.write_text(f'register = false\n[store]\nflush_interval = 60.0\nroot = "{root}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "fobs.syslog_agg", "--config", str(config), "--tcp",
         f"127.0.0.1:{port}", "--udp", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        wait_until(lambda: proc.poll() is None and tcp_open(port), "aggregator", 20)
        n_tcp, n_udp = 30000, 2000
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"".join(b"<14>1 - h vcap.bulk - - - tcp %d\n" % i
                               for i in range(n_tcp)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for i in range(n_udp):
                u.sendto(b"<14>1 - h vcap.bulk - - - udp %d" % i, ("127.0.0.1", port))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    [path] = root.glob("bulk/*/*/*/bulk.log")
    lines = path.read_text().splitlines()
    assert sum(" tcp " in line for line in lines) == n_tcp
    assert sum(" udp " in line for line in lines) == n_udp
    assert b"Traceback" not in out


def test_cli_reports_config_errors_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listen]\nudp = 'nowhere'\nunknown = 1\n")
    r = subprocess.run([sys.executable, "-m", "fobs", "syslog", "--config", str(bad)],
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown" in r.stderr, r.stderr
