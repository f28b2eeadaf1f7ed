"""The scrape loop: interval jobs per target and endpoint (`fobs.collector.timer`), and one scrape.

Prometheus' scrape loop, in asyncio. Each owned target gets one job per endpoint (/varz every
10 s, /healthz every 5 s by default, per type configurable), phased by a stable hash of its uuid
so a fleet's scrapes spread over the interval. A new target is scraped within
`first_scrape_window` (a one-off, itself spread by the same hash), then on its phase.

Isolation: every scrape runs as its own task, bounded by its timeout, so a hung target holds one
slot of `max_in_flight` for at most its timeout and never delays another target; a target never
has two scrapes of one endpoint in flight (the timer's one-instance rule, plus our own guard for
the one-off first scrape). The HTTP side (session, body limit, error classes) is
`fobs.collector.fetch`'s.

One scrape, as Prometheus' `scrapeAndReport`: fetch, then the handler adds its points to a
per-scrape `ListAppender` carrying the identity tags and time; a failed scrape rolls them back;
the `scrape` point (up, duration, bytes, points, error class) goes through the same appender;
its points are then committed to the sink (`Outputs.add`: synchronous, it never waits).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from fobs.collector.config import ENDPOINTS, ScrapeConfig
from fobs.collector.fetch import Fetcher, error_class, error_message
from fobs.collector.handlers import Handler, handler_for
from fobs.collector.point import ListAppender, Point
from fobs.collector.target import Target
from fobs.collector.timer import Timer
from fobs.components.metrics import SummaryChild
from fobs.components.text import escape_controls

MEASUREMENT = "scrape"
DURATION_WINDOW = 4096              # recent durations kept per endpoint for percentiles
LATE_FRACTION = 0.1                 # a scrape starting > 10 % of its interval late is late
PHASE_SLOTS = 20                    # phases are quantised: scrapes fire in small batches

Commit = Callable[[list[Point]], object]      # the sink of each scrape's points: Outputs.add


def phase(uuid: str, endpoint: str) -> float:
    """A stable fraction in [0, 1) for a target's endpoint (Prometheus' per-target offset)."""
    digest = hashlib.blake2b(f"{uuid}/{endpoint}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def next_on_grid(now: float, interval: float, offset: float) -> float:
    """The first time ≥ now of the form k·interval + offset."""
    k = -((offset - now) // interval)   # ceil((now - offset) / interval)
    return k * interval + offset


@dataclass
class ScrapeStats:
    """Counters of the scrape loop (Telegraf's internal_gather, per endpoint); the collector's
    metrics (`fobs.collector.metrics`) read them at render time."""

    ok: Counter[str] = field(default_factory=Counter)
    failed: dict[str, Counter[str]] = field(default_factory=lambda: {e: Counter()
                                                                     for e in ENDPOINTS})
    skipped_overlap: int = 0         # a run found the previous one still in flight
    late: int = 0                    # started > 10 % of the interval after its time
    missed: int = 0                  # the timer gave up on a run (misfire)
    points: int = 0                  # points produced (handler points + scrape points)
    values_skipped: int = 0          # varz values the handlers could not use
    handler_errors: int = 0
    in_flight: int = 0
    durations: dict[str, SummaryChild] = field(
        default_factory=lambda: {e: SummaryChild(DURATION_WINDOW) for e in ENDPOINTS})


@dataclass(slots=True)
class _Entry:
    """A scheduled target: its handler, phases, busy endpoints and pending first scrapes."""

    target: Target
    handler: Handler
    busy: set[str] = field(default_factory=set)
    first: list[asyncio.TimerHandle] = field(default_factory=list)
    grid: dict[str, tuple[float, float]] = field(default_factory=dict)  # interval, offset


class Scraper:
    """Schedules and runs scrapes of the targets the registry gives it (a registry Listener)."""

    def __init__(self, config: ScrapeConfig, commit: Commit, *,
                 stats: ScrapeStats | None = None, collector: str = "") -> None:
        """`commit` takes each scrape's points (the outputs' `add`); it must not block.
        `collector`: the `collector` tag of every `scrape` point ("" = none), so coverage and
        duplicates across sharing collectors can be read from the database."""
        self.config = config
        self._scrape_tags = {"collector": collector} if collector else {}
        self.commit = commit
        self.stats = stats or ScrapeStats()
        self.scheduler = Timer(on_missed=self._on_missed, on_busy=self._on_busy)
        self.fetcher = Fetcher(config.max_in_flight, config.max_response_bytes)
        self._semaphore = asyncio.Semaphore(config.max_in_flight)
        self._entries: dict[str, _Entry] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.fetcher.open()
        self.scheduler.start()

    @property
    def running(self) -> bool:
        """Whether the scrape schedule runs (from `start` until `stop` is done)."""
        return bool(self.scheduler.running)

    async def stop(self, timeout: float) -> int:
        """Stop firing, let in-flight scrapes finish (up to `timeout`), then close.

        Returns how many scrapes had to be cancelled; the timer is shut down once they are done.
        """
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.pause()
        for entry in self._entries.values():
            for handle in entry.first:
                handle.cancel()
        pending = {t for t in self._tasks if not t.done()}
        cancelled = 0
        if pending:
            done, pending = await asyncio.wait(pending, timeout=timeout)
            for task in pending:
                task.cancel()
            cancelled = len(pending)
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.scheduler.running:
            self.scheduler.shutdown()
        await self.fetcher.close()
        return cancelled

    # -- registry listener ----------------------------------------------------------------

    def added(self, target: Target) -> None:
        self.taken(target, None)

    def taken(self, target: Target, since: float | None) -> None:
        """Another collector scraped `target` until `since` (wall time): scrape it on its phase,
        and at once only for an endpoint whose due time fell after `since` (it may have been
        missed); `since` None = like a new target."""
        if self._stopping:
            return
        entry = _Entry(target, handler_for(target.info.type))
        self._entries[target.uuid] = entry
        self._schedule(entry, since)

    def removed(self, target: Target) -> None:
        entry = self._entries.pop(target.uuid, None)
        if entry is not None:
            self._unschedule(entry)

    def changed(self, target: Target) -> None:
        """Host, credentials or type changed: rescrape from the new place."""
        entry = self._entries.get(target.uuid)
        if entry is None:
            return self.added(target)
        self._unschedule(entry)
        entry.handler = handler_for(target.info.type)
        self._schedule(entry)

    def schedule_of(self, target: Target, endpoint: str) -> tuple[float, float]:
        """(interval, timeout) of a target's endpoint."""
        sched = self.config.schedule(target.info.type, endpoint)
        return sched.interval, sched.timeout

    def endpoints_of(self, target: Target) -> tuple[str, ...]:
        if self.config.scrapes_healthz(target.info.type):
            return ENDPOINTS
        return ("varz",)

    def _schedule(self, entry: _Entry, since: float | None = None) -> None:
        uuid = entry.target.uuid
        now = time.time()
        loop = asyncio.get_running_loop()
        for endpoint in self.endpoints_of(entry.target):
            interval, _ = self.schedule_of(entry.target, endpoint)
            frac = phase(uuid, endpoint)
            offset = int(frac * PHASE_SLOTS) / PHASE_SLOTS * interval
            entry.grid[endpoint] = (interval, offset)
            start = next_on_grid(now, interval, offset)
            window = min(self.config.first_scrape_window, interval)
            missed = since is None or start - interval > since
            if missed and start - now > window:   # phase too far off: scrape once right away
                entry.first.append(loop.call_later(frac * window, self._spawn_first, uuid,
                                                   endpoint))
            self.scheduler.add_job(self._run, interval=interval, first=start,
                                   args=(uuid, endpoint), id=f"{uuid}/{endpoint}",
                                   grace=max(1, int(interval / 2)))

    def _unschedule(self, entry: _Entry) -> None:
        for handle in entry.first:
            handle.cancel()
        entry.first.clear()
        for endpoint in entry.grid:
            self.scheduler.remove_job(f"{entry.target.uuid}/{endpoint}")
        entry.grid.clear()

    def _on_missed(self) -> None:
        self.stats.missed += 1

    def _on_busy(self) -> None:
        self.stats.skipped_overlap += 1

    # -- running scrapes ------------------------------------------------------------------

    def _spawn_first(self, uuid: str, endpoint: str) -> None:
        entry = self._entries.get(uuid)
        if entry is not None:
            task = asyncio.get_running_loop().create_task(self._run(uuid, endpoint, True))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, uuid: str, endpoint: str, first: bool = False) -> None:
        """One scheduled scrape of one endpoint, then commit its points."""
        entry = self._entries.get(uuid)
        if entry is None or self._stopping:
            return
        if endpoint in entry.busy:
            self.stats.skipped_overlap += 1
            return
        task = asyncio.current_task()
        if task is not None and not first:
            self._tasks.add(task)
        entry.busy.add(endpoint)
        self.stats.in_flight += 1
        try:
            due = time.time()
            if not first:
                interval, offset = entry.grid.get(endpoint, (0.0, 0.0))
                if interval:
                    due = next_on_grid(due - interval * 0.5, interval, offset)
            async with self._semaphore:
                if not first and time.time() - due > LATE_FRACTION * entry.grid.get(
                        endpoint, (0.0, 0.0))[0]:
                    self.stats.late += 1
                points = await self.scrape(entry.target, endpoint, entry.handler)
            self.commit(points)
        except Exception:
            logger.exception("Scrape of {} {} failed unexpectedly", escape_controls(uuid),
                             endpoint)
        finally:
            self.stats.in_flight -= 1
            entry.busy.discard(endpoint)
            if task is not None:
                self._tasks.discard(task)

    async def scrape(self, target: Target, endpoint: str,
                     handler: Handler | None = None) -> list[Point]:
        """Scrape one endpoint of a target now; returns the points to commit (never raises)."""
        _, timeout = self.schedule_of(target, endpoint)
        started = time.time()
        time_ns = int(started * 1e9)
        t0 = time.perf_counter()
        error = message = ""
        body = b""
        status = 0
        appender = ListAppender(target.tags, time_ns)
        skipped = 0
        healthy = False
        try:
            status, body = await self.fetcher.get(target.url(endpoint), target.headers, timeout)
        except Exception as e:  # every failure of the request becomes an error class
            error, message = error_class(e), error_message(e)
        if not error:
            if not 200 <= status < 300:
                error = f"http_{status}"
                message = f"HTTP status {status}"
            elif endpoint == "healthz":
                healthy = body.strip().lower() == b"ok"
            else:
                error, message, skipped = self._handle(
                    body, appender, handler or handler_for(target.info.type))
                if error:
                    appender.rollback()
        duration = time.perf_counter() - t0
        target.report(endpoint, error=error, message=message, started=started,
                      duration=duration, healthy=healthy)
        fields: dict[str, Any] = {"up": 0 if error else 1, "duration_seconds": duration,
                                  "response_bytes": len(body)}
        if endpoint == "healthz":
            fields["healthy"] = 1 if healthy and not error else 0
        else:
            fields["points"] = len(appender.points)
            fields["skipped"] = skipped
        if error:
            fields["error"] = error
            self.stats.failed[endpoint][error] += 1
        else:
            self.stats.ok[endpoint] += 1
        self.stats.durations[endpoint].observe(duration)
        appender.add(MEASUREMENT, fields, {"endpoint": endpoint, **self._scrape_tags})
        self.stats.points += len(appender.points)
        return appender.points

    def _handle(self, body: bytes, appender: ListAppender, handler: Handler
                ) -> tuple[str, str, int]:
        """Decode varz and run its handler: (error class, message, values skipped)."""
        try:
            varz = handler.decode(body)
        except RecursionError:
            return "bad_json", "JSON nested too deeply", 0
        except ValueError as e:
            return "bad_json", f"invalid JSON: {e}", 0
        if not isinstance(varz, dict):
            return "bad_json", f"varz is a JSON {type(varz).__name__}, not an object", 0
        result = handler(varz, appender)
        self.stats.values_skipped += result.skipped
        if result.error:
            self.stats.handler_errors += 1
            return "handler", f"handler {handler.name} failed: {result.error}", result.skipped
        return "", "", result.skipped

    async def scrape_all_once(self, targets: Iterable[Target]) -> list[Point]:
        """Scrape every endpoint of every target once, concurrently (`fobs collector --once`)."""
        async def one(target: Target, endpoint: str) -> list[Point]:
            async with self._semaphore:
                return await self.scrape(target, endpoint)
        batches = await asyncio.gather(*(one(t, e) for t in targets
                                         for e in self.endpoints_of(t)))
        return [p for batch in batches for p in batch]
