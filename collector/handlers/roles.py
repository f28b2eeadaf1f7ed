"""The `role` identity tag for a component type, as the original collector assigned it.

`core` for the platform's own components, `service` for the service brokers' provisioners, nodes
and auxiliary servers, None otherwise (the tag is then omitted). fobs adds its own `Stager`
(a core component the original never saw); `MarketplaceGateway` had no role there and has none
here.
"""

from __future__ import annotations

import re

CORE = frozenset({
    "CloudController", "DEA", "HealthManager", "HM9000", "Router", "DopplerServer",
    "LoggregatorServer", "LoggregatorTrafficcontroller", "LoggregatorDeaAgent", "Stager",
})
SERVICE = frozenset({"SerializationDataServer", "BackupManager"})
# MyaaS, AuaaS, MongoaaS, Neo4jaaS, RMQaaS, RaaS, VBlobaaS … provisioners and nodes.
_SERVICE_FAMILY = re.compile(r"[A-Za-z0-9]+aaS-(?:Provisioner|Node)")


def role_for(component_type: str) -> str | None:
    """`"core"`, `"service"` or None for an announced component type."""
    if not isinstance(component_type, str):
        return None
    if component_type in CORE:
        return "core"
    if component_type in SERVICE or _SERVICE_FAMILY.fullmatch(component_type):
        return "service"
    return None
