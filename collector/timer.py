"""Interval jobs on APScheduler, one scheduler job per phase slot rather than per target.

The scrape loop ran one APScheduler 3 job (`AsyncIOScheduler`) per target and endpoint, which
cost ~40 µs of CPU per run at 1,000 runs a second (measured with no-op jobs on the development
machine): every run goes through an executor, a Future and an event dispatch, and the memory
job store bisects, deletes from and re-inserts into one sorted list of all jobs after each run.
At one scrape per target a second that was about a tenth of the collector's CPU.

So APScheduler keeps the schedule, but of slots: jobs with the same interval whose due times
fall in the same millisecond of the interval (the scrape phases are quantised to 20 per interval)
share one APScheduler job, and one run of it starts the whole batch of scrapes as tasks. At
1,000 targets a second that is 20 scheduler runs a second instead of 1,000. The semantics the
scrape loop relies on hold per job:

- a job runs at `first + k·interval` (wall clock; APScheduler's `IntervalTrigger`);
- coalesce: when the loop wakes after several due times, the slot runs once (`coalesce=True`);
- misfire: when that is more than `grace` seconds late (whole seconds: APScheduler's
  `misfire_grace_time`), the run is dropped and every job of the slot counts one `on_missed`;
- one instance: when the previous run of a job is still going, the run is dropped and `on_busy`
  called (replacing a job keeps its running task, so this holds across a reschedule).

Usage (on the running loop):

    timer = Timer(on_missed=count_missed, on_busy=count_busy)
    timer.add_job(scrape, interval=1.0, first=time.time() + 0.3, args=(uuid,), id=uuid, grace=1)
    timer.start(); ...; timer.pause(); ...; timer.shutdown()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

JobFn = Callable[..., Coroutine[Any, Any, None]]
SLOT_RESOLUTION = 1000            # jobs due within the same millisecond of a phase share a slot

SlotKey = tuple[float, int, int]  # (interval, phase in ms, grace)
# APScheduler logs each missed or skipped run; they are counted (`on_missed`), so only errors.
_LOG = logging.getLogger("fobs.collector.scheduler")
_LOG.setLevel(logging.ERROR)


@dataclass(slots=True, eq=False)
class _Job:
    id: str
    fn: JobFn
    args: tuple[Any, ...]
    slot: SlotKey
    task: asyncio.Task[None] | None = None


@dataclass(slots=True, eq=False)
class _Slot:
    id: str                                         # the APScheduler job's id
    jobs: dict[str, _Job] = field(default_factory=dict)


class Timer:
    """Interval jobs grouped into APScheduler jobs by phase; see the module docstring."""

    def __init__(self, *, on_missed: Callable[[], None] | None = None,
                 on_busy: Callable[[], None] | None = None) -> None:
        self._on_missed = on_missed
        self._on_busy = on_busy
        self._jobs: dict[str, _Job] = {}
        self._slots: dict[SlotKey, _Slot] = {}
        self._scheduler = AsyncIOScheduler(timezone=UTC, logger=_LOG)
        # a slot's run only starts tasks; if the loop is so busy that the previous run has not
        # even started, APScheduler skips this one (max_instances): a miss for each job too
        self._scheduler.add_listener(self._missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._stopped = False       # AsyncIOScheduler.shutdown takes effect on the next loop turn

    @property
    def running(self) -> bool:
        """From `start` until `shutdown` (paused counts as running, as in APScheduler)."""
        return bool(self._scheduler.running) and not self._stopped

    def start(self) -> None:
        """Start or resume firing (must be called on the running loop)."""
        if self._scheduler.running:
            self._scheduler.resume()
        else:
            self._scheduler.start()

    def pause(self) -> None:
        """Stop starting runs (runs in progress go on)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        self._stopped = True
        self._scheduler.shutdown(wait=False)

    def add_job(self, fn: JobFn, *, interval: float, first: float, args: tuple[Any, ...] = (),
                id: str, grace: int) -> None:
        """Run `fn(*args)` at `first` and every `interval` seconds after; a job with the same
        id is replaced (its running task still counts for the one-instance rule)."""
        old = self._jobs.get(id)
        self.remove_job(id)
        key = (interval, round(first % interval * SLOT_RESOLUTION), grace)
        job = _Job(id, fn, args, key, old.task if old is not None else None)
        self._jobs[id] = job
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(f"slot:{interval:g}:{key[1]}:{grace}")
            self._scheduler.add_job(
                self._fire, IntervalTrigger(seconds=interval, start_date=_utc(first)),
                args=(key,), id=slot.id, coalesce=True, max_instances=1,
                misfire_grace_time=grace)
        slot.jobs[id] = job

    def remove_job(self, id: str) -> bool:
        """Forget a job (its running task, if any, goes on); False if there was none."""
        job = self._jobs.pop(id, None)
        if job is None:
            return False
        slot = self._slots.get(job.slot)
        if slot is not None:
            slot.jobs.pop(id, None)
            if not slot.jobs:
                del self._slots[job.slot]
                self._scheduler.remove_job(slot.id)
        return True

    async def _fire(self, key: SlotKey) -> None:
        """One APScheduler run: start every job of the slot that is not still running."""
        slot = self._slots.get(key)
        if slot is None:
            return
        loop = asyncio.get_running_loop()
        for job in slot.jobs.values():
            if job.task is not None and not job.task.done():
                if self._on_busy is not None:
                    self._on_busy()
            else:
                job.task = loop.create_task(job.fn(*job.args))

    def _missed(self, event: JobEvent) -> None:
        if self._on_missed is None:
            return
        for slot in self._slots.values():
            if slot.id == event.job_id:
                for _ in slot.jobs:
                    self._on_missed()
                return


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
