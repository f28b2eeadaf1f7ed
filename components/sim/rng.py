"""Seeded randomness: reproducible seeds, ids and the discrete distributions the models draw from.

`random.Random` has no Poisson or binomial draw in Python 3.11; the approximations here switch
to a normal approximation for large means so a busy simulation costs the same per tick as an
idle one.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid


def derive_seed(kind: str, index: int) -> int:
    """A stable seed from the component type and index (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{kind}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def seeded_rng(kind: str, index: int, seed: int | None = None) -> random.Random:
    """The RNG of one component, derived from type, index and the configured seed (if any).

    Mixing the index in keeps a fleet sharing one `seed` from running identical streams.
    """
    return random.Random(derive_seed(kind if seed is None else f"{kind}/{seed}", index))


def child_rng(rng: random.Random) -> random.Random:
    """An independent stream, so side draws (usage noise on scrape) leave the main one alone."""
    return random.Random(rng.getrandbits(64))


def hex_id(rng: random.Random, nbytes: int = 16) -> str:
    return f"{rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def guid(rng: random.Random) -> str:
    """A version-4-shaped GUID, as Cloud Controller used for app ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def base36(rng: random.Random, length: int = 11) -> str:
    """A warden-handle-like id ('170hamjgi6o')."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[rng.randrange(36)] for _ in range(length))


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:
        limit, k, p = math.exp(-mean), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    mean = n * p
    if p <= 0.1 and mean < 10:      # rare outcomes: Poisson is close and costs ~1 draw
        return min(n, poisson(rng, mean))
    if n <= 32:
        return sum(1 for _ in range(n) if rng.random() < p)
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


def stochastic_round(rng: random.Random, x: float) -> int:
    """floor(x) or ceil(x), with the expectation x (keeps aggregated counters unbiased)."""
    whole = math.floor(x)
    return whole + (1 if rng.random() < x - whole else 0)


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))
