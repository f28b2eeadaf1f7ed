"""The collector's own varz (type `Collector`) → `collector`, `collector_scrape`,
`collector_scrape_error`, `collector_target`, `collector_output`.

Without this handler the generic flattener stored the collector's varz under path names cut at
four levels, which lost every output's spool and drop counters and put each output's name into
the field names. Here the output name is a tag, so one query covers every output.

`collector` — no tags:

| field                                    | type  | varz                                     |
|------------------------------------------|-------|------------------------------------------|
| targets_known, _up, _down, _unknown      | float | `targets.known` …                        |
| targets_other_collectors                 | float | `targets.other_collectors`               |
| collectors                               | float | `targets.collectors`                     |
| targets_pruned, _unregistered, _host_changes | int | `targets.pruned` … (counters)          |
| scrapes_skipped_overlap, _late, _missed  | int   | `scrapes.skipped_overlap` …              |
| points, values_skipped, handler_errors   | int   | `scrapes.points` …                       |
| scrapes_in_flight                        | float | `scrapes.in_flight`                      |
| discovery_<event>                        | int   | `discovery.<event>` (six counters)       |
| points_received, points_failed           | int   | `outputs.points_received` …              |
| encoder_<counter>                        | int   | `outputs.encoder.<counter>`              |
| nats_rtt_seconds                         | float | `nats.rtt_ms` / 1000                     |
| nats_reconnects                          | int   | `nats.reconnects`                        |
| nats_connected                           | float | `nats.connected` (0/1)                   |

`collector_scrape` — tag `target_endpoint` (`varz`, `healthz`): `ok`, `failed` (int: Σ of the
error classes), `duration_p50_seconds`, `_p90_`, `_p99_`, `duration_max_seconds` (float).
`collector_scrape_error` — tags `target_endpoint`, `error` (the scrape error class): `count`.
`collector_target` — tag `target_job` (a scraped component type): known, up, down, unknown.
`collector_output` — tags `output` (its configured name) and `kind`: see `OUTPUT_*` below and
docs/schema.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder, dig
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.tables import code, entries, figures
from fobs.collector.handlers.values import tag_value, to_int

MS = 0.001
MAX_ENDPOINTS = 4
MAX_ERROR_CLASSES = 64        # per endpoint: timeout, refused, http_<status>, …
MAX_TYPES = 64
MAX_OUTPUTS = 16

TARGET_GAUGES = {"known": "targets_known", "up": "targets_up", "down": "targets_down",
                 "unknown": "targets_unknown", "other_collectors": "targets_other_collectors",
                 "collectors": "collectors"}
TARGET_COUNTERS = {"pruned": "targets_pruned", "unregistered": "targets_unregistered",
                   "host_changes": "targets_host_changes"}
SCRAPE_COUNTERS = {"skipped_overlap": "scrapes_skipped_overlap", "late": "scrapes_late",
                   "missed": "scrapes_missed", "points": "points",
                   "values_skipped": "values_skipped", "handler_errors": "handler_errors"}
DISCOVERY_COUNTERS = {key: f"discovery_{key}" for key in (
    "announces", "discover_replies", "unregisters", "discover_requests", "ignored_no_index",
    "invalid")}
OUTPUTS_COUNTERS = {"points_received": "points_received", "points_failed": "points_failed"}
ENCODER_COUNTERS = {key: f"encoder_{key}" for key in (
    "points", "points_unencodable", "points_empty", "fields_nonfinite", "fields_unencodable")}
TARGET_STATES = {key: key for key in ("known", "up", "down", "unknown")}

OUTPUT_COUNTERS = {key: key for key in (
    "points_added", "points_written", "points_rejected", "batches_written", "batches_rejected",
    "write_errors", "retries", "fatal_errors", "splits", "loop_errors")}
DROP_REASONS = ("spool_full", "refused", "corrupt", "closed")
SPOOL_GAUGES = {"pending_points": "spool_points", "pending_bytes": "spool_bytes",
                "oldest_age_s": "spool_oldest_age_seconds", "segments": "spool_segments"}
SPOOL_COUNTERS = {"appended_points": "spool_appended_points",
                  "dropped_bytes": "spool_dropped_bytes", "torn_records": "spool_torn_records",
                  "fsyncs": "spool_fsyncs"}
QUARANTINE_COUNTERS = {"batches": "quarantined_batches", "points": "quarantined_points",
                       "bytes": "quarantined_bytes", "errors": "quarantine_errors"}
# The output's state as a number (a string field would be free text): higher is worse.
OUTPUT_STATES = {"ok": 0.0, "starting": 1.0, "retrying": 2.0, "failing": 3.0, "closed": 4.0}


@register("Collector")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    targets = varz.get("targets")
    fields = figures(targets, TARGET_GAUGES, TARGET_COUNTERS, rec)
    scrapes = varz.get("scrapes")
    rec.counters(fields, scrapes, SCRAPE_COUNTERS)
    rec.gauge(fields, "scrapes_in_flight", dig(scrapes, "in_flight"))
    rec.counters(fields, varz.get("discovery"), DISCOVERY_COUNTERS)
    outputs = varz.get("outputs")
    rec.counters(fields, outputs, OUTPUTS_COUNTERS)
    rec.counters(fields, dig(outputs, "encoder"), ENCODER_COUNTERS)
    nats = rec.mapping(varz.get("nats"))
    if nats is not None:
        rec.gauge(fields, "nats_rtt_seconds", nats.get("rtt_ms"), MS)
        rec.counter(fields, "nats_reconnects", nats.get("reconnects"))
        rec.gauge(fields, "nats_connected", nats.get("connected"))
    rec.add("collector", fields)

    if isinstance(scrapes, Mapping):
        _add_scrapes(scrapes, rec)
    for job, counts in entries(dig(targets, "by_type"), rec, MAX_TYPES):
        rec.add("collector_target", figures(counts, TARGET_STATES, {}, rec), {"target_job": job})
    for name, output in entries(dig(outputs, "outputs"), rec, MAX_OUTPUTS):
        _add_output(name, output, rec)


def _add_scrapes(scrapes: Mapping[str, Any], rec: Recorder) -> None:
    """`collector_scrape` per endpoint and `collector_scrape_error` per endpoint and class."""
    ok = rec.mapping(scrapes.get("ok")) or {}
    failed = rec.mapping(scrapes.get("failed")) or {}
    durations = rec.mapping(scrapes.get("duration_seconds")) or {}
    names = list(dict.fromkeys([*ok, *failed, *durations]))
    if len(names) > MAX_ENDPOINTS:
        rec.skip(len(names) - MAX_ENDPOINTS)
    for raw_name in names[:MAX_ENDPOINTS]:
        endpoint = rec.tag(raw_name)
        if endpoint is None:
            continue
        fields: Fields = {}
        rec.counter(fields, "ok", ok.get(raw_name))
        errors = _error_counts(failed.get(raw_name), rec)
        if errors is not None:
            for error, count in errors:
                rec.add("collector_scrape_error", {"count": count},
                        {"target_endpoint": endpoint, "error": error})
            _set_sum(fields, "failed", [count for _, count in errors], rec)
        percentiles = rec.mapping(durations.get(raw_name))
        if percentiles is not None:
            rec.percentiles(fields, "duration", percentiles)
            rec.gauge(fields, "duration_max_seconds", percentiles.get("max"))
        rec.add("collector_scrape", fields, {"target_endpoint": endpoint})


def _error_counts(raw: Any, rec: Recorder) -> list[tuple[str, int]] | None:
    """(class, count) pairs of one endpoint's `scrapes.failed` object (bounded), or None."""
    table = rec.mapping(raw)
    if table is None:
        return None
    out = []
    for key, raw_count in rec.items(table, MAX_ERROR_CLASSES):
        error, count = tag_value(key), to_int(raw_count)
        if error is None or count is None:
            rec.skip()
        else:
            out.append((error, count))
    return out


def _set_sum(fields: Fields, name: str, counts: list[int], rec: Recorder) -> None:
    """Set int field `name` to Σ counts (one skip if the sum is beyond int64)."""
    total = to_int(sum(counts))
    if total is None:
        rec.skip()
    else:
        fields[name] = total


def _add_output(name: str, output: Mapping[str, Any], rec: Recorder) -> None:
    tags = {"output": name}
    kind = tag_value(output.get("kind"))
    if kind is not None:
        tags["kind"] = kind
    elif output.get("kind") is not None:
        rec.skip()
    fields = figures(output, {}, OUTPUT_COUNTERS, rec)
    rec.gauge(fields, "last_write_duration_seconds", output.get("last_write_duration_s"))
    rec.gauge(fields, "batch_bytes", output.get("batch_bytes"))
    code(fields, "state_code", output.get("state"), OUTPUT_STATES, rec)
    dropped = rec.mapping(output.get("points_dropped"))
    if dropped is not None:
        reasons: Fields = {}
        rec.counters(reasons, dropped, {r: f"points_dropped_{r}" for r in DROP_REASONS})
        fields.update(reasons)
        _set_sum(fields, "points_dropped", [int(v) for v in reasons.values()], rec)
    fields.update(figures(output.get("spool"), SPOOL_GAUGES, SPOOL_COUNTERS, rec))
    rec.counters(fields, output.get("quarantine"), QUARANTINE_COUNTERS)
    rec.add("collector_output", fields, tags)
