"""Points and the appender seam between scraping (handlers) and storage (historians).

A handler never sees a historian: it adds points to an `Appender` that stamps the scrape's
time and the target's identity tags, and the scrape commits or rolls back the whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

FieldValue = float | int | bool | str


class Point(NamedTuple):
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int


class Appender(Protocol):
    """What a handler writes to; identity tags and the timestamp are the appender's business."""

    def add(self, measurement: str, fields: Mapping[str, FieldValue],
            tags: Mapping[str, str] | None = None) -> None: ...


class ListAppender:
    """One scrape's points, in memory, with fixed base tags and time (scrapes and tests).

    The scrape commits `points` to the outputs, or calls `rollback` first when the scrape failed,
    so a half-handled varz never reaches storage (Prometheus' Appender: Commit or Rollback).
    """

    def __init__(self, base_tags: Mapping[str, str], time_ns: int) -> None:
        self.base_tags = dict(base_tags)
        self.time_ns = time_ns
        self.points: list[Point] = []

    def add(self, measurement: str, fields: Mapping[str, FieldValue],
            tags: Mapping[str, str] | None = None) -> None:
        if not fields:
            return
        merged = {**self.base_tags, **tags} if tags else self.base_tags
        self.points.append(Point(measurement, merged, dict(fields), self.time_ns))

    def rollback(self) -> None:
        """Forget the points added so far."""
        self.points.clear()
