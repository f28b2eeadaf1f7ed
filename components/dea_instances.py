"""The instances a simulated DEA runs, and their life: what `[dea]` configures.

dea_ng kept an instance registry and moved each instance through its states; this is that
half of the DEA. Apps are placed while memory and disk last; each instance is born (or resumed
at boot), starts, runs, and now and then crashes, is restarted, stopped or deleted; warden
requests are counted as containers are made, polled and destroyed. Every change happens at a
time drawn when it is scheduled, from a heap of timed events that `advance(now)` works off, so
a tick costs little. What the rest of Cloud Foundry hears about it (routes, `droplet.exited`)
goes through `Face`, which the DEA's NATS side implements (dea.py).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fobs.components.config import ConfigError, positive
from fobs.components.sim.instance import (
    ALIVE,
    BORN,
    CRASHED,
    DELETED,
    RESERVING,
    RESUMING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    AppSpec,
    Instance,
)
from fobs.components.sim.rng import binomial, lognormal, stochastic_round

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


class Face(Protocol):
    """What an instance's life tells the rest of Cloud Foundry (over NATS)."""

    def register(self, inst: Instance) -> None:
        """Its routes go to the routers (`router.register`)."""

    def unregister(self, inst: Instance, now: float) -> None:
        """Its routes are withdrawn, if they were registered."""

    def exited(self, inst: Instance, now: float, reason: str, status: int | None,
               description: str) -> None:
        """It stopped running (`droplet.exited`)."""


class InstanceRegistry:
    """The DEA's instances, desired apps and warden counters, advanced by `advance(now)`."""

    def __init__(self, config: DeaConfig, rng: random.Random, face: Face, log: Any) -> None:
        self.config = config
        self.rng = rng
        self.face = face
        self.log = log
        self.instances: dict[str, Instance] = {}
        self.apps: dict[str, AppSpec] = {}             # desired apps and their indices
        self.indices: dict[str, set[int]] = {}
        self.warden_requests = 0
        self.warden_errors = 0
        self.warden_time_ms = 0
        self._events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._job_ids = itertools.count(1)
        self._next_port = config.port_base
        self._last_step: float | None = None

    def advance(self, now: float) -> None:
        """Run the events due by `now`, poll the live containers, place an app if too few."""
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

    def _boot(self, now: float) -> None:
        """Resume a few apps, as dea_ng did from its snapshot after a restart."""
        for _ in range(self.config.initial_apps):
            self._place_new_app(now, state=RESUMING)

    def app_counts(self) -> dict[str, int]:
        return dict(Counter(i.app.app_id for i in self.instances.values()
                            if i.state in RESERVING))

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
        self.desire(app, now)
        for index in range(app.instances):
            self.start_instance(app, index, now, state)

    def desire(self, app: AppSpec, now: float) -> None:
        if app.app_id not in self.apps and self.config.app_stops_per_hour > 0:
            self._later(now, self.rng.expovariate(self.config.app_stops_per_hour / 3600.0),
                        self._stop_app_at_random, app.app_id)
        self.apps[app.app_id] = app
        self.indices.setdefault(app.app_id, set())

    def start_instance(self, app: AppSpec, index: int, now: float, state: str = BORN
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
        self.face.register(inst)
        rate = self.config.crashes_per_hour * inst.crash_factor / 3600.0
        if rate > 0:
            self._later(now, self.rng.expovariate(rate), self._crash, inst)

    def _crash(self, now: float, inst: Instance) -> None:
        if inst.state not in (STARTING, RUNNING):
            return
        inst.set_state(CRASHED, now)
        status, description = self.rng.choice(CRASH_REASONS)
        self.face.exited(inst, now, "CRASHED", status, description)
        self.log.info("Instance {} of app {} crashed: {}", inst.instance_id,
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
        self.start_instance(app, index, now)

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
        self.desire(app, now)
        for index in range(app.instances):
            self.start_instance(app, index, now)

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
            self.face.unregister(inst, now)
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

    def _unregister_later(self, now: float, inst: Instance) -> None:
        self.face.unregister(inst, now)
