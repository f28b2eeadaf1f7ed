"""The disk spool: the buffer in front of a network historian, in segment files on disk.

A point is *accepted* once `append` returned True: its bytes are then in the segment file, so a
`kill -9` of the collector loses nothing; whether they also survive a power loss depends on
`fsync` ("always": fsync per append and ack, ~0.1–5 ms each on this machine's disk; "interval":
at most one fsync per `fsync_interval`, so a machine crash loses at most that much; "never": the
kernel decides). The sender reads a batch with `peek` (the same batch until it is
acknowledged), writes it, then `ack`s it: the read position is persisted by an atomic rename, so
a crash between write and ack re-sends exactly that one batch (at-least-once; InfluxDB stores a
re-sent point over itself). When the spool would outgrow `max_bytes`, whole segments are dropped
oldest first, counted and logged.

The files and their record format are `fobs.collector.segments`'. A record torn by a crash is
found by the scan at start, counted (`torn_records`) and skipped. A damaged record (bad CRC,
magic or length when read) costs only itself: reading resumes at the next whole record, the
stretch is counted (`corrupt_records`, and its points in `corrupt_points`). Acknowledging moves
the cursor; a segment is deleted once read to its end, so nothing is ever rewritten.

A refused append (ENOSPC, EIO, a short write) is cut off the head segment again and the head is
reused, so a full disk costs no new files; only when the cut itself fails does the spool go on
in a new segment. With `fsync = "always"` the directory is fsynced after a new segment and after
each cursor rename, so both survive a power loss. A failed fsync is counted (`fsync_errors`)
and logged at most once a minute: the data may not be on disk, and nothing else would say so.

Everything here is synchronous and runs on the event loop thread: an append is one `write(2)` of a
few KiB into the page cache (~3 µs), an ack one small rename (~0.1 ms); only `fsync="always"`
puts disk latency on the loop, which is why it is not the default.
"""

from __future__ import annotations

import collections
import fcntl
import os
import time
from pathlib import Path
from typing import Literal

from loguru import logger

from fobs.collector.buffer import Batch, Buffer, InFlight, MemorySpool, SpoolConfig, SpoolStats
from fobs.collector.errors import SpoolError
from fobs.collector.segments import (
    HEADER,
    Segment,
    encode,
    read_cursor,
    read_records,
    scan,
    stamp_at,
    sync_directory,
    write_cursor,
)
from fobs.collector.throttle import Every

DEFAULT_CONFIG = SpoolConfig()


class DiskSpool(InFlight):
    """Segmented append-only spool in one directory; see the module docstring for guarantees."""

    def __init__(self, directory: str | Path, config: SpoolConfig = DEFAULT_CONFIG,
                 name: str = "") -> None:
        self.dir = Path(directory)
        self.name = name or self.dir.name
        self.config = config = config.resolved("disk")
        self.stats = SpoolStats()
        self._segments: collections.deque[Segment] = collections.deque()
        self._inflight: Batch | None = None
        self._disk_bytes = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        self._closed = False
        self._log = Every(60.0)
        self._fsync_log = Every(60.0)
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
        seq, offset = read_cursor(self.dir)
        for path in sorted(self.dir.glob("*.seg")):
            try:
                n = int(path.stem)
            except ValueError:
                continue
            if n < seq:
                path.unlink(missing_ok=True)
                continue
            seg = Segment(n, path, read=offset if n == seq else 0)
            if scan(seg):
                self.stats.torn_records += 1
            if seg.read >= seg.end:
                path.unlink(missing_ok=True)
                continue
            self._segments.append(seg)
            self._disk_bytes += seg.end
        if self.stats.torn_records:
            logger.warning("Spool {} found {} record(s) torn by a crash; skipped them",
                           self.name, self.stats.torn_records)

    def _new_segment(self) -> Segment:
        seq = self._segments[-1].seq + 1 if self._segments else read_cursor(self.dir)[0] + 1
        seg = Segment.new(self.dir, seq)
        self._segments.append(seg)
        return seg

    def _open_write(self, seg: Segment) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(seg.path, flags, 0o644)
        except OSError as e:
            raise SpoolError(f"spool segment {seg.path}: {e.strerror}") from None
        if self.config.fsync == "always":
            try:
                sync_directory(self.dir, self._fsync)   # the new file's name is on disk too
            except OSError as e:                        # opening the directory failed
                self._fsync_failed(e)
        return fd

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
        record = encode(data, points, stamp)
        try:
            written = os.write(self._wfd, record)
            if written != len(record):
                raise OSError(0, f"short write to {self._head.path}")
        except OSError:
            try:                                  # no torn record in front of later appends
                os.ftruncate(self._wfd, self._head.end)
            except OSError:
                self._roll()                      # it cannot be cut off: go on in a new one
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
        self._fsync(self._wfd)
        self._dirty = False
        self._last_sync = now

    def _fsync(self, fd: int) -> bool:
        """fsync `fd`, counting it; a failure is counted and logged, never raised."""
        try:
            os.fsync(fd)
        except OSError as e:
            self._fsync_failed(e)
            return False
        self.stats.fsyncs += 1
        return True

    def _fsync_failed(self, e: OSError) -> None:
        self.stats.fsync_errors += 1
        if (skipped := self._fsync_log.ready()) is not None:
            logger.error("Spool {} fsync failed: {} ({} more failures not logged)", self.name,
                         e.strerror or e, skipped)

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
        self._write_cursor(front)
        logger.warning("Spool {} is full ({} bytes): dropped the oldest {} points",
                       self.name, self.config.max_bytes, lost)

    def _remove(self, seg: Segment) -> None:
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

    def _read(self, seg: Segment, max_points: int, max_bytes: int) -> Batch | None:
        found = read_records(seg, max_points, max_bytes)
        if found.damaged:
            self.stats.corrupt_records += found.damaged
            self.stats.corrupt_points += found.lost_points
            logger.error("Spool {} segment {}: skipped {} damaged record(s) before byte {} "
                         "({} points lost); reading goes on with the next whole record",
                         self.name, seg.path.name, found.damaged, found.end, found.lost_points)
        if not found.payloads:
            if found.end > seg.read:              # only damage up to here: step over it
                seg.read = found.end
                seg.first_ns = stamp_at(seg)
                self._write_cursor(seg)
            return None
        return Batch(b"".join(found.payloads), found.points, seg.first_ns, seg.seq, found.end,
                     len(found.payloads))

    def ack(self, batch: Batch) -> None:
        """The batch is written (or quarantined): move the persisted cursor past it."""
        if not self._settle(batch):
            return
        seg = self._segments[0]
        assert seg.seq == batch.seq, "an acknowledged batch is always in the front segment"
        seg.read = batch.end
        seg.points -= batch.points
        seg.first_ns = stamp_at(seg)
        self._write_cursor(seg)
        if seg.read >= seg.end and seg is not self._head:
            self._segments.popleft()
            self._remove(seg)

    def _write_cursor(self, front: Segment) -> None:
        """Persist the read position; when that fails (a full disk) the spool goes on from memory
        — acknowledged segments are still deleted, which frees the space — and a restart
        re-sends from the last cursor that was written (at-least-once)."""
        try:
            write_cursor(self.dir, front.seq, front.read,
                         self._fsync if self.config.fsync == "always" else None)
        except OSError as e:
            self.stats.cursor_errors += 1
            if self._log.ready() is not None:
                logger.error("Spool {} cannot persist its read position: {}", self.name,
                             e.strerror or e)

    # --- state ----------------------------------------------------------------------------------

    def pending(self) -> tuple[int, int, int]:
        """(points, bytes, appended_at_ns of the oldest) not yet acknowledged."""
        first = next((seg.first_ns for seg in self._segments if seg.points), 0)
        return (sum(seg.points for seg in self._segments),
                sum(seg.end - seg.read for seg in self._segments), first)

    def refresh_stats(self) -> SpoolStats:
        self.stats.segments = len(self._segments)
        return self.stats.fill_pending(self.pending())

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


def open_spool(directory: str | Path, config: SpoolConfig, name: str,
               default: Literal["disk", "memory"] = "disk") -> Buffer:
    """The buffer `config.strategy` asks for (`default` when it says "default")."""
    if config.resolved(default).strategy == "memory":
        return MemorySpool(config, name)
    return DiskSpool(directory, config, name)
