"""Synthetic line protocol for the dashboards, following docs/schema.md field by field.

A fleet of DEA×2, Router×2, Stager and fobs' own daemons (Collector, SyslogAggregator,
Supervisor, AlertEvaluator) scraped every 10 s for
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
         ("Stager", 0, "core"), ("Collector", 0, None), ("SyslogAggregator", 0, None),
         ("Supervisor", 0, None), ("AlertEvaluator", 0, None)]
LOG_COMPONENTS = ("dea", "router", "stager")
SERVICES = ("nats", "influxd", "collector", "dea-0")
RULES = ("ComponentDown", "CollectorWriteErrors")


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
                add(f"scrape,{tags},endpoint=varz,collector=0 up=0i,duration_seconds=0.001,"
                    f'response_bytes=0i,error="refused" {t}')
                add(f"scrape,{tags},endpoint=healthz,collector=0 up=0i,healthy=0i,"
                    "duration_seconds=0.001,"
                    f'response_bytes=0i,error="refused" {t}')
                continue
            add(f"scrape,{tags},endpoint=varz,collector=0 " + _fields({
                "up": 1, "duration_seconds": 0.002 + rng.random() / 100,
                "response_bytes": 2600 + rng.randrange(100), "points": 3, "skipped": 0}) + f" {t}")
            add(f"scrape,{tags},endpoint=healthz,collector=0 " + _fields({
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
        return _syslog(tags, i, t, rng)
    if job == "Collector":
        return _collector(tags, i, t)
    if job == "Supervisor":
        out = [f"supervisor,{tags} " + _fields({
            "services_total": 4.0, "services_up": 4.0, "services_down": 0.0,
            "services_initialising": 0.0, "services_unmonitored": 0.0, "cycle_seconds": 2.0,
            "cycles": i * 5, "alerts_raised": i // 30, "alerts_published": i // 30,
            "alert_publish_errors": 0}) + f" {t}"]
        for n, service in enumerate(SERVICES):
            out.append(f"supervisor_service,{tags},service={service} " + _fields({
                "up": 1.0, "status_code": 0.0, "pending": 0.0, "monitored": 1.0,
                "restarts": i // (40 + n), "uptime_seconds": i * STEP, "cpu_percent": rng.random(),
                "memory_bytes": 4e7 + n * 1e6, "memory_total_bytes": 4.5e7 + n * 1e6,
                "children": 0.0}) + f" {t}")
        return out
    if job == "AlertEvaluator":
        out = [f"alert_evaluator,{tags} " + _fields({
            "rules": float(len(RULES)), "rules_failing": 0.0, "rounds": i, "late_rounds": 0,
            "round_seconds": 0.01, "evaluations": i * len(RULES), "evaluation_failures": 1,
            "alerts_pending": float(i % 2), "alerts_firing": 1.0, "nats_published": i // 5,
            "nats_failed": 0, "alertmanager_sent": i // 6, "alertmanager_failed": 0}) + f" {t}"]
        for rule in RULES:
            out.append(f"alert_rule,{tags},rule={rule} healthy=1.0,evaluations={i}i,"
                       f"failures=1i {t}")
        return out
    return []


def _syslog(tags: str, i: int, t: int, rng: random.Random) -> list[str]:
    fields: dict[str, object] = {
        "messages": i * 30, "bytes": i * 3000, "parse_errors": i, "received": i * 31,
        "received_bytes": i * 3100, "truncated": 0, "dropped": i // 10, "probes": 0,
        "framing_errors": 0, "discarded": 0, "kernel_udp_drops": 0, "udp_rcvbuf_errors": 0,
        "formats_rfc5424": i * 29, "formats_rfc3164": 0, "formats_unparsed": i,
        "queue_depth": float(rng.randrange(10)), "queue_capacity": 10000.0,
        "open_connections": 1.0, "components": float(len(LOG_COMPONENTS)),
        "store_lines_written": i * 30, "store_write_errors": 0, "store_lines_lost": 0,
        "store_open_files": 4.0, "store_pending_lines": float(rng.randrange(50)),
        "tail_published": i * 30}
    for n, s in enumerate(SEVERITIES):
        fields[f"messages_{s}"] = i * (n + 1)
    out = [f"syslog,{tags} " + _fields(fields) + f" {t}"]
    for component in LOG_COMPONENTS:
        out.append(f"syslog_component,{tags},component={component} " + _fields({
            "messages": i * 10, "bytes": i * 1000, "unparsed": 0,
            **{f"messages_{s}": i * 5 if s in ("err", "info") else 0 for s in SEVERITIES}})
            + f" {t}")
    out.append(f"syslog_listener,{tags},transport=udp " + _fields({
        "rcvbuf_bytes": 8388608.0, "kernel_drops": 0, "workers": 0.0, "worker_restarts": 0})
        + f" {t}")
    out.append(f"syslog_listener,{tags},transport=tcp " + _fields({
        "open_connections": 1.0, "connections": i // 20, "rejected_connections": 0,
        "idle_closed": i // 60}) + f" {t}")
    return out


def _collector(tags: str, i: int, t: int) -> list[str]:
    out = [f"collector,{tags} " + _fields({
        "targets_known": 9.0, "targets_up": 8.0, "targets_down": 1.0, "targets_unknown": 0.0,
        "collectors": 1.0, "scrapes_late": i // 20, "scrapes_missed": 0,
        "scrapes_skipped_overlap": 0, "scrapes_in_flight": 1.0, "points": i * 210,
        "values_skipped": 0, "handler_errors": 0, "points_received": i * 210,
        "nats_rtt_seconds": 0.0004, "nats_reconnects": 0, "nats_connected": 1.0,
        "targets_ownership_changes": i // 30, "targets_taken_over": i // 30 * 3,
        "targets_handed_over": i // 30 * 2, "collectors_expired": i // 90}) + f" {t}"]
    for endpoint in ("varz", "healthz"):
        out.append(f"collector_scrape,{tags},target_endpoint={endpoint} " + _fields({
            "ok": i * 9, "failed": i // 10, "duration_p50_seconds": 0.002,
            "duration_p90_seconds": 0.004, "duration_p99_seconds": 0.009,
            "duration_max_seconds": 0.02}) + f" {t}")
        out.append(f"collector_scrape_error,{tags},error=refused,target_endpoint={endpoint} "
                   f"count={i // 10}i {t}")
    for job in ("DEA", "Router", "Stager"):
        out.append(f"collector_target,{tags},target_job={job} " + _fields({
            "known": 2.0, "up": 2.0, "down": 0.0, "unknown": 0.0}) + f" {t}")
    for name, kind in (("influxdb_v1", "influxdb_v1"), ("archive", "file")):
        out.append(f"collector_output,{tags},kind={kind},output={name} " + _fields({
            "points_added": i * 210, "points_written": i * 200, "points_rejected": i // 50,
            "points_dropped": i // 40, "write_errors": i // 30, "retries": i // 30,
            "last_write_duration_seconds": 0.003, "state_code": 0.0,
            "spool_points": float(i * 10 % 500), "spool_bytes": float(i * 4000 % 200000),
            "spool_oldest_age_seconds": 1.5, "quarantined_points": i // 50}) + f" {t}")
    return out
