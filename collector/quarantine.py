"""Batches a historian refused as bad data, kept with the reason instead of retried forever.

One file per output, `<quarantine_dir>/<output>.lp`: each batch is preceded by a comment line

    # 2024-05-01T12:00:00Z output=influx points=12 reason: write: HTTP 400: partial write: …

Line-protocol parsers skip `#` lines, so after fixing the cause (a field type conflict, a missing
retention policy) the file can be posted to `/write` as it is. When it grows past `max_bytes` it
is renamed to `<output>.lp.1` (replacing an older one): quarantine never fills the disk.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from fobs.collector.throttle import Every
from fobs.components.text import escape_controls


@dataclass
class QuarantineStats:
    batches: int = 0
    points: int = 0
    bytes: int = 0
    errors: int = 0                   # batches that could not be written to the file


class Quarantine:
    def __init__(self, path: str | Path, max_bytes: int, output: str) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.output = output
        self.stats = QuarantineStats()
        self._log = Every(60.0)

    def add(self, data: bytes, points: int, reason: str) -> None:
        """Keep `data` with `reason`; never raises (a failure is logged and counted)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        why = " ".join(reason.split())
        record = f"# {stamp} output={self.output} points={points} reason: {why}\n".encode()
        record += data if data.endswith(b"\n") else data + b"\n"
        self.stats.batches += 1
        self.stats.points += points
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size + len(record) > self.max_bytes:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, record)
            finally:
                os.close(fd)
        except OSError as e:
            self.stats.errors += 1
            logger.error("Output {} cannot write its quarantine file {}: {}",
                         self.output, self.path, e.strerror)
            return
        self.stats.bytes += len(record)
        if (skipped := self._log.ready()) is not None:
            logger.warning("Output {} quarantined {} batch(es) in {}; latest: {}", self.output,
                           skipped + 1, self.path, escape_controls(why))
