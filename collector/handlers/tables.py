"""Shapes of the fobs daemons' own varz: `{name: {…}}` tables whose keys become a tag
(per-output, per-service, per-component and per-rule), and closed vocabularies stored as numbers.

The names are bounded by configuration (outputs, services, rules) or by the fleet's component
types, but a varz is still untrusted: a name that is not a short word (or looks like an id or an
IP address) is skipped, and at most `limit` entries are read, so a runaway table cannot flood the
series index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.values import tag_value, to_float


def entries(raw: Any, rec: Recorder, limit: int,
            rank: Callable[[Mapping[str, Any]], float] | None = None
            ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(tag value, object) for each usable entry of a JSON object, at most `limit` of them.

    With `rank`, the entries with the highest rank are kept when there are more than `limit`
    (in rank order); otherwise the first ones, in varz order. Entries past the limit, entries
    whose value is not an object and names that are not bounded words count one skip each.
    """
    table = rec.mapping(raw)
    if table is None:
        return
    items = list(table.items())
    if rank is not None and len(items) > limit:
        items.sort(key=lambda item: -rank(item[1]) if isinstance(item[1], Mapping) else 0.0)
    if len(items) > limit:
        rec.skip(len(items) - limit)
        items = items[:limit]
    for key, value in items:
        body = rec.mapping(value)
        if body is None:
            continue
        name = tag_value(key)
        if name is None:
            rec.skip()
            continue
        yield name, body


def figures(source: Any, gauges: Mapping[str, str], counters: Mapping[str, str],
            rec: Recorder) -> Fields:
    """Float fields for `gauges` and int fields for `counters` (varz key → field name) of one
    object; {} (and one skip unless it was absent) when `source` is not an object."""
    table = rec.mapping(source)
    fields: Fields = {}
    if table is not None:
        rec.gauges(fields, table, gauges)
        rec.counters(fields, table, counters)
    return fields


def by_number(key: str) -> Callable[[Mapping[str, Any]], float]:
    """A `rank` for `entries`: the entry's number at `key` (0 when unusable)."""
    def rank(entry: Mapping[str, Any]) -> float:
        return to_float(entry.get(key)) or 0.0
    return rank


def code(fields: Fields, name: str, raw: Any, table: Mapping[str, float], rec: Recorder,
         ignore: tuple[str, ...] = ()) -> None:
    """Set float field `name` to `table[raw]` (a state word as a number); else one skip.

    States are words from a closed vocabulary; a string field would make every query filter
    on text, and a tag would split the series each time the state changes. A word in `ignore`
    means "no figure yet": nothing is set and nothing is counted.
    """
    if raw is None or raw in ignore:
        return
    value = table.get(raw) if isinstance(raw, str) else None
    if value is None:
        rec.skip()
    else:
        fields[name] = value
