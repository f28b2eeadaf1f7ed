"""What each historian needs to know: where it writes, nothing about how it is fed.

One dataclass per kind, with the historian's own keys of a `[[outputs.<kind>]]` entry (see
docs/historians.md). The keys every output has (name, batching, retry, spool) belong to the
running output (`fobs.collector.output.OutputOptions`); `fobs.collector.config` joins both into
the entry the config file holds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fobs.components.config import ConfigError, positive

DEFAULT_TIMEOUT = 5.0

Kind = Literal["influxdb_v1", "influxdb_v2", "file"]
# "auto": gzip unless the server is on this machine. Compressing at level 1 costs the collector
# ~0.9 µs a point and inflating costs the server about as much; on loopback that buys nothing
# (docs/collector.md, Performance, has the figures).
Gzip = bool | Literal["auto"]


def compresses(url: str, gzip: Gzip) -> bool:
    """Whether writes to `url` are gzipped: as configured, or for "auto" unless the host is a
    loopback address or `localhost`."""
    if gzip != "auto":
        return bool(gzip)
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:                  # a name: assume the network is real
        return True


def _http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url: expected http://HOST:PORT or https://…, got {url!r}")


@dataclass(frozen=True)
class InfluxV1Config:
    """[[outputs.influxdb_v1]] — InfluxDB 1.x `POST /write` (precision=ns)."""

    url: str = "http://127.0.0.1:8086"
    database: str = "fobs"
    retention_policy: str = ""         # "" = the database's default
    username: str = ""
    password: str = ""
    create_database: bool = True       # on "database not found": CREATE DATABASE, write again
    gzip: Gzip = "auto"                # true, false, or "auto": off for a loopback host
    timeout: float = DEFAULT_TIMEOUT   # seconds per HTTP request

    def validate(self) -> None:
        _http_url(self.url)
        positive(self.timeout, "timeout")
        if not self.database:
            raise ConfigError("database: must not be empty")


@dataclass(frozen=True)
class InfluxV2Config:
    """[[outputs.influxdb_v2]] — InfluxDB 2.x `/api/v2/write` through influxdb-client."""

    url: str = "http://127.0.0.1:8086"
    org: str = ""
    bucket: str = "fobs"
    token: str = ""
    gzip: Gzip = "auto"                # true, false, or "auto": off for a loopback host
    timeout: float = DEFAULT_TIMEOUT

    def validate(self) -> None:
        _http_url(self.url)
        positive(self.timeout, "timeout")
        if not self.bucket:
            raise ConfigError("bucket: must not be empty")


@dataclass(frozen=True)
class FileConfig:
    """[[outputs.file]] — line protocol appended to `path`, rotated to `path.1` … `path.<keep>`."""

    path: str = "points.lp"
    rotate_bytes: int = 64 * 1024 * 1024
    keep: int = 5                      # rotated files kept (0: the file is truncated instead)

    def validate(self) -> None:
        if not self.path:
            raise ConfigError("path: must not be empty")
        positive(self.rotate_bytes, "rotate_bytes")
        if self.keep < 0:
            raise ConfigError(f"keep: must be 0 or more, got {self.keep}")


HistorianConfig = InfluxV1Config | InfluxV2Config | FileConfig
