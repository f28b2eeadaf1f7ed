"""The scrape loop's timer: runs on the grid, one APScheduler job per due instant, coalesce,
misfire, one instance, replace/remove, pause. Real event loop, short intervals; waits are on
events the jobs set, never on sleeps."""

from __future__ import annotations

import asyncio
import time

from fobs.collector.timer import Timer


class Recorder:
    def __init__(self) -> None:
        self.runs: list[tuple[str, float]] = []
        self.changed = asyncio.Event()

    async def job(self, name: str, hold: asyncio.Event | None = None) -> None:
        self.runs.append((name, time.time()))
        self.changed.set()
        if hold is not None:
            await hold.wait()

    async def until(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_jobs_due_together_share_one_timer_and_run_on_their_grid() -> None:
    rec = Recorder()
    timer = Timer()
    first = time.time() + 0.05
    for name in ("a", "b", "c"):
        timer.add_job(rec.job, interval=0.1, first=first, args=(name,), id=name, grace=1)
    timer.add_job(rec.job, interval=0.1, first=first + 0.05, args=("d",), id="d", grace=1)
    assert len(timer._slots) == 2              # a, b, c share one scheduler job; d has its own
    assert len(timer._scheduler.get_jobs()) == 2
    timer.start()
    await rec.until(lambda: sum(1 for n, _ in rec.runs if n == "a") >= 3)
    timer.shutdown()
    assert not timer.running
    for name, at in rec.runs:
        offset = (at - first - (0.05 if name == "d" else 0.0)) % 0.1
        assert min(offset, 0.1 - offset) < 0.05, (name, offset)
    assert [n for n, _ in rec.runs[:3]] == ["a", "b", "c"]


async def test_a_run_still_going_is_skipped_and_counted_never_doubled() -> None:
    rec = Recorder()
    busy: list[int] = []
    hold = asyncio.Event()
    timer = Timer(on_busy=lambda: busy.append(1))
    timer.add_job(rec.job, interval=0.02, first=time.time(), args=("a", hold), id="a", grace=1)
    timer.start()
    await rec.until(lambda: len(rec.runs) == 1)
    async with asyncio.timeout(5):
        while len(busy) < 3:
            await asyncio.sleep(0.02)          # let the timer fire while the run is held
    assert len(rec.runs) == 1
    hold.set()
    await rec.until(lambda: len(rec.runs) >= 2)
    timer.shutdown()


async def test_a_late_wake_up_coalesces_into_one_run_or_is_missed_past_the_grace() -> None:
    rec = Recorder()
    missed = asyncio.Event()
    timer = Timer(on_missed=missed.set)
    now = time.time()
    timer.add_job(rec.job, interval=0.5, first=now + 0.01, args=("within",), id="w", grace=10)
    timer.add_job(rec.job, interval=3.0, first=now + 0.01, args=("past",), id="p", grace=1)
    timer.start()
    time.sleep(1.3)        # the loop is blocked: three due times of "within" go by, "past" 1.29 s
    await rec.until(lambda: any(n == "within" for n, _ in rec.runs))
    async with asyncio.timeout(5):
        await missed.wait()                               # "past": its due time was > 1 s ago
    assert [n for n, _ in rec.runs] == ["within"]         # one run for the three due times
    await rec.until(lambda: len(rec.runs) >= 2)           # then back on its grid
    assert rec.runs[1][0] == "within" and rec.runs[1][1] - now > 1.45
    timer.shutdown()


async def test_removed_and_paused_jobs_stop_and_a_replaced_job_keeps_its_running_task() -> None:
    rec = Recorder()
    busy: list[int] = []
    hold = asyncio.Event()
    timer = Timer(on_busy=lambda: busy.append(1))
    timer.start()
    timer.add_job(rec.job, interval=0.02, first=time.time(), args=("a", hold), id="a", grace=1)
    await rec.until(lambda: len(rec.runs) == 1)
    timer.add_job(rec.job, interval=0.02, first=time.time(), args=("a2",), id="a", grace=1)
    async with asyncio.timeout(5):
        while not busy:                        # the old run still holds the job's one instance
            await asyncio.sleep(0.02)
    assert [n for n, _ in rec.runs] == ["a"]
    assert timer.remove_job("a") and not timer.remove_job("a")
    assert not timer._slots
    hold.set()
    timer.add_job(rec.job, interval=0.02, first=time.time(), args=("b",), id="b", grace=1)
    await rec.until(lambda: any(n == "b" for n, _ in rec.runs))
    timer.pause()
    assert timer.running
    count = len(rec.runs)
    await asyncio.sleep(0.1)                   # nothing may run while paused
    assert len(rec.runs) == count
    assert all(n != "a2" for n, _ in rec.runs)
    timer.shutdown()
