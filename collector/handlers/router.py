"""Router varz (gorouter, fobs' reference router, the V1 Ruby router) → `router`, `router_route`.

`router` — no tags:

| field                        | type  | unit  | varz                                      |
|------------------------------|-------|-------|-------------------------------------------|
| requests                     | int   |       | `requests` (counter)                      |
| responses_2xx … responses_xxx| int   |       | `responses_2xx` … `responses_xxx` (counters) |
| bad_requests                 | int   |       | `bad_requests` (counter)                  |
| bad_gateways                 | int   |       | `bad_gateways` (counter)                  |
| requests_per_sec             | float | req/s | `requests_per_sec`                        |
| rate_1m, rate_5m, rate_15m   | float | req/s | `rate` [1m, 5m, 15m]                      |
| latency_p50_seconds … p99    | float | s     | `latency` {"50","75","90","95","99"} (s)  |
| latency_mean_seconds         | float | s     | `latency` value / samples (ms → s), below |
| urls                         | float |       | `urls`                                    |
| droplets                     | float |       | `droplets`                                |
| registry_update_age_seconds  | float | s     | `ms_since_last_registry_update` / 1000    |
| routed_app_requests          | int   |       | Σ `requests` of the `dea-N` components (counter) |
| dead_endpoints               | float |       | `dead_endpoints` (fobs)                   |
| access_log_lines             | int   |       | `access_log_lines` (fobs, counter)        |
| bad_messages                 | int   |       | `bad_messages` (fobs, counter)            |

`router_route` — one point per entry of `tags.<key>.<value>` (key `component`, or V1's
`framework`/`runtime`), tagged `<key>=<value>`; a `dea-N…` component becomes `component=app,
dea_index=N` (app traffic, as the original collector did). Fields: requests, responses_*, rate_*,
latency_p*_seconds, latency_mean_seconds, with the types and units above.

latency_mean_seconds is `value` (a sum of ms) / `samples` (a count), as the V1 router and fobs'
router publish it. gorouter sent percentiles with a constant pair (`value` 5e-07, `samples` 1, a
unit bug), so next to percentiles a pair with samples = 1 is ignored. `top10_app_requests` names
apps and is not collected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import PERCENTILES, Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.values import to_float, to_int

MS = 0.001
ROUTE_KEYS = ("component", "framework", "runtime")
MAX_ROUTES = 256
RATES = ("rate_1m", "rate_5m", "rate_15m")
_DEA = re.compile(r"dea-(\d{1,6})(?!\d)")

GAUGES = {"requests_per_sec": "requests_per_sec", "urls": "urls", "droplets": "droplets",
          "dead_endpoints": "dead_endpoints"}
COUNTERS = {"requests": "requests", "bad_requests": "bad_requests",
            "bad_gateways": "bad_gateways", "access_log_lines": "access_log_lines",
            "bad_messages": "bad_messages"}


@register("Router")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    rec.counters(fields, varz, COUNTERS)
    rec.gauges(fields, varz, GAUGES)
    rec.gauge(fields, "registry_update_age_seconds", varz.get("ms_since_last_registry_update"), MS)
    _add_traffic(fields, varz, rec)
    routes = rec.mapping(varz.get("tags"))
    if routes is not None:
        app_requests = _add_routes(routes, rec)
        if app_requests is not None:
            fields["routed_app_requests"] = app_requests
    rec.add("router", fields)


def _add_traffic(fields: Fields, metric: Mapping[str, Any], rec: Recorder) -> None:
    """The HttpMetric part shared by the router and each route: responses, rates, latency."""
    rec.responses(fields, metric)
    rate = rec.sequence(metric.get("rate"))
    if rate is not None:
        for name, value in zip(RATES, rate, strict=False):
            rec.gauge(fields, name, value)
    latency = rec.mapping(metric.get("latency"))
    if latency is None:
        return
    percentiles = not latency.keys().isdisjoint(PERCENTILES)
    if percentiles:
        rec.percentiles(fields, "latency", latency)
    raw_total, raw_samples = latency.get("value"), latency.get("samples")
    if percentiles and (raw_total is None or raw_samples is None or raw_samples == 1):
        return                        # gorouter's value/samples pair: a constant, not data
    total, samples = to_float(raw_total), to_float(raw_samples)
    if total is None or samples is None:
        rec.skip()
    elif samples > 0:
        rec.gauge(fields, "latency_mean_seconds", total / samples, MS)


def _add_routes(routes: Mapping[str, Any], rec: Recorder) -> int | None:
    """Add `router_route` points; returns Σ requests of app (dea-N) routes, or None."""
    app_requests = None
    seen: set[tuple[tuple[str, str], ...]] = set()
    budget = MAX_ROUTES
    for key in ROUTE_KEYS:
        entries = rec.mapping(routes.get(key))
        if entries is None:
            continue
        if key == "component":
            app_requests = 0
        for value, raw in rec.items(entries, max(budget, 0)):
            budget -= 1
            metric = rec.mapping(raw)
            tags = _route_tags(key, value, rec)
            if metric is None or tags is None:
                continue
            identity = tuple(sorted(tags.items()))
            if identity in seen:
                rec.skip()
                continue
            seen.add(identity)
            fields: Fields = {}
            rec.counter(fields, "requests", metric.get("requests"))
            _add_traffic(fields, metric, rec)
            rec.add("router_route", fields, tags)
            if app_requests is not None and tags.get("component") == "app":
                total = to_int(app_requests + int(fields.get("requests", 0)))
                if total is None:
                    rec.skip()
                else:
                    app_requests = total
    return app_requests


def _route_tags(key: str, value: Any, rec: Recorder) -> dict[str, str] | None:
    if key == "component" and isinstance(value, str) and value.startswith("dea-"):
        match = _DEA.match(value)
        return {"component": "app", "dea_index": match.group(1)} if match else {"component": "app"}
    name = rec.tag(value)
    return {key: name} if name is not None else None
