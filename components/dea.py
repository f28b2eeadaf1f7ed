"""A simulated dea_ng: runs app instances, registers their routes, reports them in varz.

Over NATS it behaves as Cloud Foundry's DEA did: it advertises itself on `dea.advertise` (and
soon after a `dea.locate`), takes `dea.<uuid>.start` and `dea.stop` requests, registers
running instances with the routers (`router.register`, again on `router.start` and
periodically) and unregisters them when they stop or crash, reporting crashes on
`droplet.exited`. Crashes, restarts and app stops happen at random; a crashed instance
stays routed for `unregister_delay` seconds, which is what makes routers answer 502.
On shutdown it evacuates: instances go EVACUATING, routes are withdrawn, `dea.shutdown` is sent.
Everything happens in `step(now)` through a heap of timed events, so a tick costs little.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fobs.components.config import ConfigError, positive
from fobs.components.sim.clock import Clock, wall_clock
from fobs.components.sim.instance import (
    ALIVE,
    BORN,
    CRASHED,
    DELETED,
    EVACUATING,
    RESERVING,
    RESUMING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    AppSpec,
    Instance,
)
from fobs.components.sim.rng import binomial, child_rng, lognormal, stochastic_round
from fobs.components.sim.simulation import Simulation
from fobs.components.sim.traffic import DailyCurve

ANSWER_WITHIN = 1.0   # seconds: delay of the answer to router.start / dea.locate
CRASH_REASONS = ((137, "out of memory"), (1, "app instance exited"),
                 (255, "failed to accept connections within health check timeout"))


@dataclass(frozen=True)
class DeaConfig:
    """[dea] — capacity, app churn and timings of a simulated DEA (seconds unless noted)."""

    seed: int | None = None            # None: derived from type and index
    tick_interval: float = 1.0
    memory_mb: int = 8192
    disk_mb: int = 32768
    stacks: tuple[str, ...] = ("cflinuxfs2",)
    staging_memory_mb: int = 1024      # one staging slot, for reservable_stagers
    staging_disk_mb: int = 4096
    initial_apps: int = 3              # apps resumed at boot, so data shows up at once
    min_apps: int = 2                  # fewer desired apps: a new one is placed here
    max_instances_per_app: int = 3
    app_domain: str = "apps.fobs.test"
    born_seconds: float = 0.5          # BORN/RESUMING → STARTING/RUNNING (container setup)
    start_seconds: float = 4.0         # median STARTING → RUNNING
    start_failure_probability: float = 0.02
    crashes_per_hour: float = 0.3      # per running instance (an app's flakiness varies)
    unregister_delay: float = 2.0      # crash → router.unregister (routers answer 502 meanwhile)
    restart_delay: float = 10.0        # crash → the replacement instance is born
    crashed_retention: float = 300.0   # CRASHED → DELETED
    deleted_retention: float = 5.0     # DELETED → gone from the registry
    app_stops_per_hour: float = 0.1    # per app; the app is then deleted or restarted
    app_delete_probability: float = 0.5
    stop_seconds: float = 2.0          # STOPPING → STOPPED
    stopped_retention: float = 60.0    # STOPPED → gone from the registry
    advertise_interval: float = 5.0
    register_interval: float = 20.0    # until a router.start names its own minimum
    warden_latency_ms: float = 8.0     # median per warden request
    warden_error_probability: float = 0.002
    warden_poll_interval: float = 10.0  # per live container (info/stats requests)
    evacuation_seconds: float = 0.5    # time spent EVACUATING on shutdown
    port_base: int = 61000

    def validate(self) -> None:
        for key in ("tick_interval", "memory_mb", "disk_mb", "staging_memory_mb",
                    "staging_disk_mb", "max_instances_per_app", "advertise_interval",
                    "register_interval", "warden_poll_interval"):
            positive(getattr(self, key), key)
        for key in ("start_failure_probability", "warden_error_probability",
                    "app_delete_probability"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be between 0 and 1, got {getattr(self, key)}")
        if not self.stacks:
            raise ConfigError("stacks: at least one stack is needed")
        if not 1024 <= self.port_base <= 64000:
            raise ConfigError(f"port_base: must be 1024..64000, got {self.port_base}")


class Dea(Simulation):
    """The DEA simulation bound to a `Component` (type "DEA")."""

    config: DeaConfig

    def __init__(self, component: Any, config: DeaConfig, rng: random.Random,
                 clock: Clock = wall_clock) -> None:
        super().__init__(component, config, rng, clock)
        component.hide_from_metrics("instance_registry", "warden_containers")
        self.daily = DailyCurve()
        self.noise = child_rng(rng)     # usage drift, drawn on scrapes: a stream of its own
        self.instances: dict[str, Instance] = {}
        self.apps: dict[str, AppSpec] = {}             # desired apps and their indices
        self.indices: dict[str, set[int]] = {}
        self.start_requests = 0
        self.start_requests_rejected = 0
        self.warden_requests = 0
        self.warden_errors = 0
        self.warden_time_ms = 0
        self.evacuating = False
        self._events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._job_ids = itertools.count(1)
        self._next_port = config.port_base
        self._last_step: float | None = None
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
            self._unregister(inst, now)
            self._exited(inst, now, "DEA_EVACUATION", None, "")
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
    def host_ip(self) -> str:
        return self.component.host.rpartition(":")[0] or "127.0.0.1"

    # -- the simulation ----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Advance the simulation to `now` (events due, warden polling, adverts, routes)."""
        if self.evacuating:
            return
        if self._last_step is None:
            self._boot(now)
        dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        events = self._events
        while events and events[0][0] <= now:
            at, _, action, args = heapq.heappop(events)
            action(at, *args)
        live = sum(1 for inst in self.instances.values() if inst.state in ALIVE)
        self._warden(stochastic_round(self.rng, live * dt / self.config.warden_poll_interval))
        if len(self.apps) < self.config.min_apps:
            self._place_new_app(now)
        if now >= self._next_advertise:
            self.advertise()
            self._next_advertise = now + self.config.advertise_interval
        if now >= self._next_register:
            self._register_all(now)
            self._next_register = now + self._register_interval

    def _boot(self, now: float) -> None:
        """Resume a few apps, as dea_ng did from its snapshot after a restart."""
        for _ in range(self.config.initial_apps):
            self._place_new_app(now, state=RESUMING)

    def _later(self, now: float, delay: float, action: Callable[..., None], *args: Any) -> None:
        """Run `action(at, *args)` at `now + delay` (at the first step on or after it)."""
        heapq.heappush(self._events, (now + max(0.0, delay), next(self._seq), action, args))

    def _warden(self, requests: int) -> None:
        if requests <= 0:
            return
        self.warden_requests += requests
        self.warden_errors += binomial(self.rng, requests, self.config.warden_error_probability)
        self.warden_time_ms += round(requests * lognormal(self.rng, self.config.warden_latency_ms,
                                                          0.4))

    def reserved(self) -> tuple[int, int]:
        """(memory MB, disk MB) reserved by instances."""
        mem = disk = 0
        for inst in self.instances.values():
            if inst.state in RESERVING:
                mem += inst.app.mem_mb
                disk += inst.app.disk_mb
        return mem, disk

    def _fits(self, app: AppSpec) -> bool:
        mem, disk = self.reserved()
        return (mem + app.mem_mb <= self.config.memory_mb
                and disk + app.disk_mb <= self.config.disk_mb)

    def _place_new_app(self, now: float, state: str = BORN) -> None:
        cfg = self.config
        app = AppSpec.random(self.rng, cfg.app_domain, cfg.stacks[0], cfg.max_instances_per_app)
        if not self._fits(app):
            return
        self._desire(app, now)
        for index in range(app.instances):
            self._start_instance(app, index, now, state)

    def _desire(self, app: AppSpec, now: float) -> None:
        if app.app_id not in self.apps and self.config.app_stops_per_hour > 0:
            self._later(now, self.rng.expovariate(self.config.app_stops_per_hour / 3600.0),
                        self._stop_app_at_random, app.app_id)
        self.apps[app.app_id] = app
        self.indices.setdefault(app.app_id, set())

    def _start_instance(self, app: AppSpec, index: int, now: float, state: str = BORN
                        ) -> Instance | None:
        if not self._fits(app):
            return None
        self.indices.setdefault(app.app_id, set()).add(index)
        port = self._next_port
        self._next_port = port + 2 if port + 2 < 65000 else self.config.port_base
        inst = Instance(app, index, self.rng, now, port=port, job_id=next(self._job_ids),
                        state=state)
        self.instances[inst.instance_id] = inst
        self._warden(2)   # create + limits
        if state == RESUMING:
            self._later(now, lognormal(self.rng, self.config.born_seconds, 0.3), self._to_running,
                        inst)
        else:
            self._later(now, lognormal(self.rng, self.config.born_seconds, 0.3),
                        self._to_starting, inst)
        return inst

    def _to_starting(self, now: float, inst: Instance) -> None:
        if inst.state != BORN:
            return
        inst.set_state(STARTING, now)
        self._warden(3)   # copy droplet, run, link
        delay = lognormal(self.rng, self.config.start_seconds, 0.4)
        if self.rng.random() < self.config.start_failure_probability:
            self._later(now, delay, self._crash, inst)
        else:
            self._later(now, delay, self._to_running, inst)

    def _to_running(self, now: float, inst: Instance) -> None:
        if inst.state not in (STARTING, RESUMING):
            return
        inst.set_state(RUNNING, now)
        self._register(inst)
        rate = self.config.crashes_per_hour * inst.crash_factor / 3600.0
        if rate > 0:
            self._later(now, self.rng.expovariate(rate), self._crash, inst)

    def _crash(self, now: float, inst: Instance) -> None:
        if inst.state not in (STARTING, RUNNING):
            return
        inst.set_state(CRASHED, now)
        status, description = self.rng.choice(CRASH_REASONS)
        self._exited(inst, now, "CRASHED", status, description)
        self.component.log.info("Instance {} of app {} crashed: {}", inst.instance_id,
                                inst.app.name, description)
        if inst.registered:   # the DEA notices and withdraws the route a little later
            self._later(now, self.config.unregister_delay, self._unregister_later, inst)
        self._later(now, self.config.restart_delay, self._restart, inst.app.app_id, inst.index)
        self._later(now, self.config.crashed_retention, self._delete, inst)

    def _restart(self, now: float, app_id: str, index: int) -> None:
        app = self.apps.get(app_id)
        if app is None or index not in self.indices.get(app_id, ()):
            return   # stopped or deleted meanwhile
        if any(i.app.app_id == app_id and i.index == index and i.state in RESERVING
               for i in self.instances.values()):
            return
        self._start_instance(app, index, now)

    def _delete(self, now: float, inst: Instance) -> None:
        if inst.state not in (CRASHED, STOPPED):
            return
        inst.set_state(DELETED, now)
        self._warden(1)   # destroy
        self._later(now, self.config.deleted_retention, self._forget, inst)

    def _forget(self, now: float, inst: Instance) -> None:
        self.instances.pop(inst.instance_id, None)

    def _stop_app_at_random(self, now: float, app_id: str) -> None:
        app = self.apps.get(app_id)
        if app is None:
            return
        delete = self.rng.random() < self.config.app_delete_probability
        self.stop_app(app_id, now, delete=delete)
        if not delete:   # `cf restart`: the same app comes back with new instances
            self._later(now, self.config.restart_delay, self._start_app, app)

    def _start_app(self, now: float, app: AppSpec) -> None:
        self._desire(app, now)
        for index in range(app.instances):
            self._start_instance(app, index, now)

    def stop_app(self, app_id: str, now: float, *, delete: bool = False,
                 instance_ids: set[str] | None = None, indices: set[int] | None = None) -> int:
        """Stop an app's instances (all, or those named); returns how many were stopped."""
        stopped = 0
        for inst in list(self.instances.values()):
            if inst.app.app_id != app_id or inst.state not in RESERVING:
                continue
            if instance_ids is not None and inst.instance_id not in instance_ids:
                continue
            if indices is not None and inst.index not in indices:
                continue
            inst.set_state(STOPPING, now)
            self._unregister(inst, now)
            self.indices.get(app_id, set()).discard(inst.index)
            self._later(now, lognormal(self.rng, self.config.stop_seconds, 0.3), self._stopped,
                        inst, delete)
            stopped += 1
        if instance_ids is None and indices is None or not self.indices.get(app_id):
            self.apps.pop(app_id, None)
            self.indices.pop(app_id, None)
        return stopped

    def _stopped(self, now: float, inst: Instance, delete: bool) -> None:
        if inst.state != STOPPING:
            return
        inst.set_state(STOPPED, now)
        self._warden(2)   # stop + destroy
        if delete:
            self._later(now, self.config.deleted_retention, self._delete, inst)
        else:
            self._later(now, self.config.stopped_retention, self._forget, inst)

    # -- NATS traffic ------------------------------------------------------------------------

    def _register(self, inst: Instance) -> None:
        inst.registered = True
        self.messages.publish("router.register",
                              inst.route(self.component.uuid, self.host_ip, self.component.index))

    def _unregister(self, inst: Instance, now: float) -> None:
        if inst.registered:
            inst.registered = False
            self.messages.publish("router.unregister", inst.route(
                self.component.uuid, self.host_ip, self.component.index))

    def _unregister_later(self, now: float, inst: Instance) -> None:
        self._unregister(inst, now)

    def _register_all(self, now: float) -> None:
        for inst in self.instances.values():
            if inst.state == RUNNING:
                self._register(inst)

    def _exited(self, inst: Instance, now: float, reason: str, status: int | None,
                description: str) -> None:
        self.messages.publish("droplet.exited", {
            "cc_partition": "default", "droplet": inst.app.app_id, "version": inst.app.version,
            "instance": inst.instance_id, "private_instance_id": inst.private_instance_id,
            "index": inst.index, "reason": reason, "exit_status": status,
            "exit_description": description, "crash_timestamp": int(now)})

    def advertise(self) -> None:
        mem, disk = self.reserved()
        self.messages.publish("dea.advertise", {
            "id": self.component.uuid, "stacks": list(self.config.stacks),
            "available_memory": self.config.memory_mb - mem,
            "available_disk": self.config.disk_mb - disk,
            "app_id_to_count": self.app_counts(), "placement_properties": {"zone": "default"}})

    def app_counts(self) -> dict[str, int]:
        return dict(Counter(i.app.app_id for i in self.instances.values()
                            if i.state in RESERVING))

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
        if self.evacuating or self._start_instance(app, index, now) is None:
            self.start_requests_rejected += 1
            self.component.log.warning("Rejected start of app {} index {}: {}", app.name, index,
                                       "evacuating" if self.evacuating else "not enough capacity")
            return
        self._desire(app, now)

    def on_stop(self, payload: dict[str, Any], reply: str) -> None:
        """`dea.stop` {droplet, instances?, indices?}: stop matching instances, if any are here."""
        app_id = payload["droplet"]
        ids = payload.get("instances")
        indices = payload.get("indices")
        self.stop_app(app_id, self.clock(), instance_ids=set(ids) if ids else None,
                      indices={int(i) for i in indices} if indices else None)

    # -- varz and health ---------------------------------------------------------------------

    def refresh(self, varz: dict[str, Any]) -> None:
        now = self.clock()
        cfg = self.config
        mem, disk = self.reserved()
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
            total_warden_response_time_in_ms=self.warden_time_ms,
            warden_request_count=self.warden_requests,
            warden_error_response_count=self.warden_errors,
            instance_registry=registry,
            start_requests=self.start_requests,
            start_requests_rejected=self.start_requests_rejected,
            bad_messages=self.messages.bad_messages,
        )

    def health(self) -> str | None:
        if self.evacuating:
            return "evacuating"
        return self.ticker.health()
