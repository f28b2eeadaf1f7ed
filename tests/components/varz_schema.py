"""The documented varz schema of the reference components (docs/varz.md), as checks.

Each check asserts type and range of every field, and that no undocumented field appears, so a
test fails when the code and docs/varz.md drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from fobs.components.sim.instance import STATES

UPTIME = re.compile(r"^\d+d:\d+h:\d+m:\d+s$")
START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$")
QUANTILES = ("50", "75", "90", "95", "99")
STATUS = ("2xx", "3xx", "4xx", "5xx", "xxx")
MIB = 1024 * 1024


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_float(value: Any) -> bool:
    return isinstance(value, float)


def count(value: Any) -> bool:
    return is_int(value) and value >= 0


def check_fields(varz: dict[str, Any], expected: set[str], where: str) -> None:
    assert set(varz) == expected, (f"{where}: unexpected {sorted(set(varz) - expected)}, "
                                   f"missing {sorted(expected - set(varz))}")


GENERIC = {"type", "index", "uuid", "host", "start", "uptime", "num_cores", "cpu",
           "cpu_load_avg", "mem_bytes", "mem_used_bytes", "mem_free_bytes", "log_counts"}


def check_generic(varz: dict[str, Any], type_: str) -> None:
    assert varz["type"] == type_
    assert count(varz["index"])
    assert re.fullmatch(rf"{varz['index']}-[0-9a-f]{{32}}", varz["uuid"])
    assert isinstance(varz["host"], str)
    assert START.match(varz["start"]) and UPTIME.match(varz["uptime"])
    assert is_int(varz["num_cores"]) and varz["num_cores"] >= 1
    assert is_float(varz["cpu"]) and varz["cpu"] >= 0
    assert is_float(varz["cpu_load_avg"]) and varz["cpu_load_avg"] >= 0
    for key in ("mem_bytes", "mem_used_bytes", "mem_free_bytes"):
        assert count(varz[key]), key
    assert all(count(v) for v in varz["log_counts"].values())
    assert "credentials" not in varz


DEA = GENERIC | {"stacks", "can_stage", "reservable_stagers", "available_memory_ratio",
                 "available_disk_ratio", "warden_containers", "total_warden_response_time_in_ms",
                 "warden_request_count", "warden_error_response_count", "instance_registry",
                 "start_requests", "start_requests_rejected", "bad_messages"}
INSTANCE = {"executableFile", "limits", "cc_partition", "console", "debug", "instance_index",
            "application_id", "application_version", "application_name", "application_uris",
            "application_prod", "droplet_sha1", "instance_id", "private_instance_id", "state",
            "state_timestamp", "warden_handle", "instance_host_port", "instance_container_port",
            "instance_console_host_port", "instance_console_container_port", "warden_job_id",
            "warden_container_path", "warden_host_ip", "used_memory_in_bytes",
            "used_disk_in_bytes", "computed_pcpu"}


def check_dea(varz: dict[str, Any]) -> None:
    check_generic(varz, "DEA")
    check_fields(varz, DEA, "DEA varz")
    assert varz["stacks"] and all(isinstance(s, str) for s in varz["stacks"])
    assert varz["can_stage"] in (0, 1) and is_int(varz["can_stage"])
    assert count(varz["reservable_stagers"])
    assert varz["can_stage"] == (1 if varz["reservable_stagers"] > 0 else 0)
    for key in ("available_memory_ratio", "available_disk_ratio"):
        assert is_float(varz[key]) and 0.0 <= varz[key] <= 1.0, key
    assert all(isinstance(h, str) for h in varz["warden_containers"])
    for key in ("total_warden_response_time_in_ms", "warden_request_count",
                "warden_error_response_count", "start_requests", "start_requests_rejected",
                "bad_messages"):
        assert count(varz[key]), key
    assert varz["warden_error_response_count"] <= varz["warden_request_count"]
    for app_id, instances in varz["instance_registry"].items():
        for instance_id, inst in instances.items():
            check_instance(app_id, instance_id, inst)


def check_instance(app_id: str, instance_id: str, inst: dict[str, Any]) -> None:
    stamps = {k for k in inst if k.startswith("state_") and k.endswith("_timestamp")
              and k != "state_timestamp"}
    check_fields({k: v for k, v in inst.items() if k not in stamps}, INSTANCE, "instance")
    assert {s[len("state_"):-len("_timestamp")].upper() for s in stamps} <= set(STATES)
    assert f"state_{inst['state'].lower()}_timestamp" in stamps
    assert all(is_float(inst[s]) for s in stamps) and is_float(inst["state_timestamp"])
    assert inst["state"] in STATES
    assert inst["application_id"] == app_id and inst["instance_id"] == instance_id
    assert re.fullmatch(r"[0-9a-f]{32}", instance_id)
    assert re.fullmatch(r"[0-9a-f]{64}", inst["private_instance_id"])
    limits = inst["limits"]
    assert set(limits) == {"mem", "disk", "fds"} and all(count(v) for v in limits.values())
    assert count(inst["instance_index"])
    for key in ("instance_host_port", "instance_container_port", "instance_console_host_port",
                "instance_console_container_port"):
        assert is_int(inst[key]) and 1024 <= inst[key] <= 65535, key
    assert count(inst["warden_job_id"])
    assert isinstance(inst["application_uris"], list)
    assert all(isinstance(u, str) for u in inst["application_uris"])
    for key in ("executableFile", "cc_partition", "application_version", "application_name",
                "droplet_sha1", "warden_handle", "warden_container_path", "warden_host_ip"):
        assert isinstance(inst[key], str), key
    assert inst["console"] is False and inst["debug"] is None
    assert inst["application_prod"] is False
    assert count(inst["used_memory_in_bytes"])
    assert inst["used_memory_in_bytes"] <= limits["mem"] * MIB
    assert count(inst["used_disk_in_bytes"])
    assert inst["used_disk_in_bytes"] <= limits["disk"] * MIB
    assert is_float(inst["computed_pcpu"]) and inst["computed_pcpu"] >= 0


ROUTER = GENERIC | {"requests", "rate", "responses_2xx", "responses_3xx", "responses_4xx",
                    "responses_5xx", "responses_xxx", "latency", "requests_per_sec", "tags",
                    "urls", "droplets", "bad_requests", "bad_gateways", "top10_app_requests",
                    "ms_since_last_registry_update", "dead_endpoints", "access_log_lines",
                    "bad_messages"}
HTTP_METRIC = {"requests", "rate", "responses_2xx", "responses_3xx", "responses_4xx",
               "responses_5xx", "responses_xxx", "latency"}


def check_http_metric(metric: dict[str, Any], where: str) -> None:
    assert count(metric["requests"]), where
    assert len(metric["rate"]) == 3 and all(is_float(r) and r >= 0 for r in metric["rate"])
    assert sum(metric[f"responses_{s}"] for s in STATUS) == metric["requests"], where
    assert all(count(metric[f"responses_{s}"]) for s in STATUS)
    latency = metric["latency"]
    assert set(latency) == {*QUANTILES, "samples", "value"}, where
    values = [latency[q] for q in QUANTILES]
    assert all(is_float(v) and 0 <= v <= 120 for v in values), where
    assert values == sorted(values), f"{where}: percentiles not ordered: {values}"
    assert count(latency["samples"]) and is_float(latency["value"]) and latency["value"] >= 0
    if latency["samples"] == 0:
        assert latency["value"] == 0.0 and values == [0.0] * 5


def check_router(varz: dict[str, Any]) -> None:
    check_generic(varz, "Router")
    check_fields(varz, ROUTER, "Router varz")
    check_http_metric({k: varz[k] for k in HTTP_METRIC}, "router")
    assert is_float(varz["requests_per_sec"]) and varz["requests_per_sec"] == varz["rate"][0]
    assert set(varz["tags"]) == {"component"}
    for name, metric in varz["tags"]["component"].items():
        check_fields(metric, HTTP_METRIC, f"tags.component.{name}")
        check_http_metric(metric, f"tags.component.{name}")
    for key in ("urls", "droplets", "bad_requests", "bad_gateways",
                "ms_since_last_registry_update", "dead_endpoints", "access_log_lines",
                "bad_messages"):
        assert count(varz[key]), key
    assert varz["bad_gateways"] <= varz["responses_5xx"]
    assert varz["dead_endpoints"] <= varz["droplets"]
    top = varz["top10_app_requests"]
    assert len(top) <= 10
    for entry in top:
        assert set(entry) == {"application_id", "rps", "rpm"}
        assert isinstance(entry["application_id"], str)
        assert count(entry["rps"]) and count(entry["rpm"]) and entry["rpm"] > 0
    assert [e["rpm"] for e in top] == sorted((e["rpm"] for e in top), reverse=True)


STAGER = GENERIC | {"tasks_pending", "tasks_active", "tasks_received", "tasks_succeeded",
                    "tasks_failed", "failures_by_reason", "succeeded_by_buildpack",
                    "duration_seconds", "duration_samples", "queue_wait_seconds",
                    "droplet_bytes_total", "instances_placed", "deas_known", "max_concurrent",
                    "bad_messages"}
REASONS = {"NoAppDetectedError", "BuildpackCompileFailed", "StagingTimeExpired",
           "InsufficientResources", "StagingQueueFull"}


def check_stager(varz: dict[str, Any]) -> None:
    check_generic(varz, "Stager")
    check_fields(varz, STAGER, "Stager varz")
    for key in STAGER - GENERIC - {"failures_by_reason", "succeeded_by_buildpack",
                                   "duration_seconds", "queue_wait_seconds"}:
        assert count(varz[key]), key
    assert varz["tasks_active"] <= varz["max_concurrent"]
    finished = varz["tasks_succeeded"] + varz["tasks_failed"]
    assert finished + varz["tasks_pending"] + varz["tasks_active"] == varz["tasks_received"]
    assert set(varz["failures_by_reason"]) == REASONS
    assert sum(varz["failures_by_reason"].values()) == varz["tasks_failed"]
    assert all(count(v) for v in varz["succeeded_by_buildpack"].values())
    assert sum(varz["succeeded_by_buildpack"].values()) == varz["tasks_succeeded"]
    for key in ("duration_seconds", "queue_wait_seconds"):
        values = [varz[key][q] for q in ("50", "90", "99")]
        assert set(varz[key]) == {"50", "90", "99"}
        assert all(is_float(v) and v >= 0 for v in values) and values == sorted(values), key
