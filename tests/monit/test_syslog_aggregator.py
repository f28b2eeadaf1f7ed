"""The real syslog aggregator under the supervisor: UDP probe, /healthz, kill -9, back to work."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from fobs.syslog_agg.monit import HttpCheck, ProcessConfig, UdpCheck
from tests.monit.conftest import svc
from tests.services import free_port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lines_of(store: Path, component: str) -> list[dict]:
    return [json.loads(line) for f in sorted(store.glob(f"{component}/*/*/*/{component}.log"))
            for line in f.read_text().splitlines()]


async def test_aggregator_killed_is_restarted_and_receives_again(supervise, nats_server,
                                                                 tmp_path):
    udp, http = free_udp_port(), free_port()
    store = tmp_path / "store"
    config = tmp_path / "syslog.toml"
    config.write_text(f"""
[listen]
udp = "127.0.0.1:{udp}"
tcp = ""
[store]
root = "{store}"
format = "json"
flush_interval = 0.1
[component]
port = {http}
user = "monit"
password = "secret"
[component.nats]
servers = ["{nats_server.url}"]
""")
    sup = await supervise(processes=(ProcessConfig(
        name="syslog", command=(sys.executable, "-m", "fobs", "syslog", "--config", str(config)),
        log=str(tmp_path / "syslog.out"), start_timeout=20,
        udp=(UdpCheck(port=udp, timeout=0.1),),
        http=(HttpCheck(url=f"http://127.0.0.1:{http}/healthz", user="monit",
                        password="secret", timeout=2),)),))
    await sup.wait_for(lambda: svc(sup, "syslog")["status"] == "OK"
                       and svc(sup, "syslog")["pending"] is None, 20)
    pid = svc(sup, "syslog")["pid"]

    killed_at = sup.cycles
    os.kill(pid, signal.SIGKILL)
    await sup.wait_for(lambda: (s := svc(sup, "syslog"))["status"] == "OK"
                       and s["pending"] is None and s["pid"] not in (None, pid), 20)
    assert sup.service("syslog").restart_cycles[-1] - killed_at <= 1

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<14>1 2026-11-24T10:00:00Z host1 vcap.dea 42 - - back after kill -9",
                 ("127.0.0.1", udp))
    deadline = time.monotonic() + 10
    while not any(m["message"] == "back after kill -9" for m in lines_of(store, "dea")):
        assert time.monotonic() < deadline, (tmp_path / "syslog.out").read_text()[-2000:]
        await asyncio.sleep(0.05)  # the store gives no event; poll its files

    # The supervisor's own UDP probes arrive as clean RFC 5424 messages, not as garbage.
    probes = [m for f in store.glob("*/*/*/*/*.log") for m in map(json.loads, f.read_text()
                                                                   .splitlines())
              if m.get("app_name") == "fobs-monit"]
    assert probes and all(m["format"] == "rfc5424" and m["msgid"] == "probe" for m in probes)
