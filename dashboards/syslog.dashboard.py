"""Syslog aggregator: messages by component and severity, parse errors, drops, listeners, store.

The aggregator registers as component `SyslogAggregator`; the `syslog_aggregator` handler
stores its varz as `syslog` (totals, one `messages_<severity>` field per severity),
`syslog_component` (tag `component`: where the messages were filed) and `syslog_listener` (tag
`transport`), docs/schema.md. Counters become rates per aggregator first, then are summed
across aggregators.
"""

from fobs.dashboards.panels import Grid, by, dashboard, stat, timeseries, where

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
ERRORS_AND_WORSE = SEVERITIES[:4]
PER_AGG = ("deployment", "job", "index")


def rate(field: str) -> str:
    return f'non_negative_derivative(last("{field}"), 1s)'


def q(select: str, *tags: str, measurement: str = "syslog") -> str:
    """One series per aggregator (and tags): `SELECT … FROM "<measurement>" …`."""
    return f'SELECT {select} FROM "{measurement}" WHERE {where()} {by(*tags)}'


def summed(counters: dict[str, str], *tags: str, measurement: str = "syslog",
           total: str = "") -> str:
    """Rates of `counters` (alias → field) per aggregator, summed across aggregators by `tags`.

    With `total`, the outer query adds the aliases up into one column named `total`.
    """
    inner = ", ".join(f'{rate(field)} AS "{alias}"' for alias, field in counters.items())
    outer = (" + ".join(f'sum("{alias}")' for alias in counters) + f' AS "{total}"' if total
             else ", ".join(f'sum("{alias}") AS "{alias}"' for alias in counters))
    return (f'SELECT {outer} FROM (SELECT {inner} FROM "{measurement}" WHERE {where()} '
            f'{by(*PER_AGG, *tags)}) {by(*tags)}')


BY_SEVERITY = {s: f"messages_{s}" for s in SEVERITIES}

grid = (
    Grid()
    .add(stat("Messages/s", summed({"messages": "messages"}), unit="reqps"), w=6, h=4)
    .add(stat("Parse errors/s", summed({"parse_errors": "parse_errors"}), unit="reqps",
              alarm=1), w=6, h=4)
    .add(stat("UDP lost/s", summed({"kernel_udp_drops": "kernel_udp_drops"}), unit="reqps",
              alarm=1, description="Datagrams the kernel dropped because our receive buffer "
                                   "was full (while the intake queue is full the aggregator "
                                   "leaves them there)."), w=6, h=4)
    .add(stat("Queue depth",
              f'SELECT max("queue_depth") FROM "syslog" WHERE {where()} '
              f'GROUP BY time($__interval) fill(none)'), w=6, h=4)
    .row("Messages")
    .add(timeseries("Messages by component",
                    (summed({"messages": "messages"}, "component",
                            measurement="syslog_component"), "$tag_component"),
                    unit="reqps", stack=True,
                    description="Per second, by the component the aggregator filed them under."))
    .add(timeseries("Messages by severity", (summed(BY_SEVERITY), "$col"),
                    unit="reqps", stack=True))
    .add(timeseries("Errors and worse by component",
                    (summed({s: f"messages_{s}" for s in ERRORS_AND_WORSE}, "component",
                            measurement="syslog_component", total="errors"),
                     "$tag_component"), unit="reqps",
                    description="Messages of severity err, crit, alert or emerg per second."))
    .add(timeseries("Bytes received and stored",
                    (q(rate("received_bytes"), *PER_AGG), "received $tag_index"),
                    (q(rate("bytes"), *PER_AGG), "stored $tag_index"), unit="Bps"))
    .row("Problems")
    .add(timeseries("Parse errors",
                    (q(rate("parse_errors"), *PER_AGG), "unparsed $tag_index"),
                    (q(rate("framing_errors"), *PER_AGG), "framing $tag_index"),
                    unit="reqps", description="Messages that were neither RFC 5424 nor 3164, "
                                              "and broken TCP frames."))
    .add(timeseries("Drops",
                    (q(rate("dropped"), *PER_AGG), "intake full $tag_index"),
                    (q(rate("kernel_udp_drops"), *PER_AGG), "kernel buffer $tag_index"),
                    (q(rate("truncated"), *PER_AGG), "truncated $tag_index"),
                    (q(rate("discarded"), *PER_AGG), "discarded $tag_index"),
                    unit="reqps", description="Lost before parsing (intake queue full, the "
                                              "kernel's UDP buffer), cut to max_message_size, "
                                              "or discarded by routing."))
    .add(timeseries("Intake queue",
                    (q('max("queue_depth")', *PER_AGG), "depth $tag_index"),
                    (q('max("queue_capacity")', *PER_AGG), "capacity $tag_index")))
    .add(timeseries("Store",
                    (q('last("store_open_files")', *PER_AGG), "open files $tag_index"),
                    (q('last("store_pending_lines")', *PER_AGG), "pending lines $tag_index"),
                    (q(rate("store_lines_lost"), *PER_AGG), "lines lost/s $tag_index"),
                    description="Lines lost are lines whose write failed."))
    .row("Listeners")
    .add(timeseries("Connections",
                    (q('last("open_connections")', "index", "transport",
                       measurement="syslog_listener"), "open $tag_transport $tag_index"),
                    (q(rate("connections"), "index", "transport",
                       measurement="syslog_listener"), "new/s $tag_transport $tag_index"),
                    description="TCP and TLS connections open now, and accepted per second."))
    .add(timeseries("Refused and idle-closed connections",
                    (q(rate("rejected_connections"), "index", "transport",
                       measurement="syslog_listener"), "refused $tag_transport $tag_index"),
                    (q(rate("idle_closed"), "index", "transport",
                       measurement="syslog_listener"), "idle $tag_transport $tag_index"),
                    unit="reqps", description="Refused: over listen.max_connections; idle: "
                                              "silent for listen.idle_timeout."))
)

dashboard = dashboard("fobs / Syslog aggregator", "fobs-syslog", "syslog", grid,
                      tags=["syslog"], job="SyslogAggregator",
                      description="The syslog aggregator: messages by component and severity, "
                                  "parse errors, drops, listeners.")
