"""A real sliding-window histogram: bucket counts per time slot, quantiles over the last window.

gorouter kept an exponentially decaying reservoir of 1028 samples; here every observation
counts, in log-spaced buckets (relative width `growth`, stored sparsely), kept per time slot so
that what falls out of the window is dropped exactly. Recording costs one log() whatever the
weight, so a simulated tick can record "n requests took about x seconds" as one weighted
observation.
Quantiles interpolate geometrically inside a bucket, within ±(growth-1)/2 of the true value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

DEFAULT_QUANTILES = ("50", "75", "90", "95", "99")


class _Slot:
    __slots__ = ("number", "counts", "count", "total")

    def __init__(self, number: int) -> None:
        self.number = number
        self.counts: dict[int, float] = {}   # sparse: a quiet route touches few buckets
        self.count: float = 0
        self.total = 0.0


class SlidingHistogram:
    """Observations of the last `window` seconds, in `slots` time slots of equal width."""

    __slots__ = ("window", "slot_width", "slots", "low", "high", "growth", "_log_low",
                 "_log_growth", "buckets", "_slots", "_adds", "_cached")

    def __init__(self, window: float = 60.0, slots: int = 6, low: float = 0.0005,
                 high: float = 120.0, growth: float = 1.2) -> None:
        if window <= 0 or slots < 1 or not 0 < low < high or growth <= 1:
            raise ValueError("bad histogram geometry")
        self.window = window
        self.slot_width = window / slots
        self.slots = slots
        self.low = low
        self.high = high
        self.growth = growth
        self._log_low = math.log(low)
        self._log_growth = math.log(growth)
        # bucket 0: below low; 1..n-2: [low*g^(i-1), low*g^i); n-1: at or above high
        self.buckets = math.ceil(math.log(high / low) / self._log_growth) + 2
        self._slots: list[_Slot] = []     # oldest first; at most `slots` of them
        self._adds = 0
        self._cached: tuple[tuple[int, int, tuple[str, ...]], dict[str, float]] | None = None

    def _bucket(self, value: float) -> int:
        if value < self.low:
            return 0
        if value >= self.high:
            return self.buckets - 1
        return min(self.buckets - 2, int((math.log(value) - self._log_low) / self._log_growth) + 1)

    def _expire(self, now: float) -> int:
        number = int(now // self.slot_width)
        while self._slots and self._slots[0].number <= number - self.slots:
            del self._slots[0]
        return number

    def add(self, value: float, now: float, weight: float = 1.0) -> None:
        """Record `weight` observations of `value`."""
        if weight <= 0 or value != value:  # NaN never enters
            return
        number = self._expire(now)
        if not self._slots or self._slots[-1].number != number:
            self._slots.append(_Slot(number))
        slot = self._slots[-1]
        self._adds += 1
        bucket = self._bucket(value)
        slot.counts[bucket] = slot.counts.get(bucket, 0) + weight
        slot.count += weight
        slot.total += value * weight

    def count(self, now: float) -> float:
        self._expire(now)
        return sum(s.count for s in self._slots)

    def total(self, now: float) -> float:
        """Sum of the observed values in the window."""
        self._expire(now)
        return sum(s.total for s in self._slots)

    def quantiles(self, now: float, names: Iterable[str] = DEFAULT_QUANTILES
                  ) -> dict[str, float]:
        """{"50": p50, ...} for percentile names; 0.0 each when the window is empty.

        Cached until something is added or a slot leaves the window, so an idle histogram
        (one of many per-route ones) costs nothing to read again.
        """
        names = tuple(names)
        key = (self._adds, self._expire(now), names)
        if self._cached is not None and self._cached[0] == key:
            return dict(self._cached[1])
        merged: dict[int, float] = {}
        for slot in self._slots:
            for i, c in slot.counts.items():
                merged[i] = merged.get(i, 0) + c
        total = sum(merged.values())
        ordered = sorted(merged.items())
        result = {}
        for name in names:
            result[name] = self._quantile(ordered, total, float(name) / 100.0) if total else 0.0
        self._cached = (key, result)
        return dict(result)

    def _quantile(self, ordered: list[tuple[int, float]], total: float, q: float) -> float:
        target = q * total
        cumulative = 0.0
        for i, c in ordered:
            if cumulative + c >= target:
                if i == 0:
                    return self.low
                if i == self.buckets - 1:
                    return self.high
                fraction = (target - cumulative) / c
                return math.exp(self._log_low + (i - 1 + fraction) * self._log_growth)
            cumulative += c
        return self.high
