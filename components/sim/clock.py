"""Time as an injectable callable, so models and components can be driven by a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]   # seconds since the epoch (state timestamps are epoch-based)

wall_clock: Clock = time.time


class FakeClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
