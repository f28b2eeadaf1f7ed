"""What the collector knows about one component: identity from discovery, health from scrapes.

`Discovered` is the immutable announcement (what discovery says); `Target` is the registry's
living record of it, keyed by uuid, whose scrape state changes only through `report()` — the
same bookkeeping Prometheus keeps per target for its `/api/v1/targets` page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from yarl import URL

from fobs.components.auth import basic_auth_header

Health = Literal["unknown", "up", "down"]


@dataclass(frozen=True, slots=True)
class Discovered:
    """A component as announced over NATS or configured as a static target."""

    uuid: str
    type: str
    index: int
    host: str                                  # "ip:port" of its /varz server
    credentials: tuple[str, str] | None = None
    source: str = "nats"                       # "nats" | "static"
    scheme: str = "http"
    path_prefix: str = ""                      # static targets may sit under a path
    start: datetime | None = None              # the component's announced start time

    @property
    def ip(self) -> str:
        host, sep, _ = self.host.rpartition(":")
        return (host if sep else self.host).strip("[]")

    def url(self, endpoint: str) -> str:
        return f"{self.scheme}://{self.host}{self.path_prefix}/{endpoint}"

    def same_endpoint(self, other: Discovered) -> bool:
        """Whether scraping `other` is scraping the same thing (else: reschedule)."""
        return (self.host, self.credentials, self.scheme, self.path_prefix, self.type,
                self.index) == (other.host, other.credentials, other.scheme,
                                other.path_prefix, other.type, other.index)


@dataclass(slots=True)
class EndpointState:
    """The last scrape of one endpoint (varz or healthz) of a target."""

    health: Health = "unknown"
    last_error: str = ""                # what went wrong in the last scrape, "" when it worked
    error_class: str = ""               # its class (scrape.error vocabulary)
    last_scrape: float = 0.0            # wall clock (epoch s) of the last scrape's start
    last_duration: float = 0.0          # seconds
    healthy: bool | None = None         # healthz verdict, None until known
    scrapes: int = 0
    failures: int = 0


@dataclass(slots=True)
class Target:
    """A registered component and the state of its scrapes."""

    info: Discovered
    deployment: str
    role: str | None = None
    last_seen: float = field(default_factory=time.monotonic)   # last announce/discover reply
    first_seen: float = field(default_factory=time.time)
    owned: bool = True                  # this collector scrapes it (sharding)
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    auth_header: str | None = None
    headers: dict[str, str] | None = None      # request headers, built once
    urls: dict[str, URL] = field(default_factory=dict)   # parsed once, not per request

    def __post_init__(self) -> None:
        self.update(self.info)

    @property
    def uuid(self) -> str:
        return self.info.uuid

    def update(self, info: Discovered) -> None:
        """Take a new announcement of the same uuid (the host may have moved)."""
        self.info = info
        tags = {"deployment": self.deployment, "job": info.type, "index": str(info.index),
                "ip": info.ip}
        if self.role:
            tags["role"] = self.role
        self.tags = tags
        self.auth_header = basic_auth_header(*info.credentials) if info.credentials else None
        self.headers = {"Authorization": self.auth_header} if self.auth_header else None
        self.urls = {}

    def url(self, endpoint: str) -> URL:
        url = self.urls.get(endpoint)
        if url is None:
            url = self.urls[endpoint] = URL(self.info.url(endpoint))
        return url

    def endpoint(self, name: str) -> EndpointState:
        state = self.endpoints.get(name)
        if state is None:
            state = self.endpoints[name] = EndpointState()
        return state

    def report(self, endpoint: str, *, error: str, message: str = "", started: float,
               duration: float, healthy: bool | None = None) -> None:
        """Record one scrape's outcome: `error` is "" on success, else its class."""
        state = self.endpoint(endpoint)
        state.health = "down" if error else "up"
        state.error_class = error
        state.last_error = f"{error}: {message}" if error and message else error
        state.last_scrape = started
        state.last_duration = duration
        state.scrapes += 1
        if error:
            state.failures += 1
        if endpoint == "healthz":
            state.healthy = bool(healthy) and not error

    @property
    def health(self) -> Health:
        """The target's health: that of its varz scrape (healthz says nothing about varz)."""
        state = self.endpoints.get("varz")
        return state.health if state else "unknown"

    @property
    def labels(self) -> dict[str, str]:
        """Prometheus-style target labels."""
        labels = {"job": self.info.type, "index": str(self.info.index),
                  "instance": self.info.host, "deployment": self.deployment}
        if self.role:
            labels["role"] = self.role
        return labels
