"""Process and host statistics for the generic varz fields, read from /proc.

The /proc root is a parameter so tests can point it at a fixture tree, as client_python's
process collector does. Values are sampled when varz is refreshed (at most once a second).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class ProcessSample:
    num_cores: int
    cpu: float            # % of one core used by this process since the previous sample
    cpu_load_avg: float   # 1-minute load average of the host
    mem_bytes: int        # resident set size of this process
    mem_used_bytes: int   # host memory in use (total - available)
    mem_free_bytes: int   # host memory available


class ProcessStats:
    """Samples /proc for one process; one instance may serve many components of one process."""

    def __init__(self, proc: str | Path = "/proc", pid: int | None = None) -> None:
        self.proc = Path(proc)
        self.pid = pid or os.getpid()
        self._last_cpu_ticks: int | None = None
        self._last_time = 0.0
        self._cached: ProcessSample | None = None
        self._cached_at = float("-inf")

    def sample(self, max_age: float = 1.0) -> ProcessSample:
        """A sample no older than `max_age` seconds (shared by every caller in that window)."""
        now = time.monotonic()
        if self._cached is None or now - self._cached_at >= max_age:
            self._cached = self._read(now)
            self._cached_at = now
        return self._cached

    def _read(self, now: float) -> ProcessSample:
        meminfo = self._meminfo()
        total = meminfo.get("MemTotal", 0)
        available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
        return ProcessSample(
            num_cores=os.cpu_count() or 1,
            cpu=self._cpu_percent(now),
            cpu_load_avg=self._loadavg(),
            mem_bytes=self._rss(),
            mem_used_bytes=max(total - available, 0),
            mem_free_bytes=available,
        )

    def _read_text(self, *parts: str) -> str:
        try:
            return self.proc.joinpath(*parts).read_text()
        except OSError:
            return ""

    def _meminfo(self) -> dict[str, int]:
        out = {}
        for line in self._read_text("meminfo").splitlines():
            key, _, rest = line.partition(":")
            value = rest.split()
            if value and value[0].isdigit():
                out[key] = int(value[0]) * 1024  # kB
        return out

    def _loadavg(self) -> float:
        fields = self._read_text("loadavg").split()
        return float(fields[0]) if fields else 0.0

    def _rss(self) -> int:
        fields = self._read_text(str(self.pid), "statm").split()
        return int(fields[1]) * PAGE_SIZE if len(fields) > 1 else 0

    def _cpu_percent(self, now: float) -> float:
        stat = self._read_text(str(self.pid), "stat")
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        after = stat.rpartition(")")[2].split()
        if len(after) < 13:
            return 0.0
        ticks = int(after[11]) + int(after[12])
        last_ticks, last_time = self._last_cpu_ticks, self._last_time
        self._last_cpu_ticks, self._last_time = ticks, now
        if last_ticks is None or now <= last_time:
            return 0.0
        return round(100.0 * (ticks - last_ticks) / CLK_TCK / (now - last_time), 1)
