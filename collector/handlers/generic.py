"""Fallback for component types without a handler: numeric varz leaves → measurement `varz`.

A varz with a `contexts` array is a Go component and goes to the contexts handler instead.
Otherwise every numeric leaf (JSON number; bools, strings and nulls are not numeric) outside the
generic `component` keys becomes a float field named by its dotted path: `a.b.0.c`.

Bounds keep an unknown payload from flooding the schema: the walk is breadth-first over sorted
keys (so the shallowest values win and names are deterministic), at most `MAX_DEPTH` path
segments, `MAX_LIST` elements per array, `MAX_FIELDS` fields and `MAX_NODES` values visited.
Path segments are the key with characters outside `[A-Za-z0-9_-]` replaced by `_`; a key longer
than `MAX_SEGMENT` or that looks like an identity (uuid, long hex id, IP address) is not followed,
because it names an unbounded thing. Each dropped leaf and each cut subtree counts one skip.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers import contexts
from fobs.collector.handlers.component import KEYS as COMPONENT_KEYS
from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import GENERIC, register
from fobs.collector.handlers.values import UNBOUNDED, to_float

MEASUREMENT = "varz"
MAX_FIELDS = 256
MAX_DEPTH = 4
MAX_LIST = 16
MAX_NODES = 4_096
MAX_SEGMENT = 48

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@register(GENERIC)
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    if isinstance(varz.get("contexts"), list):
        contexts.handle(varz, rec)
        return
    fields: Fields = {}
    flatten(varz, fields, rec, exclude=COMPONENT_KEYS)
    rec.add(MEASUREMENT, fields)


def flatten(root: Mapping[str, Any], fields: Fields, rec: Recorder,
            exclude: frozenset[str] = frozenset()) -> None:
    """Add the numeric leaves under `root` to `fields` as `a.b.c` → float, within the bounds."""
    queue: deque[tuple[str, Any, int]] = deque()
    budget = MAX_NODES
    budget -= _enqueue(queue, "", root, 1, budget, rec, exclude)
    while queue:
        path, value, depth = queue.popleft()
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, int | float):
            number = to_float(value)
            if number is None or path in fields or len(fields) >= MAX_FIELDS:
                rec.skip()
            else:
                fields[path] = number
        elif isinstance(value, Mapping | list):
            if depth >= MAX_DEPTH:
                rec.skip()
            else:
                budget -= _enqueue(queue, path + ".", value, depth + 1, budget, rec)


def _enqueue(queue: deque[tuple[str, Any, int]], prefix: str, value: Mapping[str, Any] | list[Any],
             depth: int, budget: int, rec: Recorder,
             exclude: frozenset[str] = frozenset()) -> int:
    """Queue the children of `value` (at most `budget` of them); returns how many were queued."""
    if isinstance(value, list):
        children = [(str(i), child) for i, child in enumerate(value[:MAX_LIST])]
        if len(value) > MAX_LIST:
            rec.skip()
    else:
        children = []
        for key in sorted(value, key=str):
            if key in exclude:
                continue
            segment = _segment(key)
            if segment is None:
                rec.skip()
            else:
                children.append((segment, value[key]))
    if len(children) > budget:
        children = children[:max(budget, 0)]
        rec.skip()
    queue.extend((prefix + segment, child, depth) for segment, child in children)
    return len(children)


def _segment(key: object) -> str | None:
    text = str(key)
    if not text or len(text) > MAX_SEGMENT or UNBOUNDED.search(text):
        return None
    return _UNSAFE.sub("_", text)

