"""Exponentially weighted rates over 1, 5 and 15 minutes, as gorouter's `rate` and Unix load.

Events are counted; every 5 s the count becomes an instant rate folded into each average with
alpha = 1 - exp(-5 s / window). Missed intervals are caught up in closed form when the meter is
next touched, so an idle meter costs nothing.
"""

from __future__ import annotations

import math

INTERVAL = 5.0
WINDOWS_MINUTES = (1, 5, 15)
ALPHAS = tuple(1.0 - math.exp(-INTERVAL / 60.0 / m) for m in WINDOWS_MINUTES)


class Meter:
    """Per-second rates [1m, 5m, 15m]; the first interval seeds all three (no slow ramp-up)."""

    __slots__ = ("_rates", "_pending", "_last", "_seeded")

    def __init__(self, now: float) -> None:
        self._rates = [0.0, 0.0, 0.0]
        self._pending = 0.0
        self._last = now
        self._seeded = False

    def mark(self, count: float, now: float) -> None:
        self._catch_up(now)
        self._pending += count

    def rates(self, now: float) -> list[float]:
        self._catch_up(now)
        return list(self._rates)

    def _catch_up(self, now: float) -> None:
        ticks = int((now - self._last) // INTERVAL)
        if ticks <= 0:
            return
        instant = self._pending / INTERVAL
        for i, alpha in enumerate(ALPHAS):
            rate = self._rates[i] + alpha * (instant - self._rates[i]) if self._seeded else instant
            if ticks > 1:
                rate *= (1.0 - alpha) ** (ticks - 1)
            self._rates[i] = rate
        self._seeded = True
        self._pending = 0.0
        self._last += ticks * INTERVAL
