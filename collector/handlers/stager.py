"""Stager varz (fobs' reference stager; the V1 stager's gauges) → `stager`, `stager_failure`,
`stager_buildpack`.

Cloud Foundry had no per-task staging varz; fobs' stager publishes these names.

`stager` — no tags:

| field                  | type  | unit  | varz                                          |
|------------------------|-------|-------|-----------------------------------------------|
| tasks_pending          | float |       | `tasks_pending` (V1: `num_pending_tasks`)     |
| tasks_active           | float |       | `tasks_active` (V1: `num_active_tasks`)       |
| tasks_received         | int   |       | `tasks_received` (counter)                    |
| tasks_succeeded        | int   |       | `tasks_succeeded` (counter)                   |
| tasks_failed           | int   |       | `tasks_failed` (counter)                      |
| droplet_bytes_total    | int   | bytes | `droplet_bytes_total` (counter)               |
| instances_placed       | int   |       | `instances_placed` (counter)                  |
| bad_messages           | int   |       | `bad_messages` (counter)                      |
| duration_p50_seconds … | float | s     | `duration_seconds` {"50","75","90","95","99"} |
| queue_wait_p50_seconds…| float | s     | `queue_wait_seconds` {"50", …}                |
| duration_samples       | float |       | `duration_samples`                            |
| deas_known             | float |       | `deas_known`                                  |
| max_concurrent         | float |       | `max_concurrent`                              |

`stager_failure` — tag `reason`, field `count` (int, counter), one point per entry of
`failures_by_reason` {reason: count}. `stager_buildpack` — tag `buildpack`, field `succeeded`
(int, counter), from `succeeded_by_buildpack`. Reasons and buildpacks are small fixed
vocabularies; a key that is not a short word (or looks like an id) is skipped, and at most 32 are
read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register

MAX_REASONS = 32

MAX_BUILDPACKS = 32

GAUGES = {"tasks_pending": "tasks_pending", "tasks_active": "tasks_active",
          "duration_samples": "duration_samples", "deas_known": "deas_known",
          "max_concurrent": "max_concurrent"}
V1_GAUGES = {"num_pending_tasks": "tasks_pending", "num_active_tasks": "tasks_active"}
COUNTERS = {"tasks_received": "tasks_received", "tasks_succeeded": "tasks_succeeded",
            "tasks_failed": "tasks_failed", "droplet_bytes_total": "droplet_bytes_total",
            "instances_placed": "instances_placed", "bad_messages": "bad_messages"}


@register("Stager")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    rec.gauges(fields, varz, V1_GAUGES)
    rec.gauges(fields, varz, GAUGES)
    rec.counters(fields, varz, COUNTERS)
    rec.percentiles(fields, "duration", varz.get("duration_seconds"))
    rec.percentiles(fields, "queue_wait", varz.get("queue_wait_seconds"))
    rec.add("stager", fields)
    _add_counts(varz.get("failures_by_reason"), "stager_failure", "reason", "count", MAX_REASONS,
                rec)
    _add_counts(varz.get("succeeded_by_buildpack"), "stager_buildpack", "buildpack",
                "succeeded", MAX_BUILDPACKS, rec)


def _add_counts(raw: Any, measurement: str, tag_key: str, field: str, limit: int,
                rec: Recorder) -> None:
    """One point per entry of a {word: count} object, the word as a tag (bounded)."""
    for key, count in rec.items(raw, limit):
        tag = rec.tag(key)
        if tag is not None:
            fields: Fields = {}
            rec.counter(fields, field, count)
            rec.add(measurement, fields, {tag_key: tag})
