"""The generic fields every component carries (vcap-common, gorouter, fobs runtime) → `component`.

Measurement `component`, no tags of its own; each field only when its varz key is present:

| field            | type  | unit    | varz                                                      |
|------------------|-------|---------|-----------------------------------------------------------|
| mem_bytes        | float | bytes   | `mem_bytes`, else `mem` (KB) × 1024 (Ruby RSS, Go Maxrss) |
| mem_used_bytes   | float | bytes   | `mem_used_bytes` (host)                                   |
| mem_free_bytes   | float | bytes   | `mem_free_bytes` (host)                                   |
| cpu              | float | percent | `cpu` (of one core)                                       |
| cpu_load_avg     | float | load    | `cpu_load_avg` (host, 1 min)                              |
| num_cores        | float | cores   | `num_cores`                                               |
| uptime_seconds   | int   | s       | `uptime` (`Nd:Nh:Nm:Ns`)                                  |
| log_<level>      | int   | lines   | `log_counts` (all five when present, see `LOG_LEVELS`)    |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder
from fobs.collector.handlers.values import parse_uptime

MEASUREMENT = "component"
KB = 1024

# Level names seen in log_counts (Steno, gosteno, loguru, fobs runtime) → our five fields;
# Steno's pseudo-levels `off` and `all` are dropped without counting a skip.
IGNORED = ""
LOG_LEVELS = {
    "fatal": "log_fatal", "critical": "log_fatal",
    "error": "log_error",
    "warn": "log_warn", "warning": "log_warn",
    "info": "log_info", "success": "log_info",
    "debug": "log_debug", "debug1": "log_debug", "debug2": "log_debug", "trace": "log_debug",
    "off": IGNORED, "all": IGNORED,
}
LOG_FIELDS = ("log_fatal", "log_error", "log_warn", "log_info", "log_debug")
MAX_LEVELS = 32

# Keys stored as they are, then every key `add_component_fields` reads (a handler with a
# partial decoder must decode them).
PLAIN_GAUGES = ("mem_used_bytes", "mem_free_bytes", "cpu", "cpu_load_avg", "num_cores")
READS = ("mem_bytes", "mem", *PLAIN_GAUGES, "uptime", "log_counts")

# Keys the generic fields consume, or that identify the component (never flattened as data).
KEYS = frozenset({
    "type", "index", "uuid", "host", "credentials", "start", "uptime", "num_cores", "cpu",
    "cpu_load_avg", "mem", "mem_bytes", "mem_used_bytes", "mem_free_bytes", "log_counts",
    "config",
})


def add_component_fields(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    if varz.get("mem_bytes") is not None:
        rec.gauge(fields, "mem_bytes", varz["mem_bytes"])
    else:
        rec.gauge(fields, "mem_bytes", varz.get("mem"), scale=KB)
    for key in PLAIN_GAUGES:
        rec.gauge(fields, key, varz.get(key))
    uptime = varz.get("uptime")
    if uptime is not None:
        seconds = parse_uptime(uptime)
        if seconds is None:
            rec.skip()
        else:
            fields["uptime_seconds"] = seconds
    counts = rec.tally(varz.get("log_counts"), _log_field, (*LOG_FIELDS, IGNORED), MAX_LEVELS)
    if counts is not None:
        del counts[IGNORED]
        fields.update(counts)
    rec.add(MEASUREMENT, fields)


def _log_field(level: Any) -> str | None:
    return LOG_LEVELS.get(level.lower()) if isinstance(level, str) else None
