"""gorouter's route table: URIs → endpoints, from `router.register` / `router.unregister`.

Endpoints are keyed by `private_instance_id` when the DEA sends one (host:port otherwise): in a
simulated fleet many DEAs share one IP, so host:port alone would collide. An endpoint not
re-registered within the stale threshold is pruned, as gorouter did. `droplet.exited` marks
an endpoint dead: the router keeps routing to it (and answering 502) until it is unregistered.
`RouteFeed` wraps the table with what every router derives from it alike.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from fobs.components.sim.clock import Clock
from fobs.components.sim.fanout import Handler
from fobs.components.sim.feed import Feed
from fobs.components.sim.traffic import Popularity

PRUNE_EVERY = 5.0


@dataclass
class Endpoint:
    key: str
    host: str
    port: int
    app_id: str
    component: str          # the `component` route tag ("dea-3"), "" when untagged
    seen: float
    uris: set[str] = field(default_factory=set)
    dead: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class RouteTable:
    def __init__(self) -> None:
        self.uris: dict[str, dict[str, Endpoint]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.by_app: dict[str, dict[str, Endpoint]] = {}
        self.version = 0            # bumped when the set of apps or endpoints changes
        self.dead = 0               # endpoints marked dead

    def register(self, msg: dict[str, Any], now: float) -> None:
        """Add or refresh the endpoint; raises ValueError on a malformed message."""
        key, host, port, uris = self._parse(msg)
        app_id = str(msg.get("app", ""))
        tags = msg.get("tags") or {}
        component = str(tags.get("component", "")) if isinstance(tags, dict) else ""
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            endpoint = Endpoint(key, host, port, app_id, component, now)
            self.endpoints[key] = endpoint
            self.by_app.setdefault(app_id, {})[key] = endpoint
            self.version += 1
        endpoint.seen = now
        for uri in uris:
            if uri not in endpoint.uris:
                endpoint.uris.add(uri)
                self.uris.setdefault(uri, {})[key] = endpoint
                self.version += 1

    def unregister(self, msg: dict[str, Any]) -> bool:
        key, _, _, uris = self._parse(msg)
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            return False
        for uri in uris or list(endpoint.uris):
            self._drop_uri(endpoint, uri)
        if not endpoint.uris:
            self._remove(endpoint)
        self.version += 1
        return True

    def mark_dead(self, private_instance_id: str) -> bool:
        endpoint = self.endpoints.get(private_instance_id)
        if endpoint is None or endpoint.dead:
            return False
        endpoint.dead = True
        self.dead += 1
        return True

    def prune(self, now: float, stale_after: float) -> int:
        stale = [e for e in self.endpoints.values() if now - e.seen > stale_after]
        for endpoint in stale:
            for uri in list(endpoint.uris):
                self._drop_uri(endpoint, uri)
            self._remove(endpoint)
        if stale:
            self.version += 1
        return len(stale)

    def routes(self) -> dict[str, list[str]]:
        """gorouter's /routes: URI → ["host:port", ...]."""
        return {uri: [e.address for e in eps.values()] for uri, eps in self.uris.items()}

    def _parse(self, msg: dict[str, Any]) -> tuple[str, str, int, list[str]]:
        host, port, uris = msg["host"], msg["port"], msg.get("uris") or []
        if not isinstance(host, str) or not isinstance(port, int) or not isinstance(uris, list):
            raise ValueError("host must be a string, port an integer and uris a list")
        key = msg.get("private_instance_id") or f"{host}:{port}"
        return str(key), host, port, [str(u).lower() for u in uris]

    def _drop_uri(self, endpoint: Endpoint, uri: str) -> None:
        endpoint.uris.discard(uri)
        eps = self.uris.get(uri)
        if eps is not None:
            eps.pop(endpoint.key, None)
            if not eps:
                del self.uris[uri]

    def _remove(self, endpoint: Endpoint) -> None:
        if self.endpoints.pop(endpoint.key, None) is not None and endpoint.dead:
            self.dead -= 1
        app = self.by_app.get(endpoint.app_id)
        if app is not None:
            app.pop(endpoint.key, None)
            if not app:
                del self.by_app[endpoint.app_id]


class RouteFeed(Feed):
    """What routers learn from the DEAs: the table, when it last changed, app popularity and
    each app's latency scale (a slow app is slow whichever router sends to it)."""

    key = "router.routes"

    def __init__(self, clock: Clock, popularity_exponent: float = 1.1,
                 stale_after: float = 120.0) -> None:
        super().__init__()
        self.clock = clock
        self.table = RouteTable()
        self.stale_after = stale_after
        self.popularity = Popularity(popularity_exponent)
        self.last_update = clock()
        self._popularity_version = -1
        self._next_prune = self.last_update + PRUNE_EVERY
        self._scales: dict[str, float] = {}

    def handlers(self) -> dict[str, Handler]:
        return {"router.register": self.on_register, "router.unregister": self.on_unregister,
                "droplet.exited": self.on_exited}

    def on_register(self, payload: dict[str, Any], reply: str) -> None:
        now = self.clock()
        self.table.register(payload, now)
        self.last_update = now

    def on_unregister(self, payload: dict[str, Any], reply: str) -> None:
        if self.table.unregister(payload):
            self.last_update = self.clock()

    def on_exited(self, payload: dict[str, Any], reply: str) -> None:
        if payload.get("reason") == "CRASHED" and payload.get("private_instance_id"):
            self.table.mark_dead(str(payload["private_instance_id"]))

    def refresh(self, now: float) -> None:
        """Prune stale routes (every few seconds) and re-rank apps after table changes."""
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            if self.table.prune(now, self.stale_after):
                self.last_update = now
        if self.table.version != self._popularity_version:
            self._popularity_version = self.table.version
            self.popularity.set_keys(self.table.by_app)
            self._scales = {a: s for a, s in self._scales.items() if a in self.table.by_app}

    def app_scale(self, app_id: str) -> float:
        """A lognormal factor (median 1, sigma 0.5) fixed per app by a hash of its id."""
        scale = self._scales.get(app_id)
        if scale is None:
            digest = hashlib.blake2b(app_id.encode(), digest_size=8).digest()
            u = (int.from_bytes(digest, "big") + 0.5) / 2.0 ** 64
            scale = self._scales[app_id] = math.exp(0.5 * NormalDist().inv_cdf(u))
        return scale
