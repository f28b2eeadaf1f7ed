"""The syslog pipeline's counters, typed, and the batch a UDP worker ships to the aggregator.

Each stage counts into its own object with plain attribute increments (the receive and parse
loops run them per message). A UDP worker process (workers.py) counts into its own copies and
ships, with every batch, what it counted since the last batch: `take()` returns that delta and
starts the object from zero, `merge()` adds a delta into the aggregator's totals. No object
resets or adds into another's counters, and a restarted worker's counts are not lost: they
were merged before it died. What each counter means is its declaration's help (metrics.py).

A `Batch` is the one message a worker sends the aggregator (pickled over a socketpair).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

__all__ = ["Tally", "IntakeStats", "ListenerStats", "StoreStats", "TailStats", "Counts",
           "PipelineStats", "Batch", "SEVERITIES", "FORMATS"]

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FORMATS = ("rfc5424", "rfc3164", "unparsed")


class Tally:
    """take/merge for a slotted dataclass whose fields are all int counters."""

    __slots__ = ()

    def __reduce__(self) -> tuple[type[Self], tuple[int, ...]]:
        """Pickle as the constructor call: a third of the default for slotted classes."""
        names: tuple[str, ...] = self.__slots__
        return type(self), tuple(getattr(self, name) for name in names)

    def take(self) -> Self:
        """The counts since the last take; this object starts again from zero."""
        names: tuple[str, ...] = self.__slots__
        taken = type(self)()
        for name in names:
            setattr(taken, name, getattr(self, name))
            setattr(self, name, 0)
        return taken

    def merge(self, delta: Self) -> None:
        """Add `delta` (from `take`) to these counts."""
        names: tuple[str, ...] = self.__slots__
        for name in names:
            setattr(self, name, getattr(self, name) + getattr(delta, name))


@dataclass(slots=True)
class IntakeStats(Tally):
    """What the listeners received (udp.py, tcp.py); datagrams and frames, before parsing."""

    received: int = 0
    received_bytes: int = 0
    truncated: int = 0
    dropped: int = 0
    probes: int = 0
    framing_errors: int = 0


@dataclass(slots=True)
class ListenerStats(Tally):
    """One TCP or TLS listener's connections (tcp.py)."""

    connections: int = 0
    rejected_connections: int = 0
    rejected_per_source: int = 0
    handshake_timeouts: int = 0
    handshake_failures: int = 0
    accept_errors: int = 0
    idle_closed: int = 0


@dataclass(slots=True)
class StoreStats(Tally):
    """The file writer (store.py) and its retention passes (retention.py)."""

    lines_written: int = 0
    bytes_written: int = 0
    write_errors: int = 0
    lines_lost: int = 0
    rotations: int = 0
    files_gzipped: int = 0
    files_removed: int = 0
    bytes_removed: int = 0
    flushes: int = 0


@dataclass(slots=True)
class TailStats(Tally):
    """The live tail (tail.py); a worker rate-limits its share, the aggregator publishes."""

    published: int = 0
    rate_limited: int = 0
    not_connected: int = 0


@dataclass(slots=True)
class Counts:
    """Messages and bytes per severity of one component (index 8 = no severity: unparsed)."""

    messages: int = 0
    bytes: int = 0
    severity: list[int] = field(default_factory=lambda: [0] * 9)

    def __reduce__(self) -> tuple[type[Counts], tuple[int, int, list[int]]]:
        """Pickle as the constructor call (a worker ships one per component per batch)."""
        return Counts, (self.messages, self.bytes, self.severity)

    def merge(self, delta: Counts) -> None:
        self.messages += delta.messages
        self.bytes += delta.bytes
        sev = self.severity
        for i, n in enumerate(delta.severity):
            sev[i] += n


@dataclass(slots=True)
class PipelineStats:
    """What parsing and routing made of the messages (pipeline.py)."""

    components: dict[str, Counts] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    discarded: int = 0

    def __reduce__(self) -> tuple[type[PipelineStats], tuple[Any, ...]]:
        return PipelineStats, (self.components, self.formats, self.discarded)

    def take(self) -> PipelineStats:
        """The counts since the last take; this object starts again from zero."""
        taken = PipelineStats(dict(self.components), dict(self.formats), self.discarded)
        self.components.clear()  # in place: `Pipeline.process` holds these dicts while a
        self.formats.update(dict.fromkeys(FORMATS, 0))  # full batch is shipped mid-slice
        self.discarded = 0
        return taken

    def merge(self, delta: PipelineStats) -> None:
        """Add `delta` (from `take`) to these counts."""
        components = self.components
        for name, counts in delta.components.items():
            mine = components.get(name)
            if mine is None:
                components[name] = Counts(counts.messages, counts.bytes, list(counts.severity))
            else:
                mine.merge(counts)
        for name, n in delta.formats.items():
            self.formats[name] += n
        self.discarded += delta.discarded

    def severity_totals(self) -> list[int]:
        """Messages per severity over every component (index 8 = unparsed)."""
        total = [0] * 9
        for counts in self.components.values():
            for i, n in enumerate(counts.severity):
                total[i] += n
        return total


@dataclass(slots=True)
class Batch:
    """What a UDP worker ships every 20 ms: its lines, tail candidates and counter deltas."""

    lines: dict[tuple[str, str], str]        # (component, day) -> lines, each ending in LF
    tail: list[tuple[str, str]]              # (component, JSON line) admitted for the tail
    intake: IntakeStats
    pipeline: PipelineStats
    tail_stats: TailStats

    def __reduce__(self) -> tuple[type[Batch], tuple[Any, ...]]:
        return Batch, (self.lines, self.tail, self.intake, self.pipeline, self.tail_stats)
