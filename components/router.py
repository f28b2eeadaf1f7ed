"""A simulated gorouter: a route table fed by DEAs, and synthetic traffic through it.

The route table is built from `router.register` / `router.unregister` (and `router.start` is
published at boot, and answers `router.greet`, so DEAs register at once). Traffic is simulated
in aggregate: each tick draws how many requests arrived (daily curve × bursts), splits them into
a few groups, gives each group an app by Zipf popularity and one of its endpoints, and records
status classes and latencies for the group as a whole. An endpoint reported by
`droplet.exited` answers 502 until its DEA unregisters it. Varz has gorouter's shape; access
log lines are sampled, at most `access_log_per_second` of them.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fobs.components.config import ConfigError, positive
from fobs.components.sim.clock import Clock, wall_clock
from fobs.components.sim.http_metric import HttpMetric
from fobs.components.sim.latency import LatencyModel
from fobs.components.sim.rng import binomial, guid, poisson
from fobs.components.sim.route_table import Endpoint, RouteFeed, RouteTable
from fobs.components.sim.simulation import Simulation
from fobs.components.sim.traffic import Bursts, DailyCurve

TOP_APPS_SLOTS = 6        # top10_app_requests counts the last 6 × 10 s
TOP_APPS_SLOT_SECONDS = 10.0
STATUS_CODES = {"2xx": (200, 200, 200, 201, 204), "3xx": (302, 304), "4xx": (404, 401, 403, 422),
                "5xx": (500, 503), "xxx": (0,)}
PATHS = ("/", "/api/v1/items", "/api/v1/orders", "/login", "/static/app.js", "/healthcheck",
         "/search?q=fobs", "/images/logo.png")
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1",
          "python-requests/2.31")


@dataclass(frozen=True)
class RouterConfig:
    """[router] — traffic shape, status mix, latency and logging of a simulated router."""

    seed: int | None = None
    tick_interval: float = 1.0
    requests_per_second: float = 50.0   # at the daily peak, outside bursts
    daily_trough: float = 0.3           # share of the peak rate at night
    peak_hour_utc: float = 15.0
    bursts_per_hour: float = 2.0
    burst_max_multiplier: float = 4.0
    burst_mean_seconds: float = 60.0
    popularity_exponent: float = 1.1    # Zipf exponent across apps
    request_groups: int = 16            # a tick's requests are simulated as this many groups
    latency_samples_per_group: int = 2
    latency_median_ms: float = 25.0
    latency_sigma: float = 0.6
    slow_fraction: float = 0.01         # share of slow outliers
    slow_median_ms: float = 800.0
    latency_window: float = 60.0        # sliding window of the latency percentiles
    max_component_tags: int = 32        # tags.component entries kept (the first seen)
    unknown_host_fraction: float = 0.002   # requests for no known route → bad_requests
    share_3xx: float = 0.015
    share_4xx: float = 0.03
    share_5xx: float = 0.001            # rises when bursts overload the backends
    share_xxx: float = 0.0005
    stale_route_seconds: float = 120.0  # routes not re-registered for this long are pruned
    register_interval: int = 20         # minimumRegisterIntervalInSeconds told to DEAs
    access_log_per_second: float = 2.0  # sampled access log lines; 0 = none

    def validate(self) -> None:
        for key in ("tick_interval", "request_groups", "latency_samples_per_group",
                    "latency_median_ms", "latency_sigma", "slow_median_ms", "latency_window",
                    "stale_route_seconds", "register_interval", "burst_mean_seconds",
                    "max_component_tags"):
            positive(getattr(self, key), key)
        for key in ("requests_per_second", "bursts_per_hour", "access_log_per_second"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be 0 or more, got {getattr(self, key)}")
        for key in ("daily_trough", "slow_fraction", "unknown_host_fraction", "share_3xx",
                    "share_4xx", "share_5xx", "share_xxx"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be between 0 and 1, got {getattr(self, key)}")
        if self.share_3xx + self.share_4xx + self.share_5xx + self.share_xxx > 1.0:
            raise ConfigError("share_3xx: the status shares add up to more than 1")
        if self.burst_max_multiplier < 1.0:
            raise ConfigError("burst_max_multiplier: must be 1 or more")


class TopApps:
    """Requests per app over the last minute, in 10-second slots, scaled to per minute."""

    def __init__(self, now: float) -> None:
        self._since = now
        self._slots: deque[tuple[int, Counter[str]]] = deque()

    def add(self, app_id: str, count: int, now: float) -> None:
        number = int(now // TOP_APPS_SLOT_SECONDS)
        if not self._slots or self._slots[-1][0] != number:
            self._slots.append((number, Counter()))
            while self._slots[0][0] <= number - TOP_APPS_SLOTS:
                self._slots.popleft()
        self._slots[-1][1][app_id] += count

    def top(self, now: float, n: int = 10) -> list[dict[str, Any]]:
        number = int(now // TOP_APPS_SLOT_SECONDS)
        first = number - TOP_APPS_SLOTS + 1
        total: Counter[str] = Counter()
        for slot, counts in self._slots:
            if slot >= first:
                total.update(counts)
        # the window covers 50-60 s (the current slot is partial), less just after start
        covered = max(1.0, now - max(first * TOP_APPS_SLOT_SECONDS, self._since))
        return [{"application_id": app, "rps": round(count / covered),
                 "rpm": max(1, round(count * 60.0 / covered))}
                for app, count in total.most_common(n)]


class Router(Simulation):
    """The router simulation bound to a `Component` (type "Router")."""

    config: RouterConfig

    def __init__(self, component: Any, config: RouterConfig, rng: random.Random,
                 clock: Clock = wall_clock) -> None:
        super().__init__(component, config, rng, clock)
        # Routers on one NATS connection (a fleet) share this; see RouteFeed and Fanout.
        self.routes = RouteFeed(clock, config.popularity_exponent, config.stale_route_seconds)
        self.daily = DailyCurve(config.peak_hour_utc, config.daily_trough)
        self.bursts = Bursts(rng, config.bursts_per_hour, config.burst_max_multiplier,
                             config.burst_mean_seconds)
        self.latency = LatencyModel(rng, config.latency_median_ms / 1000.0, config.latency_sigma,
                                    config.slow_fraction, config.slow_median_ms / 1000.0)
        now = clock()
        self.all = HttpMetric(now, config.latency_window)
        self.tags: dict[str, HttpMetric] = {}
        self.top_apps = TopApps(now)
        self.bad_requests = 0
        self.bad_gateways = 0
        self.access_log_lines = 0
        self._last_step: float | None = None
        self._log_tokens = 0.0
        self._joined = False
        component.varz.update(self.all.to_varz(now), requests_per_sec=0.0,
                              tags={"component": {}}, urls=0, droplets=0, bad_requests=0,
                              bad_gateways=0, top10_app_requests=[],
                              ms_since_last_registry_update=0)
        component.on_refresh(self.refresh)
        component.add_health_check("router", self.ticker.health)
        component.add_route("GET", "/routes", self._routes)

    # -- lifecycle -------------------------------------------------------------------------

    async def subscribe(self) -> None:
        self.routes = await self.routes.join(self.component)
        self._joined = True
        await self.messages.subscribe("router.greet", self.on_greet)
        self.messages.publish("router.start", self.greeting())   # DEAs register everything

    async def shutdown(self) -> None:
        if self._joined:
            self._joined = False
            await self.routes.leave(self.component)
        await super().shutdown()

    @property
    def table(self) -> RouteTable:
        return self.routes.table

    def greeting(self) -> dict[str, Any]:
        return {"id": self.component.uuid, "hosts": [self.component.host.rpartition(":")[0]
                                                     or "127.0.0.1"],
                "minimumRegisterIntervalInSeconds": self.config.register_interval,
                "pruneThresholdInSeconds": self.config.stale_route_seconds}

    # -- NATS handlers ---------------------------------------------------------------------

    def on_register(self, payload: dict[str, Any], reply: str) -> None:
        self.routes.on_register(payload, reply)

    def on_unregister(self, payload: dict[str, Any], reply: str) -> None:
        self.routes.on_unregister(payload, reply)

    def on_exited(self, payload: dict[str, Any], reply: str) -> None:
        self.routes.on_exited(payload, reply)

    def on_greet(self, payload: dict[str, Any], reply: str) -> None:
        if reply:
            self.messages.publish(reply, self.greeting())

    async def _routes(self, request: web.Request) -> web.Response:
        return web.json_response(self.table.routes())

    # -- traffic ---------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Simulate the requests that arrived since the last step."""
        cfg = self.config
        dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        self.routes.refresh(now)
        popularity = self.routes.popularity
        load = self.daily.factor(now) * self.bursts.factor(now)
        self._log_tokens = min(max(1.0, cfg.access_log_per_second),
                               self._log_tokens + cfg.access_log_per_second * dt)
        arrived = poisson(self.rng, cfg.requests_per_second * load * dt)
        if arrived == 0:
            return
        if not popularity.keys:
            self.bad_requests += arrived   # no routes at all: every request is a 404
            return
        unknown = binomial(self.rng, arrived, cfg.unknown_host_fraction)
        self.bad_requests += unknown
        routed = arrived - unknown
        groups = min(routed, cfg.request_groups)
        if groups == 0:
            return
        size, extra = divmod(routed, groups)
        overload = max(0.0, load - 1.2)            # bursts push backends into 503s
        share_5xx = min(0.5, cfg.share_5xx * (1.0 + 40.0 * overload))
        latency_scale = 0.8 + 0.3 * load
        for i, app_id in enumerate(popularity.pick(self.rng, groups)):
            self._group(now, app_id, size + (1 if i < extra else 0), share_5xx, latency_scale)

    def _group(self, now: float, app_id: str, size: int, share_5xx: float,
               latency_scale: float) -> None:
        cfg, rng = self.config, self.rng
        endpoint = rng.choice(list(self.table.by_app[app_id].values()))
        tag = self._tag(endpoint.component)
        self.top_apps.add(app_id, size, now)
        if endpoint.dead:
            statuses = {"5xx": size}
            self.bad_gateways += size
        else:
            n3 = binomial(rng, size, cfg.share_3xx)
            n4 = binomial(rng, size, cfg.share_4xx)
            n5 = binomial(rng, size, share_5xx)
            nx = binomial(rng, size, cfg.share_xxx)
            n2 = size - n3 - n4 - n5 - nx
            if n2 < 0:
                n3, n4, n5, nx, n2 = 0, 0, size, 0, 0
            statuses = {"2xx": n2, "3xx": n3, "4xx": n4, "5xx": n5, "xxx": nx}
            samples = min(size, cfg.latency_samples_per_group)
            weight, heavier = divmod(size, samples)      # integer weights summing to size
            scale = latency_scale * self.routes.app_scale(app_id)
            for i in range(samples):
                seconds = self.latency.sample(scale)
                self.all.observe(now, seconds, weight + (i < heavier))
                if tag is not None:
                    tag.observe(now, seconds, weight + (i < heavier))
        self.all.count(now, size, statuses)
        if tag is not None:
            tag.count(now, size, statuses)
        if self._log_tokens >= 1.0:
            self._log_tokens -= 1.0
            self._access_log(now, endpoint, statuses)

    def _tag(self, component: str) -> HttpMetric | None:
        if not component:
            return None
        metric = self.tags.get(component)
        if metric is None and len(self.tags) < self.config.max_component_tags:
            metric = self.tags[component] = HttpMetric(self.clock(), self.config.latency_window)
        return metric

    def _access_log(self, now: float, endpoint: Endpoint, statuses: dict[str, int]) -> None:
        rng = self.rng
        if endpoint.dead:
            code, seconds = 502, rng.uniform(0.0005, 0.003)
        else:
            classes = [c for c, n in statuses.items() if n]
            status_class = rng.choices(classes, weights=[statuses[c] for c in classes])[0]
            code = rng.choice(STATUS_CODES[status_class])
            seconds = self.latency.sample(self.routes.app_scale(endpoint.app_id))
        uri = min(endpoint.uris) if endpoint.uris else "-"
        client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        stamp = datetime.fromtimestamp(now, UTC).strftime("%d/%m/%Y:%H:%M:%S.%f")[:-3]
        method = "POST" if rng.random() < 0.15 else "GET"
        line = (f'{uri} - [{stamp} +0000] "{method} {rng.choice(PATHS)} HTTP/1.1" {code} '
                f'{0 if method == "GET" else rng.randrange(100, 4000)} '
                f'{rng.randrange(200, 60000)} "-" "{rng.choice(AGENTS)}" '
                f'{client}:{rng.randrange(1024, 65536)} x_forwarded_for:"{client}" '
                f'vcap_request_id:{guid(rng)} response_time:{seconds:.6f} '
                f'app_id:{endpoint.app_id}')
        self.access_log_lines += 1
        self.component.log.info("{}", line)

    # -- varz ------------------------------------------------------------------------------

    def refresh(self, varz: dict[str, Any]) -> None:
        now = self.clock()
        metric = self.all.to_varz(now)
        varz.update(metric)
        varz.update(
            requests_per_sec=metric["rate"][0],
            tags={"component": {name: m.to_varz(now) for name, m in sorted(self.tags.items())}},
            urls=len(self.table.uris),
            droplets=len(self.table.endpoints),
            bad_requests=self.bad_requests,
            bad_gateways=self.bad_gateways,
            top10_app_requests=self.top_apps.top(now),
            ms_since_last_registry_update=max(0, int((now - self.routes.last_update) * 1000)),
            dead_endpoints=self.table.dead,
            access_log_lines=self.access_log_lines,
            bad_messages=self.messages.bad_messages + self.routes.bad_messages,
        )
