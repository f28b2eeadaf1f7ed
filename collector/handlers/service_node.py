"""Service nodes (`*-Node`) → measurement `service_node`, tag `service_type` (as the gateways').

| field                     | type  | unit    | varz                                          |
|---------------------------|-------|---------|-----------------------------------------------|
| instances                 | float |         | number of entries in `instances`              |
| healthy_instances         | float |         | entries of `instances` whose value is `"ok"`  |
| healthy_instances_percent | float | percent | healthy / instances × 100 (0 with none)       |

As in the original collector, a node without `instances` reports 0 for all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.service_gateway import service_type


@register(patterns=("*-Node",))
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    instances = rec.mapping(varz.get("instances")) or {}
    total = len(instances)
    healthy = sum(1 for state in instances.values() if state == "ok")
    fields: Fields = {
        "instances": float(total),
        "healthy_instances": float(healthy),
        "healthy_instances_percent": 100.0 * healthy / total if total else 0.0,
    }
    rec.add("service_node", fields, {"service_type": service_type(varz)})
