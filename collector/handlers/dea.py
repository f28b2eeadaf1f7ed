"""DEA varz (dea_ng, fobs' reference DEA, and the V1 DEA's scalars) → measurement `dea`.

Tag `stack`: the DEA's `stacks` sorted, de-duplicated and joined with `,` (e.g. `cflinuxfs2`).
The original collector sent the array itself; joined, it has one value per distinct DEA
configuration. Omitted when `stacks` is absent or holds anything but a few short words.

| field                   | type  | unit    | varz                                             |
|-------------------------|-------|---------|--------------------------------------------------|
| can_stage               | float | 0/1     | `can_stage`                                      |
| reservable_stagers      | float |         | `reservable_stagers`                             |
| available_memory_ratio  | float | ratio   | `available_memory_ratio`                         |
| available_disk_ratio    | float | ratio   | `available_disk_ratio`                           |
| warden_response_time_ms | int   | ms      | `total_warden_response_time_in_ms` (counter)     |
| warden_requests         | int   |         | `warden_request_count` (counter)                 |
| warden_errors           | int   |         | `warden_error_response_count` (counter)          |
| warden_containers       | float |         | length of `warden_containers`                    |
| instances_<state>       | float |         | instances in each state (all nine, lower case)   |
| reserved_memory_bytes   | float | bytes   | Σ `limits.mem` (MB) over live states; V1 (below)  |
| reserved_disk_bytes     | float | bytes   | Σ `limits.disk` (MB) over live states            |
| used_memory_bytes       | float | bytes   | Σ `used_memory_in_bytes`; V1 `apps_used_memory` (MB) |
| used_disk_bytes         | float | bytes   | Σ `used_disk_in_bytes`                           |
| used_cpu                | float | percent | Σ `computed_pcpu`                                |
| max_memory_bytes        | float | bytes   | V1 `apps_max_memory` (MB)                        |
| apps                    | float |         | V1 `num_apps`                                    |
| start_requests          | int   |         | `start_requests` (fobs, counter)                 |
| start_requests_rejected | int   |         | `start_requests_rejected` (fobs, counter)        |
| bad_messages            | int   |         | `bad_messages` (fobs, counter)                   |

Instances are read from `instance_registry` = `{app_id: {instance_id: attributes}}`; live states
(those holding a reservation) are BORN, STARTING, RUNNING, RESUMING and EVACUATING. The used_*
sums appear only when some instance reports usage. The V1 DEA's `apps_reserved_memory` (MB)
fills reserved_memory_bytes when there is no registry. No app or instance id ever becomes a tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector import decode
from fobs.collector.handlers import component
from fobs.collector.handlers.recorder import MAX_ITEMS, Fields, Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.values import tag_value, to_float
from fobs.components.metrics import DECLARATIONS_KEY

MB = 1024 * 1024
STATES = ("BORN", "STARTING", "RUNNING", "STOPPING", "STOPPED", "CRASHED", "RESUMING", "DELETED",
          "EVACUATING")
LIVE_STATES = frozenset({"BORN", "STARTING", "RUNNING", "RESUMING", "EVACUATING"})
USAGE = {"used_memory_in_bytes": "used_memory_bytes", "used_disk_in_bytes": "used_disk_bytes",
         "computed_pcpu": "used_cpu"}
MAX_STACKS = 4

GAUGES = {"can_stage": "can_stage", "reservable_stagers": "reservable_stagers",
          "available_memory_ratio": "available_memory_ratio",
          "available_disk_ratio": "available_disk_ratio", "num_apps": "apps"}
COUNTERS = {"total_warden_response_time_in_ms": "warden_response_time_ms",
            "warden_request_count": "warden_requests",
            "warden_error_response_count": "warden_errors",
            "start_requests": "start_requests",
            "start_requests_rejected": "start_requests_rejected",
            "bad_messages": "bad_messages"}
V1_MEMORY = {"apps_max_memory": "max_memory_bytes", "apps_reserved_memory": "reserved_memory_bytes",
             "apps_used_memory": "used_memory_bytes"}

# What this handler and the generic fields read: a DEA body is decoded for these keys only
# (`decode.Partial`), and for five attributes of each instance of its registry.
_Instance = decode.keys_struct("_Instance", ("state", "limits", *USAGE))
_Varz = decode.keys_struct(
    "_Varz", (*component.READS, *GAUGES, *COUNTERS, *V1_MEMORY, "warden_containers", "stacks",
              "instance_registry", DECLARATIONS_KEY),
    {"instance_registry": decode.objects_of(_Instance, depth=2)})


@register("DEA", decoder=decode.Partial(_Varz, whole_if=(DECLARATIONS_KEY,)))
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    rec.gauges(fields, varz, GAUGES)
    rec.counters(fields, varz, COUNTERS)
    rec.gauges(fields, varz, V1_MEMORY, scale=MB)
    containers = rec.sequence(varz.get("warden_containers"))
    if containers is not None:
        fields["warden_containers"] = float(len(containers))
    _add_registry(fields, varz.get("instance_registry"), rec)
    stack = _stack(varz.get("stacks"), rec)
    rec.add("dea", fields, {"stack": stack} if stack else None)


def _add_registry(fields: Fields, raw: Any, rec: Recorder) -> None:
    apps = rec.mapping(raw)
    if apps is None:
        return
    counts = dict.fromkeys(STATES, 0)
    reserved = {"mem": 0.0, "disk": 0.0}
    usage: dict[str, float] = {}
    budget = MAX_ITEMS
    for _app_id, instances in rec.items(apps, budget):
        for _instance_id, instance in rec.items(instances, max(budget, 0)):
            budget -= 1
            attributes = rec.mapping(instance)
            if attributes is None:
                continue
            state = attributes.get("state")
            if not isinstance(state, str) or state not in counts:
                rec.skip()
                continue
            counts[state] += 1
            if state in LIVE_STATES:
                _add_limits(reserved, attributes.get("limits"), rec)
            for key, name in USAGE.items():
                _accumulate(usage, name, attributes.get(key), rec)
    for state in STATES:
        fields[f"instances_{state.lower()}"] = float(counts[state])
    rec.gauge(fields, "reserved_memory_bytes", reserved["mem"], MB)
    rec.gauge(fields, "reserved_disk_bytes", reserved["disk"], MB)
    for name, total in usage.items():
        rec.gauge(fields, name, total)


def _add_limits(reserved: dict[str, float], raw: Any, rec: Recorder) -> None:
    limits = rec.mapping(raw)
    if limits is not None:
        for key in ("mem", "disk"):
            _accumulate(reserved, key, limits.get(key), rec)


def _accumulate(totals: dict[str, float], key: str, raw: Any, rec: Recorder) -> None:
    """totals[key] += raw, when raw is a number (absent: nothing; garbage: one skip)."""
    if raw is None:
        return
    number = to_float(raw)
    if number is None:
        rec.skip()
    else:
        totals[key] = totals.get(key, 0.0) + number


def _stack(raw: Any, rec: Recorder) -> str | None:
    stacks = rec.sequence(raw)
    if stacks is None or not stacks:
        return None
    names = {tag_value(name) for name in stacks[:4 * MAX_STACKS]}
    if None in names or len(names) > MAX_STACKS or len(stacks) > 4 * MAX_STACKS:
        rec.skip()
        return None
    return ",".join(sorted(name for name in names if name))
