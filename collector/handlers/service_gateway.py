"""Service gateways (`*-Provisioner`, `MarketplaceGateway`) → `service_gateway`, `service_plan`.

Both measurements carry tag `service_type`, derived from the varz `type` (the original's names:
`MyaaS` → mysql, `AuaaS` → postgresql, `MongoaaS` → mongodb, `Neo4jaaS` → neo4j, `RMQaaS` →
rabbitmq, `RaaS` → redis, `VBlobaaS` → vblob, `MarketplaceGateway` → marketplace; any other
`<Name>aaS-…` → `<name>` lower-cased; `unknown` when the varz has no usable `type`).

`service_gateway`:

| field                          | type  | varz                                                   |
|--------------------------------|-------|--------------------------------------------------------|
| online_nodes                   | float | number of entries in `nodes`                           |
| responses_2xx … responses_xxx  | int   | `responses_metrics.status_2xx` … (or `responses_2xx` …) |

`service_plan` — plus tag `plan` (the plan name), one point per entry of `plans`:

| field                   | type  | varz                                  |
|-------------------------|-------|---------------------------------------|
| low_water               | float | `low_water`                           |
| high_water              | float | `high_water`                          |
| score                   | float | `score`                               |
| max_capacity            | float | `max_capacity`                        |
| available_capacity      | float | `available_capacity`                  |
| used_capacity           | float | `used_capacity`                       |
| allow_over_provisioning | float | `allow_over_provisioning` truthy → 1, else 0 |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.values import tag_value

MAX_PLANS = 32
SERVICE_TYPES = {"MyaaS": "mysql", "AuaaS": "postgresql", "MongoaaS": "mongodb",
                 "Neo4jaaS": "neo4j", "RMQaaS": "rabbitmq", "RaaS": "redis", "VBlobaaS": "vblob",
                 "MarketplaceGateway": "marketplace"}
_FAMILY = re.compile(r"(.+?)-(?:Provisioner|Node)")
PLAN_FIELDS = ("low_water", "high_water", "score", "max_capacity", "available_capacity",
               "used_capacity")


def service_type(varz: Mapping[str, Any]) -> str:
    """The `service_type` tag for a service gateway or node, from its varz `type`."""
    component_type = varz.get("type")
    if not isinstance(component_type, str):
        return "unknown"
    match = _FAMILY.fullmatch(component_type)
    name = match.group(1) if match else component_type
    if name in SERVICE_TYPES:
        return SERVICE_TYPES[name]
    name = name.lower().removesuffix("aas")
    return tag_value(name) or "unknown"


@register("MarketplaceGateway", patterns=("*-Provisioner",))
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    tags = {"service_type": service_type(varz)}
    fields: Fields = {}
    nodes = varz.get("nodes")
    if isinstance(nodes, Mapping | list):
        fields["online_nodes"] = float(len(nodes))
    elif nodes is not None:
        rec.skip()
    metrics = rec.mapping(varz.get("responses_metrics"))
    if metrics is not None:
        legacy = any(isinstance(key, str) and key.startswith("responses_") for key in metrics)
        prefix = "responses_" if legacy else "status_"
        rec.responses(fields, metrics, prefix)
    rec.add("service_gateway", fields, tags)
    for raw in rec.elements(varz.get("plans"), MAX_PLANS):
        plan = rec.mapping(raw)
        name = rec.tag(plan.get("plan")) if plan is not None else None
        if plan is None or name is None:
            continue
        plan_fields: Fields = {}
        for key in PLAN_FIELDS:
            rec.gauge(plan_fields, key, plan.get(key))
        plan_fields["allow_over_provisioning"] = 1.0 if plan.get("allow_over_provisioning") else 0.0
        rec.add("service_plan", plan_fields, {**tags, "plan": name})
