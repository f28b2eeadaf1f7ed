"""The collector daemon: discovery → registry → scraper → outputs, registered as a component.

Start order: outputs (so nothing scraped is refused), NATS, scraper (committing straight to the
outputs), the daemon's own periodic jobs (prune, NATS ping: its tasks, not the scraper's
schedule), discoverers, the collector's own component (type Collector — its varz is scraped like
any other), status API. Stop order (SIGTERM): stop the periodic jobs, stop firing scrapes and let
in-flight ones finish (bounded), stop discovery, flush and close the outputs, unregister from
NATS, close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from loguru import logger

from fobs.collector.config import CollectorConfig
from fobs.collector.discovery import (
    Discoverer,
    DiscoveryStats,
    NatsDiscoverer,
    StaticDiscoverer,
    Update,
)
from fobs.collector.fanout import Outputs
from fobs.collector.handlers import role_for
from fobs.collector.membership import Membership
from fobs.collector.metrics import CollectorMetrics
from fobs.collector.point import Point
from fobs.collector.registry import Registry
from fobs.collector.scrape import Scraper
from fobs.collector.status import StatusServer
from fobs.components.bus import Bus
from fobs.components.runtime import Component

COMPONENT_TYPE = "Collector"
PRUNE_CHECKS_PER_INTERVAL = 10     # prune precision: a tenth of prune_interval


class Sink(Protocol):
    """What the collector hands each scrape's points to: `fobs.collector.fanout.Outputs`."""

    def add(self, points: list[Point]) -> int: ...

    async def close(self, timeout: float | None = None) -> None: ...

    def health(self) -> str | None: ...

    def varz(self) -> dict[str, Any]: ...


class Collector:
    """One collector instance (several may share a process in tests)."""

    def __init__(self, config: CollectorConfig, outputs: Sink | None = None) -> None:
        """`outputs` defaults to the configured historians (`Outputs.start(config.outputs)`)."""
        self.config = config
        self._outputs = outputs
        self.bus: Bus | None = None
        self.component: Component | None = None
        self.discovery_stats = DiscoveryStats()
        self.nats_rtt_ms: float | None = None
        self.uuid = ""
        self.registry: Registry | None = None
        self.membership: Membership | None = None
        self._scraper: Scraper | None = None
        self.status: StatusServer | None = None
        self.discoverers: list[Discoverer] = []
        self._jobs: list[asyncio.Task[None]] = []     # prune, NATS ping
        self._tasks: list[asyncio.Task[None]] = []    # one per discoverer
        self._stopped = False
        self.started = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        if self._outputs is None:
            self._outputs = await Outputs.start(cfg.outputs)
        if cfg.discovery.nats:
            self.bus = await Bus.connect(cfg.component.nats, f"collector/{cfg.component.index}")
            self.component = Component(COMPONENT_TYPE, cfg.component, bus=self.bus)
            self.uuid = self.component.uuid
        self.registry = Registry(deployment=cfg.deployment,
                                 prune_interval=cfg.discovery.prune_interval,
                                 self_uuid=self.uuid, sharding=cfg.discovery.sharding,
                                 collectors=() if self._shares() else None,
                                 role_for=role_for, max_targets=cfg.discovery.max_targets,
                                 max_types=cfg.discovery.max_types)
        self._scraper = Scraper(cfg.scrape, self.outputs.add,
                                collector=str(cfg.component.index))
        self.registry.listeners.append(self._scraper)
        await self._scraper.start()
        prune_every = cfg.discovery.prune_interval / PRUNE_CHECKS_PER_INTERVAL
        self._jobs.append(asyncio.create_task(self._every(prune_every, self._prune)))
        if self.bus is not None:
            self.discoverers.append(NatsDiscoverer(self.bus, cfg.discovery.discover_interval,
                                                   self.discovery_stats,
                                                   cfg.discovery.networks()))
            self._jobs.append(asyncio.create_task(self._every(cfg.nats_ping_interval,
                                                              self._ping_nats)))
        if cfg.discovery.static:
            self.discoverers.append(StaticDiscoverer(cfg.discovery.static))
        for discoverer in self.discoverers:
            self._tasks.append(asyncio.create_task(self._discover(discoverer)))
        if self._shares():
            assert self.bus is not None
            registry = self.registry
            self.membership = Membership(
                self.bus, self.uuid, str(cfg.component.index),
                interval=cfg.discovery.heartbeat_interval, misses=cfg.discovery.heartbeat_misses,
                on_change=registry.set_collectors, owned=lambda: len(registry.owned()),
                status=cfg.status.address)
            self._jobs.append(asyncio.create_task(self.membership.run()))
        if self.component is not None:
            metrics = CollectorMetrics(self.component.metrics)
            metrics.bind(self)
            if isinstance(self.outputs, Outputs):
                metrics.bind_outputs(self.outputs)
            self.component.on_refresh(self._refresh_varz)
            self.component.add_health_check("nats", self._nats_health)
            self.component.add_health_check("scheduler", self._scheduler_health)
            self.component.add_health_check("outputs", self.outputs.health)
            await self.component.start()
        if cfg.status.address:
            members = self.membership.table if self.membership is not None else None
            self.status = StatusServer(cfg.status, self.registry, self.scraper, self.health,
                                       members)
            await self.status.start()
        self.started.set()
        logger.info("Collector started (deployment {}, sharding {})", cfg.deployment,
                    cfg.discovery.sharding)

    async def stop(self) -> None:
        """Stop in the order of the module docstring; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        if self.membership is not None:
            await self.membership.leave()    # the others take over while we finish
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        if self._scraper is not None:
            cancelled = await self._scraper.stop(self.config.stop_timeout)
            if cancelled:
                logger.warning("Stopped with {} scrapes still in flight after {:g}s; their "
                               "points are lost", cancelled, self.config.stop_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._outputs is not None:
            await self._outputs.close()
        if self.component is not None:
            await self.component.stop()
        if self.status is not None:
            await self.status.stop()
        if self.bus is not None:
            await self.bus.close()
        logger.info("Collector stopped")

    def _shares(self) -> bool:
        """Sharing the fleet with other collectors, membership by heartbeats on NATS."""
        return self.config.discovery.sharding == "rendezvous" and self.bus is not None

    @property
    def outputs(self) -> Sink:
        assert self._outputs is not None, "Collector.start() was not called"
        return self._outputs

    @property
    def scraper(self) -> Scraper:
        assert self._scraper is not None, "Collector.start() was not called"
        return self._scraper

    async def run(self, stop: asyncio.Event) -> int:
        """Run until `stop` is set (SIGTERM); 0 after a clean stop, even one during start-up
        (e.g. while still waiting for NATS)."""
        starting = asyncio.create_task(self.start())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()          # a start-up error (ConfigError…) propagates
                await stopping
            else:
                logger.info("Stopped while starting")
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        finally:
            stopping.cancel()
            await self.stop()
        return 0

    # -- periodic work ------------------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `seconds` until cancelled by `stop`; a failure is logged, not fatal."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("Collector job {} failed", getattr(job, "__name__", job))

    async def _discover(self, discoverer: Discoverer) -> None:
        assert self.registry is not None
        try:
            await discoverer.run(self.registry.apply)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Discovery from {} failed", discoverer.source)

    async def _prune(self) -> None:
        assert self.registry is not None
        if self.bus is not None and not self.bus.client.is_connected:
            self.registry.apply(Update("nats", online=False))
        self.registry.prune()

    async def _ping_nats(self) -> None:
        """NATS round trip (Cloud Foundry's collector measured it too), in ms, for varz."""
        assert self.bus is not None and self.registry is not None
        if not self.bus.client.is_connected:
            self.registry.apply(Update("nats", online=False))
            return
        t0 = time.perf_counter()
        try:
            # nats-py hints an int, but hands the timeout to asyncio.wait_for: seconds as a float.
            await self.bus.client.flush(
                timeout=max(1.0, self.config.nats_ping_interval / 2))  # type: ignore[arg-type]
        except Exception:
            self.nats_rtt_ms = None
            return
        self.nats_rtt_ms = round((time.perf_counter() - t0) * 1000, 3)
        if "nats" in self.registry.offline:
            self.registry.apply(Update("nats", online=True))

    # -- self-observation -------------------------------------------------------------------

    def _refresh_varz(self, varz: dict[str, Any]) -> None:
        """The free-text part of varz; the numbers are `fobs.collector.metrics`'."""
        varz["deployment"] = self.config.deployment
        varz["outputs"] = self.outputs.varz()
        if self.status is not None:
            varz["status_address"] = self.status.address

    def _nats_health(self) -> str | None:
        if self.bus is not None and not self.bus.client.is_connected:
            return "not connected to NATS"
        return None

    def _scheduler_health(self) -> str | None:
        return None if self.scraper.running else "scrape scheduler is not running"

    async def health(self) -> list[str]:
        if self.component is not None:
            return await self.component.health()
        return [r for r in (self._scheduler_health(), self.outputs.health()) if r]


async def collect_once(config: CollectorConfig, wait: float) -> list[Point]:
    """Discover for `wait` seconds, scrape every target once, return the points (--once)."""
    registry = Registry(deployment=config.deployment,
                        prune_interval=config.discovery.prune_interval, role_for=role_for,
                        max_targets=config.discovery.max_targets,
                        max_types=config.discovery.max_types)
    discoverers: list[Discoverer] = []
    bus = None
    if config.discovery.nats:
        try:
            bus = await asyncio.wait_for(Bus.connect(config.component.nats, "collector/once"),
                                         max(5.0, wait))
        except TimeoutError:
            raise OSError(f"no NATS server answered at {', '.join(config.component.nats.servers)}"
                          ) from None
        discoverers.append(NatsDiscoverer(bus, config.discovery.discover_interval,
                                          allow_networks=config.discovery.networks()))
    if config.discovery.static:
        discoverers.append(StaticDiscoverer(config.discovery.static))
    tasks = [asyncio.create_task(d.run(registry.apply)) for d in discoverers]
    await asyncio.sleep(wait)    # the gather window of the scatter-gather discover
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    scraper = Scraper(config.scrape, lambda points: None)
    await scraper.start()
    try:
        return await scraper.scrape_all_once(registry.owned())
    finally:
        await scraper.stop(1.0)
        if bus is not None:
            await bus.close()
