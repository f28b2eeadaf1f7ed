"""The scrape benchmark's process plumbing: children stopped by pid, free ports, /proc figures.

Every process the benchmark starts goes through `Processes`, which stops them by their own pid
(SIGTERM, then SIGKILL after a timeout) at the end, whatever happened.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fobs.components.process import CLOCK_TICKS, ProcFS

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports that were free a moment ago (bound together, so distinct)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    st = ProcFS().stat(pid)
    if st is None:
        raise ProcessLookupError(f"no process {pid}")
    return st.cpu_ticks / CLOCK_TICKS


def status_mb(pid: int, key: str) -> float:
    """A /proc/PID/status figure in MB: VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def get(url: str, auth: tuple[str, str] | None = None, timeout: float = 10) -> bytes:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return bytes(r.read())


def get_json(url: str, auth: tuple[str, str] | None = None, timeout: float = 10) -> Any:
    return json.loads(get(url, auth, timeout))


def prom_counter(url: str, name: str, label: str = "") -> float:
    """The sum of a counter's samples in a Prometheus text page (those holding `label`)."""
    total = 0.0
    for line in get(url).decode().splitlines():
        if (line.startswith(name + " ") or line.startswith(name + "{")) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(check: Callable[[], Any], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            pass
        time.sleep(0.25)
    raise SystemExit(f"benchmark: {what} not ready after {timeout:.0f}s")


class Processes:
    """Every child started here, stopped by pid at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                env=env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
