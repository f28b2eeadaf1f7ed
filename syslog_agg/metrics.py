"""The syslog aggregator's own metrics, declared once: `syslog`, `syslog_component`,
`syslog_listener`.

The counting stays in the typed stats objects (stats.py), bumped per message by the listeners
and the pipeline, in this process or merged from the UDP workers' batches; an instrument call
per message would cost more than the parsing. Each instrument below reads its stats field when
varz is rendered (`set_function`), so the declaration is the only place that names the field,
its type, its varz path and its meaning; the component runtime renders varz and /metrics from
it and the collector stores it with no handler of its own.

Per-component and per-listener children are refilled before each render (`on_collect`):
components appear as messages arrive, and at most `MAX_COMPONENTS` of them, the busiest, are
published (a routing mistake must not flood the series index).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from fobs.components.metrics import Counter, Gauge, Number, Registry
from fobs.syslog_agg.stats import SEVERITIES, Counts, PipelineStats

if TYPE_CHECKING:
    from fobs.syslog_agg.server import Aggregator

__all__ = ["declare", "MAX_COMPONENTS"]

MAX_COMPONENTS = 64
TOTALS, COMPONENT, LISTENER = "syslog", "syslog_component", "syslog_listener"

Read = Callable[[], Number | None]

_INTAKE = {
    "received": "Frames and datagrams received (probes excluded)",
    "received_bytes": "Bytes received in those frames and datagrams",
    "truncated": "Messages cut at listen.max_message_size",
    "dropped": "UDP datagrams dropped by the aggregator itself: none since a full intake "
               "queue leaves them in the kernel's buffer (kernel_udp_drops counts its losses)",
    "probes": "Empty or one-NUL datagrams (monit's UDP port test), not messages",
    "framing_errors": "TCP/TLS octet-counting framing errors",
}
_FORMATS = {
    "rfc5424": "Messages parsed as RFC 5424",
    "rfc3164": "Messages parsed as RFC 3164 (BSD syslog)",
    "unparsed": "Messages that parsed as neither (kept raw, with the reason)",
}
_STORE = {
    "lines_written": "Lines written to the per-component files",
    "bytes_written": "Bytes written to the per-component files",
    "write_errors": "Failed or short writes (no space, I/O error): the lines not written are "
                    "lost, never half a line",
    "lines_lost": "Lines lost to failed or short writes (e.g. a full disk)",
    "rotations": "Files renamed at store.max_file_size",
    "files_gzipped": "Closed files compressed by retention",
    "files_removed": "Files removed by retention",
    "bytes_removed": "Bytes removed by retention",
    "flushes": "Store flushes",
}
_TAIL = {
    "published": "Messages published on the live tail",
    "rate_limited": "Messages over a component's tail rate, not published",
    "not_connected": "Tail messages not published: NATS not connected or backlog full",
}
_LISTENER_COUNTERS = {
    "kernel_drops": "udp: datagrams the kernel dropped for our sockets (buffer full)",
    "worker_restarts": "udp: worker processes restarted after dying",
    "connections": "tcp/tls: connections accepted",
    "rejected_connections": "tcp/tls: connections refused over listen.max_connections",
    "rejected_per_source": "tcp/tls: connections refused over "
                           "listen.max_connections_per_source",
    "handshake_timeouts": "tls: connections closed after listen.tls_handshake_timeout",
    "handshake_failures": "tls: connections closed on a failed handshake",
    "accept_errors": "tcp/tls: accepts that failed for want of descriptors or memory "
                     "(accepting pauses 1 s)",
    "idle_closed": "tcp/tls: connections closed after listen.idle_timeout",
}
_LISTENER_GAUGES = {
    "rcvbuf_bytes": "udp: receive buffer granted by the kernel, per socket",
    "workers": "udp: worker processes (0: received in the aggregator)",
    "open_connections": "tcp/tls: connections open now",
}


def declare(agg: Aggregator, registry: Registry) -> None:
    """Declare the aggregator's instruments in `registry`, reading `agg`'s stats."""
    intake, pipeline = agg.intake, agg.pipeline.stats
    store, tail = agg.store, agg.tail

    def counter(field: str, help: str, read: Read, varz: str | None = None) -> None:
        Counter(TOTALS, field, help, varz=varz, registry=registry).set_function(read)

    def gauge(field: str, help: str, read: Read, varz: str | None = None) -> None:
        Gauge(TOTALS, field, help, varz=varz, registry=registry).set_function(read)

    def components() -> list[Counts]:
        return list(pipeline.components.values())

    counter("messages", "Messages filed under a component",
            lambda: sum(c.messages for c in components()))
    counter("bytes", "Bytes of the messages filed", lambda: sum(c.bytes for c in components()))
    for i, severity in enumerate(SEVERITIES):
        counter(f"messages_{severity}", f"Messages of severity {severity}",
                _severity_total(pipeline, i), f"severity.{severity}")
    for name, help in _INTAKE.items():
        counter(name, help, partial(getattr, intake.stats, name))
    counter("parse_errors", "Messages that parsed as neither RFC 5424 nor RFC 3164",
            lambda: pipeline.formats["unparsed"])
    for fmt, help in _FORMATS.items():
        counter(f"formats_{fmt}", help, partial(pipeline.formats.__getitem__, fmt),
                f"formats.{fmt}")
    counter("discarded", "Messages dropped by routing.discard_unmatched",
            lambda: pipeline.discarded)
    counter("kernel_udp_drops", "Datagrams the kernel dropped for our UDP sockets",
            agg.kernel_udp_drops)
    counter("udp_rcvbuf_errors", "The host's UDP RcvbufErrors (every socket, /proc/net/snmp)",
            udp_rcvbuf_errors)
    gauge("queue_depth", "Messages waiting in the intake queue", lambda: len(intake.queue))
    gauge("queue_capacity", "Size of the intake queue (listen.queue_size)",
          lambda: intake.capacity)
    gauge("queue_peak", "Most messages the intake queue has held since start",
          lambda: intake.peak)
    overflow = agg.config.routing.overflow
    counter("overflow_messages", "Messages filed under routing.overflow: their component was "
            "over routing.max_components", lambda: _messages(pipeline, overflow))
    gauge("open_connections", "TCP and TLS connections open now",
          lambda: sum(len(t.sessions) for t in agg.tcp))
    gauge("components", "Components messages were filed under", lambda: len(components()),
          "component_count")
    for name, help in _STORE.items():
        counter(f"store_{name}", help, partial(getattr, store.stats, name),
                f"store.{name}")
    gauge("store_open_files", "Log files open now", lambda: store.open_files,
          "store.open_files")
    gauge("store_pending_lines", "Lines waiting for the next flush", lambda: store.pending_lines,
          "store.pending_lines")
    for name, help in _TAIL.items():
        counter(f"tail_{name}", help, partial(getattr, tail.stats, name),
                f"tail.{name}")
    _declare_components(agg, registry)
    _declare_listeners(agg, registry)


def _declare_components(agg: Aggregator, registry: Registry) -> None:
    pipeline = agg.pipeline.stats
    path = "components.{component}"

    def counter(field: str, help: str, varz: str) -> Counter:
        return Counter(COMPONENT, field, help, tags=("component",), varz=f"{path}.{varz}",
                       registry=registry)

    messages = counter("messages", "Messages filed under this component", "messages")
    size = counter("bytes", "Bytes of this component's messages", "bytes")
    unparsed = counter("unparsed", "This component's messages that did not parse", "unparsed")
    by_severity = [counter(f"messages_{s}", f"This component's messages of severity {s}",
                           f"severity.{s}") for s in SEVERITIES]

    def refill() -> None:
        busiest = sorted(pipeline.components.items(), key=lambda item: -item[1].messages)
        for instrument in (messages, size, unparsed, *by_severity):
            instrument.clear()
        for name, c in busiest[:MAX_COMPONENTS]:
            messages.labels(name).set_function(partial(getattr, c, "messages"))
            size.labels(name).set_function(partial(getattr, c, "bytes"))
            unparsed.labels(name).set_function(partial(c.severity.__getitem__, 8))
            for i, instrument in enumerate(by_severity):
                instrument.labels(name).set_function(partial(c.severity.__getitem__, i))

    registry.on_collect(refill)


def _declare_listeners(agg: Aggregator, registry: Registry) -> None:
    path = "listeners.{transport}."
    counters = {field: Counter(LISTENER, field, help, tags=("transport",), varz=path + field,
                               registry=registry)
                for field, help in _LISTENER_COUNTERS.items()}
    gauges = {field: Gauge(LISTENER, field, help, tags=("transport",), varz=path + field,
                           registry=registry)
              for field, help in _LISTENER_GAUGES.items()}

    def refill() -> None:
        for counter in counters.values():
            counter.clear()
        for gauge in gauges.values():
            gauge.clear()
        udp = agg.udp or agg.workers
        if udp is not None:
            workers = agg.workers
            gauges["rcvbuf_bytes"].labels("udp").set(udp.rcvbuf_granted)
            gauges["workers"].labels("udp").set(len(workers.sockets) if workers else 0)
            counters["kernel_drops"].labels("udp").set_function(agg.kernel_udp_drops)
            counters["worker_restarts"].labels("udp").set_function(
                lambda: workers.restarts if workers else 0)
        for listener in agg.tcp:
            name, stats = listener.transport_name, listener.stats
            gauges["open_connections"].labels(name).set(len(listener.sessions))
            for field in ("connections", "rejected_connections", "rejected_per_source",
                          "handshake_timeouts", "handshake_failures", "accept_errors",
                          "idle_closed"):
                counters[field].labels(name).set_function(partial(getattr, stats, field))

    registry.on_collect(refill)


def _messages(pipeline: PipelineStats, component: str) -> int:
    counts = pipeline.components.get(component)
    return counts.messages if counts is not None else 0


def _severity_total(pipeline: PipelineStats, i: int) -> Read:
    return lambda: pipeline.severity_totals()[i]


def udp_rcvbuf_errors() -> int | None:
    """The host's UDP RcvbufErrors (/proc/net/snmp): loss in every socket's kernel buffer."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None
