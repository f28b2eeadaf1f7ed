"""The collector's own metrics, declared once (`fobs.components.metrics`).

Each instrument names its measurement, field, type, tags and varz path; the runtime renders varz
and /metrics from them and publishes the declarations, and the collector's `declared` handler
stores them like any component's. docs/schema.md's tables are checked against these.

The counting itself stays where it happens (the registry, the scraper's `ScrapeStats`, the
discovery stats, each output's stats, spool, quarantine and the encoder); `bind` and
`bind_outputs` read those at render time (`set_function`), so no object keeps a second copy and
nothing is reshaped by hand.

Measurements: `collector` (no tags), `collector_scrape` (`target_endpoint`),
`collector_scrape_error` (`target_endpoint`, `error`), `collector_target` (`target_job`),
`collector_output` (`output`, `kind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from fobs.collector.config import ENDPOINTS
from fobs.components.metrics import Counter, Gauge, Registry, Summary

if TYPE_CHECKING:
    from fobs.collector.daemon import Collector
    from fobs.collector.fanout import Outputs
    from fobs.collector.output import Output

TARGET_STATES = ("known", "up", "down", "unknown")
SCRAPE_COUNTERS = {"skipped_overlap": "scrapes_skipped_overlap", "late": "scrapes_late",
                   "missed": "scrapes_missed", "points": "points",
                   "values_skipped": "values_skipped", "handler_errors": "handler_errors"}
DISCOVERY_EVENTS = ("announces", "discover_replies", "unregisters", "discover_requests",
                    "ignored_no_index", "invalid")
ENCODER_COUNTERS = ("points", "points_unencodable", "points_empty", "fields_nonfinite",
                    "fields_unencodable")
OUTPUT_COUNTERS = ("points_added", "points_written", "points_rejected", "batches_written",
                   "batches_rejected", "write_errors", "retries", "fatal_errors", "splits",
                   "loop_errors")
# points_dropped.<reason> → the spool's (or the output's) counter
DROP_REASONS = {"spool_full": "dropped_points", "refused": "refused_points",
                "corrupt": "corrupt_points", "closed": "points_dropped_closed"}
SPOOL_GAUGES = {"pending_points": "spool_points", "pending_bytes": "spool_bytes",
                "oldest_age_s": "spool_oldest_age_seconds", "segments": "spool_segments"}
SPOOL_COUNTERS = {"appended_points": "spool_appended_points",
                  "dropped_bytes": "spool_dropped_bytes", "torn_records": "spool_torn_records",
                  "fsyncs": "spool_fsyncs"}
QUARANTINE_COUNTERS = {"batches": "quarantined_batches", "points": "quarantined_points",
                       "bytes": "quarantined_bytes", "errors": "quarantine_errors"}
# The output's state as a number (a string field would be free text): higher is worse.
OUTPUT_STATES = {"ok": 0.0, "starting": 1.0, "retrying": 2.0, "failing": 3.0, "closed": 4.0}
OUTPUT = "outputs.outputs.{output}"


class CollectorMetrics:
    """The instruments, by name (`counters[...]`, `gauges[...]`); `bind` and `bind_outputs`
    wire them to the live objects."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        r = registry
        self.gauges: dict[str, Gauge] = {}
        self.counters: dict[str, Counter] = {}
        for state in (*TARGET_STATES, "other_collectors"):
            self._gauge("collector", f"targets_{state}", f"Targets {state} (owned by this "
                        "collector; other_collectors: owned by another)", f"targets.{state}")
        self._gauge("collector", "collectors", "Live collectors sharing the fleet",
                    "targets.collectors")
        for event in ("pruned", "unregistered", "host_changes"):
            self._counter("collector", f"targets_{event}", f"Targets {event}",
                          f"targets.{event}")
        for key, field in SCRAPE_COUNTERS.items():
            self._counter("collector", field, f"Scrapes: {key}", f"scrapes.{key}")
        self._gauge("collector", "scrapes_in_flight", "Scrapes in flight", "scrapes.in_flight")
        for event in DISCOVERY_EVENTS:
            self._counter("collector", f"discovery_{event}", f"Discovery messages: {event}",
                          f"discovery.{event}")
        for key in ("points_received", "points_failed"):
            self._counter("collector", key, f"Points handed to the outputs: {key}",
                          f"outputs.{key}")
        for key in ENCODER_COUNTERS:
            self._counter("collector", f"encoder_{key}", f"Line-protocol encoder: {key}",
                          f"outputs.encoder.{key}")
        self._gauge("collector", "nats_rtt_seconds", "NATS round trip", "nats.rtt_seconds")
        self._counter("collector", "nats_reconnects", "NATS reconnects", "nats.reconnects")
        self._gauge("collector", "nats_connected", "Connected to NATS (0/1)", "nats.connected")

        endpoint = ("target_endpoint",)
        self.scrapes_ok = Counter("collector_scrape", "ok", "Scrapes that succeeded",
                                  tags=endpoint, varz="scrapes.ok.{target_endpoint}", registry=r)
        self.scrapes_failed = Counter(
            "collector_scrape", "failed", "Scrapes that failed (every error class)",
            tags=endpoint, varz="scrapes.failed_total.{target_endpoint}", registry=r)
        self.durations = Summary(
            "collector_scrape", "duration_{q}_seconds", "Scrape duration (recent scrapes)",
            tags=endpoint, varz="scrapes.duration_seconds.{target_endpoint}", registry=r)
        self.scrape_errors = Counter(
            "collector_scrape_error", "count", "Failed scrapes by error class",
            tags=("target_endpoint", "error"), varz="scrapes.failed.{target_endpoint}.{error}",
            registry=r)
        self.by_type = {state: Gauge("collector_target", state, f"Targets {state}, by type",
                                     tags=("target_job",),
                                     varz=f"targets.by_type.{{target_job}}.{state}", registry=r)
                        for state in TARGET_STATES}
        out = ("output", "kind")
        self.output: dict[str, Counter | Gauge] = {}
        for key in OUTPUT_COUNTERS:
            self._output(Counter, key, f"Output: {key}", key)
        self._output(Gauge, "last_write_duration_seconds", "Duration of the last write",
                     "last_write_duration_s")
        self._output(Gauge, "batch_bytes", "Largest batch sent (shrinks after a 413)",
                     "batch_bytes")
        self._output(Gauge, "state_code", "0 ok, 1 starting, 2 retrying, 3 failing, 4 closed",
                     "state_code")
        for reason in DROP_REASONS:
            self._output(Counter, f"points_dropped_{reason}", f"Points dropped: {reason}",
                         f"points_dropped.{reason}")
        self._output(Counter, "points_dropped", "Points dropped (every reason)",
                     "points_dropped_total")
        for key, field in SPOOL_GAUGES.items():
            self._output(Gauge, field, f"Spool: {key}", f"spool.{key}")
        for key, field in SPOOL_COUNTERS.items():
            self._output(Counter, field, f"Spool: {key}", f"spool.{key}")
        for key, field in QUARANTINE_COUNTERS.items():
            self._output(Counter, field, f"Quarantine: {key}", f"quarantine.{key}")
        assert all(i.tags == out for i in self.output.values())

    def _gauge(self, measurement: str, field: str, help: str, varz: str) -> None:
        self.gauges[field] = Gauge(measurement, field, help, varz=varz, registry=self.registry)

    def _counter(self, measurement: str, field: str, help: str, varz: str) -> None:
        self.counters[field] = Counter(measurement, field, help, varz=varz,
                                       registry=self.registry)

    def _output(self, kind: type[Counter | Gauge], field: str, help: str, key: str) -> None:
        self.output[field] = kind("collector_output", field, help, tags=("output", "kind"),
                                  varz=f"{OUTPUT}.{key}", registry=self.registry)

    # -- reading the live objects at render time ------------------------------------------------

    def bind(self, collector: Collector) -> None:
        """Read `collector`'s registry, scraper, discovery and NATS at render time."""
        g, c = self.gauges, self.counters
        stats = collector.scraper.stats
        for key, field in SCRAPE_COUNTERS.items():
            c[field].set_function(partial(getattr, stats, key))
        g["scrapes_in_flight"].set_function(lambda: stats.in_flight)
        for e in ENDPOINTS:
            self.scrapes_ok.labels(e).set_function(partial(stats.ok.__getitem__, e))
            self.scrapes_failed.labels(e).set_function(partial(_total, stats.failed, e))
            self.durations.attach(stats.durations[e], e)
        for event in DISCOVERY_EVENTS:
            c[f"discovery_{event}"].set_function(
                partial(getattr, collector.discovery_stats, event))
        bus = collector.bus
        g["nats_rtt_seconds"].set_function(
            lambda: None if collector.nats_rtt_ms is None else collector.nats_rtt_ms / 1000)
        c["nats_reconnects"].set_function(lambda: bus.reconnects if bus else 0)
        g["nats_connected"].set_function(lambda: int(bool(bus and bus.client.is_connected)))
        registry = collector.registry
        for event in ("pruned", "unregistered", "host_changes"):
            c[f"targets_{event}"].set_function(partial(getattr, registry, event))
        self.registry.on_collect(lambda: self._refresh(collector))

    def bind_outputs(self, outputs: Outputs) -> None:
        """Read the outputs' counters (and each one's spool and quarantine) at render time."""
        c = self.counters
        c["points_received"].set_function(lambda: outputs.points_received)
        c["points_failed"].set_function(lambda: outputs.points_failed)
        for key in ENCODER_COUNTERS:
            c[f"encoder_{key}"].set_function(partial(getattr, outputs.encoder.stats, key))
        for output in outputs.outputs:
            self._bind_output(output)
        def refresh() -> None:
            for output in outputs.outputs:
                output.buffer.refresh_stats()       # the spools' pending counts

        self.registry.on_collect(refresh)

    def _bind_output(self, output: Output) -> None:
        def child(field: str) -> Any:
            return self.output[field].labels(output.name, output.kind)

        stats, spool, quarantine = output.stats, output.buffer.stats, output.quarantine.stats
        for key in OUTPUT_COUNTERS:
            child(key).set_function(partial(getattr, stats, key))
        child("last_write_duration_seconds").set_function(lambda: stats.last_write_duration_s)
        child("batch_bytes").set_function(lambda: output.batch_bytes)
        child("state_code").set_function(lambda: OUTPUT_STATES.get(stats.state))
        sources = {reason: (stats if key == "points_dropped_closed" else spool, key)
                   for reason, key in DROP_REASONS.items()}
        for reason, (source, key) in sources.items():
            child(f"points_dropped_{reason}").set_function(partial(getattr, source, key))
        child("points_dropped").set_function(
            lambda: sum(getattr(source, key) for source, key in sources.values()))
        for key, field in {**SPOOL_GAUGES, **SPOOL_COUNTERS}.items():
            child(field).set_function(partial(getattr, spool, key))
        for key, field in QUARANTINE_COUNTERS.items():
            child(field).set_function(partial(getattr, quarantine, key))

    def _refresh(self, collector: Collector) -> None:
        """Before each render: target counts from the registry, the scrape error classes seen
        so far."""
        if collector.registry is None:
            return
        counts = collector.registry.counts()
        for state in (*TARGET_STATES, "other_collectors"):
            self.gauges[f"targets_{state}"].set(counts.totals[state])
        self.gauges["collectors"].set(counts.collectors)
        for state, gauge in self.by_type.items():
            gauge.clear()
            for job, by_state in counts.by_type.items():
                gauge.labels(job).set(by_state[state])
        for endpoint, errors in collector.scraper.stats.failed.items():
            for error in errors:
                self.scrape_errors.labels(endpoint, error).set_function(
                    partial(errors.__getitem__, error))


def _total(failed: Mapping[str, Mapping[str, int]], endpoint: str) -> int:
    return sum(failed[endpoint].values())
