"""Process and host figures read from /proc: the one parser of each /proc file fobs reads.

Two users sample it: the component runtime (its own process, for the generic varz fields) and the
supervisor (every process, once a cycle, for memory and CPU checks of a service and its children).
Both read `<pid>/stat` and `meminfo` through `ProcFS`, and turn tick counts into a CPU percentage
with `cpu_percent`.

The /proc root is a parameter so tests can point it at a fixture tree (as client_python's
process collector does) and drive memory and CPU checks without a real hog.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_percent(ticks: int, last_ticks: int, seconds: float) -> float:
    """CPU use between two tick counts `seconds` apart, in % of one core (100 = one core busy).

    Never negative: a count that went down belongs to another process that took the pid.
    """
    return max(0.0, 100.0 * (ticks - last_ticks) / CLOCK_TICKS / seconds)


@dataclass(frozen=True)
class ProcStat:
    """One process as /proc/<pid>/stat describes it (rss there is VmRSS in pages)."""

    pid: int
    ppid: int
    pgrp: int
    state: str
    threads: int
    cpu_ticks: int  # utime + stime
    start_ticks: int  # since boot
    rss: int  # bytes


class ProcFS:
    """Reads /proc (or a copy of its layout under `root`)."""

    def __init__(self, root: str | Path = "/proc") -> None:
        self.root = Path(root)

    def stat(self, pid: int) -> ProcStat | None:
        """The process `pid`, or None when it does not exist (or vanished while reading)."""
        try:
            stat = (self.root / str(pid) / "stat").read_text()
        except OSError:  # gone (or never there)
            return None
        # comm may hold spaces and parentheses: the fields start after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) < 22:
            return None
        return ProcStat(pid=pid, ppid=int(fields[1]), pgrp=int(fields[2]),
                        state=fields[0], threads=int(fields[17]),
                        cpu_ticks=int(fields[11]) + int(fields[12]),
                        start_ticks=int(fields[19]), rss=int(fields[21]) * PAGE_SIZE)

    def pids(self) -> list[int]:
        try:
            return [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]
        except OSError:
            return []

    def table(self) -> dict[int, ProcStat]:
        """Every process, read once (a cycle's worth of parent links for descendants)."""
        table = {}
        for pid in self.pids():
            st = self.stat(pid)
            if st is not None:
                table[pid] = st
        return table

    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo in bytes by key (MemTotal, MemAvailable, …); {} when unreadable."""
        out: dict[str, int] = {}
        try:
            text = (self.root / "meminfo").read_text()
        except OSError:
            return out
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            value = rest.split()
            if value and value[0].isdigit():
                out[key] = int(value[0]) * 1024  # kB
        return out

    def total_memory(self) -> int:
        """MemTotal in bytes (0 when unknown)."""
        return self.meminfo().get("MemTotal", 0)

    def loadavg(self) -> float:
        """The host's 1-minute load average (0 when unknown)."""
        try:
            return float((self.root / "loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0


def descendants(table: dict[int, ProcStat], pid: int) -> list[ProcStat]:
    """All processes below `pid` in the parent tree (children, grandchildren, …)."""
    children: dict[int, list[ProcStat]] = {}
    for st in table.values():
        children.setdefault(st.ppid, []).append(st)
    found: list[ProcStat] = []
    seen = {pid}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                todo.append(child.pid)
    return found


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
        self.procfs = ProcFS(proc)
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
        meminfo = self.procfs.meminfo()
        total = meminfo.get("MemTotal", 0)
        available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
        st = self.procfs.stat(self.pid)
        return ProcessSample(
            num_cores=os.cpu_count() or 1,
            cpu=self._cpu(st, now),
            cpu_load_avg=self.procfs.loadavg(),
            mem_bytes=st.rss if st is not None else 0,
            mem_used_bytes=max(total - available, 0),
            mem_free_bytes=available,
        )

    def _cpu(self, st: ProcStat | None, now: float) -> float:
        if st is None:
            return 0.0
        last_ticks, last_time = self._last_cpu_ticks, self._last_time
        self._last_cpu_ticks, self._last_time = st.cpu_ticks, now
        if last_ticks is None or now <= last_time:
            return 0.0
        return round(cpu_percent(st.cpu_ticks, last_ticks, now - last_time), 1)
