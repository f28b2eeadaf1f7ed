"""Response-time model: a lognormal body plus a small share of slow outliers.

Real web latency is right-skewed with a long tail (GC pauses, cold caches, slow queries);
a lognormal body with a second, much slower lognormal mixed in at a few percent reproduces
gorouter-like percentiles (p50 ≈ 25 ms, p99 ≈ 1 s in the reference payload).
"""

from __future__ import annotations

import math
import random


class LatencyModel:
    def __init__(self, rng: random.Random, median: float = 0.025, sigma: float = 0.6,
                 slow_fraction: float = 0.01, slow_median: float = 0.8,
                 slow_sigma: float = 0.9) -> None:
        self.rng = rng
        self.median = median
        self.sigma = sigma
        self.slow_fraction = slow_fraction
        self.slow_median = slow_median
        self.slow_sigma = slow_sigma

    def sample(self, scale: float = 1.0) -> float:
        """One response time in seconds; `scale` stretches it (slow app, heavy load)."""
        gauss = self.rng.gauss
        if self.rng.random() < self.slow_fraction:
            return scale * self.slow_median * math.exp(gauss(0.0, self.slow_sigma))
        return scale * self.median * math.exp(gauss(0.0, self.sigma))
