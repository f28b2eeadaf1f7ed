"""A simulated dea_ng: runs app instances, registers their routes, reports them in varz.

Over NATS it behaves as Cloud Foundry's DEA did: it advertises itself on `dea.advertise` (and
soon after a `dea.locate`), takes `dea.<uuid>.start` and `dea.stop` requests, registers
running instances with the routers (`router.register`, again on `router.start` and
periodically) and unregisters them when they stop or crash, reporting crashes on
`droplet.exited`. Crashes, restarts and app stops happen at random; a crashed instance
stays routed for `unregister_delay` seconds, which is what makes routers answer 502.
On shutdown it evacuates: instances go EVACUATING, routes are withdrawn, `dea.shutdown` is sent.
The instances and their life (placement, crashes, restarts, stops, warden requests, all on a
heap of timed events so a tick costs little) are `dea_instances.py`'s; this module is the DEA's
NATS side, its varz and its health, and `step(now)` advances both.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from fobs.components.dea_instances import DeaConfig, InstanceRegistry
from fobs.components.sim.clock import Clock, wall_clock
from fobs.components.sim.instance import (
    DELETED,
    EVACUATING,
    RESERVING,
    RUNNING,
    STOPPED,
    AppSpec,
    Instance,
)
from fobs.components.sim.rng import child_rng
from fobs.components.sim.simulation import Simulation
from fobs.components.sim.traffic import DailyCurve

__all__ = ["Dea", "DeaConfig"]

ANSWER_WITHIN = 1.0   # seconds: delay of the answer to router.start / dea.locate


class Dea(Simulation):
    """The DEA simulation bound to a `Component` (type "DEA")."""

    config: DeaConfig

    def __init__(self, component: Any, config: DeaConfig, rng: random.Random,
                 clock: Clock = wall_clock) -> None:
        super().__init__(component, config, rng, clock)
        component.hide_from_metrics("instance_registry", "warden_containers")
        self.daily = DailyCurve()
        self.noise = child_rng(rng)     # usage drift, drawn on scrapes: a stream of its own
        self.registry = InstanceRegistry(config, rng, self, component.log)
        self.start_requests = 0
        self.start_requests_rejected = 0
        self.evacuating = False
        self._next_advertise = 0.0
        self._next_register = 0.0
        self._register_interval = config.register_interval
        component.varz.update(stacks=list(config.stacks), can_stage=0, reservable_stagers=0,
                              available_memory_ratio=1.0, available_disk_ratio=1.0,
                              warden_containers=[], total_warden_response_time_in_ms=0,
                              warden_request_count=0, warden_error_response_count=0,
                              instance_registry={})
        component.on_refresh(self.refresh)
        component.add_health_check("dea", self.health)

    # -- lifecycle -------------------------------------------------------------------------

    async def subscribe(self) -> None:
        m = self.messages
        await m.subscribe("router.start", self.on_router_start)
        await m.subscribe("dea.locate", self.on_locate)
        await m.subscribe(f"dea.{self.component.uuid}.start", self.on_start)
        await m.subscribe("dea.stop", self.on_stop)

    async def shutdown(self) -> None:
        """Evacuate: withdraw every route, report the instances gone, say so on dea.shutdown."""
        if self.evacuating:
            return
        now = self.clock()
        self.evacuating = True
        live = [inst for inst in self.instances.values() if inst.state in RESERVING]
        self.component.log.info("Evacuating {} instances", len(live))
        for inst in live:
            inst.set_state(EVACUATING, now)
            self.unregister(inst, now)
            self.exited(inst, now, "DEA_EVACUATION", None, "")
        self.messages.publish("dea.shutdown", {"id": self.component.uuid, "ip": self.host_ip,
                                               "version": "fobs", "app_id_to_count": {}})
        await self.messages.flush()
        if self.config.evacuation_seconds > 0:
            await asyncio.sleep(self.config.evacuation_seconds)   # EVACUATING shows in varz
        for inst in self.instances.values():
            if inst.state == EVACUATING:
                inst.set_state(STOPPED, self.clock())
        await super().shutdown()

    @property
    def instances(self) -> dict[str, Instance]:
        return self.registry.instances

    @property
    def apps(self) -> dict[str, AppSpec]:
        """The desired apps (by app id)."""
        return self.registry.apps

    @property
    def host_ip(self) -> str:
        return self.component.host.rpartition(":")[0] or "127.0.0.1"

    # -- the simulation ----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Advance the simulation to `now` (the instances' events, adverts, routes)."""
        if self.evacuating:
            return
        self.registry.advance(now)
        if now >= self._next_advertise:
            self.advertise()
            self._next_advertise = now + self.config.advertise_interval
        if now >= self._next_register:
            self._register_all(now)
            self._next_register = now + self._register_interval

    # -- NATS traffic ------------------------------------------------------------------------

    def register(self, inst: Instance) -> None:
        inst.registered = True
        self.messages.publish("router.register",
                              inst.route(self.component.uuid, self.host_ip, self.component.index))

    def unregister(self, inst: Instance, now: float) -> None:
        if inst.registered:
            inst.registered = False
            self.messages.publish("router.unregister", inst.route(
                self.component.uuid, self.host_ip, self.component.index))

    def _register_all(self, now: float) -> None:
        for inst in self.instances.values():
            if inst.state == RUNNING:
                self.register(inst)

    def exited(self, inst: Instance, now: float, reason: str, status: int | None,
                description: str) -> None:
        self.messages.publish("droplet.exited", {
            "cc_partition": "default", "droplet": inst.app.app_id, "version": inst.app.version,
            "instance": inst.instance_id, "private_instance_id": inst.private_instance_id,
            "index": inst.index, "reason": reason, "exit_status": status,
            "exit_description": description, "crash_timestamp": int(now)})

    def advertise(self) -> None:
        mem, disk = self.registry.reserved()
        self.messages.publish("dea.advertise", {
            "id": self.component.uuid, "stacks": list(self.config.stacks),
            "available_memory": self.config.memory_mb - mem,
            "available_disk": self.config.disk_mb - disk,
            "app_id_to_count": self.registry.app_counts(),
            "placement_properties": {"zone": "default"}})

    def on_router_start(self, payload: dict[str, Any], reply: str) -> None:
        interval = payload.get("minimumRegisterIntervalInSeconds")
        if isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0:
            self._register_interval = float(interval)
        # Many routers may start at once (a fleet): answer them all with one re-registration,
        # within a second, rather than one per router.
        self._next_register = min(self._next_register,
                                  self.clock() + self.rng.uniform(0.0, ANSWER_WITHIN))

    def on_locate(self, payload: dict[str, Any], reply: str) -> None:
        """`dea.locate`: advertise within a second (one advert however many stagers ask)."""
        self._next_advertise = min(self._next_advertise,
                                   self.clock() + self.rng.uniform(0.0, ANSWER_WITHIN))

    def on_start(self, payload: dict[str, Any], reply: str) -> None:
        """`dea.<uuid>.start`: run one instance of the app described (from the stager)."""
        self.start_requests += 1
        app = AppSpec.from_start_message(payload)
        index = int(payload.get("index", 0))
        now = self.clock()
        if self.evacuating or self.registry.start_instance(app, index, now) is None:
            self.start_requests_rejected += 1
            self.component.log.warning("Rejected start of app {} index {}: {}", app.name, index,
                                       "evacuating" if self.evacuating else "not enough capacity")
            return
        self.registry.desire(app, now)

    def on_stop(self, payload: dict[str, Any], reply: str) -> None:
        """`dea.stop` {droplet, instances?, indices?}: stop matching instances, if any are here."""
        app_id = payload["droplet"]
        ids = payload.get("instances")
        indices = payload.get("indices")
        self.registry.stop_app(app_id, self.clock(), instance_ids=set(ids) if ids else None,
                      indices={int(i) for i in indices} if indices else None)

    # -- varz and health ---------------------------------------------------------------------

    def refresh(self, varz: dict[str, Any]) -> None:
        now = self.clock()
        cfg = self.config
        mem, disk = self.registry.reserved()
        free_mem, free_disk = cfg.memory_mb - mem, cfg.disk_mb - disk
        stagers = max(0, min(free_mem // cfg.staging_memory_mb, free_disk // cfg.staging_disk_mb))
        registry: dict[str, dict[str, Any]] = {}
        for inst in self.instances.values():
            registry.setdefault(inst.app.app_id, {})[inst.instance_id] = inst.to_varz(
                now, self.daily, self.noise)
        varz.update(
            can_stage=1 if stagers > 0 else 0,
            reservable_stagers=int(stagers),
            available_memory_ratio=1.0 - mem / cfg.memory_mb,
            available_disk_ratio=1.0 - disk / cfg.disk_mb,
            warden_containers=[i.handle for i in self.instances.values()
                               if i.state not in (STOPPED, DELETED)],
            total_warden_response_time_in_ms=self.registry.warden_time_ms,
            warden_request_count=self.registry.warden_requests,
            warden_error_response_count=self.registry.warden_errors,
            instance_registry=registry,
            start_requests=self.start_requests,
            start_requests_rejected=self.start_requests_rejected,
            bad_messages=self.messages.bad_messages,
        )

    def health(self) -> str | None:
        if self.evacuating:
            return "evacuating"
        return self.ticker.health()
