"""The tests a service runs each cycle, each one time-boxed and returning a `Result`.

A check never raises: whatever goes wrong (refused, timed out, bad body, unreadable /proc)
becomes a failed Result with a one-line message, so one broken check cannot stall a cycle.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from fobs.components.auth import basic_auth_header
from fobs.syslog_agg.monit.config import (
    CpuCheck,
    ExitCheck,
    HttpCheck,
    MemoryCheck,
    TcpCheck,
    UdpCheck,
    argv,
)
from fobs.syslog_agg.monit.process import run_program

MB = 1024 * 1024

# What the status shows when a check of that kind has fired (monit's wording).
FAILED_STATUS = {
    "alive": "Does not exist",
    "tcp": "Connection failed",
    "udp": "Connection failed",
    "http": "Connection failed",
    "memory": "Resource limit matched",
    "cpu": "Resource limit matched",
    "program": "Status failed",
}
EVENT = {"alive": "nonexist", "tcp": "connection", "udp": "connection", "http": "connection",
         "memory": "resource", "cpu": "resource", "program": "status"}


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str
    response_time: float | None = None  # seconds, for connection and program checks
    status: str = ""  # the service status when this failure fires ("" = the kind's usual one)
    exit_status: int | None = None  # program checks: what the program returned
    output: str = ""  # program checks: the tail of what it printed


@dataclass(frozen=True)
class Usage:
    """A process's figures for one cycle; cpu is None until two samples exist."""

    rss: int = 0
    rss_total: int = 0
    cpu: float | None = None
    cpu_total: float | None = None


def label(kind: str, cfg: Any) -> str:
    """A short human name for a check, as shown in the status output."""
    if kind in ("tcp", "udp"):
        return f"{kind} [{cfg.host}]:{cfg.port}"
    if kind == "http":
        return f"http {cfg.url}"
    if kind == "memory":
        return f"{'total ' if cfg.total else ''}memory > {cfg.above_mb:g} MB"
    if kind == "cpu":
        return f"{'total ' if cfg.total else ''}cpu > {cfg.above_percent:g}%"
    if kind == "program":
        return f"program {' '.join(argv(cfg.command))}"[:80]
    return "process alive"


async def tcp(cfg: TcpCheck) -> Result:
    began = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(cfg.host, cfg.port), cfg.timeout)
    except TimeoutError:
        return Result(False, f"connection to [{cfg.host}]:{cfg.port} timed out "
                             f"after {cfg.timeout:g} s")
    except OSError as e:
        return Result(False, f"[{cfg.host}]:{cfg.port} TCP: {e.strerror or e}")
    elapsed = time.monotonic() - began
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (TimeoutError, OSError):
        pass
    return Result(True, f"port response time {elapsed * 1000:.3f} ms", elapsed)


def syslog_probe() -> bytes:
    """An RFC 5424 message (facility syslog, severity info) that a syslog receiver parses cleanly.

    monit probes UDP with a single NUL byte, which a syslog server must treat as garbage: it
    shows up as a parse error every cycle. A real message is accepted, is recognisable by its
    APP-NAME and MSGID, and exercises the receiver's parser end to end.
    """
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = socket.gethostname() or "-"
    return f"<46>1 {now} {host} fobs-monit {os.getpid()} probe - UDP port check".encode()


class _UdpProbe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.done: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result(exc)


async def udp(cfg: UdpCheck) -> Result:
    """Send one datagram on a connected socket; an ICMP port unreachable comes back as an error."""
    loop = asyncio.get_running_loop()
    began = time.monotonic()
    try:
        transport, proto = await loop.create_datagram_endpoint(
            _UdpProbe, remote_addr=(cfg.host, cfg.port))
    except OSError as e:
        return Result(False, f"[{cfg.host}]:{cfg.port} UDP: {e.strerror or e}")
    try:
        transport.sendto(cfg.send.encode() if cfg.send else syslog_probe())
        try:
            error = await asyncio.wait_for(asyncio.shield(proto.done), cfg.timeout)
        except TimeoutError:
            error = None  # a syslog listener never answers: silence is success
    finally:
        transport.close()
    if error is not None:
        reason = getattr(error, "strerror", None) or str(error)
        return Result(False, f"[{cfg.host}]:{cfg.port} UDP: {reason}")
    elapsed = time.monotonic() - began
    return Result(True, "no port unreachable error", elapsed)


async def http(session: aiohttp.ClientSession, cfg: HttpCheck) -> Result:
    headers = {"Authorization": basic_auth_header(cfg.user, cfg.password)} if cfg.user else {}
    began = time.monotonic()
    try:
        async with asyncio.timeout(cfg.timeout):
            async with session.get(cfg.url, headers=headers, allow_redirects=False) as resp:
                body = await resp.text(errors="replace") if cfg.contains else ""
                status = resp.status
    except TimeoutError:
        return Result(False, f"GET {cfg.url} timed out after {cfg.timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        return Result(False, f"GET {cfg.url}: {str(e) or type(e).__name__}")
    elapsed = time.monotonic() - began
    if status != cfg.status:
        return Result(False, f"GET {cfg.url} returned {status}, expected {cfg.status}", elapsed)
    if cfg.contains and cfg.contains not in body:
        return Result(False, f"GET {cfg.url} body does not contain {cfg.contains!r}", elapsed)
    return Result(True, f"HTTP {status} in {elapsed * 1000:.1f} ms", elapsed)


def memory(cfg: MemoryCheck, usage: Usage) -> Result:
    rss = usage.rss_total if cfg.total else usage.rss
    text = f"{'total ' if cfg.total else ''}memory {rss / MB:.1f} MB"
    if rss > cfg.above_mb * MB:
        return Result(False, f"{text} above {cfg.above_mb:g} MB")
    return Result(True, text)


def cpu(cfg: CpuCheck, usage: Usage) -> Result:
    value = usage.cpu_total if cfg.total else usage.cpu
    if value is None:
        return Result(True, "cpu not sampled yet")
    text = f"{'total ' if cfg.total else ''}cpu {value:.1f}%"
    if value > cfg.above_percent:
        return Result(False, f"{text} above {cfg.above_percent:g}%")
    return Result(True, text)


async def exit_status(cfg: ExitCheck, env: dict[str, str], cwd: str) -> Result:
    res = await run_program(argv(cfg.command), timeout=cfg.timeout, env=env, cwd=cwd)
    tail = f": {res.output.splitlines()[-1][:200]}" if res.output else ""
    if res.status is None:
        return Result(False, f"program {res.error}{tail}", res.duration, "Execution failed",
                      output=res.output)
    if res.status != cfg.status:
        return Result(False, f"program exit status {res.status}, expected {cfg.status}{tail}",
                      res.duration, exit_status=res.status, output=res.output)
    return Result(True, f"program exit status {res.status}{tail}", res.duration,
                  exit_status=res.status, output=res.output)
