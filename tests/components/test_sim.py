"""The shared simulation pieces: histogram, EWMA rates, traffic shape, seeded randomness."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from fobs.components.sim.ewma import Meter
from fobs.components.sim.histogram import SlidingHistogram
from fobs.components.sim.latency import LatencyModel
from fobs.components.sim.rng import binomial, derive_seed, poisson, seeded_rng, stochastic_round
from fobs.components.sim.traffic import Bursts, DailyCurve, Popularity


def test_histogram_quantiles_match_the_exact_ones_within_a_bucket() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(math.log(0.025), 0.6) for _ in range(20_000)]
    hist = SlidingHistogram()
    for v in values:
        hist.add(v, now=100.0)
    exact = statistics.quantiles(values, n=100)
    got = hist.quantiles(100.0)
    for name in ("50", "90", "99"):
        assert got[name] == pytest.approx(exact[int(name) - 1], rel=0.1), name
    assert hist.count(100.0) == 20_000
    assert hist.total(100.0) == pytest.approx(sum(values))


def test_histogram_forgets_what_left_the_window() -> None:
    hist = SlidingHistogram(window=60.0, slots=6)
    hist.add(5.0, now=0.0, weight=100)
    hist.add(0.01, now=30.0, weight=100)
    assert hist.quantiles(30.0)["99"] > 4.0
    # at t=65 the slot [0,10) is out of the window, [30,40) is still in
    assert hist.count(65.0) == 100
    assert hist.quantiles(65.0)["99"] == pytest.approx(0.01, rel=0.2)
    assert hist.count(200.0) == 0 and hist.quantiles(200.0)["50"] == 0.0


def test_histogram_weights_and_extremes() -> None:
    hist = SlidingHistogram(low=0.001, high=10.0)
    hist.add(0.0001, now=0.0, weight=10)        # under the lowest bucket
    hist.add(50.0, now=0.0, weight=10)          # over the highest
    hist.add(float("nan"), now=0.0)             # ignored
    q = hist.quantiles(0.0)
    assert q["50"] == pytest.approx(0.001, rel=0.3) and q["99"] == 10.0
    assert hist.count(0.0) == 20


def test_meter_rates_follow_a_step_in_load() -> None:
    meter = Meter(now=0.0)
    t = 0.0
    for per_second, minutes in ((2, 5), (10, 10)):
        for _ in range(minutes * 12):
            t += 5.0
            meter.mark(per_second * 5, t - 0.1)
    one, five, fifteen = meter.rates(t)
    assert one == pytest.approx(10.0, rel=0.01)
    assert five == pytest.approx(2 + 8 * (1 - math.exp(-10 / 5)), rel=0.02)
    assert fifteen == pytest.approx(2 + 8 * (1 - math.exp(-10 / 15)), rel=0.02)
    later = meter.rates(t + 300.0)    # 5 idle minutes, caught up in closed form
    assert later[0] < 0.1 < later[1] < later[2]


def test_daily_curve_peaks_in_the_afternoon() -> None:
    curve = DailyCurve(peak_hour=15.0, trough=0.3)
    day = 1_700_006_400.0 - 1_700_006_400.0 % 86400
    factors = [curve.factor(day + h * 3600) for h in range(24)]
    assert max(factors) == pytest.approx(1.0) and factors.index(max(factors)) == 15
    assert min(factors) == pytest.approx(0.3) and factors.index(min(factors)) == 3
    assert all(0.3 <= f <= 1.0 for f in factors)


def test_bursts_come_and_go() -> None:
    bursts = Bursts(random.Random(3), per_hour=60.0, max_multiplier=4.0, mean_duration=30.0)
    factors = [bursts.factor(float(t)) for t in range(3600)]
    assert max(factors) > 1.5 and min(factors) == 1.0
    assert all(1.0 <= f <= 4.0 * 3 for f in factors)


def test_popularity_is_zipf_and_stable_across_key_changes() -> None:
    pop = Popularity(exponent=1.0)
    pop.set_keys(f"app{i}" for i in range(20))
    top = pop.keys[0]
    picks = pop.pick(random.Random(5), 20_000)
    share = picks.count(top) / len(picks)
    assert share == pytest.approx(pop.share(top), abs=0.02)
    assert pop.share(top) == pytest.approx(1 / sum(1 / r for r in range(1, 21)))
    pop.set_keys([*pop.keys, "newcomer"])
    assert pop.keys[0] in (top, "newcomer")
    other = Popularity(exponent=1.0)       # the same apps rank alike for every router
    other.set_keys(reversed(pop.keys))
    assert other.keys == pop.keys
    assert Popularity().pick(random.Random(1), 3) == []


def test_latency_model_has_a_slow_tail() -> None:
    model = LatencyModel(random.Random(2), median=0.025, slow_fraction=0.02, slow_median=1.0)
    samples = sorted(model.sample() for _ in range(20_000))
    assert samples[10_000] == pytest.approx(0.025, rel=0.15)
    assert samples[int(0.995 * 20_000)] > 0.5


def test_discrete_draws_have_the_right_means() -> None:
    rng = random.Random(7)
    for mean in (0.3, 4.0, 80.0):
        draws = [poisson(rng, mean) for _ in range(5000)]
        assert statistics.fmean(draws) == pytest.approx(mean, rel=0.08)
    for n, p in ((10, 0.5), (1000, 0.01), (500, 0.4)):
        draws = [binomial(rng, n, p) for _ in range(3000)]
        assert all(0 <= d <= n for d in draws)
        assert statistics.fmean(draws) == pytest.approx(n * p, rel=0.08)
    assert statistics.fmean(stochastic_round(rng, 2.25) for _ in range(8000)) == \
        pytest.approx(2.25, abs=0.03)
    assert poisson(rng, 0) == 0 and binomial(rng, 5, 1.0) == 5 and binomial(rng, 0, 0.5) == 0


def test_seeds_are_stable_and_distinct() -> None:
    assert derive_seed("DEA", 0) == derive_seed("DEA", 0)
    assert len({derive_seed(t, i) for t in ("DEA", "Router") for i in range(50)}) == 100
    assert seeded_rng("DEA", 1).random() == seeded_rng("DEA", 1).random()
    assert seeded_rng("DEA", 1, seed=42).random() == seeded_rng("DEA", 1, seed=42).random()
    # A fleet shares one configured seed: its components must still draw different streams.
    assert seeded_rng("DEA", 1, seed=42).random() != seeded_rng("DEA", 2, seed=42).random()
    assert seeded_rng("DEA", 1, seed=42).random() != seeded_rng("DEA", 1, seed=43).random()
