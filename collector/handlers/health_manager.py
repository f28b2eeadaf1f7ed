"""Health Manager varz (the Ruby health_manager) → measurement `health_manager`.

No tags. `total.*` and `running.*` are read from their objects, falling back to the flat keys the
Ruby HM also published (`total_apps`, `running_instances`, …).

| field                              | type  | unit  | varz                                  |
|------------------------------------|-------|-------|---------------------------------------|
| total_apps                         | float |       | `total.apps`                          |
| total_started_apps                 | float |       | `total.started_apps`                  |
| total_instances                    | float |       | `total.instances`                     |
| total_started_instances            | float |       | `total.started_instances`             |
| total_memory_bytes                 | float | bytes | `total.memory` (MB)                   |
| total_started_memory_bytes         | float | bytes | `total.started_memory` (MB)           |
| running_apps                       | float |       | `running.apps`                        |
| running_crashes                    | float |       | `running.crashes`                     |
| running_instances                  | float |       | `running.running_instances`           |
| missing_instances                  | float |       | `running.missing_instances`           |
| flapping_instances                 | float |       | `running.flapping_instances`          |
| crashed_instances                  | float |       | `crashed_instances`                   |
| analysis_loop_seconds              | float | s     | `analysis_loop_duration`              |
| bulk_update_loop_seconds           | float | s     | `bulk_update_loop_duration`           |
| queue_length                       | float |       | `queue_length`                        |
| users                              | float |       | `total_users`                         |
| <name>_msgs_received               | int   |       | every `*_msgs_received` (counters)    |
| health_start_messages_sent         | int   |       | same name (counter)                   |
| health_stop_messages_sent          | int   |       | same name (counter)                   |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register

MB = 1024 * 1024
MAX_MESSAGE_COUNTERS = 32
_RECEIVED = re.compile(r"[a-z][a-z0-9_]{0,60}_msgs_received")

TOTAL = {"apps": "total_apps", "started_apps": "total_started_apps",
         "instances": "total_instances", "started_instances": "total_started_instances"}
TOTAL_MEMORY = {"memory": "total_memory_bytes", "started_memory": "total_started_memory_bytes"}
RUNNING = {"apps": "running_apps", "crashes": "running_crashes",
           "running_instances": "running_instances", "missing_instances": "missing_instances",
           "flapping_instances": "flapping_instances"}
FLAT = {"total_apps": "total_apps", "running_instances": "running_instances",
        "missing_instances": "missing_instances", "flapping_instances": "flapping_instances",
        "crashed_instances": "crashed_instances", "analysis_loop_duration": "analysis_loop_seconds",
        "bulk_update_loop_duration": "bulk_update_loop_seconds", "queue_length": "queue_length",
        "total_users": "users"}
SENT = {"health_start_messages_sent": "health_start_messages_sent",
        "health_stop_messages_sent": "health_stop_messages_sent"}


@register("HealthManager")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    rec.gauges(fields, varz, FLAT)
    total = rec.mapping(varz.get("total"))
    rec.gauges(fields, total, TOTAL)
    rec.gauges(fields, total, TOTAL_MEMORY, scale=MB)
    rec.gauges(fields, varz.get("running"), RUNNING)
    rec.counters(fields, varz, SENT)
    received = sorted(key for key in varz if isinstance(key, str) and _RECEIVED.fullmatch(key))
    if len(received) > MAX_MESSAGE_COUNTERS:
        rec.skip(len(received) - MAX_MESSAGE_COUNTERS)
    for key in received[:MAX_MESSAGE_COUNTERS]:
        rec.counter(fields, key, varz[key])
    rec.add("health_manager", fields)
