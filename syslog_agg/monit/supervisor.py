"""The supervisor engine: cycles, dependency-ordered start and stop, actions, restart limits.

Unlike monit, nothing here waits in line: every cycle launches each service's checks as its own
task (a hung health endpoint delays only its own service, up to its timeout), and start, stop
and restart run as per-service operations in the background (operations.py). A service with an
operation or a check still in flight is simply skipped by the cycle. The status page (httpd.py)
and the NATS registration (registration.py) see the supervisor only through `status()` and
`request()`.

Usage:
    sup = Supervisor(SupervisorConfig(process=(ProcessConfig(name="web", command="..."),)))
    await sup.run(stop_event)          # or: await sup.start(); ...; await sup.stop()
    sup.status()                       # the JSON the status page serves
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from loguru import logger

from fobs.components.config import validate
from fobs.components.process import ProcFS, ProcStat
from fobs.syslog_agg.monit import httpd
from fobs.syslog_agg.monit.alerts import Alerts
from fobs.syslog_agg.monit.checks import EVENT, Result
from fobs.syslog_agg.monit.config import ProcessConfig, ProgramConfig, SupervisorConfig
from fobs.syslog_agg.monit.errors import Stopping, UnknownAction, UnknownService
from fobs.syslog_agg.monit.operations import Operations
from fobs.syslog_agg.monit.registration import Registration
from fobs.syslog_agg.monit.service import INITIALIZING, MONITORED, NOT_MONITORED, CheckRun, Service

VERSION = "fobs-monit 0.1"
ACTIONS = ("start", "stop", "restart", "monitor", "unmonitor")
# When checks fire different actions in one cycle, the strongest is taken.
ACTION_STRENGTH = {"alert": 0, "restart": 1, "unmonitor": 2, "stop": 3}


class Supervisor:
    """Run and watch the services of one SupervisorConfig."""

    def __init__(self, config: SupervisorConfig, *, proc_root: str = "/proc") -> None:
        validate(config)
        self.config = config
        self.procfs = ProcFS(proc_root)
        configs: list[ProcessConfig | ProgramConfig] = [*config.process, *config.program]
        by_name = {s.name: Service(s) for s in configs}
        self.services = {s.name: s for s in _dependency_order(by_name)}
        self.cycles = 0
        self.started_at = time.time()
        self.alerts = Alerts(config.alert_subject)
        self.ops = Operations(self.services, config.cycle, self.alerts, self._notify)
        self.http_url: str | None = None
        self._changed = asyncio.Event()
        self._closing = False
        self._ticker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._http: Any = None  # what httpd.serve returns: `url` and `close()`
        self._registration: Registration | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the status page, start every service in dependency order, begin cycling."""
        self.started_at = time.time()
        self._session = self.ops.session = aiohttp.ClientSession()
        if self.config.http.address:
            try:
                self._http = await httpd.serve(self, self.config.http)
            except OSError:
                await self._session.close()
                raise
            self.http_url = self._http.url
            logger.info("Status page on {}", self.http_url)
        if self.config.component is not None:
            self._registration = Registration(self.config.component, self.alerts, self.status)
            self._registration.start()
        for svc in self.services.values():
            self.ops.launch(svc, "start")
        self._ticker = asyncio.create_task(self._cycle_loop())
        logger.info("Supervising {} services every {:g} s", len(self.services), self.config.cycle)

    async def stop(self) -> None:
        """Stop every service, dependants before what they depend on, then shut down."""
        if self._closing:
            return
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        checks = [s.check_task for s in self.services.values() if s.check_task is not None]
        for task in checks:
            task.cancel()
        await asyncio.gather(*checks, return_exceptions=True)
        # Say goodbye on NATS while it still runs: under `fobs up`, nats-server is a service.
        await self.alerts.flush()
        if self._registration is not None:
            await self._registration.stop()
        logger.info("Stopping {} services", len(self.services))
        await asyncio.gather(*(self.ops.ensure_stopped(s)
                               for s in reversed(self.services.values())))
        if self._http is not None:
            await self._http.close()
        if self._session is not None:
            await self._session.close()
        self._notify()
        logger.info("Supervisor stopped")

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Supervise until `stop` is set (forever without one); 0 after a clean stop."""
        await self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            try:
                await asyncio.shield(self.stop())
            except asyncio.CancelledError:  # a second signal: no time for order, only SIGKILL
                self.kill_all()
                raise
        return 0

    def kill_all(self) -> None:
        """SIGKILL every managed child's group at once (a forced exit)."""
        for svc in self.services.values():
            if svc.child is not None:
                svc.child.kill_now()

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public control -------------------------------------------------------------------

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise UnknownService(name) from None

    def request(self, name: str, action: str) -> asyncio.Task[None] | None:
        """Ask for start/stop/restart/monitor/unmonitor of `name`; returns the operation task."""
        svc = self.service(name)
        if action not in ACTIONS:
            raise UnknownAction(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if self._closing:
            raise Stopping("the supervisor is stopping")
        logger.info("Request to {} '{}'", action, name)
        if action == "monitor":
            self._monitor(svc)
            return None
        if action == "unmonitor":
            self._unmonitor(svc)
            return None
        if action == "stop":
            return self.ops.launch(svc, "stop")
        if action == "restart":
            return self.ops.launch(svc, "restart")
        return self.ops.launch(svc, "start")

    async def control(self, name: str, action: str) -> None:
        """`request` and wait until the operation is over."""
        task = self.request(name, action)
        if task is not None:
            await asyncio.wait([task])

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds; it is re-evaluated after every state change."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def status(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "version": VERSION, "pid": os.getpid(), "started_at": self.started_at,
                "uptime": time.time() - self.started_at, "cycle": self.config.cycle,
                "cycles": self.cycles, "http": self.http_url,
                "host_memory": self.procfs.total_memory(),
                "alerts": {"raised": self.alerts.raised, "published": self.alerts.published,
                           "publish_errors": self.alerts.publish_errors},
            },
            "services": [svc.as_dict() for svc in self.services.values()],
            "alerts": list(self.alerts.recent),
        }

    # -- the cycle ------------------------------------------------------------------------

    async def _cycle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.cycles += 1
            self._cycle()
            self._notify()
            next_at += self.config.cycle
            now = loop.time()
            if next_at < now:  # we fell behind (a stalled machine): do not catch up in a burst
                next_at = now + self.config.cycle
            await asyncio.sleep(next_at - now)

    def _cycle(self) -> None:
        due = [s for s in self.services.values()
               if s.monitoring != NOT_MONITORED and not s.busy
               and (s.check_task is None or s.check_task.done())]
        if not due:
            return
        table: dict[int, ProcStat] = {}
        if any(s.is_process for s in due):
            table = self.procfs.table()
        cycle = self.cycles
        for svc in due:  # dependency order; each check task runs on its own
            svc.check_task = asyncio.create_task(self._check(svc, table, cycle))

    async def _check(self, svc: Service, table: dict[int, ProcStat], cycle: int) -> None:
        assert self._session is not None
        try:
            results = await svc.run_checks(self._session, table)
        except Exception:
            logger.exception("Checking '{}' failed", svc.name)
            return
        if svc.busy or svc.monitoring == NOT_MONITORED or self._closing:
            return  # an operation started meanwhile: these results describe the past
        self._apply(svc, results, cycle)
        self._notify()

    def _apply(self, svc: Service, results: list[tuple[CheckRun, Result]], cycle: int) -> None:
        now = time.time()
        actions: list[tuple[str, CheckRun]] = []
        for run, res in results:
            run.last, run.checked_at = res, now
            if res.ok:
                if run.fired:
                    run.fired = False
                    self.alerts.raise_(svc.name, EVENT[run.kind], "succeeded",
                                       f"{run.label} succeeded: {res.message}")
                run.failures = 0
                continue
            run.failures += 1
            if run.failures == run.cfg.cycles:
                run.fired = True
                every = f" for {run.cfg.cycles} cycles" if run.cfg.cycles > 1 else ""
                self.alerts.raise_(svc.name, EVENT[run.kind], "failed",
                                   f"{run.label} failed{every}: {res.message}", run.cfg.action)
                actions.append((run.cfg.action, run))
        if all(res.ok for _, res in results):
            svc.exec_error = None
        if svc.monitoring == INITIALIZING:
            svc.monitoring = MONITORED
        svc.recompute_status()
        if actions:
            action, run = max(actions, key=lambda a: ACTION_STRENGTH[a[0]])
            self._act(svc, action, cycle)

    def _act(self, svc: Service, action: str, cycle: int) -> None:
        if action == "alert":
            return
        if action == "unmonitor":
            self._unmonitor(svc)
        elif action == "stop":
            self.ops.launch(svc, "stop")
        elif action == "restart":
            if not isinstance(svc.cfg, ProcessConfig):
                return  # programs have nothing to restart; the config refuses this anyway
            limit = svc.cfg.restart_limit
            recent = sum(1 for c in svc.restart_cycles if c > cycle - limit.cycles)
            if limit.restarts and recent >= limit.restarts:
                self.alerts.raise_(
                    svc.name, "timeout", "failed",
                    f"service restarted {recent} times within {limit.cycles} cycles",
                    limit.action)
                svc.restart_cycles.clear()
                if limit.action == "unmonitor":
                    self._unmonitor(svc)
                elif limit.action == "stop":
                    self.ops.launch(svc, "stop")
                return
            svc.restart_cycles.append(cycle)
            svc.restarts += 1
            self.ops.launch(svc, "restart")

    # -- monitoring ---------------------------------------------------------------------

    def _monitor(self, svc: Service) -> None:
        svc.monitoring = INITIALIZING
        svc.restart_cycles.clear()
        svc.reset_checks()
        svc.exec_error = None
        self._notify()

    def _unmonitor(self, svc: Service) -> None:
        svc.monitoring = NOT_MONITORED
        self._notify()

    def _notify(self) -> None:
        self._changed.set()


def _dependency_order(services: dict[str, Service]) -> list[Service]:
    """Services with what they depend on first, otherwise in config order (the config is a DAG)."""
    ordered: list[Service] = []
    seen: set[str] = set()

    def visit(svc: Service) -> None:
        if svc.name in seen:
            return
        seen.add(svc.name)
        for dep in svc.cfg.depends_on:
            visit(services[dep])
        ordered.append(svc)

    for svc in services.values():
        visit(svc)
    return ordered
