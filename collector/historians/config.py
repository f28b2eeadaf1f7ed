"""The `[outputs]` config section: historians, and how each output batches, retries and spools.

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

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Union
from urllib.parse import urlsplit

from fobs.collector.spool import SpoolConfig
from fobs.components.config import ConfigError, positive

DEFAULT_SPOOL_DIR = "/var/lib/fobs/collector/spool"
DEFAULT_BATCH_SIZE = 5000
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_CLOSE_TIMEOUT = 5.0
DEFAULT_QUARANTINE_MAX_BYTES = 64 * 1024 * 1024

Kind = Literal["influxdb_v1", "influxdb_v2", "file"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class RetryConfig:
    """[outputs.<kind>.retry] — backoff after a failed write: initial, doubling, capped, ±20 %."""

    initial_delay: float = 1.0         # seconds before the first retry
    max_delay: float = 60.0            # cap of the doubling backoff (also used after FatalError)
    retry_after_max: float = 600.0     # cap on a server's Retry-After

    def validate(self) -> None:
        positive(self.initial_delay, "initial_delay")
        positive(self.max_delay, "max_delay")
        positive(self.retry_after_max, "retry_after_max")
        if self.max_delay < self.initial_delay:
            raise ConfigError(f"max_delay: must be at least initial_delay "
                              f"({self.initial_delay}), got {self.max_delay}")


@dataclass(frozen=True)
class OutputOptions:
    """Keys every output has: its name and how its running output batches and retries."""

    name: str = ""                     # "" = the kind; names the spool and quarantine files
    batch_size: int = DEFAULT_BATCH_SIZE            # points per write, at most
    batch_bytes: int = DEFAULT_BATCH_BYTES          # bytes per write, at most (before gzip)
    flush_interval: float = DEFAULT_FLUSH_INTERVAL  # a smaller batch waits at most this long
    retry: RetryConfig = field(default_factory=RetryConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)

    def validate(self) -> None:
        if self.name and not _NAME.fullmatch(self.name):
            raise ConfigError(f"name: must be 1-64 letters, digits, '_', '.' or '-' and start "
                              f"with a letter or digit, got {self.name!r}")
        positive(self.batch_size, "batch_size")
        positive(self.batch_bytes, "batch_bytes")
        positive(self.flush_interval, "flush_interval")


def _http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url: expected http://HOST:PORT or https://…, got {url!r}")


@dataclass(frozen=True)
class InfluxV1Config(OutputOptions):
    """[[outputs.influxdb_v1]] — InfluxDB 1.x `POST /write` (precision=ns)."""

    url: str = "http://127.0.0.1:8086"
    database: str = "fobs"
    retention_policy: str = ""         # "" = the database's default
    username: str = ""
    password: str = ""
    create_database: bool = True       # on "database not found": CREATE DATABASE, write again
    gzip: bool = True
    timeout: float = DEFAULT_TIMEOUT   # seconds per HTTP request

    def validate(self) -> None:
        super().validate()
        _http_url(self.url)
        positive(self.timeout, "timeout")
        if not self.database:
            raise ConfigError("database: must not be empty")


@dataclass(frozen=True)
class InfluxV2Config(OutputOptions):
    """[[outputs.influxdb_v2]] — InfluxDB 2.x `/api/v2/write` through influxdb-client."""

    url: str = "http://127.0.0.1:8086"
    org: str = ""
    bucket: str = "fobs"
    token: str = ""
    gzip: bool = True
    timeout: float = DEFAULT_TIMEOUT

    def validate(self) -> None:
        super().validate()
        _http_url(self.url)
        positive(self.timeout, "timeout")
        if not self.bucket:
            raise ConfigError("bucket: must not be empty")


@dataclass(frozen=True)
class FileConfig(OutputOptions):
    """[[outputs.file]] — line protocol appended to `path`, rotated to `path.1` … `path.<keep>`."""

    path: str = "points.lp"
    rotate_bytes: int = 64 * 1024 * 1024
    keep: int = 5                      # rotated files kept (0: the file is truncated instead)

    def validate(self) -> None:
        super().validate()
        if not self.path:
            raise ConfigError("path: must not be empty")
        positive(self.rotate_bytes, "rotate_bytes")
        if self.keep < 0:
            raise ConfigError(f"keep: must be 0 or more, got {self.keep}")


HistorianConfig = Union[InfluxV1Config, InfluxV2Config, FileConfig]


@dataclass(frozen=True)
class OutputsConfig:
    """[outputs] — every configured historian; each runs independently of the others."""

    spool_dir: str = DEFAULT_SPOOL_DIR      # one sub-directory per output, named after it
    quarantine_dir: str = ""                # "" = <spool_dir>/quarantine
    quarantine_max_bytes: int = DEFAULT_QUARANTINE_MAX_BYTES   # per output, then rotated once
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT               # final flush bound at shutdown
    influxdb_v1: tuple[InfluxV1Config, ...] = ()
    influxdb_v2: tuple[InfluxV2Config, ...] = ()
    file: tuple[FileConfig, ...] = ()

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

    def _entries(self) -> list[tuple[Kind, int, HistorianConfig]]:
        entries: list[tuple[Kind, int, HistorianConfig]] = []
        entries += [("influxdb_v1", i, c) for i, c in enumerate(self.influxdb_v1)]
        entries += [("influxdb_v2", i, c) for i, c in enumerate(self.influxdb_v2)]
        entries += [("file", i, c) for i, c in enumerate(self.file)]
        return entries

    def outputs(self) -> list[tuple[Kind, str, HistorianConfig]]:
        """(kind, resolved name, config) of every output, in config order."""
        return [(kind, cfg.name or kind, cfg) for kind, _, cfg in self._entries()]

    def quarantine_path(self) -> str:
        return self.quarantine_dir or f"{self.spool_dir.rstrip('/')}/quarantine"
