"""The supervisor's own metrics, declared once: `supervisor` and `supervisor_service`.

The supervisor keeps its state in its services and reports it as `status()` (the same dict the
HTTP interface and `fobs monit status` show); before each varz render one status is read and
every instrument below is filled from it. The declarations say the measurement, field, type and
varz path once; the component runtime renders varz and /metrics from them and the collector
stores them with no handler of its own. The words of a service's state are stored as numbers
(`STATUS_CODES`, `MONITORING`): a string field would make every query filter on text, a tag
would split the series each time the state changes. `free_varz` is what varz shows besides the
numbers: the words themselves and the service type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fobs.components.metrics import Counter, FieldType, Gauge, Registry
from fobs.syslog_agg.monit.render import state_group

__all__ = ["declare", "free_varz", "STATUS_CODES", "MONITORING", "MAX_SERVICES"]

MEASUREMENT, SERVICE = "supervisor", "supervisor_service"
MAX_SERVICES = 256
# monit's states, best first: 0 is OK, anything above needs a look.
STATUS_CODES = {"OK": 0.0, "Initializing": 1.0, "Not monitored": 2.0, "Does not exist": 3.0,
                "Connection failed": 4.0, "Resource limit matched": 5.0, "Status failed": 6.0,
                "Execution failed": 7.0}
MONITORING = {"Monitored": 1.0, "Initializing": 1.0, "Not monitored": 0.0}
GROUPS = ("up", "down", "initialising", "unmonitored")

Status = Callable[[], dict[str, Any]]


def declare(registry: Registry, status: Status) -> None:
    """Declare the supervisor's instruments in `registry`, filled from `status()` per render."""
    totals = {f"services_{g}": Gauge(MEASUREMENT, f"services_{g}", f"Services {g} now",
                                     registry=registry) for g in GROUPS}
    total = Gauge(MEASUREMENT, "services_total", "Services configured", registry=registry)
    cycle = Gauge(MEASUREMENT, "cycle_seconds", "Seconds between two check cycles",
                  registry=registry)
    counters = {name: Counter(MEASUREMENT, name, help, registry=registry) for name, help in (
        ("cycles", "Check cycles run"),
        ("alerts_raised", "Alerts raised (state changes of a check)"),
        ("alerts_published", "Alerts published on NATS"),
        ("alert_publish_errors", "Alerts that could not be published"))}

    def service(field: str, help: str, key: str | None = None,
                type: FieldType = "float") -> Gauge:
        return Gauge(SERVICE, field, help, tags=("service",), type=type,
                     varz=f"services.{{service}}.{key or field}", registry=registry)

    gauges = {
        "up": service("up", "1 while monitored and OK, else 0"),
        "status_code": service("status_code", "State: 0 OK, 1 Initializing, 2 Not monitored, "
                               "3 Does not exist, 4 Connection failed, 5 Resource limit "
                               "matched, 6 Status failed, 7 Execution failed"),
        "pending": service("pending", "1 while a start, stop or restart is pending"),
        "monitored": service("monitored", "0 when not monitored, else 1"),
        "uptime": service("uptime_seconds", "Seconds since the process started",
                          "uptime", "int"),
        "cpu": service("cpu_percent", "CPU percent (100 = one core busy)", "cpu"),
        "memory": service("memory_bytes", "Resident memory", "memory"),
        "memory_total": service("memory_total_bytes",
                                "Resident memory with its descendants", "memory_total"),
        "children": service("children", "Descendant processes"),
    }
    restarts = Counter(SERVICE, "restarts", "Restarts by the supervisor", tags=("service",),
                       varz="services.{service}.restarts", registry=registry)

    def refill() -> None:
        now = status()
        services = now["services"][:MAX_SERVICES]
        groups = dict.fromkeys(GROUPS, 0)
        for gauge in gauges.values():
            gauge.clear()
        restarts.clear()
        for svc in services:
            groups[state_group(svc)] += 1
            for key, value in service_figures(svc).items():
                if value is not None:
                    gauges[key].labels(svc["name"]).set(value)
            restarts.labels(svc["name"]).set_function(_const(svc["restarts"]))
        total.set(len(now["services"]))
        for group, n in groups.items():
            totals[f"services_{group}"].set(n)
        sup = now["supervisor"]
        cycle.set(sup["cycle"])
        counters["cycles"].set_function(_const(sup["cycles"]))
        for key, name in (("raised", "alerts_raised"), ("published", "alerts_published"),
                          ("publish_errors", "alert_publish_errors")):
            counters[name].set_function(_const(sup["alerts"][key]))

    registry.on_collect(refill)


def service_figures(svc: dict[str, Any]) -> dict[str, float | None]:
    """The numbers of one service of `status()` (None: no figure, e.g. an unknown state)."""
    state, _, pending = svc["status"].partition(" - ")
    code = STATUS_CODES.get(state)
    return {
        "up": 1.0 if state_group(svc) == "up" else 0.0,
        "status_code": code,
        "pending": None if code is None else 1.0 if pending else 0.0,
        "monitored": MONITORING.get(svc["monitoring_status"]),
        "uptime": svc["uptime"] or 0,
        "cpu": svc["cpu"] or 0.0,
        "memory": svc["memory"] or 0,
        "memory_total": svc["memory_total"] or 0,
        "children": svc["children"] or 0,
    }


def free_varz(status: dict[str, Any]) -> dict[str, Any]:
    """The words of each service (type, status, monitoring status); the numbers are declared."""
    return {"services": {svc["name"]: {"type": svc["type"], "status": svc["status"],
                                       "monitoring_status": svc["monitoring_status"]}
                         for svc in status["services"][:MAX_SERVICES]}}


def _const(value: int) -> Callable[[], int]:
    return lambda: value
