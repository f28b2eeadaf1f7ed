"""Syslog aggregator: messages by component and severity, parse errors, drops.

The aggregator registers as component `SyslogAggregator`; having no handler of its own, its varz
is stored by the generic handler in measurement `varz`, one float field per numeric leaf named
by its path (`messages`, `severity.err`, `components.dea.messages`, `dropped`, …).
"""

from dashboards.panels import Grid, by, dashboard, stat, timeseries, where

SYSLOG = "\"job\" = 'SyslogAggregator'"
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def rate(field: str) -> str:
    return f'non_negative_derivative(last({field}), 1s)'


def q(select: str, *tags: str) -> str:
    return f'SELECT {select} FROM "varz" WHERE {where(SYSLOG)} {by(*tags)}'


PER_AGG = ("deployment", "index")
BY_SEVERITY = ", ".join(rate('"severity.' + s + '"') + f' AS "{s}"' for s in SEVERITIES)

grid = (
    Grid()
    .add(stat("Messages/s", q(rate('"messages"')), unit="reqps"), w=6, h=4)
    .add(stat("Parse errors/s", q(rate('"parse_errors"')), unit="reqps", alarm=1), w=6, h=4)
    .add(stat("Dropped/s", q(rate('"dropped"')), unit="reqps", alarm=1,
              description="Messages dropped because the intake queue was full."), w=6, h=4)
    .add(stat("Queue depth",
              f'SELECT last("queue_depth") FROM "varz" WHERE {where(SYSLOG)} '
              f'GROUP BY time($__interval) fill(none)'), w=6, h=4)
    .row("Messages")
    .add(timeseries("Messages by component",
                    (q(rate(r"/^components\.[^.]+\.messages$/"), *PER_AGG),
                     "$col"), unit="reqps", stack=True,
                    description="Per second, by the component the aggregator filed them under."))
    .add(timeseries("Messages by severity",
                    (q(BY_SEVERITY, *PER_AGG), "$col"),
                    unit="reqps", stack=True))
    .add(timeseries("Errors and worse by component",
                    (q(rate(r"/^components\.[^.]+\.severity\.(emerg|alert|crit|err)$/"),
                       *PER_AGG), "$col"), unit="reqps"))
    .add(timeseries("Bytes received",
                    (q(rate('"received_bytes"'), *PER_AGG), "$tag_index"), unit="Bps"))
    .row("Problems")
    .add(timeseries("Parse errors",
                    (q(rate('"parse_errors"'), *PER_AGG), "unparsed $tag_index"),
                    (q(rate('"framing_errors"'), *PER_AGG), "framing $tag_index"),
                    unit="reqps", description="Messages that were neither RFC 5424 nor 3164, "
                                              "and broken TCP frames."))
    .add(timeseries("Drops",
                    (q(rate('"dropped"'), *PER_AGG), "intake full $tag_index"),
                    (q(rate('"truncated"'), *PER_AGG), "truncated $tag_index"),
                    (q(rate('"discarded"'), *PER_AGG), "discarded $tag_index"),
                    unit="reqps"))
    .add(timeseries("Intake queue",
                    (q('max("queue_depth")', *PER_AGG), "depth $tag_index"),
                    (q('max("queue_capacity")', *PER_AGG), "capacity $tag_index")))
    .add(timeseries("Store",
                    (q('last("store.open_files")', *PER_AGG), "open files $tag_index"),
                    (q('last("store.pending_lines")', *PER_AGG), "pending lines $tag_index")))
)

dashboard = dashboard("fobs / Syslog aggregator", "fobs-syslog", "varz", grid,
                      tags=["syslog"], job="SyslogAggregator",
                      description="The syslog aggregator: messages by component and severity, "
                                  "parse errors, drops.")
