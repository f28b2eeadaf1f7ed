"""gorouter's route table: URIs → endpoints, from `router.register` / `router.unregister`.

Endpoints are keyed by `private_instance_id` when the DEA sends one (host:port otherwise): in a
simulated fleet many DEAs share one IP, so host:port alone would collide. An endpoint not
re-registered within the stale threshold is pruned, as gorouter did. `droplet.exited` marks
an endpoint dead: the router keeps routing to it (and answering 502) until it is unregistered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
        self.endpoints.pop(endpoint.key, None)
        app = self.by_app.get(endpoint.app_id)
        if app is not None:
            app.pop(endpoint.key, None)
            if not app:
                del self.by_app[endpoint.app_id]
