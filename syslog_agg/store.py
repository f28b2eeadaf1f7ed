"""Per-component log files: `<root>/<component>/YYYY/MM/DD/<component>.log`.

Lines are buffered per (component, day) and written with one `write` per file per flush: on
the flush interval, when `flush_bytes` are pending, and on close, so nothing accepted is lost
on a clean stop. The day is the reception day (UTC unless `local_time`), so a new file starts
every day without renaming anything (Cloud Foundry's layout). A file that has reached
`max_file_size` is renamed `<component>.log.N` (N = 1, 2, … oldest first) at the next flush.
File handles are kept in an LRU of `max_open_files` and closed after `idle_close` seconds
without writes. Compression and retention (see `retention.py`) run in a worker thread.

A write that fails or comes up short (a full disk: `os.write` writes what fits) never leaves
half a line: the file is cut back to the last complete line, the lines not written are counted
in `lines_lost`, and the trouble is logged once until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from fobs.components.config import ConfigError, positive
from fobs.syslog_agg import retention
from fobs.syslog_agg.lines import LineFormat
from fobs.syslog_agg.stats import StoreStats

__all__ = ["StoreConfig", "Store", "day_of"]


@dataclass(frozen=True)
class StoreConfig:
    root: str = "/var/log/fobs"
    format: LineFormat = "text"
    flush_interval: float = 1.0
    flush_bytes: int = 1 << 20
    max_file_size: int = 0           # bytes; 0 = rotate by day only
    max_open_files: int = 64
    idle_close: float = 60.0
    local_time: bool = False         # day directories by local time instead of UTC
    gzip: bool = True
    max_age_days: float = 7.0        # 0 = keep forever
    max_total_bytes: int = 10 << 30  # the oldest files go first; 0 = no limit
    maintenance_interval: float = 60.0

    def validate(self) -> None:
        for key in ("flush_interval", "flush_bytes", "max_open_files", "idle_close",
                    "maintenance_interval"):
            positive(getattr(self, key), key)
        for key in ("max_file_size", "max_age_days", "max_total_bytes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be 0 or more, got {getattr(self, key)}")
        if not self.root:
            raise ConfigError("root: must not be empty")


def day_of(when: float, local_time: bool = False) -> str:
    """`YYYY/MM/DD` of a time stamp: the directory a line received then goes to."""
    t = time.localtime(when) if local_time else time.gmtime(when)
    return f"{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}"


class _File:
    __slots__ = ("fd", "size", "last_write")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.last_write = time.monotonic()


_DIRS_KNOWN = 10_000


def _write_lines(f: _File, data: bytes) -> tuple[int, OSError | None]:
    """Append `data` (whole lines) to `f` until done or an error; on an error the file is cut
    back to the end of the last complete line written. Returns (bytes kept, the error)."""
    view = memoryview(data)
    done = 0
    error: OSError | None = None
    while done < len(data):
        try:
            n = os.write(f.fd, view[done:])
        except OSError as e:
            error = e
            break
        if n <= 0:  # cannot happen for a regular file; never loop on it
            error = OSError(errno.EIO, "write returned 0")
            break
        done += n
    if error is not None and done:
        keep = data.rfind(b"\n", 0, done) + 1
        if keep < done:
            try:
                end = os.lseek(f.fd, 0, os.SEEK_END)  # O_APPEND: our bytes are the last ones
                os.ftruncate(f.fd, end - done + keep)
                f.size = end - done
            except OSError:
                pass  # cannot happen on a file we could write: the size only shrinks
            done = keep
    f.size += done
    return done, error


class Store:
    """Buffered writer of per-component files; `append` from the event loop, `flush` often."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.root = Path(config.root)
        self._pending: dict[tuple[str, str], list[str]] = {}
        self._pending_bytes = 0
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._dirs: set[str] = set()
        self._failing = False  # a write failed and it was logged; cleared by a good write
        self.stats = StoreStats()

    @property
    def pending_lines(self) -> int:
        return sum(len(v) for v in self._pending.values())

    @property
    def open_files(self) -> int:
        return len(self._files)

    def append(self, component: str, day: str, line: str) -> None:
        """Queue one line (or several), ending in LF, for `component` on `day` (`day_of`)."""
        key = (component, day)
        lines = self._pending.get(key)
        if lines is None:
            lines = self._pending[key] = []
        lines.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.config.flush_bytes:
            self.flush()

    def path(self, component: str, day: str) -> str:
        return f"{self.root}/{component}/{day}/{component}.log"

    def flush(self) -> None:
        """Write everything pending; a failing file loses its lines (counted), not the others."""
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        for (component, day), lines in pending.items():
            data = "".join(lines).encode()
            path = self.path(component, day)
            try:
                f = self._open(path)
                if self.config.max_file_size and f.size >= self.config.max_file_size:
                    f = self._rotate(path)
            except OSError as e:
                self._lost(path, data, e)
                continue
            written, error = _write_lines(f, data)
            if written:
                f.last_write = time.monotonic()
                self.stats.lines_written += data.count(b"\n", 0, written)  # an item may
                self.stats.bytes_written += written                       # hold several lines
            if error is not None:
                self._lost(path, data[written:], error)
            elif self._failing:
                self._failing = False
                logger.info("Writing log files again ({} lines lost so far)",
                            self.stats.lines_lost)
        self.stats.flushes += 1
        self._close_idle()

    def _lost(self, path: str, data: bytes, error: OSError) -> None:
        """Count `data`'s lines as lost; log only the first failure of a run of them."""
        self.stats.write_errors += 1
        self.stats.lines_lost += data.count(b"\n")
        self._close(path)
        if not self._failing:
            self._failing = True
            logger.error("Cannot write {}: {}; lines are lost (counted in varz "
                         "store.lines_lost) until writing works again", path,
                         error.strerror or error)

    def _open(self, path: str) -> _File:
        """The open handle of `path`, opened (with its directories) if need be."""
        f = self._files.get(path)
        if f is not None:
            self._files.move_to_end(path)
            return f
        directory = path.rpartition("/")[0]
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            if len(self._dirs) >= _DIRS_KNOWN:
                self._dirs.clear()  # a cache of directories made: one per component and day
            self._dirs.add(directory)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # retention removed the (empty) directory meanwhile
            os.makedirs(directory, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        f = self._files[path] = _File(fd, os.fstat(fd).st_size)
        while len(self._files) > self.config.max_open_files:
            old, handle = self._files.popitem(last=False)
            os.close(handle.fd)
        return f

    def _rotate(self, path: str) -> _File:
        self._close(path)
        os.rename(path, f"{path}.{retention.next_rotation_number(path)}")
        self.stats.rotations += 1
        return self._open(path)

    def _close(self, path: str) -> None:
        f = self._files.pop(path, None)
        if f is not None:
            os.close(f.fd)

    def _close_idle(self) -> None:
        limit = time.monotonic() - self.config.idle_close
        for path in [p for p, f in self._files.items() if f.last_write < limit]:
            self._close(path)

    def close(self) -> None:
        """Flush and close every file (idempotent)."""
        self.flush()
        for path in list(self._files):
            self._close(path)

    async def maintain(self) -> None:
        """Gzip closed files and apply retention, off the event loop."""
        cfg = self.config
        self.stats.merge(await asyncio.to_thread(
            retention.maintain, self.root, open_paths=frozenset(self._files),
            today=day_of(time.time(), cfg.local_time), gzip=cfg.gzip,
            max_age=cfg.max_age_days * 86400, max_total_bytes=cfg.max_total_bytes))

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_interval` and maintain every `maintenance_interval` until `stop`."""
        cfg = self.config
        next_maintenance = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), cfg.flush_interval)
            except TimeoutError:
                pass
            self.flush()
            if time.monotonic() >= next_maintenance:
                next_maintenance = time.monotonic() + cfg.maintenance_interval
                try:
                    await self.maintain()
                except Exception as e:  # retention must never stop the writer
                    logger.error("Store maintenance failed: {!r}", e)

