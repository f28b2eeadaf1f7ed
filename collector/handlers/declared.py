"""Declared metrics: any component whose varz publishes its declarations → points, no handler.

A component built on the runtime (`fobs.components.metrics`) publishes, under
`metric_declarations`, one entry per stored field:

    {"measurement": "shop", "field": "requests", "type": "int", "kind": "counter",
     "tags": ["method"], "path": ["http", "requests", "{method}"], "series": [["GET"]]}

For each series (the tag values of one child) the value is read at `path`, a `{tag}` segment
standing for that tag's value, and stored as `type` (int or float) in `measurement` with the
series' tags; fields sharing a measurement and tag values make one point. `Handler` calls `add`
before the type's own handler and hands that one the varz without the declared values and the
declarations, so the generic flattener never stores them a second time.

The declarations come from the scraped process, so they are bounded like any varz: at most
`MAX_DECLARATIONS` entries, `MAX_SERIES` series each, `MAX_VALUES` values read in all, paths of
`MAX_PATH` keys and `MAX_TAGS` tags. A malformed entry (or one naming a measurement the
collector writes itself, `RESERVED`), a series past a bound, a bad tag value or an unusable
value counts one skipped value (`scrape.values_skipped`); a value that is absent or
null is not counted (a gauge with no reading yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.component import MEASUREMENT as COMPONENT
from fobs.collector.handlers.recorder import Fields, Recorder, dig
from fobs.collector.handlers.values import field_name, tag_key, tag_value
from fobs.components.metrics import DECLARATIONS_KEY

MAX_DECLARATIONS = 512
MAX_SERIES = 256
MAX_VALUES = 8_192
MAX_PATH = 8
MAX_TAGS = 8
MAX_KEY = 128
_MEASUREMENT = re.compile(r"[a-z_][a-z0-9_]{0,63}")
# What the scrape code, the `component` fields and the generic flattener write: not declarable
# (`scrape` and `varz` are spelled here because importing their modules would be a cycle; a test
# pins them to `scrape.MEASUREMENT` and `generic.MEASUREMENT`).
RESERVED = frozenset({"scrape", COMPONENT, "varz"})

Path = tuple[str, ...]
PointKey = tuple[str, tuple[tuple[str, str], ...]]


def add(varz: Mapping[str, Any], rec: Recorder) -> Mapping[str, Any]:
    """Add the declared metrics' points; returns varz without them (unchanged when none)."""
    if DECLARATIONS_KEY not in varz:
        return varz
    points: dict[PointKey, Fields] = {}
    taken: list[Path] = []
    budget = MAX_VALUES
    for raw in rec.elements(varz[DECLARATIONS_KEY], MAX_DECLARATIONS):
        declaration = _parse(raw)
        if declaration is None:
            rec.skip()
            continue
        measurement, field, kind, tags, path, series = declaration
        for values in rec.elements(series, MAX_SERIES):
            resolved = _resolve(path, tags, values) if budget > 0 else None
            if resolved is None:
                rec.skip()
                continue
            budget -= 1
            taken.append(resolved)          # not stored twice, even with a bad tag value
            if any(tag_value(value) != value for value in values):
                rec.skip()
                continue
            fields = points.setdefault((measurement, tuple(zip(tags, values, strict=True))), {})
            if field in fields:
                rec.skip()
            elif kind == "int":
                rec.counter(fields, field, dig(varz, *resolved))
            else:
                rec.gauge(fields, field, dig(varz, *resolved))
    for (measurement, tag_items), fields in points.items():
        rec.add(measurement, fields, dict(tag_items))
    return _without(varz, [(DECLARATIONS_KEY,), *taken])


def _parse(raw: Any) -> tuple[str, str, str, list[str], list[str], Any] | None:
    """(measurement, field, type, tags, path, series) of a well-formed entry, else None."""
    if not isinstance(raw, Mapping):
        return None
    measurement, field, kind = raw.get("measurement"), raw.get("field"), raw.get("type")
    tags, path = raw.get("tags"), raw.get("path")
    if not (isinstance(measurement, str) and _MEASUREMENT.fullmatch(measurement)
            and measurement not in RESERVED
            and field_name(field) is not None and kind in ("int", "float")
            and isinstance(tags, list) and len(tags) <= MAX_TAGS
            and all(tag_key(tag) is not None for tag in tags) and len(set(tags)) == len(tags)
            and isinstance(path, list) and 0 < len(path) <= MAX_PATH
            and all(isinstance(key, str) and len(key) <= MAX_KEY for key in path)):
        return None
    placeholders = {key[1:-1] for key in path if key.startswith("{") and key.endswith("}")}
    if not placeholders <= set(tags):
        return None
    return measurement, str(field), kind, tags, path, raw.get("series")


def _resolve(path: list[str], tags: list[str], values: Any) -> Path | None:
    """The varz keys of one series, or None if it is not a list of as many strings as tags."""
    if not isinstance(values, list) or len(values) != len(tags) or not all(
            isinstance(value, str) and len(value) <= MAX_KEY for value in values):
        return None
    by_tag = {f"{{{tag}}}": value for tag, value in zip(tags, values, strict=True)}
    return tuple(by_tag.get(key, key) for key in path)


def _without(varz: Mapping[str, Any], paths: list[Path]) -> dict[str, Any]:
    """A copy of varz without the values at `paths` and the objects that only held those (only
    the objects on those paths are copied)."""
    out = dict(varz)
    below: dict[str, list[Path]] = {}
    for path in paths:
        if len(path) == 1:
            out.pop(path[0], None)
        else:
            below.setdefault(path[0], []).append(path[1:])
    for key, rest in below.items():
        child = out.get(key)
        if isinstance(child, Mapping):
            out[key] = _without(child, rest)
            if not out[key] and child:
                del out[key]                  # emptied here: nothing left for the flattener
    return out
