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

from fobs.syslog_agg.intake import GATHER, GATHER_BELOW, Intake, Item
from fobs.syslog_agg.lines import Formatter, format_received
from fobs.syslog_agg.parser import parse
from fobs.syslog_agg.router import Router
from fobs.syslog_agg.stats import Counts, PipelineStats
from fobs.syslog_agg.store import day_of

__all__ = ["Pipeline"]

SLICE = 2048  # messages processed before yielding to the loop

Append = Callable[[str, str, str], None]            # (component, day, lines)
TailAdmit = Callable[[str, float], bool]             # (component, monotonic now)
TailPublish = Callable[[str, str], None]             # (component, JSON line)
TailLimited = Callable[[str, int], None]             # (component, messages refused)


class Pipeline:
    """Per message: parse, route, count, format; per slice: one `append` per (component, day).

    The loop is the aggregator's hot path (profiled, see docs/syslog.md "Benchmark"): the
    lines of a slice are gathered per (component, day) and handed on joined, and a component
    the tail refused once in a slice is not asked again in that slice (its bucket cannot
    refill: the slice has one clock reading); those messages are reported to `limited`.
    """

    def __init__(self, router: Router, line_format: str, append: Append, *,
                 local_time: bool = False,
                 tail: tuple[TailAdmit, TailPublish, TailLimited] | None = None) -> None:
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
        stats = self.stats
        formats = stats.formats
        out: dict[tuple[str, str], list[str]] = {}
        # component -> (its counts, its lines of `day` in this slice): one look-up a message
        slots: dict[str, tuple[Counts, list[str]]] = {}
        refused: dict[str, int] = {}  # component -> messages the tail refused in this slice
        tail = self.tail
        if tail is not None:
            admit, publish, limited = tail
        mono = time.monotonic()
        last_when, now, received, day = self._last_when, self._now, self._received, self._day
        for _ in range(n):
            data, peer, when, truncated = popleft()
            if when != last_when:
                self._set_time(when)
                last_when, now, received = when, self._now, self._received
                if self._day != day:
                    day = self._day
                    slots = {}
            msg = parse(data, now=now)
            if truncated:
                msg.truncated = True
            component = route(msg)
            formats[msg.format] += 1
            if component is None:
                stats.discarded += 1
                continue
            slot = slots.get(component)
            if slot is None:
                slot = slots[component] = self._slot(component, day, out)
            c, lines = slot
            c.messages += 1
            c.bytes += len(data)
            sev = msg.severity
            c.severity[8 if sev is None else sev] += 1
            lines.append(line(msg, component, received, peer))
            if tail is not None:
                if component in refused:
                    refused[component] += 1
                elif admit(component, mono):
                    publish(component, self.json_line(msg, component, received, peer))
                else:
                    refused[component] = 0
        append = self.append
        for (component, day), lines in out.items():
            append(component, day, "".join(lines))
        for component, more in refused.items():
            if more:
                limited(component, more)

    def _slot(self, component: str, day: str, out: dict[tuple[str, str], list[str]]
              ) -> tuple[Counts, list[str]]:
        counts = self.stats.components
        c = counts.get(component)
        if c is None:
            c = counts[component] = Counts()
        lines = out.get((component, day))
        if lines is None:
            lines = out[(component, day)] = []
        return c, lines

    async def consume(self, intake: Intake) -> None:
        """Process `intake` for ever, a slice at a time, yielding to the loop in between."""
        queue = intake.queue
        while True:
            if not queue:
                intake.ready.clear()
                await intake.ready.wait()
                if len(queue) < GATHER_BELOW:
                    await asyncio.sleep(GATHER)
            intake.note_depth()
            self.process(queue, min(len(queue), SLICE))
            if intake.drained() or queue:  # else waiting for more yields to the loop anyway:
                await asyncio.sleep(0)     # one loop turn less per wake-up at moderate rates

    def _set_time(self, when: float) -> None:
        self._last_when = when
        now = datetime.fromtimestamp(when, UTC)
        self._now = now.astimezone() if self.local_time else now
        self._received = format_received(when)
        self._day = day_of(when, self.local_time)
