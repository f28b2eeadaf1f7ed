"""What each historian needs to know: where it writes, nothing about how it is fed.

One dataclass per kind, with the historian's own keys of a `[[outputs.<kind>]]` entry (see
docs/historians.md). The keys every output has (name, batching, retry, spool) belong to the
running output (`fobs.collector.output.OutputOptions`); `fobs.collector.config` joins both into
the entry the config file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fobs.components.config import ConfigError, positive

DEFAULT_TIMEOUT = 5.0

Kind = Literal["influxdb_v1", "influxdb_v2", "file"]


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
    gzip: bool = True
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
    gzip: bool = True
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
