"""Logging for components: loguru to stderr and to syslog (RFC 5424), with per-level counts.

loguru's logger is process-wide, so sinks are installed once per process by `configure()`; each
component logs through `logger.bind(job=TYPE, index=N, uuid=UUID)` and the sinks read those
extras. That keeps one syslog sink for a whole fleet of components in one process, instead of
one sink per component (loguru calls every sink for every message).

Syslog lines are RFC 5424: APP-NAME `vcap.<type>` (Cloud Foundry's convention) and an SD element
`[fobs@32473 job="<type>" index="<n>"]` (32473 is the enterprise number RFC 5612 reserves for
examples; an SD-ID without "@" would have to be IANA-registered). UDP sends one datagram per
message; TCP uses RFC 6587 octet counting through a bounded queue drained by a task, with
reconnects, so a slow or absent syslog server never blocks the component.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from loguru import logger

from fobs.components.config import ConfigError, host_port

# loguru level → Steno-style name used in varz log_counts (what Cloud Foundry's collector read).
LEVEL_NAMES = {"TRACE": "debug2", "DEBUG": "debug", "INFO": "info", "SUCCESS": "info",
               "WARNING": "warn", "ERROR": "error", "CRITICAL": "fatal"}
LOG_COUNT_KEYS = ("fatal", "error", "warn", "info", "debug", "debug2")
# loguru level → syslog severity.
SEVERITY = {"TRACE": 7, "DEBUG": 7, "INFO": 6, "SUCCESS": 5, "WARNING": 4, "ERROR": 3,
            "CRITICAL": 2}
FACILITY_USER = 1
MAX_DATAGRAM = 8192
TCP_QUEUE_LIMIT = 10_000
SD_ID = "fobs@32473"


@dataclass(frozen=True)
class SyslogConfig:
    """[syslog] — where components send their logs ("" = nowhere)."""

    address: str = ""                           # HOST:PORT of a syslog server
    transport: Literal["udp", "tcp"] = "udp"
    facility: int = FACILITY_USER

    def validate(self) -> None:
        if self.address:
            host_port(self.address, "address")
        if not 0 <= self.facility <= 23:
            raise ConfigError(f"facility: must be 0..23, got {self.facility}")


class LogCounts:
    """Messages per component (by uuid) and level, for varz `log_counts`."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = {}

    def sink(self, message: Any) -> None:
        record = message.record
        uuid = record["extra"].get("uuid")
        if uuid is not None:
            self._counts.setdefault(uuid, Counter())[LEVEL_NAMES.get(record["level"].name,
                                                                     "info")] += 1

    def for_component(self, uuid: str) -> dict[str, int]:
        counts = self._counts.get(uuid, Counter())
        return {key: counts.get(key, 0) for key in LOG_COUNT_KEYS}


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_rfc5424(record: Any, facility: int, hostname: str) -> bytes:
    """One RFC 5424 message for a loguru record (no framing)."""
    extra = record["extra"]
    job = str(extra.get("job", "fobs"))
    pri = facility * 8 + SEVERITY.get(record["level"].name, 6)
    ts = record["time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    app = ("vcap." + job.lower())[:48]
    sd = "-"
    if "job" in extra:
        sd = f'[{SD_ID} job="{_sd_escape(job)}" index="{_sd_escape(str(extra.get("index", 0)))}"]'
    text: str = record["message"]
    if record["exception"] is not None:
        text += "\n" + "".join(_exception_lines(record))
    head = f"<{pri}>1 {ts} {hostname} {app} {os.getpid()} - {sd} "
    return head.encode() + b"\xef\xbb\xbf" + text.encode("utf-8", "replace")


def _exception_lines(record: Any) -> list[str]:
    import traceback
    exc = record["exception"]
    return traceback.format_exception(exc.type, exc.value, exc.traceback)


class SyslogSink:
    """A loguru sink that ships records to a syslog server; never blocks the caller."""

    def __init__(self, config: SyslogConfig) -> None:
        self.config = config
        self.host, self.port = host_port(config.address, "syslog.address")
        self.hostname = socket.gethostname()
        self.sent = 0
        self.dropped = 0
        self._queue: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._udp: socket.socket | None = None
        if config.transport == "udp":
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._udp = socket.socket(family, socket.SOCK_DGRAM)
            self._udp.setblocking(False)

    def __call__(self, message: Any) -> None:
        data = format_rfc5424(message.record, self.config.facility, self.hostname)
        if self._udp is not None:
            try:
                self._udp.sendto(data[:MAX_DATAGRAM], (self.host, self.port))
                self.sent += 1
            except OSError:
                self.dropped += 1
            return
        if len(self._queue) >= TCP_QUEUE_LIMIT:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(b"%d %s" % (len(data), data))
        self._wakeup.set()
        if self._task is None:
            try:
                self._task = asyncio.get_running_loop().create_task(self._drain())
            except RuntimeError:
                pass  # no loop yet: the first record logged inside the loop starts the task

    async def _drain(self) -> None:
        backoff = 0.1
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            try:
                while True:
                    while self._queue:
                        frame = self._queue[0]
                        writer.write(frame)
                        await writer.drain()
                        self._queue.popleft()
                        self.sent += 1
                    self._wakeup.clear()
                    await self._wakeup.wait()
            except (OSError, ConnectionError):
                writer.close()
                continue

    async def flush(self, timeout: float = 2.0) -> None:
        """Give queued TCP messages a bounded chance to leave before shutdown."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and self._task and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
        if self._udp is not None:
            self._udp.close()


class Logging:
    """The process's logging setup: stderr, optional syslog, and the log counter."""

    def __init__(self) -> None:
        self.counts = LogCounts()
        self.syslog: SyslogSink | None = None
        self._handler_ids: list[int] = []
        logger.add(self.counts.sink, level="TRACE", format="{message}")

    def configure(self, level: str = "INFO", syslog: SyslogConfig | None = None) -> None:
        """Replace the stderr/syslog sinks (the counter stays); call once at daemon start."""
        level = level.upper()
        if level not in SEVERITY:
            raise ConfigError(f"log_level: must be one of {', '.join(SEVERITY)}, got {level!r}")
        for handler_id in self._handler_ids:
            logger.remove(handler_id)
        self._handler_ids.clear()
        try:
            logger.remove(0)  # loguru's default stderr handler
        except ValueError:
            pass
        self._handler_ids.append(logger.add(sys.stderr, level=level, format=_stderr_format))
        if syslog is not None and syslog.address:
            self.syslog = SyslogSink(syslog)
            self._handler_ids.append(logger.add(self.syslog, level=level, format="{message}"))

    async def close(self) -> None:
        if self.syslog is not None:
            await self.syslog.close()


def _stderr_format(record: Any) -> str:
    extra = record["extra"]
    who = f" {extra['job']}/{extra['index']}" if "job" in extra else ""
    return ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level>"
            + who.replace("{", "{{").replace("}", "}}") + " {message}\n{exception}")


_process_logging: Logging | None = None


def process_logging() -> Logging:
    """The one Logging of this process (loguru itself is process-wide)."""
    global _process_logging
    if _process_logging is None:
        _process_logging = Logging()
    return _process_logging
