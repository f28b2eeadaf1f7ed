"""The buffer between a running output and its historian: the contract, and the memory buffer.

A point is *accepted* once `append` returned True. The sender reads a batch with `peek` (the same
batch until it is acknowledged), writes it, then `ack`s it, so a batch is written at least once.
A buffer is bounded by bytes: past `max_bytes` the oldest points are dropped and counted; the
batch the sender holds may be among them (`Batch.lost`), and is then counted as dropped only if
it is not written after all.

Two implementations, chosen by `SpoolConfig.strategy`: the disk spool
(`fobs.collector.spool.DiskSpool`, which survives a `kill -9` of the collector) and
`MemorySpool` below (lost on restart; for the file historian, which is local).
`fobs.collector.spool.open_spool` picks one.
"""

from __future__ import annotations

import collections
import time
from dataclasses import asdict, dataclass, replace
from typing import Literal, Protocol

from loguru import logger

from fobs.components.config import ConfigError, positive

DEFAULT_MAX_BYTES = 256 * 1024 * 1024                # disk
DEFAULT_MEMORY_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
DEFAULT_FSYNC_INTERVAL = 1.0

Fsync = Literal["always", "interval", "never"]


@dataclass(frozen=True)
class SpoolConfig:
    """[outputs.<kind>.spool] — the buffer in front of one historian."""

    # "default": disk for network historians, memory for the file historian (it is local);
    # a memory buffer is lost on restart
    strategy: Literal["default", "disk", "memory"] = "default"
    max_bytes: int = 0                 # bound on disk (memory) use; 0 = 256 MiB (64 MiB)
    segment_bytes: int = DEFAULT_SEGMENT_BYTES        # segment size = granularity of drops
    fsync: Fsync = "interval"
    fsync_interval: float = DEFAULT_FSYNC_INTERVAL

    def validate(self) -> None:
        if self.max_bytes < 0:
            raise ConfigError(f"max_bytes: must be 0 (the default) or more, got {self.max_bytes}")
        positive(self.segment_bytes, "segment_bytes")
        positive(self.fsync_interval, "fsync_interval")
        limit = self.resolved("memory" if self.strategy == "memory" else "disk").max_bytes
        if self.strategy != "memory" and self.segment_bytes * 4 > limit:
            raise ConfigError(f"segment_bytes: must be at most a quarter of max_bytes "
                              f"({limit // 4}), got {self.segment_bytes}")

    def resolved(self, default: Literal["disk", "memory"]) -> SpoolConfig:
        """This config with the strategy and max_bytes defaults filled in."""
        strategy = default if self.strategy == "default" else self.strategy
        limit = self.max_bytes or (DEFAULT_MAX_BYTES if strategy == "disk"
                                   else DEFAULT_MEMORY_MAX_BYTES)
        return replace(self, strategy=strategy, max_bytes=limit)


@dataclass(eq=False)
class Batch:
    """Consecutive records handed to the sender; `lost` when dropped from the spool meanwhile."""

    data: bytes
    points: int
    appended_ns: int                  # when its first record was appended
    seq: int = 0                      # disk: the segment and the offset just after the batch
    end: int = 0
    records: int = 0
    lost: bool = False
    sent: int = 0                     # bytes from the front already settled (a split batch)


@dataclass
class SpoolStats:
    pending_points: int = 0           # accepted, not yet acknowledged
    pending_bytes: int = 0
    oldest_age_s: float = 0.0         # age of the oldest pending point
    appended_points: int = 0
    dropped_points: int = 0           # overflow: oldest dropped for max_bytes
    dropped_bytes: int = 0
    refused_points: int = 0           # one append larger than the spool, or a write error
    torn_records: int = 0             # cut short by a crash (found at start)
    corrupt_points: int = 0           # in damaged records (bad CRC, magic or length)
    corrupt_records: int = 0          # damaged stretches skipped to the next whole record
    segments: int = 0
    fsyncs: int = 0
    fsync_errors: int = 0             # fsync calls that failed (data may not be on disk)
    cursor_errors: int = 0            # read positions that could not be persisted

    def varz(self) -> dict[str, int | float]:
        return asdict(self)

    def fill_pending(self, pending: tuple[int, int, int]) -> SpoolStats:
        """These stats with the pending counts and the oldest point's age from `pending()`."""
        self.pending_points, self.pending_bytes, first = pending
        self.oldest_age_s = round(max(0.0, (time.time_ns() - first) / 1e9), 3) if first else 0.0
        return self


class Buffer(Protocol):
    """What the running output needs from a spool."""

    stats: SpoolStats

    def append(self, data: bytes, points: int) -> bool: ...
    def peek(self, max_points: int, max_bytes: int) -> Batch | None: ...
    def ack(self, batch: Batch) -> None: ...
    def pending(self) -> tuple[int, int, int]: ...
    def sync(self, force: bool = False) -> None: ...
    def refresh_stats(self) -> SpoolStats: ...
    def close(self) -> None: ...


class InFlight:
    """The one batch a sender holds: the same until acknowledged, `lost` if dropped meanwhile."""

    stats: SpoolStats
    _inflight: Batch | None

    def _held(self) -> Batch | None:
        """The batch to hand out again, or None (after counting a lost one as dropped)."""
        batch = self._inflight
        if batch is not None and batch.lost:
            self.stats.dropped_points += batch.points
            self._inflight = batch = None
        return batch

    def _settle(self, batch: Batch) -> bool:
        """Forget the held batch; True when its records still need to be released."""
        if batch is not self._inflight:
            return False
        self._inflight = None
        return not batch.lost


class MemorySpool(InFlight):
    """The same contract in memory, bounded by bytes (for the file historian: it is local)."""

    def __init__(self, config: SpoolConfig = SpoolConfig(), name: str = "") -> None:
        self.name = name
        self.config = config.resolved("memory")
        self.stats = SpoolStats()
        self._records: collections.deque[tuple[bytes, int, int]] = collections.deque()
        self._bytes = 0
        self._points = 0
        self._inflight: Batch | None = None

    def append(self, data: bytes, points: int) -> bool:
        if not data or points <= 0:
            return True
        if len(data) > self.config.max_bytes:
            self.stats.refused_points += points
            return False
        while self._bytes + len(data) > self.config.max_bytes:
            self._drop_oldest()
        self._records.append((data, points, time.time_ns()))
        self._bytes += len(data)
        self._points += points
        self.stats.appended_points += points
        return True

    def _drop_oldest(self) -> None:
        inflight = self._inflight
        if inflight is not None and not inflight.lost:
            inflight.lost = True               # its records are the oldest: they all go now,
            for _ in range(inflight.records):  # counted if it is not written after all
                self._pop()
            self.stats.dropped_bytes += len(inflight.data)
            logger.warning("Memory buffer {} is full: dropped the oldest {} points",
                           self.name, inflight.points)
            return
        data, points = self._pop()
        self.stats.dropped_points += points
        self.stats.dropped_bytes += len(data)
        logger.warning("Memory buffer {} is full: dropped the oldest {} points", self.name, points)

    def peek(self, max_points: int, max_bytes: int) -> Batch | None:
        if (held := self._held()) is not None:
            return held
        if not self._records:
            return None
        payloads: list[bytes] = []
        points = total = 0
        for data, n, _ in self._records:
            if payloads and (points + n > max_points or total + len(data) > max_bytes):
                break
            payloads.append(data)
            points += n
            total += len(data)
        self._inflight = Batch(b"".join(payloads), points, self._records[0][2],
                               records=len(payloads))
        return self._inflight

    def ack(self, batch: Batch) -> None:
        if not self._settle(batch):
            return
        for _ in range(batch.records):
            self._pop()

    def _pop(self) -> tuple[bytes, int]:
        data, points, _ = self._records.popleft()
        self._bytes -= len(data)
        self._points -= points
        return data, points

    def sync(self, force: bool = False) -> None:
        pass

    def pending(self) -> tuple[int, int, int]:
        return self._points, self._bytes, self._records[0][2] if self._records else 0

    def refresh_stats(self) -> SpoolStats:
        return self.stats.fill_pending(self.pending())

    def close(self) -> None:
        if self._points:
            logger.warning("Memory buffer {} closed with {} unwritten points", self.name,
                           self._points)
