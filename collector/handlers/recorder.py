"""A handler's view of the appender for one varz: typed field setters that coerce or skip.

Handlers never raise on user data. Each setter either stores a value of the field's fixed type
(float for gauges, int for counters: the Telegraf rule that a field never changes type) or drops
it and counts one skipped value. A key that is absent, or JSON null, is not a value and is not
counted. The scrape code reads `points` and `skipped` back through `HandlerStats`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from fobs.collector.handlers.values import INT64_MAX, INT64_MIN, tag_value, to_float, to_int
from fobs.collector.point import Appender, FieldValue

Fields = dict[str, FieldValue]

MAX_ITEMS = 10_000            # entries read from one varz collection (instance registry, …)
PERCENTILES = ("50", "75", "90", "95", "99")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "xxx")


class Recorder:
    """Wraps an `Appender` for one handler run and counts points added and values skipped."""

    __slots__ = ("_out", "points", "skipped")

    def __init__(self, out: Appender) -> None:
        self._out = out
        self.points = 0
        self.skipped = 0

    def add(self, measurement: str, fields: Fields, tags: Mapping[str, str] | None = None) -> None:
        """Add one point, unless it has no fields (then nothing is written)."""
        if fields:
            self._out.add(measurement, fields, tags)
            self.points += 1

    def skip(self, count: int = 1) -> None:
        self.skipped += count

    # -- fields ----------------------------------------------------------------------------

    def gauge(self, fields: Fields, name: str, raw: Any, scale: float = 1.0) -> None:
        """Set float field `name` from `raw` × `scale`."""
        if raw is None:
            return
        if type(raw) is float and scale == 1.0 and raw - raw == 0.0:
            fields[name] = raw           # the common case, without a call
            return
        value = to_float(raw)
        if value is not None and scale != 1.0:
            value = to_float(value * scale)
        if value is None:
            self.skipped += 1
        else:
            fields[name] = value

    def counter(self, fields: Fields, name: str, raw: Any) -> None:
        """Set int field `name` from `raw` (a monotonic counter)."""
        if raw is None:
            return
        if type(raw) is int and INT64_MIN <= raw <= INT64_MAX:
            fields[name] = raw           # the common case, without a call
            return
        value = to_int(raw)
        if value is None:
            self.skipped += 1
        else:
            fields[name] = value

    def gauges(self, fields: Fields, source: Any, names: Mapping[str, str],
               scale: float = 1.0) -> None:
        """Set float fields from a mapping of varz key → field name, read in `source`."""
        table = self.mapping(source)
        if table is not None:
            get = table.get
            for key, name in names.items():
                raw = get(key)
                if type(raw) is float and scale == 1.0 and raw - raw == 0.0:
                    fields[name] = raw       # gauge()'s common case, without a call
                elif raw is not None:
                    self.gauge(fields, name, raw, scale)

    def counters(self, fields: Fields, source: Any, names: Mapping[str, str]) -> None:
        """Set int fields from a mapping of varz key → field name, read in `source`."""
        table = self.mapping(source)
        if table is not None:
            get = table.get
            for key, name in names.items():
                raw = get(key)
                if type(raw) is int and INT64_MIN <= raw <= INT64_MAX:
                    fields[name] = raw       # counter()'s common case, without a call
                elif raw is not None:
                    self.counter(fields, name, raw)

    def percentiles(self, fields: Fields, prefix: str, raw: Any, scale: float = 1.0) -> None:
        """`{"50": v, …}` → float fields `<prefix>_p50_seconds`, … (other keys ignored)."""
        table = self.mapping(raw)
        if table is not None:
            get = table.get
            for key, name in _percentile_names(prefix):
                value = get(key)
                if type(value) is float and scale == 1.0 and value - value == 0.0:
                    fields[name] = value     # gauge()'s common case, without a call
                elif value is not None:
                    self.gauge(fields, name, value, scale)

    def responses(self, fields: Fields, source: Any, key_prefix: str = "responses_") -> None:
        """`<key_prefix>2xx` … `xxx` → int fields `responses_2xx` … `responses_xxx`."""
        self.counters(fields, source, _response_names(key_prefix))

    def tally(self, raw: Any, bucket: Callable[[Any], str | None], names: Iterable[str],
              limit: int = MAX_ITEMS) -> dict[str, int] | None:
        """Sum the int counts of a JSON object into `names` by `bucket(key)` (all start at 0).

        None when `raw` is not an object. A key whose bucket is not one of `names`, or whose
        count is unusable, is skipped; a null count is ignored.
        """
        table = self.mapping(raw)
        if table is None:
            return None
        totals = dict.fromkeys(names, 0)
        for key, raw_count in self.items(table, limit):
            if raw_count is None:
                continue
            name, count = bucket(key), to_int(raw_count)
            total = None
            if name is not None and name in totals and count is not None:
                total = to_int(totals[name] + count)
            if name is None or total is None:
                self.skipped += 1
            else:
                totals[name] = total
        return totals

    # -- structure -------------------------------------------------------------------------

    def mapping(self, raw: Any) -> Mapping[str, Any] | None:
        """`raw` if it is a JSON object; None (and one skip unless it was absent) otherwise."""
        if type(raw) is dict or isinstance(raw, Mapping):    # dict: no ABC check per call
            return raw
        if raw is not None:
            self.skipped += 1
        return None

    def sequence(self, raw: Any) -> Sequence[Any] | None:
        """`raw` if it is a JSON array; None (and one skip unless it was absent) otherwise."""
        if isinstance(raw, list | tuple):
            return raw
        if raw is not None:
            self.skipped += 1
        return None

    def items(self, raw: Any, limit: int = MAX_ITEMS) -> Iterator[tuple[str, Any]]:
        """At most `limit` (key, value) pairs of a JSON object; the rest are counted as skipped."""
        table = self.mapping(raw)
        if table is None:
            return iter(())
        if len(table) > limit:
            self.skipped += len(table) - limit
            return islice(table.items(), limit)
        return iter(table.items())

    def elements(self, raw: Any, limit: int = MAX_ITEMS) -> Iterator[Any]:
        """At most `limit` elements of a JSON array; the rest are counted as skipped."""
        array = self.sequence(raw)
        if array is None:
            return
        yield from islice(array, limit)
        if len(array) > limit:
            self.skipped += len(array) - limit

    def tag(self, raw: Any) -> str | None:
        """`raw` as a bounded tag value, or None and one skip."""
        value = tag_value(raw)
        if value is None:
            self.skipped += 1
        return value


@functools.cache
def _percentile_names(prefix: str) -> tuple[tuple[str, str], ...]:
    """(varz key, field name) of each percentile: made once per prefix, not per value."""
    return tuple((key, f"{prefix}_p{key}_seconds") for key in PERCENTILES)


@functools.cache
def _response_names(key_prefix: str) -> dict[str, str]:
    """varz key → field name of each status class (handlers pass constant prefixes)."""
    return {f"{key_prefix}{c}": f"responses_{c}" for c in STATUS_CLASSES}


def dig(varz: Any, *keys: str) -> Any:
    """The value at `varz[k1][k2]…`, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(varz, Mapping):
            return None
        varz = varz.get(key)
    return varz
