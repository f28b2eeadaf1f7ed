"""The supervisor as a component: type `Supervisor` on NATS, its services in /varz, alerts out.

NATS may be down when the supervisor starts, and the runtime's connect waits for it; so all of
this happens in a background task, and supervision never waits for NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from loguru import logger

from fobs.components.bus import Bus
from fobs.components.runtime import Component, ComponentConfig
from fobs.syslog_agg.monit.alerts import Alerts

COMPONENT_TYPE = "Supervisor"
CLOSE_TIMEOUT = 5.0


def varz_fields(status: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's own varz: per-service figures plus totals (fixed types per field)."""
    from fobs.syslog_agg.monit.render import state_group
    services = {}
    groups = {"up": 0, "down": 0, "initialising": 0, "unmonitored": 0}
    for svc in status["services"]:
        group = state_group(svc)
        groups[group] += 1
        services[svc["name"]] = {
            "type": svc["type"],
            "status": svc["status"],
            "monitoring_status": svc["monitoring_status"],
            "up": 1 if group == "up" else 0,
            "restarts": svc["restarts"],
            "pid": svc["pid"] or 0,
            "uptime": float(svc["uptime"] or 0.0),
            "cpu": float(svc["cpu"] or 0.0),
            "memory": int(svc["memory"] or 0),
            "memory_total": int(svc["memory_total"] or 0),
            "children": int(svc["children"] or 0),
        }
    sup = status["supervisor"]
    return {
        "services": services,
        "services_total": len(services),
        "services_up": groups["up"],
        "services_down": groups["down"],
        "services_initialising": groups["initialising"],
        "services_unmonitored": groups["unmonitored"],
        "cycle_seconds": float(sup["cycle"]),
        "cycles": sup["cycles"],
        "alerts_raised": sup["alerts"]["raised"],
        "alerts_published": sup["alerts"]["published"],
        "alert_publish_errors": sup["alerts"]["publish_errors"],
    }


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
            comp = Component(COMPONENT_TYPE, cfg, bus=self.bus)
            comp.on_refresh(lambda varz: varz.update(varz_fields(self.status())))
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
