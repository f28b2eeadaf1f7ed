"""One supervised service: its process (or program), its checks and its monit-style state.

The Service knows how to start, stop and probe itself; *when* to do so (cycles, dependencies,
actions, restart limits) is the Supervisor's business.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from fobs.components.process import ProcStat, cpu_percent, descendants
from fobs.syslog_agg.monit import checks
from fobs.syslog_agg.monit.checks import FAILED_STATUS, Result, Usage
from fobs.syslog_agg.monit.config import ProcessConfig, ProgramConfig, argv
from fobs.syslog_agg.monit.errors import StartError
from fobs.syslog_agg.monit.process import (
    Child,
    describe_exit,
    pid_alive,
    run_program,
    signal_group,
    signal_pid,
    wait_pid,
)

# Monitoring status (monit's wording).
INITIALIZING = "Initializing"
MONITORED = "Monitored"
NOT_MONITORED = "Not monitored"

# Which failure wins the status line when several checks fail at once.
STATUS_PRIORITY = ("Does not exist", "Execution failed", "Connection failed",
                   "Resource limit matched", "Status failed")
NETWORK_KINDS = ("tcp", "udp", "http")


@dataclass
class CheckRun:
    """One configured check and what it found so far."""

    kind: str
    cfg: Any
    label: str
    failures: int = 0  # consecutive failed runs
    fired: bool = False  # its failure was reported and awaits a "succeeded"
    last: Result | None = None
    checked_at: float | None = None

    @property
    def failing(self) -> bool:
        return bool(self.failures >= self.cfg.cycles)

    def as_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "kind": self.kind, "check": self.label, "action": self.cfg.action,
            "cycles": self.cfg.cycles, "failures": self.failures,
            "ok": None if last is None else last.ok,
            "message": None if last is None else last.message,
            "response_time": None if last is None else last.response_time,
            "exit_status": None if last is None else last.exit_status,
            "output": None if last is None else last.output,
            "checked_at": self.checked_at,
        }


@dataclass
class _CpuMark:
    pid: int
    ticks: int
    total_ticks: int
    at: float


@dataclass
class Figures:
    """Resource figures of the last cycle (monit's status lines)."""

    pid: int | None = None
    ppid: int | None = None
    threads: int = 0
    children: int = 0
    usage: Usage = field(default_factory=Usage)
    collected_at: float | None = None


class Service:
    """State and mechanics of one `[[process]]` or `[[program]]`."""

    def __init__(self, cfg: ProcessConfig | ProgramConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.is_process = isinstance(cfg, ProcessConfig)
        self.type = "Process" if self.is_process else "Program"
        self.status = INITIALIZING
        self.monitoring = INITIALIZING
        self.pending: str | None = None  # the operation in flight, shown as "… pending"
        self.op: asyncio.Task[None] | None = None
        self.op_name: str | None = None
        self.check_task: asyncio.Task[None] | None = None
        self.child: Child | None = None
        self.pid: int | None = None  # a pidfile daemon's pid
        self.started_at: float | None = None
        self.restarts = 0
        self.restart_cycles: deque[int] = deque(maxlen=64)
        self.last_exit: str | None = None
        self.exec_error: str | None = None  # why the last start failed, until a clean cycle
        self.figures = Figures()
        self._cpu: _CpuMark | None = None
        self.checks = self._build_checks()

    def _build_checks(self) -> list[CheckRun]:
        cfg = self.cfg
        if isinstance(cfg, ProgramConfig):
            return [CheckRun("program", cfg, checks.label("program", cfg))]
        runs = [CheckRun("alive", cfg.alive, "process alive")]
        for kind in ("tcp", "udp", "http", "memory", "cpu", "program"):
            runs += [CheckRun(kind, c, checks.label(kind, c)) for c in getattr(cfg, kind)]
        return runs

    # -- state ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.op is not None and not self.op.done()

    @property
    def current_pid(self) -> int | None:
        if not self.is_process:
            return None
        if self.child is not None:
            return self.child.pid if self.child.running else None
        if self.pid is None or not pid_alive(self.pid):
            self.pid = self._read_pidfile()
        return self.pid if self.pid is not None and pid_alive(self.pid) else None

    @property
    def running(self) -> bool:
        return self.current_pid is not None

    def _read_pidfile(self) -> int | None:
        assert isinstance(self.cfg, ProcessConfig)
        try:
            text = Path(self.cfg.pidfile).read_text().strip()
            return int(text) if text.isdigit() else None
        except OSError:
            return None

    def reset_checks(self) -> None:
        """Forget failure streaks (a fresh process); `fired` stays so recovery is reported."""
        for run in self.checks:
            run.failures = 0

    def recompute_status(self) -> None:
        failing = [run.last.status or FAILED_STATUS[run.kind]
                   for run in self.checks if run.failing and run.last is not None]
        if self.exec_error:
            failing.append("Execution failed")
        if not failing:
            self.status = "OK"
            return
        self.status = min(failing, key=lambda s: STATUS_PRIORITY.index(s)
                          if s in STATUS_PRIORITY else len(STATUS_PRIORITY))

    @property
    def display_status(self) -> str:
        if self.monitoring == NOT_MONITORED and not self.pending:
            return NOT_MONITORED
        return f"{self.status} - {self.pending} pending" if self.pending else self.status

    @property
    def env(self) -> dict[str, str]:
        return dict(self.cfg.env)

    # -- process mechanics ----------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the process. Raises StartError when no process comes of it."""
        cfg = self.cfg
        assert isinstance(cfg, ProcessConfig)
        self.exec_error = None
        if cfg.managed:
            if cfg.log:
                try:
                    Path(cfg.log).parent.mkdir(parents=True, exist_ok=True)
                    Path(cfg.log).touch()
                except OSError as e:
                    raise StartError(f"cannot open log file {cfg.log}: "
                                     f"{e.strerror or e}") from None
            try:
                self.child = Child.spawn(argv(cfg.command), env=self.env, cwd=cfg.cwd or None,
                                         log=cfg.log, die_with_parent=True)
            except OSError as e:  # the program or the cwd is missing, not executable, ...
                where = f" ({e.filename})" if e.filename else ""
                raise StartError(f"cannot execute {argv(cfg.command)[0]!r}: "
                                 f"{e.strerror or e}{where}") from None
            self.child.on_exit = self._on_exit
            self.started_at = time.time()
            return
        deadline = time.monotonic() + cfg.start_timeout
        res = await run_program(argv(cfg.start), timeout=cfg.start_timeout, env=self.env,
                                cwd=cfg.cwd or None, reap_group=False)
        if res.status != 0:
            why = res.error or f"exit status {res.status}"
            raise StartError(f"start program failed ({why})"
                             + (f": {res.output.splitlines()[-1][:200]}" if res.output else ""))
        while (pid := self.current_pid) is None:  # no event tells us a pidfile was written
            if time.monotonic() >= deadline:
                raise StartError(f"no live pid in {cfg.pidfile} after {cfg.start_timeout:g} s")
            await asyncio.sleep(0.05)
        self.pid = pid
        self.started_at = time.time()

    def _on_exit(self, child: Child) -> None:
        self.last_exit = describe_exit(child.returncode)
        if self.pending != "stop" and self.pending != "restart":
            logger.warning("Process '{}' (pid {}) exited: {}", self.name, child.pid,
                           self.last_exit)

    async def terminate(self) -> None:
        """Stop the process (graceful signal or stop program, then SIGKILL after stop_timeout)."""
        cfg = self.cfg
        assert isinstance(cfg, ProcessConfig)
        sig = signal.Signals[f"SIG{cfg.stop_signal}"]
        if self.child is not None:
            clean = await self.child.stop(sig, cfg.stop_timeout)
            if not clean:
                logger.warning("Process '{}' did not stop within {:g} s: killed", self.name,
                               cfg.stop_timeout)
            self.last_exit = describe_exit(self.child.returncode)
            self.child = None
            self.started_at = None
            return
        pid = self.current_pid
        deadline = time.monotonic() + cfg.stop_timeout
        if argv(cfg.stop):
            res = await run_program(argv(cfg.stop), timeout=cfg.stop_timeout, env=self.env,
                                    cwd=cfg.cwd or None)
            if res.status != 0:
                logger.warning("Stop program of '{}' failed: {}", self.name,
                               res.error or f"exit status {res.status}")
        elif pid is not None:
            self._signal(pid, sig)
        if pid is not None and not await wait_pid(pid, max(0.0, deadline - time.monotonic())):
            logger.warning("Process '{}' did not stop within {:g} s: killed", self.name,
                           cfg.stop_timeout)
            self._signal(pid, signal.SIGKILL)
            await wait_pid(pid, 2.0)
        self.pid = None
        self.started_at = None

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        """To the process group when the daemon leads one, else to the pid alone."""
        try:
            leads = os.getpgid(pid) == pid
        except OSError:
            leads = False
        (signal_group if leads else signal_pid)(pid, sig)

    # -- checks ---------------------------------------------------------------------------

    def sample(self, table: dict[int, ProcStat]) -> None:
        """Update the resource figures from this cycle's process table."""
        pid = self.current_pid
        now = time.monotonic()
        figures = Figures(pid=pid, collected_at=time.time())
        st = table.get(pid) if pid is not None else None
        if st is None:
            self.figures = figures
            self._cpu = None
            return
        below = descendants(table, st.pid)
        ticks = st.cpu_ticks
        total_ticks = ticks + sum(d.cpu_ticks for d in below)
        cpu = cpu_total = None
        mark = self._cpu
        if mark is not None and mark.pid == st.pid and now > mark.at:
            cpu = cpu_percent(ticks, mark.ticks, now - mark.at)
            cpu_total = cpu_percent(total_ticks, mark.total_ticks, now - mark.at)
        self._cpu = _CpuMark(st.pid, ticks, total_ticks, now)
        figures.ppid = st.ppid
        figures.threads = st.threads
        figures.children = sum(1 for d in below if d.ppid == st.pid)
        figures.usage = Usage(rss=st.rss, rss_total=st.rss + sum(d.rss for d in below),
                              cpu=cpu, cpu_total=cpu_total)
        self.figures = figures

    async def probe(self, run: CheckRun, session: aiohttp.ClientSession) -> Result:
        """Run one check now (network and program checks may take up to their timeout)."""
        try:
            if run.kind == "tcp":
                return await checks.tcp(run.cfg)
            if run.kind == "udp":
                return await checks.udp(run.cfg)
            if run.kind == "http":
                return await checks.http(session, run.cfg)
            if run.kind == "program":
                return await checks.exit_status(run.cfg, self.env, self.cfg.cwd)
            if run.kind == "memory":
                return checks.memory(run.cfg, self.figures.usage)
            if run.kind == "cpu":
                return checks.cpu(run.cfg, self.figures.usage)
        except Exception as e:  # a bug in a check must not kill the supervisor
            logger.exception("Check {} of '{}' raised", run.label, self.name)
            return Result(False, f"check raised {type(e).__name__}: {e}")
        return self.alive_result()

    def alive_result(self) -> Result:
        pid = self.current_pid
        if pid is not None:
            return Result(True, f"process is running with pid {pid}")
        why = f" ({self.last_exit})" if self.last_exit else ""
        return Result(False, f"process is not running{why}")

    async def run_checks(self, session: aiohttp.ClientSession,
                         table: dict[int, ProcStat]) -> list[tuple[CheckRun, Result]]:
        """This cycle's results. A dead process is only reported dead (monit does the same)."""
        if not self.is_process:
            run = self.checks[0]
            result = await self.probe(run, session)
            self.figures = Figures(collected_at=time.time())
            return [(run, result)]
        alive = self.checks[0]
        self.sample(table)
        if self.figures.pid is None:
            return [(alive, self.alive_result())]
        others = self.checks[1:]
        results = await asyncio.gather(*(self.probe(run, session) for run in others))
        return [(alive, self.alive_result()), *zip(others, results, strict=True)]

    # -- status ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        f = self.figures
        pid = self.current_pid if self.is_process else None
        usage = f.usage if f.pid == pid else Usage()
        uptime = time.time() - self.started_at if (self.started_at and pid) else None
        return {
            "name": self.name,
            "type": self.type,
            "status": self.display_status,
            "monitoring_status": self.monitoring,
            "pending": self.pending,
            "pid": pid,
            "ppid": f.ppid if pid else None,
            "uptime": uptime,
            "restarts": self.restarts,
            "children": f.children if pid else 0,
            "threads": f.threads if pid else 0,
            "cpu": usage.cpu,
            "cpu_total": usage.cpu_total,
            "memory": usage.rss,
            "memory_total": usage.rss_total,
            "last_exit": self.last_exit,
            "error": self.exec_error,
            "depends_on": list(self.cfg.depends_on),
            "data_collected": f.collected_at,
            "checks": [run.as_dict() for run in self.checks],
        }
