"""Parse → route → count → format → sink: what happens to every queued message.

The same pipeline runs in the aggregator (sink = the store) and in UDP worker processes (sink =
a batch shipped to the aggregator), so counting and formatting are defined once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fobs.syslog_agg.lines import Formatter, format_received
from fobs.syslog_agg.listeners import Intake, Item
from fobs.syslog_agg.parser import parse
from fobs.syslog_agg.router import Router
from fobs.syslog_agg.store import day_of

__all__ = ["Pipeline", "Counts", "SEVERITIES"]

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
SLICE = 2048  # messages processed before yielding to the loop

Append = Callable[[str, str, str], None]            # (component, day, line)
TailAdmit = Callable[[str, float], bool]             # (component, monotonic now)
TailPublish = Callable[[str, str], None]             # (component, JSON line)


class Counts:
    """Messages and bytes per severity of one component (index 8 = no severity: unparsed)."""

    __slots__ = ("messages", "bytes", "severity")

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.severity = [0] * 9

    def add(self, other: list[int]) -> None:
        """Merge `[messages, bytes, sev0..sev8]` (from `as_list`)."""
        self.messages += other[0]
        self.bytes += other[1]
        sev = self.severity
        for i in range(9):
            sev[i] += other[2 + i]

    def as_list(self) -> list[int]:
        return [self.messages, self.bytes, *self.severity]

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "bytes": self.bytes,
                "severity": dict(zip(SEVERITIES, self.severity)),
                "unparsed": self.severity[8]}


class Pipeline:
    def __init__(self, router: Router, line_format: str, append: Append, *,
                 local_time: bool = False, tail: tuple[TailAdmit, TailPublish] | None = None
                 ) -> None:
        self.router = router
        self.line = Formatter(line_format).line  # type: ignore[arg-type]
        self.json_line = Formatter("json").line
        self.append = append
        self.local_time = local_time
        self.tail = tail
        self.counts: dict[str, Counts] = {}
        self.formats = {"rfc5424": 0, "rfc3164": 0, "unparsed": 0}
        self.discarded = 0
        self._last_when = -1.0
        self._now = datetime.now(UTC)
        self._received = ""
        self._day = ""

    def process(self, queue: deque[Item], n: int) -> None:
        """Parse, route, count and hand on the next `n` items of `queue`."""
        popleft = queue.popleft
        route = self.router.route
        line = self.line
        append = self.append
        counts = self.counts
        formats = self.formats
        tail = self.tail
        mono = time.monotonic()
        for _ in range(n):
            data, peer, when, truncated = popleft()
            if when != self._last_when:
                self._set_time(when)
            msg = parse(data, now=self._now)
            if truncated:
                msg.truncated = True
            component = route(msg)
            formats[msg.format] += 1
            if component is None:
                self.discarded += 1
                continue
            c = counts.get(component)
            if c is None:
                c = counts[component] = Counts()
            c.messages += 1
            c.bytes += len(data)
            sev = msg.severity
            c.severity[8 if sev is None else sev] += 1
            append(component, self._day, line(msg, component, self._received, peer))
            if tail is not None and tail[0](component, mono):
                tail[1](component, self.json_line(msg, component, self._received, peer))

    async def consume(self, intake: Intake) -> None:
        """Process `intake` for ever, a slice at a time, yielding to the loop in between."""
        queue = intake.queue
        while True:
            if not queue:
                intake.ready.clear()
                await intake.ready.wait()
            self.process(queue, min(len(queue), SLICE))
            intake.drained()
            await asyncio.sleep(0)

    def _set_time(self, when: float) -> None:
        self._last_when = when
        now = datetime.fromtimestamp(when, UTC)
        self._now = now.astimezone() if self.local_time else now
        self._received = format_received(when)
        self._day = day_of(when, self.local_time)
