"""The supervisor as a component: type `Supervisor` on NATS, its services in /varz (declared in
metrics.py), alerts out.

NATS may be down when the supervisor starts, and the runtime's connect waits for it; so all of
this happens in a background task, and supervision never waits for NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from loguru import logger

from fobs.components.bus import Bus
from fobs.components.metrics import Registry
from fobs.components.runtime import Component, ComponentConfig
from fobs.syslog_agg.monit.alerts import Alerts
from fobs.syslog_agg.monit.metrics import declare, free_varz

COMPONENT_TYPE = "Supervisor"
CLOSE_TIMEOUT = 5.0


class Registration:
    """Connect to NATS in the background, then register and feed the alerts publisher."""

    def __init__(self, cfg: ComponentConfig, alerts: Alerts,
                 status: Callable[[], dict[str, Any]]) -> None:
        self.cfg = cfg
        self.alerts = alerts
        self.status = status  # the supervisor's status(): read per varz refresh and health check
        self.bus: Bus | None = None
        self.component: Component | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        cfg = self.cfg
        try:
            self.bus = await Bus.connect(cfg.nats, f"{COMPONENT_TYPE}/{cfg.index}")
            self.alerts.attach(self.bus.client)
            registry = Registry()
            declare(registry, self.status)
            comp = Component(COMPONENT_TYPE, cfg, bus=self.bus, registry=registry)
            comp.on_refresh(lambda varz: varz.update(free_varz(self.status())))
            comp.add_health_check("services", self._health)
            await comp.start()
            self.component = comp
        except asyncio.CancelledError:
            raise
        except Exception as e:  # registration is optional; supervision goes on without it
            logger.error("Could not register as a component: {}", str(e) or type(e).__name__)

    def _health(self) -> str | None:
        down = [s["name"] for s in self.status()["services"]
                if s["monitoring_status"] == "Monitored" and s["status"] != "OK"
                and not s["pending"]]
        return f"failing: {', '.join(down)}" if down else None

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.alerts.detach()
        try:  # NATS may be down by now: a goodbye that cannot leave must not fail the stop
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self.component is not None:
                    await self.component.stop()
                if self.bus is not None:
                    await self.bus.close()
        except Exception as e:
            logger.warning("Closing the NATS connection failed: {}", str(e) or type(e).__name__)
            if self.bus is not None and not self.bus.client.is_closed:
                try:
                    await self.bus.client.close()
                except Exception:
                    pass
