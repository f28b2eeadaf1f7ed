"""Helpers for supervisor tests: the test child server, an in-process supervisor factory."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fobs.syslog_agg.monit import Supervisor, SupervisorConfig
from fobs.syslog_agg.monit.config import HttpConfig

CHILD = str(Path(__file__).with_name("child.py"))
CYCLE = 0.2


def child(kind: str, port: int, *extra: str) -> tuple[str, ...]:
    """The argv of the test server child (see child.py)."""
    return (sys.executable, CHILD, kind, str(port), *extra)


def gone(pid: int) -> bool:
    """True once `pid` no longer exists (a zombie waiting for init to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Poll until every pid is gone (no event exists for foreign pids); the survivors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if not gone(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def svc(sup: Supervisor, name: str) -> dict:
    return next(s for s in sup.status()["services"] if s["name"] == name)


@pytest.fixture
async def supervise() -> AsyncIterator[Callable[..., object]]:
    """`await supervise(processes=..., programs=..., **kw)`: a started Supervisor, stopped after.

    Its status server has no credentials unless `http=` gives some: it serves nothing then."""
    started: list[Supervisor] = []

    async def start(processes: tuple = (), programs: tuple = (), proc_root: str = "/proc",
                    **kw: object) -> Supervisor:
        kw.setdefault("cycle", CYCLE)
        kw.setdefault("http", HttpConfig(address="127.0.0.1:0"))
        config = SupervisorConfig(process=processes, program=programs, **kw)  # type: ignore[arg-type]
        sup = Supervisor(config, proc_root=proc_root)
        await sup.start()
        started.append(sup)
        return sup

    yield start
    for sup in started:
        await sup.stop()
        leftovers = [s["pid"] for s in sup.status()["services"] if s["pid"]]
        assert not leftovers, f"processes left running: {leftovers}"
