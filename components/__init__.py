"""The component runtime and the reference components.

A service becomes a component by creating a `Component`, declaring its metrics on
`component.metrics` (`Counter`, `Gauge`, `Summary`: fobs' collector stores them with no handler
to write), adding health checks, and calling `start()`: it then registers over NATS the Cloud
Foundry way and serves /varz, /healthz and /metrics behind basic auth. docs/runtime.md has an
example.
"""

from fobs.components.bus import Bus, NatsConfig
from fobs.components.config import ConfigError
from fobs.components.logs import SyslogConfig
from fobs.components.metrics import Counter, Gauge, Registry, Summary
from fobs.components.runtime import Component, ComponentConfig
from fobs.components.wire import uptime_string

__all__ = ["Bus", "Component", "ComponentConfig", "ConfigError", "Counter", "Gauge", "NatsConfig",
           "Registry", "Summary", "SyslogConfig", "uptime_string"]
