"""The engine with real child processes: restarts, limits, hung checks, dependencies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from pathlib import Path

import nats

from fobs.components.bus import NatsConfig
from fobs.components.runtime import ComponentConfig
from fobs.components.wire import ANNOUNCE
from fobs.syslog_agg.monit import HttpCheck, ProcessConfig, ProgramConfig, RestartLimit, TcpCheck
from tests.monit.conftest import child, svc, wait_gone
from tests.services import NatsServer, free_port, tcp_open


def ready(sup, name: str, not_pid: int | None = None) -> bool:
    """Running, checked OK, nothing pending (and, given `not_pid`, a different process)."""
    s = svc(sup, name)
    return s["status"] == "OK" and s["pending"] is None and s["pid"] not in (None, not_pid)


async def test_kill9_is_restarted_within_one_cycle_and_listens_again(supervise):
    port = free_port()
    sup = await supervise(processes=(ProcessConfig(
        name="srv", command=child("tcp", port), tcp=(TcpCheck(port=port, timeout=0.5),)),))
    await sup.wait_for(lambda: ready(sup, "srv"))
    pid = svc(sup, "srv")["pid"]
    assert tcp_open(port)

    killed_at_cycle = sup.cycles
    os.kill(pid, signal.SIGKILL)
    await sup.wait_for(lambda: ready(sup, "srv", not_pid=pid), 5)

    assert sup.service("srv").restart_cycles[-1] - killed_at_cycle <= 1
    assert tcp_open(port)
    after = svc(sup, "srv")
    assert after["restarts"] == 1
    assert after["last_exit"] == "killed by SIGKILL"
    failed = [a for a in sup.status()["alerts"] if a["event"] == "nonexist"]
    assert failed and failed[0]["state"] == "failed" and failed[0]["action"] == "restart"


async def test_crash_loop_is_unmonitored_after_the_limit_with_an_alert_on_nats(
        supervise, nats_server):
    nc = await nats.connect(nats_server.url)
    alerts: list[dict] = []
    limit_hit = asyncio.Event()
    announced: list[dict] = []

    async def on_alert(msg) -> None:
        alerts.append(json.loads(msg.data))
        if alerts[-1]["event"] == "timeout":
            limit_hit.set()

    async def on_announce(msg) -> None:
        announced.append(json.loads(msg.data))

    await nc.subscribe("fobs.monit.alerts", cb=on_alert)
    await nc.subscribe(ANNOUNCE, cb=on_announce)
    await nc.flush()
    sup = await supervise(
        processes=(ProcessConfig(name="crashy", command=("sh", "-c", "sleep 0.1; exit 3"),
                                 restart_limit=RestartLimit(restarts=2, cycles=10)),),
        component=ComponentConfig(nats=NatsConfig(servers=(nats_server.url,))))
    try:
        await asyncio.wait_for(limit_hit.wait(), 15)
        crashy = svc(sup, "crashy")
        assert crashy["status"] == "Not monitored"
        assert crashy["monitoring_status"] == "Not monitored"
        assert crashy["restarts"] == 2
        limit = alerts[-1]
        assert limit["service"] == "crashy" and limit["action"] == "unmonitor"
        assert "restarted 2 times within 10 cycles" in limit["message"]
        deaths = [a for a in alerts if a["event"] == "nonexist" and a["state"] == "failed"]
        assert len(deaths) == 3 and "exit status 3" in deaths[0]["message"]

        # It registered as a component: its varz holds the services.
        reg = next(a for a in announced if a["type"] == "Supervisor")
        user, password = reg["credentials"]
        request = urllib.request.Request(f"http://{reg['host']}/varz")
        request.add_header("Authorization", _basic(user, password))
        varz = await asyncio.to_thread(_get_json, request)
        assert varz["type"] == "Supervisor"
        assert varz["services"]["crashy"]["status"] == "Not monitored"
        assert varz["services"]["crashy"]["restarts"] == 2
        assert varz["services_unmonitored"] == 1

        # `monitor` re-arms it, as in monit.
        await sup.control("crashy", "monitor")
        await sup.wait_for(lambda: svc(sup, "crashy")["restarts"] == 3, 5)
    finally:
        await nc.close()


def _basic(user: str, password: str) -> str:
    from fobs.components.auth import basic_auth_header
    return basic_auth_header(user, password)


def _get_json(request: urllib.request.Request) -> dict:
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.load(r)


async def test_hung_health_endpoint_is_restarted_without_stalling_others(supervise, tmp_path):
    web_port, other_port = free_port(), free_port()
    sup = await supervise(processes=(
        ProcessConfig(name="web", command=child("http", web_port), cwd=str(tmp_path),
                      http=(HttpCheck(url=f"http://127.0.0.1:{web_port}/healthz",
                                      contains="ok pid=", timeout=0.6),)),
        ProcessConfig(name="other", command=child("tcp", other_port),
                      tcp=(TcpCheck(port=other_port),)),
    ))
    await sup.wait_for(lambda: ready(sup, "web") and ready(sup, "other"))
    pid = svc(sup, "web")["pid"]
    other_checks: set[float] = set()

    def web_restarted() -> bool:  # re-evaluated after every check result: samples "other" too
        other_checks.add(svc(sup, "other")["checks"][1]["checked_at"])
        return ready(sup, "web", not_pid=pid)

    (tmp_path / f"hang-{pid}").touch()
    await sup.wait_for(web_restarted, 10)

    alert = next(a for a in sup.status()["alerts"] if a["event"] == "connection")
    assert "timed out after 0.6 s" in alert["message"] and alert["action"] == "restart"
    # While web's check hung for 0.6 s, the other service went on being checked every cycle.
    assert len(set(other_checks)) >= 3
    assert svc(sup, "web")["restarts"] == 1


def journal(path: Path) -> list[str]:
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()]


async def test_depends_on_orders_start_and_stop(supervise, tmp_path):
    log = tmp_path / "journal"
    ports = {name: free_port() for name in "abc"}

    def proc(name: str, *deps: str, delay: float = 0.0) -> ProcessConfig:
        return ProcessConfig(
            name=name, depends_on=deps, tcp=(TcpCheck(port=ports[name]),),
            log=str(tmp_path / f"{name}.out"),
            command=child("tcp", ports[name], "--journal", str(log), "--name", name,
                          "--delay", str(delay)))

    # Listed backwards on purpose; `a` is slow to listen.
    sup = await supervise(processes=(proc("c", "b"), proc("b", "a"), proc("a", delay=0.5)))
    await sup.wait_for(lambda: all(ready(sup, n) for n in "abc"), 10)
    assert [s["name"] for s in sup.status()["services"]] == ["a", "b", "c"]
    outputs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.out")))
    assert journal(log) == ["start a", "listening a", "start b", "listening b",
                            "start c", "listening c"], outputs

    # Stopping `a` stops what depends on it first (monit's cascade).
    log.write_text("")
    await sup.control("a", "stop")
    assert journal(log) == ["stop c", "stop b", "stop a"]
    assert all(svc(sup, n)["status"] == "Not monitored" and svc(sup, n)["pid"] is None
               for n in "abc")

    # Starting `c` brings up its prerequisites first.
    log.write_text("")
    await sup.control("c", "start")
    await sup.wait_for(lambda: all(ready(sup, n) for n in "abc"), 10)
    assert [e for e in journal(log) if e.startswith("start")] == ["start a", "start b", "start c"]

    log.write_text("")
    await sup.stop()
    assert journal(log) == ["stop c", "stop b", "stop a"]


async def test_pidfile_daemon_with_start_program(supervise, tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    sup = await supervise(processes=(
        ProcessConfig(name="sleeper", pidfile=str(pidfile), stop_timeout=2,
                      start=("sh", "-c", f"sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}")),
        ProcessConfig(name="broken", pidfile=str(tmp_path / "never.pid"),
                      start=("sh", "-c", "echo cannot start; exit 7"),
                      restart_limit=RestartLimit(restarts=1, cycles=5)),
    ))
    await sup.wait_for(lambda: ready(sup, "sleeper"))
    first = int(pidfile.read_text())
    assert svc(sup, "sleeper")["pid"] == first

    os.kill(first, signal.SIGKILL)
    await sup.wait_for(lambda: ready(sup, "sleeper", not_pid=first), 5)
    second = int(pidfile.read_text())
    assert svc(sup, "sleeper")["pid"] == second

    exec_alerts = [a for a in sup.status()["alerts"] if a["event"] == "exec"]
    assert exec_alerts and "exit status 7" in exec_alerts[0]["message"]
    assert "cannot start" in exec_alerts[0]["message"]
    await sup.stop()
    assert wait_gone([second]) == []


async def test_program_exit_status(supervise, tmp_path):
    flag = tmp_path / "fail"
    sup = await supervise(programs=(
        ProgramConfig(name="probe", command=("sh", "-c", f"echo checked; test ! -e {flag}"),
                      cycles=2),
        ProgramConfig(name="slow", command=("sleep", "5"), timeout=0.3),
    ))
    await sup.wait_for(lambda: svc(sup, "probe")["status"] == "OK")
    flag.touch()
    await sup.wait_for(lambda: svc(sup, "probe")["status"] == "Status failed", 5)
    check = svc(sup, "probe")["checks"][0]
    assert check["failures"] >= 2 and check["exit_status"] == 1 and check["output"] == "checked"
    await sup.wait_for(lambda: svc(sup, "slow")["status"] == "Execution failed", 5)
    assert "timed out after 0.3 s" in svc(sup, "slow")["checks"][0]["message"]
    flag.unlink()
    await sup.wait_for(lambda: svc(sup, "probe")["status"] == "OK", 5)
    assert any(a["state"] == "succeeded" and a["service"] == "probe"
               for a in sup.status()["alerts"])


async def test_nats_down_never_blocks_supervision_and_alerts_follow_later(supervise, tmp_path):
    server = NatsServer(tmp_path / "nats")  # not started yet: nothing listens on its port
    sup = await supervise(
        processes=(ProcessConfig(name="crashy", command=("sh", "-c", "exit 1"),
                                 restart_limit=RestartLimit(restarts=1, cycles=10)),),
        component=ComponentConfig(nats=NatsConfig(servers=(server.url,), reconnect_wait=0.2)))
    try:
        await sup.wait_for(lambda: svc(sup, "crashy")["status"] == "Not monitored", 5)
        assert sup.alerts.raised >= 2 and sup.alerts.published == 0

        raised = sup.alerts.raised
        await asyncio.to_thread(server.start)
        # The backlog kept while NATS was away leaves once the connection is up.
        await sup.wait_for(lambda: sup.alerts.published >= raised, 10)
        assert sup.alerts.publish_errors == 0
    finally:
        server.stop()

