"""Process figures read from /proc: RSS, CPU ticks, parent, threads, start time.

The root is a parameter so that tests can point it at a fake tree (as client_python's
process collector does) and drive memory and CPU checks without a real hog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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
        base = self.root / str(pid)
        try:
            stat = (base / "stat").read_text()
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

    def total_memory(self) -> int:
        """MemTotal in bytes (0 when unknown)."""
        try:
            for line in (self.root / "meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def uptime(self) -> float | None:
        """Seconds since boot, for turning start_ticks into a process age."""
        try:
            return float((self.root / "uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


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
