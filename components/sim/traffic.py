"""The shape of simulated load: a daily curve, random bursts, and Zipf popularity across apps."""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Iterable


class DailyCurve:
    """Load factor in [trough, 1] by time of day: broad afternoon peak, narrow night trough.

    cos(x) + cos(2x)/4 is monotonic in cos(x), so it keeps one peak and one trough per day
    but flattens the peak and sharpens the trough the way human-driven traffic does.
    """

    def __init__(self, peak_hour: float = 15.0, trough: float = 0.3,
                 utc_offset_hours: float = 0.0) -> None:
        self.peak_hour = peak_hour
        self.trough = trough
        self.utc_offset_hours = utc_offset_hours

    def factor(self, now: float) -> float:
        hour = (now / 3600.0 + self.utc_offset_hours) % 24.0
        x = 2.0 * math.pi * (hour - self.peak_hour) / 24.0
        shape = (math.cos(x) + 0.25 * math.cos(2.0 * x) + 0.75) / 2.0   # 0..1
        return self.trough + (1.0 - self.trough) * shape


class Bursts:
    """Spikes starting as a Poisson process; each multiplies load, then decays exponentially."""

    def __init__(self, rng: random.Random, per_hour: float = 2.0, max_multiplier: float = 4.0,
                 mean_duration: float = 60.0) -> None:
        self.rng = rng
        self.per_hour = per_hour
        self.max_multiplier = max_multiplier
        self.mean_duration = mean_duration
        self._last: float | None = None
        self._extra = 0.0     # multiplier - 1 at `_since`
        self._since = 0.0
        self._tau = mean_duration

    def factor(self, now: float) -> float:
        if self._last is not None and self.per_hour > 0 and self.max_multiplier > 1:
            dt = max(0.0, now - self._last)
            if self.rng.random() < 1.0 - math.exp(-self.per_hour * dt / 3600.0):
                self._extra = self.current(now) - 1.0 + self.rng.uniform(
                    0.5, self.max_multiplier - 1.0)
                self._since = now
                self._tau = self.rng.expovariate(1.0 / self.mean_duration)
        self._last = now
        return self.current(now)

    def current(self, now: float) -> float:
        if self._extra <= 0:
            return 1.0
        extra = self._extra * math.exp(-(now - self._since) / max(self._tau, 1e-3))
        if extra < 0.01:
            self._extra = 0.0
            return 1.0
        return 1.0 + extra


class Popularity:
    """Zipf weights over a changing set of keys, ranked by a stable hash of each key.

    Popularity is a property of an app, not of whoever routes to it: every router (and every
    run) ranks the same apps alike, and routers sharing a route table can share this too.
    """

    def __init__(self, exponent: float = 1.1, salt: str = "") -> None:
        self.exponent = exponent
        self.salt = salt
        self._scores: dict[str, int] = {}
        self._keys: list[str] = []
        self._cumulative: list[float] = []

    @property
    def keys(self) -> list[str]:
        return self._keys

    def set_keys(self, keys: Iterable[str]) -> None:
        """Replace the key set (cheap to call only when it changed)."""
        wanted = set(keys)
        self._scores = {k: s for k, s in self._scores.items() if k in wanted}
        for key in wanted - self._scores.keys():
            digest = hashlib.blake2b(f"{self.salt}{key}".encode(), digest_size=8).digest()
            self._scores[key] = int.from_bytes(digest, "big")
        self._keys = sorted(wanted, key=lambda k: (self._scores[k], k))
        total, self._cumulative = 0.0, []
        for rank in range(1, len(self._keys) + 1):
            total += rank ** -self.exponent
            self._cumulative.append(total)

    def share(self, key: str) -> float:
        """The key's expected share of picks (0 if unknown)."""
        if key not in self._scores or not self._cumulative:
            return 0.0
        rank = self._keys.index(key) + 1
        return float(rank ** -self.exponent) / self._cumulative[-1]

    def pick(self, rng: random.Random, k: int) -> list[str]:
        if not self._keys or k <= 0:
            return []
        total = self._cumulative[-1]
        cumulative, keys, rnd = self._cumulative, self._keys, rng.random
        return [keys[bisect.bisect_left(cumulative, rnd() * total)] for _ in range(k)]
