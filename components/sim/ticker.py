"""The periodic loop of a simulated component, and a liveness check for it.

A component does its work in `step(now)` every `interval` seconds on a drift-free schedule
whose phase is random, so a fleet of components sharing one process spreads its ticks out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fobs.components.sim.clock import Clock

STALL_TICKS = 5


class Ticker:
    def __init__(self, interval: float, clock: Clock, rng: random.Random, log: Any) -> None:
        self.interval = interval
        self.clock = clock
        self.log = log
        self.ticks = 0
        self.errors = 0
        self._phase = rng.uniform(0.0, interval)
        self._last_mono: float | None = None

    async def run(self, step: Callable[[float], Awaitable[None]]) -> None:
        """Call `step(clock())` forever; an exception in one step is logged and survived."""
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._phase
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += self.interval
            if next_at < loop.time():       # fell behind (overloaded host): do not burst
                next_at = loop.time() + self.interval
            self._last_mono = time.monotonic()
            try:
                await step(self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                self.log.exception("Simulation step failed")
            self.ticks += 1

    def health(self) -> str | None:
        """A reason when the loop has not ticked for several intervals (hung or starved)."""
        if self._last_mono is None:
            return None
        late = time.monotonic() - self._last_mono
        if late > max(STALL_TICKS * self.interval, 5.0):
            return f"simulation loop has not run for {late:.0f}s"
        return None
