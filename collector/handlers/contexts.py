"""Go components' varz (loggregatorlib instrumentation): HM9000, MetronAgent, DopplerServer, etcd, …

Shape: `{name, numCPUS, numGoRoutines, memoryStats{…}, tags{}, contexts: [{name, metrics:
[{name, value, tags}]}]}`; `contexts` and `metrics` may be null. Any varz of an unknown type that
carries a `contexts` array is handled here too (see `generic`).

`go_runtime` — no tags:

| field                 | type  | unit  | varz                                |
|-----------------------|-------|-------|-------------------------------------|
| num_cpus              | float | cores | `numCPUS`                           |
| num_goroutines        | float |       | `numGoRoutines`                     |
| heap_bytes            | float | bytes | `memoryStats.numBytesAllocatedHeap` |
| stack_bytes           | float | bytes | `memoryStats.numBytesAllocatedStack`|
| allocated_bytes       | float | bytes | `memoryStats.numBytesAllocated`     |
| mallocs               | int   |       | `memoryStats.numMallocs`            |
| frees                 | int   |       | `memoryStats.numFrees`              |
| last_gc_pause_seconds | float | s     | `memoryStats.lastGCPauseTimeNS` / 1e9 |

`go_context` — tag `context` (the context name) plus the metric's own tags (varz `tags` merged
with metric `tags`) when they are bounded words and not identity tags; a metric whose tag value
looks unbounded (uuid, IP, long text) is skipped. Fields: one float per metric, named as the
metric (`[A-Za-z0-9_][A-Za-z0-9_.-]*`, ≤ 128 chars).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.values import IDENTITY_TAGS, field_name, tag_key, tag_value, to_float

MAX_CONTEXTS = 64
MAX_METRICS = 1_000          # per context
MAX_POINTS = 256             # distinct (context, tags) points per varz
MAX_METRIC_TAGS = 4

MEMORY_STATS = {"numBytesAllocatedHeap": "heap_bytes", "numBytesAllocatedStack": "stack_bytes",
                "numBytesAllocated": "allocated_bytes"}
MEMORY_COUNTERS = {"numMallocs": "mallocs", "numFrees": "frees"}

GO_TYPES = ("HM9000", "MetronAgent", "DopplerServer", "LoggregatorTrafficcontroller",
            "LoggregatorDeaAgent", "LoggregatorServer", "LoggregatorRouter", "etcd",
            "etcd-diego", "runtime")


@register(*GO_TYPES)
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    runtime: Fields = {}
    rec.gauge(runtime, "num_cpus", varz.get("numCPUS"))
    rec.gauge(runtime, "num_goroutines", varz.get("numGoRoutines"))
    memory = varz.get("memoryStats")
    rec.gauges(runtime, memory, MEMORY_STATS)
    rec.counters(runtime, memory, MEMORY_COUNTERS)
    if isinstance(memory, Mapping):
        rec.gauge(runtime, "last_gc_pause_seconds", memory.get("lastGCPauseTimeNS"), 1e-9)
    rec.add("go_runtime", runtime)

    base_tags = _tags(varz.get("tags"), rec, strict=False) or {}
    points: dict[tuple[tuple[str, str], ...], Fields] = {}
    for context in rec.elements(varz.get("contexts"), MAX_CONTEXTS):
        context = rec.mapping(context)
        if context is None:
            continue
        name = rec.tag(context.get("name"))
        if name is None:
            continue
        for metric in rec.elements(context.get("metrics"), MAX_METRICS):
            _add_metric(points, name, base_tags, metric, rec)
    for tags, fields in points.items():
        rec.add("go_context", fields, dict(tags))


def _add_metric(points: dict[tuple[tuple[str, str], ...], Fields], context: str,
                base_tags: dict[str, str], raw: Any, rec: Recorder) -> None:
    metric = rec.mapping(raw)
    if metric is None:
        return
    name = field_name(metric.get("name"))
    value = to_float(metric.get("value"))
    tags = _tags(metric.get("tags"), rec)
    if name is None or value is None or tags is None:
        rec.skip()
        return
    key = tuple(sorted({**base_tags, **tags, "context": context}.items()))
    fields = points.get(key)
    if fields is None:
        if len(points) >= MAX_POINTS:
            rec.skip()
            return
        fields = points[key] = {}
    if name in fields:
        rec.skip()
    else:
        fields[name] = value


def _tags(raw: Any, rec: Recorder, strict: bool = True) -> dict[str, str] | None:
    """Bounded tags from a Go tags object ({} when absent).

    Identity keys (ip, job, …) are dropped: the scrape code's tags already say them. Any other
    unusable entry makes a metric's tags None (strict) or is dropped and counted (varz tags).
    """
    if raw is None:
        return {}
    table = raw if isinstance(raw, Mapping) and len(raw) <= 2 * MAX_METRIC_TAGS else None
    if table is None:
        if strict:
            return None
        rec.skip()
        return {}
    tags: dict[str, str] = {}
    for key, value in table.items():
        if key in IDENTITY_TAGS:
            continue
        if tag_key(key) is None or key == "context" or tag_value(value) is None:
            if strict:
                return None
            rec.skip()
        else:
            tags[key] = str(value)
    if len(tags) <= MAX_METRIC_TAGS:
        return tags
    if strict:
        return None
    rec.skip()
    return {}
