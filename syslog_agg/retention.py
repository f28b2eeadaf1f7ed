"""Compression and retention of closed log files, run in a worker thread by the store.

Cloud Foundry ran cron jobs for this (gzip files idle for a day, delete `.gz` older than 7 days,
prune empty day directories). Here one pass does all of it:
- gzip every closed file that is done with: a size-rotated `<c>.log.N`, or a `<c>.log` of a day
  before today that has not been written for `SETTLE` seconds. An existing `.gz` gets the new
  data as one more gzip member (gzip readers concatenate members);
- delete files older than `max_age` seconds (by mtime), then the oldest files until everything
  under the root is at most `max_total_bytes`; files open for writing are never touched;
- remove empty directories that have not changed for `SETTLE` seconds.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import time
from pathlib import Path

from fobs.syslog_agg.stats import StoreStats

__all__ = ["maintain", "next_rotation_number", "SETTLE"]

SETTLE = 120.0
_LOG = re.compile(r".+\.log(?:\.(\d+))?(\.gz)?\Z")


def next_rotation_number(path: str) -> int:
    """1 + the highest N of `path.N` or `path.N.gz` beside `path`."""
    directory, _, name = path.rpartition("/")
    pattern = re.compile(re.escape(name) + r"\.(\d+)(?:\.gz)?\Z")
    numbers = [int(m.group(1)) for f in os.listdir(directory or ".")
               if (m := pattern.match(f)) is not None]
    return max(numbers, default=0) + 1


def _day(root: Path, path: Path) -> str | None:
    """`YYYY/MM/DD` from `<root>/<component>/YYYY/MM/DD/<file>`."""
    parts = path.relative_to(root).parts
    return "/".join(parts[1:4]) if len(parts) == 5 else None


def _gzip(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    if target.exists():
        with open(path, "rb") as src, gzip.open(target, "ab") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        tmp = path.with_name(path.name + ".gz.tmp")
        with open(path, "rb") as src, gzip.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.rename(tmp, target)
    os.remove(path)
    return target


def maintain(root: Path, *, open_paths: frozenset[str], today: str, gzip: bool,
             max_age: float, max_total_bytes: int) -> StoreStats:
    """One pass of compression and retention under `root`; returns the counts to merge."""
    stats = StoreStats()
    if not root.is_dir():
        return stats
    now = time.time()
    files: list[tuple[float, int, Path]] = []  # (mtime, size, path) of closed files
    open_bytes = 0
    for directory, _, names in os.walk(root):
        for name in names:
            m = _LOG.match(name)
            if m is None:
                continue
            path = Path(directory, name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if str(path) in open_paths:
                open_bytes += st.st_size
                continue
            if gzip and not m.group(2):
                rotated = m.group(1) is not None
                day = _day(root, path)
                if rotated or (day is not None and day < today and now - st.st_mtime > SETTLE):
                    path = _gzip(path)
                    stats.files_gzipped += 1
                    st = path.stat()
            files.append((st.st_mtime, st.st_size, path))
    files.sort()
    total = open_bytes + sum(size for _, size, _ in files)
    for mtime, size, path in files:
        too_old = max_age > 0 and now - mtime > max_age
        too_big = max_total_bytes > 0 and total > max_total_bytes
        if not (too_old or too_big):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        total -= size
        stats.files_removed += 1
        stats.bytes_removed += size
    _prune_dirs(root, now)
    return stats


def _prune_dirs(root: Path, now: float) -> None:
    for directory, subdirs, names in os.walk(root, topdown=False):
        path = Path(directory)
        if path == root or names or any((path / d).exists() for d in subdirs):
            continue
        try:
            if now - path.stat().st_mtime > SETTLE:
                path.rmdir()
        except OSError:
            pass
