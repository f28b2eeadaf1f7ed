"""The syslog aggregator's varz (type `SyslogAggregator`) → `syslog`, `syslog_component`,
`syslog_listener`.

Severities are fields (`messages_err`, …), not a tag, for the reason `component.log_*` are: one
point per scrape instead of eight, and each severity is a column.

`syslog` — no tags:

| field                                   | type  | varz                                     |
|-----------------------------------------|-------|------------------------------------------|
| messages, bytes                         | int   | `messages`, `bytes` (stored)             |
| messages_<severity>                     | int   | `severity.<severity>` (the eight RFC 5424 names) |
| received, received_bytes                | int   | same names                               |
| parse_errors, truncated, dropped, probes, framing_errors, discarded | int | same names   |
| formats_rfc5424, _rfc3164, _unparsed    | int   | `formats.*`                              |
| kernel_udp_drops, udp_rcvbuf_errors     | int   | same names                               |
| queue_depth, queue_capacity, open_connections | float | same names                         |
| components                              | float | number of entries in `components`        |
| store_<counter>                         | int   | `store.<counter>` (`STORE_COUNTERS`)     |
| store_open_files, store_pending_lines   | float | `store.open_files`, `store.pending_lines`|
| tail_published, _rate_limited, _not_connected | int | `tail.*`                             |

`syslog_component` — tag `component` (where the aggregator filed the messages): messages,
bytes, unparsed, messages_<severity> (int). At most `MAX_COMPONENTS`, the busiest first.

`syslog_listener` — tag `transport` (`udp`, `tcp`, `tls`): the listener's counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Recorder
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.tables import by_number, entries, figures

MAX_COMPONENTS = 64
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
BY_SEVERITY = {s: f"messages_{s}" for s in SEVERITIES}
TRANSPORTS = ("udp", "tcp", "tls")

COUNTERS = {key: key for key in (
    "messages", "bytes", "received", "received_bytes", "parse_errors", "truncated", "dropped",
    "probes", "framing_errors", "discarded", "kernel_udp_drops", "udp_rcvbuf_errors")}
GAUGES = {key: key for key in ("queue_depth", "queue_capacity", "open_connections")}
FORMATS = {key: f"formats_{key}" for key in ("rfc5424", "rfc3164", "unparsed")}
STORE_COUNTERS = {key: f"store_{key}" for key in (
    "lines_written", "bytes_written", "write_errors", "lines_lost", "rotations",
    "files_gzipped", "files_removed", "bytes_removed", "flushes")}
STORE_GAUGES = {"open_files": "store_open_files", "pending_lines": "store_pending_lines"}
TAIL_COUNTERS = {key: f"tail_{key}" for key in ("published", "rate_limited", "not_connected")}
COMPONENT_COUNTERS = {"messages": "messages", "bytes": "bytes", "unparsed": "unparsed"}
LISTENER_GAUGES = {"rcvbuf_bytes": "rcvbuf_bytes", "workers": "workers",
                   "open_connections": "open_connections"}
LISTENER_COUNTERS = {key: key for key in (
    "kernel_drops", "worker_restarts", "connections", "rejected_connections", "idle_closed")}


@register("SyslogAggregator")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields = figures(varz, GAUGES, COUNTERS, rec)
    rec.counters(fields, varz.get("severity"), BY_SEVERITY)
    rec.counters(fields, varz.get("formats"), FORMATS)
    fields.update(figures(varz.get("store"), STORE_GAUGES, STORE_COUNTERS, rec))
    rec.counters(fields, varz.get("tail"), TAIL_COUNTERS)
    components = varz.get("components")
    if isinstance(components, Mapping):
        fields["components"] = float(len(components))
    rec.add("syslog", fields)

    for name, counts in entries(components, rec, MAX_COMPONENTS, rank=by_number("messages")):
        component = figures(counts, {}, COMPONENT_COUNTERS, rec)
        rec.counters(component, counts.get("severity"), BY_SEVERITY)
        rec.add("syslog_component", component, {"component": name})
    for transport, listener in entries(varz.get("listeners"), rec, len(TRANSPORTS)):
        if transport not in TRANSPORTS:
            rec.skip()
            continue
        rec.add("syslog_listener", figures(listener, LISTENER_GAUGES, LISTENER_COUNTERS, rec),
                {"transport": transport})
