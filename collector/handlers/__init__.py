"""Per-component-type varz handlers: varz JSON → points, through an `Appender`.

Usage (the scrape code):

    handler = handler_for(component_type)        # one lookup per target, reusable
    stats = handler(varz, appender)              # HandlerStats(points, skipped, error)
    role = role_for(component_type)              # identity tag: "core" | "service" | None

A handler never raises on user data: unusable values are dropped and counted in
`stats.skipped`; `stats.error` is set only if a handler itself failed (a bug). The handler adds
measurement-specific tags only; identity tags (deployment, job, index, ip, role) and the
timestamp are the appender's. The schema is in docs/schema.md.

Whatever the type, a varz that publishes `metric_declarations` (a component built on
`fobs.components` with declared metrics) has those stored by `declared`, with no handler to write.

Importing this package registers every handler module (like Telegraf's `plugins/inputs/all`).
"""

# Each handler module registers itself on import.
from fobs.collector.handlers import (  # noqa: F401
    cloud_controller,
    contexts,
    dea,
    generic,
    health_manager,
    router,
    service_gateway,
    service_node,
    stager,
)
from fobs.collector.handlers.registry import (
    GENERIC,
    HANDLERS,
    Handler,
    HandlerStats,
    handler_for,
    patterns,
    register,
)
from fobs.collector.handlers.roles import role_for

__all__ = ["GENERIC", "HANDLERS", "Handler", "HandlerStats", "handler_for", "patterns",
           "register", "role_for"]
