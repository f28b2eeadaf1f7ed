"""Synthetic line protocol for the dashboards, following docs/schema.md field by field.

A fleet of DEA×2, Router×2, Stager, Collector, SyslogAggregator scraped every 10 s for
`minutes` up to now; DEA 1 stops answering for the last two minutes (up=0, error=refused) so
the error panels have something to show. Counters are ints and grow, gauges are floats, as the
handlers write them.
"""

from __future__ import annotations

import random
import time

STEP = 10
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
STATES = ("born", "starting", "running", "stopping", "stopped", "crashed", "resuming",
          "deleted", "evacuating")
REASONS = ("NoAppDetectedError", "BuildpackCompileFailed", "StagingTimeExpired")
FLEET = [("DEA", 0, "core"), ("DEA", 1, "core"), ("Router", 0, "core"), ("Router", 1, "core"),
         ("Stager", 0, "core"), ("Collector", 0, None), ("SyslogAggregator", 0, None)]


def _fields(values: dict[str, object]) -> str:
    out = []
    for k, v in values.items():
        if isinstance(v, bool):
            out.append(f"{k}={str(v).lower()}")
        elif isinstance(v, int):
            out.append(f"{k}={v}i")
        elif isinstance(v, float):
            out.append(f"{k}={v!r}")
        else:
            out.append(f'{k}="{v}"')
    return ",".join(out)


def fleet_lines(minutes: int = 15, deployment: str = "test", seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    now = int(time.time())
    steps = minutes * 60 // STEP
    lines: list[str] = []
    for i in range(steps + 1):
        t = (now - (steps - i) * STEP) * 10**9
        for job, index, role in FLEET:
            tags = f"deployment={deployment},index={index},ip=127.0.0.1,job={job}"
            if role:
                tags += f",role={role}"
            down = job == "DEA" and index == 1 and i > steps - 12
            add = lines.append
            if down:
                add(f"scrape,{tags},endpoint=varz up=0i,duration_seconds=0.001,"
                    f'response_bytes=0i,error="refused" {t}')
                add(f"scrape,{tags},endpoint=healthz up=0i,healthy=0i,duration_seconds=0.001,"
                    f'response_bytes=0i,error="refused" {t}')
                continue
            add(f"scrape,{tags},endpoint=varz " + _fields({
                "up": 1, "duration_seconds": 0.002 + rng.random() / 100,
                "response_bytes": 2600 + rng.randrange(100), "points": 3, "skipped": 0}) + f" {t}")
            add(f"scrape,{tags},endpoint=healthz " + _fields({
                "up": 1, "healthy": 1, "duration_seconds": 0.001 + rng.random() / 200,
                "response_bytes": 2}) + f" {t}")
            add(f"component,{tags} " + _fields({
                "mem_bytes": 5e7 + rng.random() * 1e6, "cpu": rng.random() * 10,
                "num_cores": 2.0, "uptime_seconds": i * STEP, "log_fatal": 0, "log_error": i // 6,
                "log_warn": i // 3, "log_info": i * 4, "log_debug": 0}) + f" {t}")
            lines.extend(_typed(job, tags, i, t, rng))
    return lines


def _typed(job: str, tags: str, i: int, t: int, rng: random.Random) -> list[str]:
    if job == "DEA":
        states = {f"instances_{s}": float(rng.randrange(1, 5)) for s in STATES}
        return [f"dea,{tags},stack=cflinuxfs2 " + _fields({
            "can_stage": 1.0, "reservable_stagers": 3.0,
            "available_memory_ratio": 0.6 + rng.random() / 10,
            "available_disk_ratio": 0.7 + rng.random() / 10,
            "warden_response_time_ms": i * 40, "warden_requests": i * 4, "warden_errors": i // 20,
            "warden_containers": 6.0, **states, "reserved_memory_bytes": 2.1e9,
            "reserved_disk_bytes": 4.2e9, "used_memory_bytes": 1.3e9, "used_disk_bytes": 1e9,
            "used_cpu": 12.5}) + f" {t}"]
    if job == "Router":
        traffic = {"requests": i * 500, "responses_2xx": i * 450, "responses_3xx": i * 20,
                   "responses_4xx": i * 20, "responses_5xx": i * 8, "responses_xxx": i * 2}
        latency = {f"latency_p{p}_seconds": p / 1000 + rng.random() / 100
                   for p in (50, 75, 90, 95, 99)}
        out = [f"router,{tags} " + _fields({
            **traffic, "bad_requests": i, "bad_gateways": i // 4, "requests_per_sec": 50.0,
            "rate_1m": 50.0, "rate_5m": 49.0, "rate_15m": 48.0, **latency, "urls": 12.0,
            "droplets": 8.0, "registry_update_age_seconds": 3.5, "routed_app_requests": i * 400})
            + f" {t}"]
        for route, share in (("component=app,dea_index=0", 3), ("component=app,dea_index=1", 2),
                             ("component=CloudController", 1)):
            out.append(f"router_route,{tags},{route} " + _fields({
                **{k: v * share // 6 for k, v in traffic.items()}, **latency}) + f" {t}")
        return out
    if job == "Stager":
        out = [f"stager,{tags} " + _fields({
            "tasks_pending": float(rng.randrange(4)), "tasks_active": float(rng.randrange(1, 4)),
            "tasks_succeeded": i * 2, "tasks_failed": i // 3, "droplet_bytes_total": i * 10**7,
            "duration_p50_seconds": 40.0, "duration_p90_seconds": 80.0,
            "duration_p99_seconds": 120.0}) + f" {t}"]
        for n, reason in enumerate(REASONS):
            out.append(f"stager_failure,{tags},reason={reason} count={i // (3 + n)}i {t}")
        return out
    if job == "SyslogAggregator":
        fields: dict[str, object] = {
            "messages": float(i * 30), "bytes": float(i * 3000), "parse_errors": float(i),
            "received": float(i * 31), "received_bytes": float(i * 3100), "truncated": 0.0,
            "dropped": float(i // 10), "framing_errors": 0.0, "discarded": 0.0,
            "queue_depth": float(rng.randrange(10)), "queue_capacity": 10000.0,
            "store.open_files": 4.0, "store.pending_lines": float(rng.randrange(50))}
        for n, s in enumerate(SEVERITIES):
            fields[f"severity.{s}"] = float(i * (n + 1))
        for component in ("dea", "router", "stager"):
            fields[f"components.{component}.messages"] = float(i * 10)
            for s in ("err", "info"):
                fields[f"components.{component}.severity.{s}"] = float(i * 5)
        return [f"varz,{tags} " + _fields(fields) + f" {t}"]
    if job == "Collector":
        return [f"varz,{tags} " + _fields({
            "outputs.points_received": float(i * 210),
            "outputs.outputs.influxdb_v1.points_added": float(i * 210),
            "outputs.outputs.influxdb_v1.points_written": float(i * 200),
            "outputs.outputs.influxdb_v1.points_rejected": float(i // 50),
            "outputs.outputs.influxdb_v1.write_errors": float(i // 30),
            "scrapes.points": float(i * 210)}) + f" {t}"]
    return []
