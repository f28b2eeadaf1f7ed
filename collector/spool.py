"""Buffers between the collector and its historians: a disk spool, and a memory one for files.

A point is *accepted* once `append` returned True: for the disk spool its bytes are then in the
segment file, so a `kill -9` of the collector loses nothing; whether they also survive a power
loss depends on `fsync` ("always": fsync per append and ack, ~0.1–5 ms each on this machine's
disk; "interval": at most one fsync per `fsync_interval`, so a machine crash loses at most that
much; "never": the kernel decides). The sender reads a batch with `peek` (the same batch until it
is acknowledged), writes it, then `ack`s it: the read position is persisted by an atomic rename,
so a crash between write and ack re-sends exactly that one batch (at-least-once; InfluxDB stores
a re-sent point over itself). When the spool would outgrow `max_bytes`, whole segments are dropped
oldest first, counted and logged.

Layout of a spool directory: `LOCK` (flock: one process per spool), `cursor` ("SEQ OFFSET": the
first unacknowledged byte) and segment files `<SEQ>.seg`, each a run of records:

    magic u32 | crc32 u32 | length u32 | points u32 | appended_at_ns u64 | payload (line protocol)

(little-endian; the CRC covers everything after itself). A new process appends to a new segment,
so a record torn by a crash can only be the last one of a segment: the scan at start stops there,
counts it (`torn_records`) and the bytes after it are never read. A record whose CRC does not match
when read means the rest of its segment cannot be trusted: its points are dropped and counted
(`corrupt_points`). Acknowledging moves the cursor; a segment is deleted once read to its end, so
nothing is ever rewritten.

Everything here is synchronous and runs on the event loop thread: an append is one `write(2)` of a
few KiB into the page cache (~3 µs), an ack one small rename (~0.1 ms); only `fsync="always"`
puts disk latency on the loop, which is why it is not the default.
"""

from __future__ import annotations

import collections
import fcntl
import os
import struct
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from loguru import logger

from fobs.collector.throttle import Every
from fobs.components.config import ConfigError, positive

MAGIC = 0x53424F46                                   # b"FOBS" little-endian
HEADER = struct.Struct("<IIIIQ")                     # magic, crc, length, points, appended_at_ns
DEFAULT_MAX_BYTES = 256 * 1024 * 1024                # disk
DEFAULT_MEMORY_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
DEFAULT_FSYNC_INTERVAL = 1.0

Fsync = Literal["always", "interval", "never"]


class SpoolError(Exception):
    """The spool directory cannot be used (in use by another process, not writable…)."""


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
    corrupt_points: int = 0           # after a bad CRC in a segment
    segments: int = 0
    fsyncs: int = 0

    def varz(self) -> dict[str, int | float]:
        return asdict(self)


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


class _InFlight:
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


@dataclass
class _Segment:
    seq: int
    path: Path
    end: int = 0                      # bytes of whole records
    read: int = 0                     # first unacknowledged byte
    points: int = 0                   # unacknowledged points
    first_ns: int = 0                 # appended_at of the record at `read` (0: none)
    fd: int | None = field(default=None, repr=False)


class DiskSpool(_InFlight):
    """Segmented append-only spool in one directory; see the module docstring for guarantees."""

    def __init__(self, directory: str | Path, config: SpoolConfig = SpoolConfig(),
                 name: str = "") -> None:
        self.dir = Path(directory)
        self.name = name or self.dir.name
        self.config = config = config.resolved("disk")
        self.stats = SpoolStats()
        self._segments: collections.deque[_Segment] = collections.deque()
        self._inflight: Batch | None = None
        self._disk_bytes = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        self._closed = False
        self._log = Every(60.0)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.dir / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise SpoolError(f"spool directory {self.dir}: {e.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise SpoolError(f"spool directory {self.dir} is in use by another process") from None
        try:
            self._recover()
        except OSError as e:
            os.close(self._lock)
            raise SpoolError(f"spool directory {self.dir}: {e.strerror}: {e.filename}") from None
        self._head = self._new_segment()
        self._wfd = self._open_write(self._head)

    # --- start ----------------------------------------------------------------------------------

    def _recover(self) -> None:
        seq, offset = self._read_cursor()
        for path in sorted(self.dir.glob("*.seg")):
            try:
                n = int(path.stem)
            except ValueError:
                continue
            if n < seq:
                path.unlink(missing_ok=True)
                continue
            seg = _Segment(n, path, read=offset if n == seq else 0)
            self._scan(seg)
            if seg.read >= seg.end:
                path.unlink(missing_ok=True)
                continue
            self._segments.append(seg)
            self._disk_bytes += seg.end
        if self.stats.torn_records:
            logger.warning("Spool {} found {} record(s) torn by a crash; skipped them",
                           self.name, self.stats.torn_records)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, offset = (self.dir / "cursor").read_text().split()
            return int(seq), int(offset)
        except (OSError, ValueError):
            return 0, 0

    def _scan(self, seg: _Segment) -> None:
        """Walk the record headers from `seg.read`; stop at a torn or garbled tail."""
        with open(seg.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = seg.read = min(seg.read, size)
            while offset < size:
                f.seek(offset)
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    self.stats.torn_records += 1
                    break
                magic, _, length, points, stamp = HEADER.unpack(head)
                if magic != MAGIC or offset + HEADER.size + length > size:
                    self.stats.torn_records += 1
                    break
                if not seg.points:
                    seg.first_ns = stamp
                seg.points += points
                offset += HEADER.size + length
            seg.end = offset

    def _new_segment(self) -> _Segment:
        seq = self._segments[-1].seq + 1 if self._segments else self._read_cursor()[0] + 1
        seg = _Segment(seq, self.dir / f"{seq:016d}.seg")
        self._segments.append(seg)
        return seg

    def _open_write(self, seg: _Segment) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:
            return os.open(seg.path, flags, 0o644)
        except OSError as e:
            raise SpoolError(f"spool segment {seg.path}: {e.strerror}") from None

    # --- writer ---------------------------------------------------------------------------------

    def append(self, data: bytes, points: int) -> bool:
        """Store one record; False (counted in `refused_points`) when it cannot be stored."""
        if not data or points <= 0:
            return True
        size = HEADER.size + len(data)
        try:
            if size > self.config.max_bytes - self.config.segment_bytes:
                raise SpoolError(f"a record of {size} bytes does not fit (max_bytes "
                                 f"{self.config.max_bytes})")
            self._append(data, points, size)
        except (OSError, SpoolError) as e:
            self.stats.refused_points += points
            if self._log.ready() is not None:
                logger.error("Spool {} cannot store points: {}", self.name,
                             getattr(e, "strerror", None) or e)
            return False
        self.stats.appended_points += points
        self._dirty = True
        self.sync(force=self.config.fsync == "always")
        return True

    def _append(self, data: bytes, points: int, size: int) -> None:
        while self._disk_bytes + size > self.config.max_bytes and self._disk_bytes > 0:
            self._drop_oldest()
        if self._head.end and self._head.end + size > self.config.segment_bytes:
            self._roll()
        stamp = time.time_ns()
        body = struct.pack("<IIQ", len(data), points, stamp) + data
        record = struct.pack("<II", MAGIC, zlib.crc32(body)) + body
        try:
            written = os.write(self._wfd, record)
            if written != len(record):
                raise OSError(0, f"short write to {self._head.path}")
        except OSError:
            try:                                  # no torn record in front of later appends
                os.ftruncate(self._wfd, self._head.end)
            except OSError:
                pass
            self._roll()
            raise
        if not self._head.points:
            self._head.first_ns = stamp
        self._head.end += len(record)
        self._head.points += points
        self._disk_bytes += len(record)

    def sync(self, force: bool = False) -> None:
        """fsync the segment being written when the policy says so (or `force`, unless "never").

        The sender calls this at least once a second, so with "interval" appended data is on
        disk within `fsync_interval` (+1 s) even when appends stop."""
        if not self._dirty or self.config.fsync == "never":
            return
        now = time.monotonic()
        if not force and now - self._last_sync < self.config.fsync_interval:
            return
        try:
            os.fsync(self._wfd)
            self.stats.fsyncs += 1
        except OSError as e:
            logger.error("Spool {} fsync failed: {}", self.name, e.strerror)
        self._dirty = False
        self._last_sync = now

    def _roll(self) -> None:
        """Continue in a new segment (the current one stays usable if that cannot be made)."""
        self.sync(force=True)
        seg = self._new_segment()
        try:
            fd = self._open_write(seg)
        except SpoolError:
            self._segments.pop()
            raise
        os.close(self._wfd)
        self._head, self._wfd = seg, fd

    def _drop_oldest(self) -> None:
        if self._segments[0] is self._head:
            self._roll()
        seg = self._segments.popleft()
        lost = seg.points
        inflight = self._inflight
        if inflight is not None and not inflight.lost and inflight.seq == seg.seq:
            inflight.lost = True                  # counted if it is not written after all
            lost -= inflight.points
        self.stats.dropped_points += lost
        self.stats.dropped_bytes += seg.end - seg.read
        self._remove(seg)
        front = self._segments[0]
        self._write_cursor(front.seq, front.read)
        logger.warning("Spool {} is full ({} bytes): dropped the oldest {} points",
                       self.name, self.config.max_bytes, lost)

    def _remove(self, seg: _Segment) -> None:
        if seg.fd is not None:
            os.close(seg.fd)
            seg.fd = None
        seg.path.unlink(missing_ok=True)
        self._disk_bytes -= seg.end

    # --- reader ---------------------------------------------------------------------------------

    def peek(self, max_points: int, max_bytes: int) -> Batch | None:
        """The oldest unacknowledged records (at least one, then up to the limits), or None."""
        if (held := self._held()) is not None:
            return held
        while self._segments:
            seg = self._segments[0]
            if seg.read >= seg.end:
                if seg is self._head:
                    return None
                self._segments.popleft()
                self._remove(seg)
                continue
            batch = self._read(seg, max_points, max_bytes)
            if batch is not None:
                self._inflight = batch
                return batch
        return None

    def _read(self, seg: _Segment, max_points: int, max_bytes: int) -> Batch | None:
        if seg.fd is None:
            seg.fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
        payloads: list[bytes] = []
        points = total = 0
        offset = seg.read
        while offset < seg.end:
            head = os.pread(seg.fd, HEADER.size, offset)
            if len(head) < HEADER.size:
                self._corrupt(seg, offset, points)
                break
            magic, crc, length, n, _ = HEADER.unpack(head)
            if payloads and (points + n > max_points or total + length > max_bytes):
                break
            payload = os.pread(seg.fd, length, offset + HEADER.size)
            if magic != MAGIC or zlib.crc32(head[8:] + payload) != crc:
                self._corrupt(seg, offset, points)
                break
            payloads.append(payload)
            points += n
            total += length
            offset += HEADER.size + length
        if not payloads:
            return None
        return Batch(b"".join(payloads), points, seg.first_ns, seg.seq, offset, len(payloads))

    def _corrupt(self, seg: _Segment, offset: int, points_before: int) -> None:
        """Give up on the rest of a segment after a bad record (its lengths cannot be trusted)."""
        lost = seg.points - points_before
        logger.error("Spool {} segment {} is corrupt at byte {}; dropping its remaining {} points",
                     self.name, seg.path.name, offset, lost)
        self.stats.corrupt_points += lost
        if seg is self._head:
            self._roll()
        self._disk_bytes -= seg.end - offset
        seg.end = offset
        seg.points = points_before

    def ack(self, batch: Batch) -> None:
        """The batch is written (or quarantined): move the persisted cursor past it."""
        if not self._settle(batch):
            return
        seg = self._segments[0]
        assert seg.seq == batch.seq, "an acknowledged batch is always in the front segment"
        seg.read = batch.end
        seg.points -= batch.points
        seg.first_ns = 0
        if seg.read < seg.end and seg.fd is not None:
            seg.first_ns = HEADER.unpack(os.pread(seg.fd, HEADER.size, seg.read))[4]
        self._write_cursor(seg.seq, seg.read)
        if seg.read >= seg.end and seg is not self._head:
            self._segments.popleft()
            self._remove(seg)

    def _write_cursor(self, seq: int, offset: int) -> None:
        tmp = self.dir / "cursor.tmp"
        with open(tmp, "w") as f:
            f.write(f"{seq} {offset}\n")
            if self.config.fsync == "always":
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / "cursor")

    # --- state ----------------------------------------------------------------------------------

    def pending(self) -> tuple[int, int, int]:
        """(points, bytes, appended_at_ns of the oldest) not yet acknowledged."""
        first = next((seg.first_ns for seg in self._segments if seg.points), 0)
        return (sum(seg.points for seg in self._segments),
                sum(seg.end - seg.read for seg in self._segments), first)

    def refresh_stats(self) -> SpoolStats:
        self.stats.segments = len(self._segments)
        return _fill(self.stats, self.pending())

    def close(self) -> None:
        """Sync and release the directory; unsent records stay for the next start."""
        if self._closed:
            return
        self._closed = True
        self.sync(force=True)
        os.close(self._wfd)
        for seg in self._segments:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None
        if self._head.read >= self._head.end:          # empty, or all acknowledged
            self._head.path.unlink(missing_ok=True)
        os.close(self._lock)


class MemorySpool(_InFlight):
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
        return _fill(self.stats, self.pending())

    def close(self) -> None:
        if self._points:
            logger.warning("Memory buffer {} closed with {} unwritten points", self.name,
                           self._points)


def _fill(stats: SpoolStats, pending: tuple[int, int, int]) -> SpoolStats:
    stats.pending_points, stats.pending_bytes, first = pending
    stats.oldest_age_s = round(max(0.0, (time.time_ns() - first) / 1e9), 3) if first else 0.0
    return stats


def open_spool(directory: str | Path, config: SpoolConfig, name: str,
               default: Literal["disk", "memory"] = "disk") -> Buffer:
    """The buffer `config.strategy` asks for (`default` when it says "default")."""
    if config.resolved(default).strategy == "memory":
        return MemorySpool(config, name)
    return DiskSpool(directory, config, name)
