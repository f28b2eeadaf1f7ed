"""Every panel has data when the real stack runs: reference components → NATS → collector →
influxd, plus the syslog aggregator, the supervisor and the alert evaluator, each a real `fobs`
process.

A fleet (2 DEAs and 2 routers in one process, a stager in another) logs to the aggregator over
syslog; the collector discovers everything over NATS (fobs' own daemons and itself included),
scrapes every 2 s and writes to a private influxd, so the panels of fobs' daemons are fed by
their own handlers. A further component is killed with SIGKILL so the scrape-error panels have
errors to show. Then every panel query of every dashboard, with Grafana's macros and variables
substituted, must return data (`fobs.dashboards.verify`), and the shipped alert rules evaluated on
the same data must all run and see the killed component as down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fobs.dashboards.build import load_dashboards
from fobs.dashboards.evaluator import Evaluator
from fobs.dashboards.influx import InfluxQuery
from fobs.dashboards.rules import load_rules
from fobs.dashboards.verify import Report, verify
from tests.services import Influxd, NatsServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
DEADLINE = 90.0
STAGER_TOML = """
[stager]
pushes_per_minute = 90.0
detect_seconds = 0.3
compile_seconds = 1.0
compile_sigma = 0.2
"""
MONIT_TOML = """
cycle = 0.5
[http]
address = ""
[component]
[component.nats]
servers = ["{nats}"]
[[process]]
name = "sleeper"
command = ["sleep", "600"]
"""


class Processes:
    """`fobs …` subprocesses, each logging to its own file; SIGTERM (then SIGKILL) at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "fobs", *args], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=self.workdir,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs[name] = proc
        return proc

    def assert_running(self, *except_: str) -> None:
        for name, proc in self.procs.items():
            assert name in except_ or proc.poll() is None, f"{name} exited:\n{self.log(name)}"

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


def count(influxd: Influxd, where: str) -> int:
    return influxd.count("fobs", "scrape", "up", where)


async def until(check: object, what: str, timeout: float, processes: Processes) -> None:
    """No event tells when data has reached InfluxDB: poll with a deadline."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        processes.assert_running("victim")
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        await asyncio.sleep(1.0)


async def test_every_panel_has_data_from_the_real_pipeline(
        tmp_path: Path, nats_server: NatsServer, influxd: Influxd,
        processes: Processes) -> None:
    influxd.create_database("fobs")
    (tmp_path / "stager.toml").write_text(STAGER_TOML)
    (tmp_path / "monit.toml").write_text(MONIT_TOML.format(nats=nats_server.url))
    syslog = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    processes.start("syslog", "syslog", "--udp", syslog, "--tcp", syslog, "--store",
                    str(tmp_path / "logs"), "--nats", nats_server.url)
    processes.start("collector", "collector", "--nats", nats_server.url, "--influx-url",
                    influxd.url, "--influx-db", "fobs", "--spool-dir", str(tmp_path / "spool"),
                    "--varz-interval", "2", "--healthz-interval", "2", "--status",
                    f"127.0.0.1:{free_port()}")
    processes.start("fleet", "component", "fleet", "--count", "4", "--mix", "dea=1,router=1",
                    "--nats", nats_server.url, "--syslog", syslog)
    processes.start("stager", "component", "stager", "--nats", nats_server.url, "--syslog",
                    syslog, "--config", str(tmp_path / "stager.toml"))
    processes.start("monit", "monit", "-c", str(tmp_path / "monit.toml"))
    processes.start("alerts", "alerts", "run", "--influxdb", influxd.url, "--database", "fobs",
                    "--nats", nats_server.url, "--interval", "2")
    victim = processes.start("victim", "component", "dea", "--index", "7", "--nats",
                             nats_server.url)

    await until(lambda: count(influxd, "\"job\" = 'DEA' AND \"index\" = '7' AND up = 1") > 0,
                "the collector writing the victim's scrapes", 45, processes)
    victim.kill()          # a crash: no goodbye on NATS, the collector keeps scraping it
    victim.wait()
    await until(lambda: count(influxd, "\"error\" <> ''") > 0, "failed scrapes recorded", 30,
                processes)

    dashboards = load_dashboards()
    report = Report(problems=["not run"])
    while time.monotonic() - began < DEADLINE:
        processes.assert_running("victim")
        report = await verify(dashboards, influxd.url, "fobs", last="15m", interval=10)
        if not report.problems:
            break
        await asyncio.sleep(3.0)
    assert report.problems == [], "\n".join(report.problems) + "\n" + processes.log("collector")
    assert report.queries == report.with_data > 80
    assert {"DEA", "Router", "Stager", "Collector", "SyslogAggregator", "Supervisor",
            "AlertEvaluator"} <= set(report.variables["fleet"]["job"])

    # The shipped rules on the same data: every query runs, and the crash is seen as what it is.
    query = InfluxQuery(influxd.url, "fobs")
    evaluator = Evaluator(load_rules(), query)
    down: list[dict[str, str]] = []
    while not down:
        processes.assert_running("victim")
        assert time.monotonic() - began < DEADLINE + 45, "ComponentDown never became pending"
        await evaluator.evaluate(time.time())
        assert {n: h.health for n, h in evaluator.health.items()} == dict.fromkeys(
            evaluator.health, "ok")
        down = [a.labels for a in evaluator.pending() if a.rule == "ComponentDown"]
        await asyncio.sleep(2.0)
    await query.close()
    assert down == [{"deployment": "untitled_dev", "job": "DEA", "index": "7",
                     "severity": "page"}]

    codes = processes.stop()
    del codes["victim"]
    assert codes == {"syslog": 0, "collector": 0, "fleet": 0, "stager": 0, "monit": 0,
                     "alerts": 0}
