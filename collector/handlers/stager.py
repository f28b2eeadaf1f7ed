"""Stager varz (fobs' reference stager; the V1 stager's task gauges) → `stager`, `stager_failure`.

Cloud Foundry had no per-task staging varz; fobs' stager publishes these names.

`stager` — no tags:

| field                  | type  | unit  | varz                                          |
|------------------------|-------|-------|-----------------------------------------------|
| tasks_pending          | float |       | `tasks_pending` (V1: `num_pending_tasks`)     |
| tasks_active           | float |       | `tasks_active` (V1: `num_active_tasks`)       |
| tasks_succeeded        | int   |       | `tasks_succeeded` (counter)                   |
| tasks_failed           | int   |       | `tasks_failed` (counter)                      |
| droplet_bytes_total    | int   | bytes | `droplet_bytes_total` (counter)               |
| duration_p50_seconds … | float | s     | `duration_seconds` {"50","75","90","95","99"} |

`stager_failure` — tag `reason`, field `count` (int, counter), one point per entry of
`failures_by_reason` {reason: count}. Reasons are a small fixed vocabulary; a reason that is not a
short word (or looks like an id) is skipped, and at most `MAX_REASONS` are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.handlers.recorder import Fields, Recorder
from collector.handlers.registry import register

MAX_REASONS = 32

GAUGES = {"tasks_pending": "tasks_pending", "tasks_active": "tasks_active"}
V1_GAUGES = {"num_pending_tasks": "tasks_pending", "num_active_tasks": "tasks_active"}
COUNTERS = {"tasks_succeeded": "tasks_succeeded", "tasks_failed": "tasks_failed",
            "droplet_bytes_total": "droplet_bytes_total"}


@register("Stager")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    rec.gauges(fields, varz, V1_GAUGES)
    rec.gauges(fields, varz, GAUGES)
    rec.counters(fields, varz, COUNTERS)
    rec.percentiles(fields, "duration", varz.get("duration_seconds"))
    rec.add("stager", fields)
    for reason, count in rec.items(varz.get("failures_by_reason"), MAX_REASONS):
        tag = rec.tag(reason)
        if tag is not None:
            failure: Fields = {}
            rec.counter(failure, "count", count)
            rec.add("stager_failure", failure, {"reason": tag})
