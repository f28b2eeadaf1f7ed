"""The collector's TOML config: frozen dataclasses with defaults, validated before anything
connects.

Every option has a default (see `collector/fobs-collector.toml`, where a commented-out value is
the default). Cross-field rules live in `validate()` and name the dotted key, e.g. a scrape
timeout above its interval is refused as Prometheus refuses it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from fobs.collector.historians.config import (
    FileConfig,
    InfluxV1Config,
    InfluxV2Config,
    Kind,
)
from fobs.collector.output import OutputOptions
from fobs.components.config import ConfigError, host_port, load, positive, user_and_password
from fobs.components.runtime import ComponentConfig

DEFAULT_DEPLOYMENT = "untitled_dev"        # Cloud Foundry's collector default
DEFAULT_VARZ_INTERVAL = 10.0
DEFAULT_HEALTHZ_INTERVAL = 5.0
DEFAULT_TIMEOUT_CAP = 5.0                   # default timeout = min(5 s, interval)
DEFAULT_DISCOVER_INTERVAL = 60.0
DEFAULT_PRUNE_INTERVAL = 300.0
DEFAULT_HEARTBEAT_INTERVAL = 0.8   # sharding: a silent collector is out after interval × misses,
DEFAULT_HEARTBEAT_MISSES = 3       # seen within one more interval: 2.4-3.2 s, under a third of 10 s
DEFAULT_MAX_TARGETS = 10_000                # announced targets kept; past it new ones are refused
DEFAULT_MAX_TYPES = 256                     # distinct component types (a CF fleet has ~20)
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_STATUS_ADDRESS = "127.0.0.1:9190"
DEFAULT_SPOOL_DIR = "/var/lib/fobs/collector/spool"
DEFAULT_CLOSE_TIMEOUT = 5.0
DEFAULT_QUARANTINE_MAX_BYTES = 64 * 1024 * 1024
ENDPOINTS = ("varz", "healthz")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Top-level keys of older collector configs, now in [component] as in every daemon's config.
MOVED_KEYS = {"nats": "[component.nats]", "syslog": "[component.syslog]",
              "log_level": "component.log_level"}


def interval_timeout(interval: float, timeout: float) -> float:
    """The effective timeout: the configured one, or min(5 s, interval) when 0."""
    return timeout if timeout > 0 else min(DEFAULT_TIMEOUT_CAP, interval)


@dataclass(frozen=True)
class TypeScrapeConfig:
    """[scrape.types.<Type>] — per component type overrides (unset = the [scrape] value)."""

    varz_interval: float | None = None
    healthz_interval: float | None = None
    varz_timeout: float | None = None
    healthz_timeout: float | None = None
    healthz: bool | None = None

    def validate(self) -> None:
        for key in ("varz_interval", "healthz_interval", "varz_timeout", "healthz_timeout"):
            value = getattr(self, key)
            if value is not None:
                positive(value, key)


class EndpointSchedule(NamedTuple):
    """The resolved interval and timeout of one endpoint for one component type."""

    interval: float
    timeout: float


@dataclass(frozen=True)
class ScrapeConfig:
    """[scrape] — how often and how carefully targets are scraped."""

    varz_interval: float = DEFAULT_VARZ_INTERVAL
    healthz_interval: float = DEFAULT_HEALTHZ_INTERVAL
    varz_timeout: float = 0.0          # 0 = min(5 s, varz_interval)
    healthz_timeout: float = 0.0       # 0 = min(5 s, healthz_interval)
    healthz: bool = True               # scrape /healthz at all
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    first_scrape_window: float = 0.5   # a new target's first scrape comes within this
    types: dict[str, TypeScrapeConfig] = field(default_factory=dict)

    def validate(self) -> None:
        positive(self.varz_interval, "varz_interval")
        positive(self.healthz_interval, "healthz_interval")
        for key in ("varz_timeout", "healthz_timeout"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be 0 (automatic) or more, got {getattr(self, key)}")
        if self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight: must be at least 1, got {self.max_in_flight}")
        if self.max_response_bytes < 1024:
            raise ConfigError(f"max_response_bytes: must be at least 1024, "
                              f"got {self.max_response_bytes}")
        if not 0 <= self.first_scrape_window <= 1:
            raise ConfigError(f"first_scrape_window: must be between 0 and 1 s, "
                              f"got {self.first_scrape_window}")
        for endpoint in ENDPOINTS:
            self._check_timeout(None, endpoint)
        for name in self.types:
            for endpoint in ENDPOINTS:
                self._check_timeout(name, endpoint)

    def _check_timeout(self, component_type: str | None, endpoint: str) -> None:
        sched = self.schedule(component_type, endpoint)
        if sched.timeout > sched.interval:
            where = f"types.{component_type}." if component_type else ""
            raise ConfigError(
                f"{where}{endpoint}_timeout: {sched.timeout:g}s is greater than the "
                f"{endpoint} interval ({sched.interval:g}s)")

    def schedule(self, component_type: str | None, endpoint: str) -> EndpointSchedule:
        """Interval and timeout of `endpoint` for a component type (type overrides first)."""
        override = self.types.get(component_type) if component_type else None
        interval = getattr(override, f"{endpoint}_interval", None) if override else None
        timeout = getattr(override, f"{endpoint}_timeout", None) if override else None
        if interval is None:
            interval = getattr(self, f"{endpoint}_interval")
        if timeout is None:
            timeout = getattr(self, f"{endpoint}_timeout")
        return EndpointSchedule(interval, interval_timeout(interval, timeout))

    def scrapes_healthz(self, component_type: str | None) -> bool:
        override = self.types.get(component_type) if component_type else None
        if override is not None and override.healthz is not None:
            return override.healthz
        return self.healthz


@dataclass(frozen=True)
class StaticTarget:
    """[[discovery.static]] — a component that is not on NATS."""

    type: str = ""
    index: int = 0
    url: str = ""                       # http://host:port[/prefix]; /varz and /healthz appended
    credentials: tuple[str, ...] = ()   # ["user", "password"], or empty for no auth
    uuid: str = ""                      # "" = "static-<type>-<index>"

    def validate(self) -> None:
        if not self.type:
            raise ConfigError("type: a static target needs a component type")
        if self.index < 0:
            raise ConfigError(f"index: must be 0 or more, got {self.index}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url: expected http://HOST:PORT[/PATH], got {self.url!r}")
        if self.credentials and len(self.credentials) != 2:
            raise ConfigError("credentials: expected [\"user\", \"password\"]")


@dataclass(frozen=True)
class DiscoveryConfig:
    """[discovery] — where targets come from and how long they live."""

    nats: bool = True                                   # announce/discover over NATS
    discover_interval: float = DEFAULT_DISCOVER_INTERVAL
    prune_interval: float = DEFAULT_PRUNE_INTERVAL
    sharding: Literal["none", "rendezvous"] = "none"
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_misses: int = DEFAULT_HEARTBEAT_MISSES
    static: tuple[StaticTarget, ...] = ()
    allow_networks: tuple[str, ...] = ()     # CIDRs announced hosts must be in; () = any
    max_targets: int = DEFAULT_MAX_TARGETS   # announced targets; the rest refused, counted
    max_types: int = DEFAULT_MAX_TYPES       # distinct announced types; the rest refused

    def validate(self) -> None:
        positive(self.discover_interval, "discover_interval")
        positive(self.prune_interval, "prune_interval")
        positive(self.heartbeat_interval, "heartbeat_interval")
        if self.heartbeat_misses < 1:
            raise ConfigError(f"heartbeat_misses: must be at least 1, got {self.heartbeat_misses}")
        for cap in ("max_targets", "max_types"):
            if getattr(self, cap) < 1:
                raise ConfigError(f"{cap}: must be at least 1, got {getattr(self, cap)}")
        self.networks()
        if self.prune_interval < self.discover_interval:
            raise ConfigError(f"prune_interval: {self.prune_interval:g}s is shorter than "
                              f"discover_interval ({self.discover_interval:g}s): every target "
                              f"would be pruned between two discover rounds")
        seen: set[tuple[str, int]] = set()
        for i, target in enumerate(self.static):
            key = (target.type, target.index)
            if key in seen:
                raise ConfigError(f"static[{i}]: duplicate static target {target.type}/"
                                  f"{target.index}")
            seen.add(key)

    def networks(self) -> tuple[IPNetwork, ...]:
        """`allow_networks` parsed (host bits may be set: "10.0.0.7/8" is 10.0.0.0/8)."""
        parsed = []
        for i, text in enumerate(self.allow_networks):
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ConfigError(f"allow_networks[{i}]: {text!r} is not a network like "
                                  f"10.0.0.0/8 or fd00::/8") from None
        return tuple(parsed)


@dataclass(frozen=True)
class StatusConfig:
    """[status] — the collector's own HTTP status API (targets, health)."""

    address: str = DEFAULT_STATUS_ADDRESS   # HOST:PORT; "" = no status server
    user: str = ""                          # basic auth; "" = no auth
    password: str = ""

    def validate(self) -> None:
        if self.address:
            host_port(self.address, "address")
        user_and_password(self.user, self.password)


# One `[[outputs.<kind>]]` entry: the historian's keys and its running output's keys in one
# table (the file's format); each half keeps its own meaning and validation.

@dataclass(frozen=True)
class InfluxV1OutputConfig(OutputOptions, InfluxV1Config):
    """[[outputs.influxdb_v1]] — an InfluxDB 1.x historian and its running output."""

    def validate(self) -> None:
        OutputOptions.validate(self)
        InfluxV1Config.validate(self)


@dataclass(frozen=True)
class InfluxV2OutputConfig(OutputOptions, InfluxV2Config):
    """[[outputs.influxdb_v2]] — an InfluxDB 2.x historian and its running output."""

    def validate(self) -> None:
        OutputOptions.validate(self)
        InfluxV2Config.validate(self)


@dataclass(frozen=True)
class FileOutputConfig(OutputOptions, FileConfig):
    """[[outputs.file]] — a line-protocol file and its running output."""

    def validate(self) -> None:
        OutputOptions.validate(self)
        FileConfig.validate(self)


OutputConfig = InfluxV1OutputConfig | InfluxV2OutputConfig | FileOutputConfig


@dataclass(frozen=True)
class OutputsConfig:
    """[outputs] — every configured historian; each runs independently of the others.

    TOML shape (every key has a default; see docs/historians.md):

        [outputs]
        spool_dir = "/var/lib/fobs/collector/spool"

        [[outputs.influxdb_v1]]            # InfluxDB 1.x /write (our own aiohttp client)
        url = "http://influx:8086"
        database = "fobs"

        [[outputs.influxdb_v2]]            # InfluxDB 2.x API through influxdb-client
        url = "http://influx2:8086"
        org = "ops"
        bucket = "fobs"
        token = "..."
        [outputs.influxdb_v2.retry]        # sub-tables apply to the output above them
        max_delay = 30.0

        [[outputs.file]]                   # line protocol appended to a file, rotated by size
        path = "/var/log/fobs/points.lp"
    """

    spool_dir: str = DEFAULT_SPOOL_DIR      # one sub-directory per output, named after it
    quarantine_dir: str = ""                # "" = <spool_dir>/quarantine
    quarantine_max_bytes: int = DEFAULT_QUARANTINE_MAX_BYTES   # per output, then rotated once
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT               # final flush bound at shutdown
    influxdb_v1: tuple[InfluxV1OutputConfig, ...] = ()
    influxdb_v2: tuple[InfluxV2OutputConfig, ...] = ()
    file: tuple[FileOutputConfig, ...] = ()

    def validate(self) -> None:
        positive(self.quarantine_max_bytes, "quarantine_max_bytes")
        positive(self.close_timeout, "close_timeout")
        seen: dict[str, str] = {}
        for kind, index, cfg in self._entries():
            name = cfg.name or kind
            if name in seen:
                raise ConfigError(f"{kind}[{index}].name: output name {name!r} is already used "
                                  f"by {seen[name]}; give each output its own name")
            seen[name] = f"{kind}[{index}]"

    def _entries(self) -> list[tuple[Kind, int, OutputConfig]]:
        entries: list[tuple[Kind, int, OutputConfig]] = []
        entries += [("influxdb_v1", i, c) for i, c in enumerate(self.influxdb_v1)]
        entries += [("influxdb_v2", i, c) for i, c in enumerate(self.influxdb_v2)]
        entries += [("file", i, c) for i, c in enumerate(self.file)]
        return entries

    def outputs(self) -> list[tuple[Kind, str, OutputConfig]]:
        """(kind, resolved name, config) of every output, in config order."""
        return [(kind, cfg.name or kind, cfg) for kind, _, cfg in self._entries()]

    def quarantine_path(self) -> str:
        return self.quarantine_dir or f"{self.spool_dir.rstrip('/')}/quarantine"


@dataclass(frozen=True)
class CollectorConfig:
    """The whole collector config file."""

    deployment: str = DEFAULT_DEPLOYMENT     # `deployment` tag on every point
    nats_ping_interval: float = 10.0         # NATS round-trip probe, reported in varz (ms)
    stop_timeout: float = 5.0                # SIGTERM: how long in-flight scrapes may finish
    component: ComponentConfig = field(default_factory=ComponentConfig)  # type Collector
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    scrape: ScrapeConfig = field(default_factory=ScrapeConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)

    def validate(self) -> None:
        if not self.deployment:
            raise ConfigError("deployment: must not be empty")
        positive(self.nats_ping_interval, "nats_ping_interval")
        positive(self.stop_timeout, "stop_timeout")


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> CollectorConfig:
    """`fobs.components.config.load` of a CollectorConfig, telling where an old top-level key
    went."""
    try:
        return load(CollectorConfig, path, overrides)
    except ConfigError as e:
        old = re.search(r"unknown key '(\w+)' in the top level", str(e))
        if old is None or old[1] not in MOVED_KEYS:
            raise
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}unknown key {old[1]!r} in the top level: it moved to "
                          f"{MOVED_KEYS[old[1]]}") from None
