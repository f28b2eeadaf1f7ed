"""Start, stop and restart of services, one operation at a time per service, in dependency order.

The supervisor decides *that* a service starts or stops (a request, a failed check, its own
start and stop); this module decides *how*: what it depends on is started first, what depends
on it is stopped first, a stop cancels a start still in flight, and a start waits until the
service's network checks pass (or `start_timeout`). Every operation runs as a task of its own,
so a slow start never holds the cycle or another service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import aiohttp
from loguru import logger

from fobs.syslog_agg.monit.alerts import Alerts
from fobs.syslog_agg.monit.checks import Result
from fobs.syslog_agg.monit.errors import StartError
from fobs.syslog_agg.monit.service import INITIALIZING, NETWORK_KINDS, NOT_MONITORED, Service

Operation = Literal["start", "stop", "restart"]


class Operations:
    """The operation queue of every service of one supervisor."""

    def __init__(self, services: dict[str, Service], cycle: float, alerts: Alerts,
                 notify: Callable[[], None]) -> None:
        self.services = services
        self.dependants: dict[str, list[Service]] = {name: [] for name in services}
        for svc in services.values():
            for dep in svc.cfg.depends_on:
                self.dependants[dep].append(svc)
        self.cycle = cycle
        self.alerts = alerts
        self.notify = notify  # wakes the supervisor's waiters after each state change
        self.session: aiohttp.ClientSession | None = None  # the supervisor's, once started

    def launch(self, svc: Service, name: Operation) -> asyncio.Task[None]:
        """Run an operation on `svc` after the one in flight (a stop cancels a start)."""
        body: Callable[[], Coroutine[Any, Any, None]] = {
            "start": lambda: self._start_op(svc),
            "stop": lambda: self._stop_op(svc),
            "restart": lambda: self._restart_op(svc),
        }[name]
        previous, previous_name = svc.op, svc.op_name

        async def operation() -> None:
            if previous is not None and not previous.done():
                if name == "stop" and previous_name in ("start", "restart"):
                    previous.cancel()
                await asyncio.wait([previous])
            svc.pending = name
            self.notify()
            try:
                await body()
            except Exception:
                logger.exception("Operation {} of '{}' failed", name, svc.name)
            finally:
                if svc.op is task:
                    svc.pending = None
                self.notify()

        task = asyncio.create_task(operation())
        svc.op, svc.op_name = task, name
        return task

    async def ensure_started(self, svc: Service) -> None:
        op = svc.op
        if op is not None and not op.done() and svc.op_name in ("start", "restart"):
            await asyncio.wait([op])
            return
        if not svc.busy and (svc.running or not svc.is_process):
            return
        await asyncio.wait([self.launch(svc, "start")])

    async def ensure_stopped(self, svc: Service) -> None:
        op = svc.op
        if op is not None and not op.done() and svc.op_name == "stop":
            await asyncio.wait([op])
            return
        if not svc.busy and not svc.running and svc.monitoring == NOT_MONITORED:
            return
        await asyncio.wait([self.launch(svc, "stop")])

    async def _start_op(self, svc: Service) -> None:
        for dep in svc.cfg.depends_on:
            await self.ensure_started(self.services[dep])
        if svc.monitoring == NOT_MONITORED:
            svc.monitoring = INITIALIZING
        if not svc.is_process:
            return
        if svc.running:
            logger.info("Process '{}' is already running (pid {})", svc.name, svc.current_pid)
            return
        await self._spawn(svc)

    async def _restart_op(self, svc: Service) -> None:
        if svc.is_process:
            logger.info("Restarting '{}'", svc.name)
            await svc.terminate()
        await self._start_op(svc)

    async def _stop_op(self, svc: Service) -> None:
        svc.monitoring = NOT_MONITORED
        await asyncio.gather(*(self.ensure_stopped(d) for d in self.dependants[svc.name]))
        if svc.is_process and (svc.running or svc.child is not None):
            await svc.terminate()
            logger.info("Stopped '{}'", svc.name)

    async def _spawn(self, svc: Service) -> None:
        """Start the process and wait until its network checks pass (or start_timeout)."""
        cfg = svc.cfg
        deadline = time.monotonic() + cfg.start_timeout  # type: ignore[union-attr]
        try:
            await svc.spawn()
        except StartError as e:
            self._start_failed(svc, str(e))
            return
        logger.info("Started '{}' (pid {})", svc.name, svc.current_pid)
        problem = await self._wait_ready(svc, deadline)
        svc.reset_checks()
        if problem:
            self._start_failed(svc, problem)
        else:
            svc.status = "OK"

    def _start_failed(self, svc: Service, why: str) -> None:
        svc.exec_error = why
        svc.status = "Execution failed"
        self.alerts.raise_(svc.name, "exec", "failed", f"failed to start: {why}")

    async def _wait_ready(self, svc: Service, deadline: float) -> str | None:
        """Poll the network checks until they all pass; the reason when they do not in time."""
        assert self.session is not None
        runs = [run for run in svc.checks if run.kind in NETWORK_KINDS]
        interval = min(0.1, self.cycle / 2)
        while True:
            if not svc.running:
                return f"process exited ({svc.last_exit or 'gone'})"
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(left, 0.01)):
                    results = await asyncio.gather(*(svc.probe(run, self.session) for run in runs))
            except TimeoutError:
                results = [Result(False, "check timed out")]
            failed = [r for r in results if not r.ok]
            if not failed:
                return None
            if time.monotonic() >= deadline:
                return (f"not ready after {svc.cfg.start_timeout:g} s: "  # type: ignore[union-attr]
                        f"{failed[0].message}")
            if svc.child is not None:
                await svc.child.wait(interval)
            else:
                await asyncio.sleep(interval)
