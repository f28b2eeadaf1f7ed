"""A simulated stager: app pushes become staging tasks that end in a droplet on a DEA.

Tasks arrive at random (`pushes_per_minute`, daily-shaped) or on request over NATS
(`staging`, queue group "stagers", as Cloud Foundry V1's stager listened). At most
`max_concurrent` run at once; the rest wait, up to `max_pending`. A task detects a buildpack,
compiles for a drawn time and uploads a droplet; it can fail on the way (see REASONS). A
finished droplet is placed on DEAs known from `dea.advertise` (see DeaPool) with one
`dea.<uuid>.start` per instance; no DEA with room means InsufficientResources. A request with a
reply subject is answered when its task ends. Cloud Foundry had no per-task staging varz; ours
is in docs/varz.md.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from fobs.components.config import ConfigError, positive
from fobs.components.sim.clock import Clock, wall_clock
from fobs.components.sim.dea_pool import DeaPool
from fobs.components.sim.histogram import SlidingHistogram
from fobs.components.sim.instance import AppSpec
from fobs.components.sim.rng import hex_id, lognormal, poisson
from fobs.components.sim.simulation import Simulation
from fobs.components.sim.traffic import DailyCurve

NO_APP_DETECTED = "NoAppDetectedError"
COMPILE_FAILED = "BuildpackCompileFailed"
TIMEOUT = "StagingTimeExpired"
NO_RESOURCES = "InsufficientResources"
QUEUE_FULL = "StagingQueueFull"
REASONS = (NO_APP_DETECTED, COMPILE_FAILED, TIMEOUT, NO_RESOURCES, QUEUE_FULL)
# buildpack: (share of pushes, compile time factor, droplet size median MB)
BUILDPACKS = {"nodejs_buildpack": (0.25, 0.8, 45), "java_buildpack": (0.2, 1.6, 110),
              "ruby_buildpack": (0.15, 1.2, 70), "python_buildpack": (0.15, 1.0, 55),
              "go_buildpack": (0.1, 0.7, 15), "php_buildpack": (0.05, 0.9, 40),
              "staticfile_buildpack": (0.07, 0.3, 8), "binary_buildpack": (0.03, 0.1, 20)}
DURATION_QUANTILES = ("50", "90", "99")
MB = 1_000_000


@dataclass(frozen=True)
class StagerConfig:
    """[stager] — arrival rate, concurrency, timings and failure odds of a simulated stager."""

    seed: int | None = None
    tick_interval: float = 1.0
    pushes_per_minute: float = 2.0     # at the daily peak; 0 = only requested tasks
    max_concurrent: int = 4
    max_pending: int = 100
    detect_seconds: float = 3.0        # median buildpack detection time
    compile_seconds: float = 40.0      # median compile time (× the buildpack's factor)
    compile_sigma: float = 0.5
    upload_mb_per_second: float = 50.0
    timeout_seconds: float = 900.0     # staging_timeout: longer tasks fail StagingTimeExpired
    no_app_detected_probability: float = 0.03
    compile_failure_probability: float = 0.05
    hang_probability: float = 0.01     # tasks that never finish, until the timeout
    advertisement_ttl: float = 15.0    # a DEA not heard from for this long is not used
    app_domain: str = "apps.fobs.test"
    max_instances: int = 3
    duration_window: float = 600.0     # sliding window of duration_seconds

    def validate(self) -> None:
        for key in ("tick_interval", "max_concurrent", "max_pending", "detect_seconds",
                    "compile_seconds", "compile_sigma", "upload_mb_per_second",
                    "timeout_seconds", "advertisement_ttl", "max_instances", "duration_window"):
            positive(getattr(self, key), key)
        if self.pushes_per_minute < 0:
            raise ConfigError(f"pushes_per_minute: must be 0 or more, got "
                              f"{self.pushes_per_minute}")
        for key in ("no_app_detected_probability", "compile_failure_probability",
                    "hang_probability"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be between 0 and 1, got {getattr(self, key)}")


@dataclass
class Task:
    task_id: str
    app: AppSpec
    submitted: float
    reply: str = ""
    started: float = 0.0
    ends: float = 0.0
    buildpack: str = ""
    droplet_bytes: int = 0
    failure: str = ""        # "" = compiles fine (placement may still fail)


class Stager(Simulation):
    """The stager simulation bound to a `Component` (type "Stager")."""

    config: StagerConfig

    def __init__(self, component: Any, config: StagerConfig, rng: random.Random,
                 clock: Clock = wall_clock) -> None:
        super().__init__(component, config, rng, clock)
        self.daily = DailyCurve()
        self.pending: deque[Task] = deque()
        self.active: list[Task] = []
        # Stagers on one NATS connection (a fleet) share this; see DeaPool and Fanout.
        self.pool = DeaPool(clock, config.advertisement_ttl)
        self._joined = False
        self.received = 0
        self.succeeded = 0
        self.failed = 0
        self.failures: Counter[str] = Counter({reason: 0 for reason in REASONS})
        self.by_buildpack: Counter[str] = Counter({bp: 0 for bp in BUILDPACKS})
        self.droplet_bytes = 0
        self.instances_placed = 0
        self.durations = SlidingHistogram(window=config.duration_window, slots=10, low=0.05,
                                          high=7200.0, growth=1.1)
        self.waits = SlidingHistogram(window=config.duration_window, slots=10, low=0.01,
                                      high=7200.0, growth=1.1)
        self._last_step: float | None = None
        self._buildpacks = list(BUILDPACKS)
        self._buildpack_weights = [share for share, _, _ in BUILDPACKS.values()]
        component.on_refresh(self.refresh)
        component.add_health_check("stager", self.health)
        self.refresh(component.varz)

    # -- lifecycle -------------------------------------------------------------------------

    async def subscribe(self) -> None:
        self.pool = await self.pool.join(self.component)
        self._joined = True
        await self.messages.subscribe("staging", self.on_request, queue="stagers")
        self.messages.publish("dea.locate", {})   # DEAs answer with an advertisement soon

    async def shutdown(self) -> None:
        if self._joined:
            self._joined = False
            await self.pool.leave(self.component)
        await super().shutdown()

    # -- NATS handlers ---------------------------------------------------------------------

    def on_advertise(self, payload: dict[str, Any], reply: str) -> None:
        self.pool.on_advertise(payload, reply)

    def on_dea_shutdown(self, payload: dict[str, Any], reply: str) -> None:
        self.pool.on_shutdown(payload, reply)

    def on_request(self, payload: dict[str, Any], reply: str) -> None:
        """`staging` {app_id?, name?, memory?, instances?, uris?}: stage (and start) an app."""
        app = self._new_app()
        name = str(payload.get("name") or app.name)
        overrides: dict[str, Any] = {"name": name,
                                     "uris": (f"{name}.{self.config.app_domain}",)}
        if payload.get("app_id"):
            overrides["app_id"] = str(payload["app_id"])
        if payload.get("uris"):
            overrides["uris"] = tuple(str(u) for u in payload["uris"])
        if payload.get("memory"):
            overrides["mem_mb"] = int(payload["memory"])
        if payload.get("instances"):
            overrides["instances"] = max(1, int(payload["instances"]))
        self.submit(dataclasses.replace(app, **overrides), self.clock(), reply)

    # -- the simulation --------------------------------------------------------------------

    def _new_app(self) -> AppSpec:
        return AppSpec.random(self.rng, self.config.app_domain, "cflinuxfs2",
                              self.config.max_instances)

    def submit(self, app: AppSpec, now: float, reply: str = "") -> Task:
        self.received += 1
        task = Task(hex_id(self.rng), app, now, reply)
        if len(self.pending) >= self.config.max_pending:
            self._finish(task, now, QUEUE_FULL)
        else:
            self.pending.append(task)
        return task

    def step(self, now: float) -> None:
        cfg = self.config
        dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        rate = cfg.pushes_per_minute / 60.0 * self.daily.factor(now)
        for _ in range(poisson(self.rng, rate * dt)):
            self.submit(self._new_app(), now)
        still_active = []
        for task in self.active:
            if task.ends <= now:
                self._complete(task, task.ends)
            else:
                still_active.append(task)
        self.active = still_active
        while self.pending and len(self.active) < cfg.max_concurrent:
            task = self.pending.popleft()
            self._begin(task, now)
            self.active.append(task)

    def _begin(self, task: Task, now: float) -> None:
        """Draw what will happen to the task, and when."""
        cfg, rng = self.config, self.rng
        task.started = now
        self.waits.add(now - task.submitted, now)
        detect = lognormal(rng, cfg.detect_seconds, 0.4)
        if rng.random() < cfg.no_app_detected_probability:
            task.failure, task.ends = NO_APP_DETECTED, now + detect
            return
        task.buildpack = rng.choices(self._buildpacks, weights=self._buildpack_weights)[0]
        _, factor, size_mb = BUILDPACKS[task.buildpack]
        compile_time = lognormal(rng, cfg.compile_seconds * factor, cfg.compile_sigma)
        task.droplet_bytes = int(lognormal(rng, size_mb, 0.4) * MB)
        upload = task.droplet_bytes / MB / cfg.upload_mb_per_second
        if rng.random() < cfg.compile_failure_probability:
            task.failure = COMPILE_FAILED
            task.ends = now + detect + compile_time * rng.uniform(0.1, 0.9)
        elif rng.random() < cfg.hang_probability or detect + compile_time + upload > \
                cfg.timeout_seconds:
            task.failure, task.ends = TIMEOUT, now + cfg.timeout_seconds
        else:
            task.ends = now + detect + compile_time + upload

    def _complete(self, task: Task, now: float) -> None:
        if task.failure:
            self._finish(task, now, task.failure)
            return
        placements = self.pool.place(task.app, self.rng, self.clock())
        if not placements:
            self._finish(task, now, NO_RESOURCES)
            return
        for index, dea_id in enumerate(placements):
            self.messages.publish(f"dea.{dea_id}.start", task.app.start_message(index))
        self.instances_placed += len(placements)
        self.droplet_bytes += task.droplet_bytes
        self.by_buildpack[task.buildpack] += 1
        self._finish(task, now, "", placements)

    def _finish(self, task: Task, now: float, reason: str, deas: list[str] | None = None
                ) -> None:
        if reason:
            self.failed += 1
            self.failures[reason] += 1
        else:
            self.succeeded += 1
        duration = max(0.0, now - task.started) if task.started else 0.0
        if task.started:
            self.durations.add(duration, now)
        if task.reply:
            self.messages.publish(task.reply, {
                "task_id": task.task_id, "app_id": task.app.app_id, "name": task.app.name,
                "result": "failed" if reason else "succeeded", "reason": reason or None,
                "buildpack": task.buildpack or None, "droplet_bytes": task.droplet_bytes,
                "duration_seconds": duration, "deas": deas or []})

    # -- varz and health -------------------------------------------------------------------

    def refresh(self, varz: dict[str, Any]) -> None:
        now = self.clock()
        durations = self.durations.quantiles(now, DURATION_QUANTILES)
        waits = self.waits.quantiles(now, DURATION_QUANTILES)
        varz.update(
            tasks_pending=len(self.pending),
            tasks_active=len(self.active),
            tasks_received=self.received,
            tasks_succeeded=self.succeeded,
            tasks_failed=self.failed,
            failures_by_reason=dict(self.failures),
            succeeded_by_buildpack=dict(self.by_buildpack),
            duration_seconds=durations,
            duration_samples=int(self.durations.count(now)),
            queue_wait_seconds=waits,
            droplet_bytes_total=self.droplet_bytes,
            instances_placed=self.instances_placed,
            deas_known=self.pool.known(now),
            max_concurrent=self.config.max_concurrent,
            bad_messages=self.messages.bad_messages + self.pool.bad_messages,
        )

    def health(self) -> str | None:
        if len(self.pending) >= self.config.max_pending:
            return f"staging queue full ({len(self.pending)} tasks pending)"
        return self.ticker.health()
