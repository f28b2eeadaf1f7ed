"""The frame every simulated component shares: its identity, RNG, clock, NATS traffic, tick loop.

A subclass subscribes in `subscribe()`, advances its model in `step(now)` (synchronous, so tests
drive it with a fake clock) and queues messages on `self.messages`; `run()` flushes them after
every step and every handled message.
"""

from __future__ import annotations

import random
from typing import Any

from fobs.components.sim.clock import Clock
from fobs.components.sim.messages import Messages
from fobs.components.sim.ticker import Ticker


class Simulation:
    def __init__(self, component: Any, config: Any, rng: random.Random, clock: Clock) -> None:
        self.component = component
        self.config = config
        self.rng = rng
        self.clock = clock
        self.messages = Messages(component)
        self.ticker = Ticker(config.tick_interval, clock, rng, component.log)

    async def run(self) -> None:
        """Subscribe, then step every tick until cancelled."""
        await self.subscribe()
        await self.messages.flush()
        await self.ticker.run(self._tick)

    async def subscribe(self) -> None:
        """Subscribe to this component's subjects (and queue any greeting)."""

    def step(self, now: float) -> None:
        raise NotImplementedError

    async def _tick(self, now: float) -> None:
        self.step(now)
        await self.messages.flush()

    async def shutdown(self) -> None:
        await self.messages.close()
