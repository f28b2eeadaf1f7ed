"""gorouter's HttpMetric: requests, 1/5/15-minute rates, status classes and latency percentiles.

One is kept for all traffic and one per `component` route tag; `to_varz` renders the shape of
gorouter's varz (latency in seconds). Unlike gorouter, whose `latency.value` was a constant
5e-07 (a unit bug), `value` is the sum of latencies in milliseconds over the window and
`samples` the number of requests in it, so the collector's `value / samples` is the mean in ms.
"""

from __future__ import annotations

from typing import Any

from fobs.components.sim.ewma import Meter
from fobs.components.sim.histogram import SlidingHistogram

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "xxx")


class HttpMetric:
    __slots__ = ("requests", "responses", "meter", "latency")

    def __init__(self, now: float, window: float = 60.0) -> None:
        self.requests = 0
        self.responses = dict.fromkeys(STATUS_CLASSES, 0)
        self.meter = Meter(now)
        self.latency = SlidingHistogram(window=window)

    def count(self, now: float, requests: int, statuses: dict[str, int]) -> None:
        self.requests += requests
        self.meter.mark(requests, now)
        for status, n in statuses.items():
            self.responses[status] += n

    def observe(self, now: float, seconds: float, weight: float) -> None:
        self.latency.add(seconds, now, weight)

    def to_varz(self, now: float) -> dict[str, Any]:
        latency: dict[str, Any] = self.latency.quantiles(now)
        samples = self.latency.count(now)
        latency["samples"] = int(round(samples))
        latency["value"] = self.latency.total(now) * 1000.0 if samples else 0.0
        metric: dict[str, Any] = {"requests": self.requests, "rate": self.meter.rates(now)}
        for status in STATUS_CLASSES:
            metric[f"responses_{status}"] = self.responses[status]
        metric["latency"] = latency
        return metric
