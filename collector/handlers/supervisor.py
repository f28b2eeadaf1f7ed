"""The supervisor's varz (type `Supervisor`, `fobs monit` with `[component]`) → `supervisor`,
`supervisor_service`.

`supervisor` — no tags: services_total, services_up, services_down, services_initialising,
services_unmonitored, cycle_seconds (float); cycles, alerts_raised, alerts_published,
alert_publish_errors (int, counters).

`supervisor_service` — tag `service` (the configured service name), one point per service:

| field              | type  | unit    | varz                                                 |
|--------------------|-------|---------|------------------------------------------------------|
| up                 | float | 0/1     | `up`                                                 |
| status_code        | float |         | `status` without its ` - … pending` suffix, by `STATUS_CODES` |
| pending            | float | 0/1     | 1 while an operation is pending (`status` has a suffix) |
| monitored          | float | 0/1     | `monitoring_status` is not `Not monitored`           |
| restarts           | int   |         | `restarts` (counter)                                 |
| uptime_seconds     | int   | s       | `uptime`                                             |
| cpu_percent        | float | percent | `cpu` (100 = one core)                               |
| memory_bytes       | float | bytes   | `memory`                                             |
| memory_total_bytes | float | bytes   | `memory_total` (with descendants)                    |
| children           | float |         | `children`                                           |

`pid` is not collected (it names a process, not a quantity). Service names are bounded by the
supervisor's config; at most `MAX_SERVICES` are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.tables import code, entries, figures

MAX_SERVICES = 256
# monit's states, best first: 0 is OK, anything above needs a look.
STATUS_CODES = {"OK": 0.0, "Initializing": 1.0, "Not monitored": 2.0, "Does not exist": 3.0,
                "Connection failed": 4.0, "Resource limit matched": 5.0, "Status failed": 6.0,
                "Execution failed": 7.0}
MONITORING = {"Monitored": 1.0, "Initializing": 1.0, "Not monitored": 0.0}

GAUGES = {key: key for key in ("services_total", "services_up", "services_down",
                               "services_initialising", "services_unmonitored", "cycle_seconds")}
COUNTERS = {key: key for key in ("cycles", "alerts_raised", "alerts_published",
                                 "alert_publish_errors")}
SERVICE_GAUGES = {"up": "up", "cpu": "cpu_percent", "memory": "memory_bytes",
                  "memory_total": "memory_total_bytes", "children": "children"}
SERVICE_COUNTERS = {"restarts": "restarts", "uptime": "uptime_seconds"}


@register("Supervisor")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    rec.add("supervisor", figures(varz, GAUGES, COUNTERS, rec))
    for name, service in entries(varz.get("services"), rec, MAX_SERVICES):
        fields = figures(service, SERVICE_GAUGES, SERVICE_COUNTERS, rec)
        _add_status(fields, service, rec)
        rec.add("supervisor_service", fields, {"service": name})


def _add_status(fields: Fields, service: Mapping[str, Any], rec: Recorder) -> None:
    status = service.get("status")
    if isinstance(status, str):
        state, _, pending = status.partition(" - ")
        code(fields, "status_code", state, STATUS_CODES, rec)
        if "status_code" in fields:
            fields["pending"] = 1.0 if pending else 0.0
    else:
        code(fields, "status_code", status, STATUS_CODES, rec)
    code(fields, "monitored", service.get("monitoring_status"), MONITORING, rec)
