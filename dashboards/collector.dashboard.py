"""The collector itself: scrape latency and outcomes (from `scrape`, which it writes for every
target) and its own varz (points written, spool, write errors), stored by the generic handler in
measurement `varz` under job `Collector`: one field per varz path, so an output's counters are
`outputs.outputs.<output name>.<counter>` (a regex field selects them for every output).
"""

from dashboards.panels import Grid, by, dashboard, stat, timeseries, where

COLLECTOR = "\"job\" = 'Collector'"
# The collector's own panels follow the deployment only; job and index pick scrape targets.
SELF = f'"deployment" =~ /^$deployment$/ AND {COLLECTOR} AND $timeFilter'


def own(select: str) -> str:
    return f'SELECT {select} FROM "varz" WHERE {SELF} {by("index")}'


def output(counter: str) -> str:
    """Regex over every output's counter: `outputs.outputs.<name>.<counter>`."""
    return rf"/^outputs\.outputs\.[^.]+\.{counter}$/"


def rate(field: str) -> str:
    return f'non_negative_derivative(last({field}), 1s)'


grid = (
    Grid()
    .add(stat("Scrapes/s",
              f'SELECT count("up") / 60 FROM "scrape" WHERE {where()} GROUP BY time(1m) '
              f'fill(none)', unit="reqps", reduce="mean"), w=6, h=4)
    .add(stat("Scrape p99",
              f'SELECT percentile("duration_seconds", 99) FROM "scrape" WHERE {where()}',
              unit="s"), w=6, h=4)
    .add(stat("Failed scrapes",
              f'SELECT count("up") - sum("up") FROM "scrape" WHERE {where()}', alarm=1,
              description="Failed scrapes in the time range."), w=6, h=4)
    .add(stat("Points/s",
              f'SELECT sum("points") / 60 FROM "scrape" WHERE {where()} GROUP BY time(1m) '
              f'fill(none)', unit="short", reduce="mean",
              description="Points produced by the scrapes (handler points)."), w=6, h=4)
    .row("Scrapes")
    .add(timeseries("Scrape duration percentiles",
                    (f'SELECT percentile("duration_seconds", 50) AS "p50", '
                     f'percentile("duration_seconds", 90) AS "p90", '
                     f'percentile("duration_seconds", 99) AS "p99" FROM "scrape" '
                     f'WHERE {where()} {by("endpoint")}', "$tag_endpoint $col"), unit="s"))
    .add(timeseries("Slowest scrape by type",
                    (f'SELECT max("duration_seconds") FROM "scrape" WHERE {where()} '
                     f'{by("job")}', "$tag_job"), unit="s"))
    .add(timeseries("Scrapes by outcome",
                    (f'SELECT sum("up") AS "ok", count("up") - sum("up") AS "failed" '
                     f'FROM "scrape" WHERE {where()} {by("endpoint")}', "$tag_endpoint $col"),
                    stack=True, description="Scrapes per interval."))
    .add(timeseries("Response size",
                    (f'SELECT mean("response_bytes") FROM "scrape" WHERE {where()} '
                     f'{by("job", "endpoint")}', "$tag_job $tag_endpoint"), unit="bytes"))
    .add(timeseries("Points produced",
                    (f'SELECT sum("points") FROM "scrape" WHERE {where()} {by("job")}',
                     "$tag_job"), stack=True, description="Points per interval, by type."))
    .add(timeseries("Varz values skipped",
                    (f'SELECT sum("skipped") FROM "scrape" WHERE {where()} {by("job")}',
                     "$tag_job"), description="Varz values the handlers could not use."))
    .row("Writes (each output)")
    .add(timeseries("Points written",
                    (own(rate(output("points_written"))), "$col $tag_index"),
                    unit="short", description="Points InfluxDB accepted, per second."))
    .add(timeseries("Write errors",
                    (own(rate(output("write_errors"))), "$col $tag_index"),
                    unit="short", description="Failed write attempts per second (the batch "
                                              "stays in the spool and is retried)."))
    .add(timeseries("Spooled vs written",
                    (own(rate(output("points_added"))), "spooled $col $tag_index"),
                    (own(rate(output("points_written"))), "written $col $tag_index"),
                    description="Points entering the spool and leaving it for InfluxDB, per "
                                "second; when the first stays above the second the spool "
                                "grows (alert CollectorSpoolGrowing)."))
    .add(timeseries("Points rejected",
                    (own(rate(output("points_rejected"))), "$col $tag_index"),
                    description="Points InfluxDB refused as bad data (quarantined), per "
                                "second."))
)

dashboard = dashboard("fobs / Collector", "fobs-collector", "scrape", grid, tags=["collector"],
                      description="The collector: scrape latency and outcomes, points "
                                  "written, spool, write errors.")
