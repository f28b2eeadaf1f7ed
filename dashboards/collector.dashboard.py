"""The collector and fobs' other daemons: scrape latency and outcomes (from `scrape`, which the
collector writes for every target), then the collector's own varz (targets, failures by class,
points written per output, spool, write errors), the supervisor's services and the alert
evaluator.

Those daemons declare their metrics and the collector stores them (docs/schema.md); an
output's counters are points of `collector_output` tagged with its name, so every panel covers
every output whatever it is called. The daemons' panels follow the deployment only: the `job`
and `index` variables pick scrape targets.
"""

from fobs.dashboards.panels import Grid, by, dashboard, stat, timeseries, where

SELF = '"deployment" =~ /^$deployment$/ AND $timeFilter'


def own(select: str, measurement: str, *tags: str) -> str:
    """A daemon's own figure, one series per daemon index (and tags)."""
    return f'SELECT {select} FROM "{measurement}" WHERE {SELF} {by("index", *tags)}'


def output(select: str) -> str:
    return own(select, "collector_output", "output")


def rate(field: str) -> str:
    return f'non_negative_derivative(last("{field}"), 1s)'


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
    .row("Each collector")
    .add(timeseries("Targets by type",
                    (own('last("up")', "collector_target", "target_job"),
                     "up $tag_target_job ($tag_index)"),
                    (own('last("down")', "collector_target", "target_job"),
                     "down $tag_target_job ($tag_index)"),
                    description="Targets each collector scrapes, by component type and "
                                "health of their /varz."))
    .add(timeseries("Targets per collector",
                    (own('last("targets_known")', "collector"), "owned ($tag_index)"),
                    (own('last("collectors")', "collector"), "members seen ($tag_index)"),
                    (f'SELECT count("up") FROM "scrape" WHERE {where()} {by("collector")}',
                     "scrapes ($tag_collector)"),
                    description="Sharing a fleet (rendezvous): the targets each collector "
                                "owns, how many collectors it sees, and the scrapes each made "
                                "per interval (the `collector` tag of `scrape`)."))
    .add(timeseries("Ownership changes",
                    (own('non_negative_difference(last("targets_ownership_changes")) AS '
                         '"changes", non_negative_difference(last("targets_taken_over")) AS '
                         '"taken over", non_negative_difference(last("targets_handed_over")) '
                         'AS "handed over", non_negative_difference(last('
                         '"collectors_expired")) AS "members expired"', "collector"),
                     "$col ($tag_index)"),
                    description="Per interval: changes of the set of collectors sharing the "
                                "fleet, targets that moved to or from each collector, and "
                                "members declared dead after heartbeat_misses silent "
                                "heartbeats."))
    .add(timeseries("Failed scrapes by class",
                    (own(rate("count"), "collector_scrape_error", "target_endpoint", "error"),
                     "$tag_target_endpoint $tag_error ($tag_index)"), unit="reqps",
                    description="Per second, by error class (timeout, refused, http_503, …) "
                                "and endpoint, as each collector counts them."))
    .add(timeseries("Scheduling",
                    (own(f'{rate("scrapes_late")} AS "late", {rate("scrapes_missed")} AS '
                         f'"missed", {rate("scrapes_skipped_overlap")} AS "overlap"',
                         "collector"), "$col $tag_index"),
                    unit="reqps", description="Scrapes started late, dropped because they "
                                              "were due too long ago, or skipped because the "
                                              "previous one was still running."))
    .add(timeseries("NATS round trip",
                    (own('max("nats_rtt_seconds")', "collector"), "$tag_index"), unit="s"))
    .row("Writes (each output)")
    .add(timeseries("Points written",
                    (output(rate("points_written")), "$tag_output ($tag_index)"),
                    unit="short", description="Points the database accepted, per second."))
    .add(timeseries("Write errors",
                    (output(rate("write_errors")), "$tag_output ($tag_index)"),
                    unit="short", description="Failed write attempts per second (the batch "
                                              "stays in the spool and is retried)."))
    .add(timeseries("Spooled vs written",
                    (output(rate("points_added")), "spooled $tag_output ($tag_index)"),
                    (output(rate("points_written")), "written $tag_output ($tag_index)"),
                    description="Points entering the spool and leaving it for the database, "
                                "per second; when the first stays above the second the spool "
                                "grows (alert CollectorSpoolGrowing)."))
    .add(timeseries("Spool backlog",
                    (output('last("spool_points")'), "points $tag_output ($tag_index)"),
                    (output('last("spool_oldest_age_seconds")'),
                     "oldest (s) $tag_output ($tag_index)"),
                    description="Points accepted and not yet written, and the age of the "
                                "oldest of them in seconds."))
    .add(timeseries("Points lost or refused",
                    (output(rate("points_dropped")), "dropped $tag_output ($tag_index)"),
                    (output(rate("points_rejected")), "rejected $tag_output ($tag_index)"),
                    description="Per second. Dropped: the spool was full, or they could not "
                                "be spooled; rejected: the database refused them as bad data "
                                "(they are quarantined)."))
    .add(timeseries("Last write duration",
                    (output('max("last_write_duration_seconds")'), "$tag_output ($tag_index)"),
                    unit="s"))
    .row("Supervisor")
    .add(timeseries("Supervised services up",
                    (own('min("up")', "supervisor_service", "service"), "$tag_service"),
                    description="1 while the service is monitored and OK."))
    .add(timeseries("Service restarts",
                    (own('non_negative_difference(last("restarts"))', "supervisor_service",
                         "service"), "$tag_service"),
                    description="Restarts per interval, automatic or requested."))
    .add(timeseries("Service memory",
                    (own('last("memory_total_bytes")', "supervisor_service", "service"),
                     "$tag_service"), unit="bytes",
                    description="Resident memory of each service with its descendants."))
    .add(timeseries("Service CPU",
                    (own('mean("cpu_percent")', "supervisor_service", "service"),
                     "$tag_service"), unit="percent", description="100 = one core busy."))
    .row("Alert evaluator")
    .add(timeseries("Alerts",
                    (own('max("alerts_firing") AS "firing", max("alerts_pending") AS '
                         '"pending"', "alert_evaluator"), "$col $tag_index"),
                    description="Alerts firing and pending, as the evaluator sees them."))
    .add(timeseries("Rule query failures",
                    (own(rate("failures"), "alert_rule", "rule"), "$tag_rule ($tag_index)"),
                    unit="reqps", description="Failed evaluations per second, by rule; a rule "
                                              "whose query fails keeps its alerts as they "
                                              "were."))
    .add(timeseries("Notifications",
                    (own(f'{rate("nats_published")} AS "nats", {rate("nats_failed")} AS '
                         f'"nats failed", {rate("alertmanager_sent")} AS "alertmanager", '
                         f'{rate("alertmanager_failed")} AS "alertmanager failed"',
                         "alert_evaluator"), "$col $tag_index"), unit="reqps"))
    .add(timeseries("Evaluation round",
                    (own('max("round_seconds")', "alert_evaluator"), "$tag_index"), unit="s",
                    description="How long the last round of evaluations took."))
)

dashboard = dashboard("fobs / Collector", "fobs-collector", "scrape", grid, tags=["collector"],
                      description="The collector (scrape latency and outcomes, targets, points "
                                  "written, spool, write errors), the supervisor's services "
                                  "and the alert evaluator.")
