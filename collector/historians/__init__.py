"""Historians: where points are stored. Each implements only `connect`, `write` and `close`.

A historian never buffers, retries or counts: the running output
(`fobs.collector.output.Output`) owns that. `write` takes newline-terminated line protocol and
either returns (stored) or raises one of the outcomes in `fobs.collector.historians.errors`,
translated from its transport's exceptions.
"""

from __future__ import annotations

from typing import Protocol

from fobs.collector.historians.config import (
    FileConfig,
    HistorianConfig,
    InfluxV1Config,
    InfluxV2Config,
    Kind,
)
from fobs.collector.historians.errors import (
    FatalError,
    HistorianError,
    PartialWriteError,
    RejectError,
    TooLargeError,
    WriteError,
)

__all__ = [
    "FatalError", "FileConfig", "Historian", "HistorianError", "InfluxV1Config", "InfluxV2Config",
    "PartialWriteError", "RejectError", "TooLargeError", "WriteError", "create",
]


class Historian(Protocol):
    name: str

    async def connect(self) -> None:
        """Prepare clients; must not fail because the server is down (writes will retry)."""

    async def write(self, data: bytes) -> None:
        """Store newline-terminated line protocol, or raise a HistorianError subclass."""

    async def close(self) -> None:
        """Release connections and files."""


def create(kind: Kind, config: HistorianConfig, name: str) -> Historian:
    """The historian for one `[[outputs.<kind>]]` entry."""
    if kind == "influxdb_v1":
        from fobs.collector.historians.influxdb_v1 import InfluxV1
        assert isinstance(config, InfluxV1Config)
        return InfluxV1(config, name)
    if kind == "influxdb_v2":
        from fobs.collector.historians.influxdb_v2 import InfluxV2
        assert isinstance(config, InfluxV2Config)
        return InfluxV2(config, name)
    from fobs.collector.historians.file import FileHistorian
    assert isinstance(config, FileConfig)
    return FileHistorian(config, name)
