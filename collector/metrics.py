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
from fobs.collector.scrape import DURATION_WINDOW
from fobs.components.metrics import Counter, Gauge, Registry, Summary

if TYPE_CHECKING:
    from fobs.collector.daemon import Collector
    from fobs.collector.fanout import Outputs
    from fobs.collector.output import Output

TARGET_STATES = ("known", "up", "down", "unknown")
TARGET_HELP = {"known": "Targets this collector scrapes", "up": "Targets up",
               "down": "Targets down", "unknown": "Targets not scraped yet",
               "other_collectors": "Targets another collector scrapes (sharding)"}
TARGET_EVENTS = {"pruned": "Targets pruned after prune_interval of silence on NATS",
                 "unregistered": "Targets that said goodbye (vcap.component.unregister)",
                 "host_changes": "Targets that moved to another host:port",
                 "ownership_changes": "Times the set of collectors sharing the fleet changed",
                 "taken_over": "Targets that moved to this collector from another one",
                 "handed_over": "Targets that moved from this collector to another one",
                 "refused_targets": "Announced targets refused: discovery.max_targets reached",
                 "refused_types": "Announced targets refused: discovery.max_types reached "
                 "(a new component type)"}
# scrapes.<key> → (field, help)
SCRAPE_COUNTERS = {
    "skipped_overlap": ("scrapes_skipped_overlap", "Runs skipped: the previous one was still "
                        "in flight"),
    "late": ("scrapes_late", "Scrapes started more than 10 % of their interval late"),
    "missed": ("scrapes_missed", "Runs the scheduler gave up on (misfire)"),
    "points": ("points", "Points produced (handler points and scrape points)"),
    "values_skipped": ("values_skipped", "Varz values the handlers could not use"),
    "handler_errors": ("handler_errors", "Handler runs that failed (a bug, not bad data)")}
DISCOVERY_EVENTS = {"announces": "vcap.component.announce messages received",
                    "discover_replies": "Answers to our vcap.component.discover requests",
                    "unregisters": "vcap.component.unregister messages received",
                    "discover_requests": "vcap.component.discover requests sent",
                    "ignored_no_index": "Discovery messages without an index (ignored)",
                    "invalid": "Discovery messages we could not use (bad host, type, index, "
                    "uuid or JSON)",
                    "refused_network": "Announces of a host outside discovery.allow_networks"}
ENCODER_COUNTERS = {"points": "Line-protocol lines produced",
                    "points_unencodable": "Points with a bad measurement, tag, timestamp or key",
                    "points_empty": "Points left with no representable field",
                    "fields_nonfinite": "Fields dropped for NaN or ±inf",
                    "fields_unencodable": "Fields dropped: bad key, int out of range, bad type"}
OUTPUT_COUNTERS = {"points_added": "Points accepted into the spool",
                   "points_written": "Points the historian acknowledged",
                   "points_rejected": "Points refused as bad data by the server, quarantined",
                   "batches_written": "Batches written",
                   "batches_rejected": "Batches refused as bad data, quarantined",
                   "write_errors": "Failed write attempts, whatever the cause",
                   "retries": "Attempts at a batch that had failed before",
                   "fatal_errors": "Failed attempts retrying cannot fix (401, 403, 404)",
                   "splits": "413 answers, each splitting a batch in two",
                   "loop_errors": "Unexpected errors in the write loop (bugs, spool I/O)"}
# points_dropped.<reason> → (the spool's or the output's counter, help)
DROP_REASONS = {"spool_full": ("dropped_points", "Oldest points dropped for the spool's max_bytes"),
                "refused": ("refused_points", "Points the spool refused (too large, I/O error)"),
                "corrupt": ("corrupt_points", "Points lost after a bad CRC in a spool segment"),
                "closed": ("points_dropped_closed", "Points added after the output closed")}
# spool.<key> → (field, help)
SPOOL_GAUGES = {"pending_points": ("spool_points", "Points accepted, not yet written"),
                "pending_bytes": ("spool_bytes", "Bytes accepted, not yet written"),
                "oldest_age_s": ("spool_oldest_age_seconds", "Age of the oldest pending point"),
                "segments": ("spool_segments", "Spool segment files")}
SPOOL_COUNTERS = {"appended_points": ("spool_appended_points", "Points appended to the spool"),
                  "dropped_bytes": ("spool_dropped_bytes", "Bytes dropped from the spool"),
                  "torn_records": ("spool_torn_records", "Records cut short by a crash"),
                  "corrupt_records": ("spool_corrupt_records", "Damaged stretches of a "
                                      "segment skipped to the next whole record"),
                  "fsyncs": ("spool_fsyncs", "fsync calls (segments, cursor, directory)"),
                  "fsync_errors": ("spool_fsync_errors", "fsync calls that failed: the data "
                                   "may not be on disk"),
                  "cursor_errors": ("spool_cursor_errors", "Read positions that could not be "
                                    "persisted (a restart re-sends from the last one)")}
QUARANTINE_COUNTERS = {"batches": ("quarantined_batches", "Batches written to the quarantine"),
                       "points": ("quarantined_points", "Points written to the quarantine"),
                       "bytes": ("quarantined_bytes", "Bytes written to the quarantine"),
                       "errors": ("quarantine_errors", "Batches the quarantine could not keep")}
# The output's state as a number (a string field would be free text): higher is worse.
OUTPUT_STATES = {"ok": 0.0, "starting": 1.0, "retrying": 2.0, "failing": 3.0, "closed": 4.0}
OUTPUT = "outputs.outputs.{output}"


def declare(registry: Registry) -> CollectorMetrics:
    """The collector's instruments in `registry` (bind them before rendering)."""
    return CollectorMetrics(registry)


class CollectorMetrics:
    """The instruments, by name (`counters[...]`, `gauges[...]`); `bind` and `bind_outputs`
    wire them to the live objects."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        r = registry
        self.gauges: dict[str, Gauge] = {}
        self.counters: dict[str, Counter] = {}
        for state, help in TARGET_HELP.items():
            self._gauge(f"targets_{state}", help, f"targets.{state}")
        self._gauge("collectors", "Live collectors sharing the fleet, this one included",
                    "targets.collectors")
        self._counter("collectors_expired", "Collectors declared dead: silent for "
                      "heartbeat_misses heartbeat intervals", "targets.collectors_expired")
        self._gauge("collectors_fenced", "1 while this collector cannot hear its own heartbeat "
                    "(cut off from NATS: it keeps its share, declares nobody dead)",
                    "targets.collectors_fenced")
        for event, help in TARGET_EVENTS.items():
            self._counter(f"targets_{event}", help, f"targets.{event}")
        for key, (field, help) in SCRAPE_COUNTERS.items():
            self._counter(field, help, f"scrapes.{key}")
        self._gauge("scrapes_in_flight", "Scrapes in flight now", "scrapes.in_flight")
        for event, help in DISCOVERY_EVENTS.items():
            self._counter(f"discovery_{event}", help, f"discovery.{event}")
        self._counter("points_received", "Points handed to the outputs",
                      "outputs.points_received")
        self._counter("points_failed", "Points lost because the encoder raised on their batch",
                      "outputs.points_failed")
        for key, help in ENCODER_COUNTERS.items():
            self._counter(f"encoder_{key}", help, f"outputs.encoder.{key}")
        self._gauge("nats_rtt_seconds", "NATS round trip (a flush), seconds", "nats.rtt_seconds")
        self._counter("nats_reconnects", "NATS reconnects", "nats.reconnects")
        self._gauge("nats_connected", "1 while connected to NATS, else 0", "nats.connected")

        endpoint = ("target_endpoint",)
        self.scrapes_ok = Counter("collector_scrape", "ok", "Scrapes that succeeded",
                                  tags=endpoint, varz="scrapes.ok.{target_endpoint}", registry=r)
        self.scrapes_failed = Counter(
            "collector_scrape", "failed", "Scrapes that failed, every error class",
            tags=endpoint, varz="scrapes.failed_total.{target_endpoint}", registry=r)
        self.durations = Summary(
            "collector_scrape", "duration_{q}_seconds", "Scrape duration over the last 4,096 "
            "scrapes, seconds", tags=endpoint, window=DURATION_WINDOW,
            varz="scrapes.duration_seconds.{target_endpoint}", registry=r)
        self.scrape_errors = Counter(
            "collector_scrape_error", "count", "Failed scrapes of this error class",
            tags=("target_endpoint", "error"), varz="scrapes.failed.{target_endpoint}.{error}",
            registry=r)
        self.by_type = {state: Gauge("collector_target", state, f"{TARGET_HELP[state]}, of "
                                     "this type", tags=("target_job",),
                                     varz=f"targets.by_type.{{target_job}}.{state}", registry=r)
                        for state in TARGET_STATES}
        self.output: dict[str, Counter | Gauge] = {}
        for key, help in OUTPUT_COUNTERS.items():
            self._output(Counter, key, help, key)
        self._output(Gauge, "last_write_duration_seconds", "Duration of the last write attempt",
                     "last_write_duration_s")
        self._output(Gauge, "batch_bytes", "Batch size limit now (shrinks after a 413), bytes",
                     "batch_bytes")
        self._output(Gauge, "state_code", "State: 0 ok, 1 starting, 2 retrying, 3 failing, "
                     "4 closed", "state_code")
        for reason, (_, help) in DROP_REASONS.items():
            self._output(Counter, f"points_dropped_{reason}", help, f"points_dropped.{reason}")
        self._output(Counter, "points_dropped", "Points dropped, every reason",
                     "points_dropped_total")
        for key, (field, help) in SPOOL_GAUGES.items():
            self._output(Gauge, field, help, f"spool.{key}")
        for key, (field, help) in SPOOL_COUNTERS.items():
            self._output(Counter, field, help, f"spool.{key}")
        for key, (field, help) in QUARANTINE_COUNTERS.items():
            self._output(Counter, field, help, f"quarantine.{key}")

    def _gauge(self, field: str, help: str, varz: str) -> None:
        self.gauges[field] = Gauge("collector", field, help, varz=varz, registry=self.registry)

    def _counter(self, field: str, help: str, varz: str) -> None:
        self.counters[field] = Counter("collector", field, help, varz=varz,
                                       registry=self.registry)

    def _output(self, kind: type[Counter | Gauge], field: str, help: str, key: str) -> None:
        self.output[field] = kind("collector_output", field, help, tags=("output", "kind"),
                                  varz=f"{OUTPUT}.{key}", registry=self.registry)

    # -- reading the live objects at render time ------------------------------------------------

    def bind(self, collector: Collector) -> None:
        """Read `collector`'s registry, scraper, discovery and NATS at render time."""
        g, c = self.gauges, self.counters
        stats = collector.scraper.stats
        for key, (field, _) in SCRAPE_COUNTERS.items():
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
        c["collectors_expired"].set_function(
            lambda: collector.membership.expired if collector.membership else 0)
        g["collectors_fenced"].set_function(
            lambda: int(bool(collector.membership and collector.membership.fenced())))
        registry = collector.registry
        for event in TARGET_EVENTS:
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
                   for reason, (key, _) in DROP_REASONS.items()}
        for reason, (source, key) in sources.items():
            child(f"points_dropped_{reason}").set_function(partial(getattr, source, key))
        child("points_dropped").set_function(
            lambda: sum(getattr(source, key) for source, key in sources.values()))
        for key, (field, _) in {**SPOOL_GAUGES, **SPOOL_COUNTERS}.items():
            child(field).set_function(partial(getattr, spool, key))
        for key, (field, _) in QUARANTINE_COUNTERS.items():
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
