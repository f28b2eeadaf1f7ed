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

from fobs.syslog_agg.lines import Formatter, format_received
from fobs.syslog_agg.listeners import Intake, Item
from fobs.syslog_agg.parser import parse
from fobs.syslog_agg.router import Router
from fobs.syslog_agg.stats import Counts, PipelineStats
from fobs.syslog_agg.store import day_of

__all__ = ["Pipeline"]

SLICE = 2048  # messages processed before yielding to the loop

Append = Callable[[str, str, str], None]            # (component, day, line)
TailAdmit = Callable[[str, float], bool]             # (component, monotonic now)
TailPublish = Callable[[str, str], None]             # (component, JSON line)


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
        self.stats = PipelineStats()
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
        stats = self.stats
        counts = stats.components
        formats = stats.formats
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
                stats.discarded += 1
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
            intake.note_depth()
            self.process(queue, min(len(queue), SLICE))
            intake.drained()
            await asyncio.sleep(0)

    def _set_time(self, when: float) -> None:
        self._last_when = when
        now = datetime.fromtimestamp(when, UTC)
        self._now = now.astimezone() if self.local_time else now
        self._received = format_received(when)
        self._day = day_of(when, self.local_time)
