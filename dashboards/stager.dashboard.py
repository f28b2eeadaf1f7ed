"""Stager: staging queue, active tasks, outcomes, failure reasons, durations."""

from fobs.dashboards.panels import Grid, by, dashboard, stat, timeseries, where

PER_STAGER = "GROUP BY time($__interval), \"deployment\", \"job\", \"index\" fill(none)"


def rate(field: str) -> str:
    return f'non_negative_derivative(last("{field}"), 1m)'


FAILURE_RATIO = (f'SELECT sum("failed") / (sum("failed") + sum("succeeded")) FROM (SELECT '
                 f'{rate("tasks_failed")} AS "failed", {rate("tasks_succeeded")} AS "succeeded" '
                 f'FROM "stager" WHERE {where()} {PER_STAGER}) GROUP BY time($__interval)')

grid = (
    Grid()
    .add(stat("Pending tasks",
              f'SELECT sum("n") FROM (SELECT last("tasks_pending") AS "n" FROM "stager" '
              f'WHERE {where()} GROUP BY "deployment", "job", "index")'), w=6, h=4)
    .add(stat("Active tasks",
              f'SELECT sum("n") FROM (SELECT last("tasks_active") AS "n" FROM "stager" '
              f'WHERE {where()} GROUP BY "deployment", "job", "index")'), w=6, h=4)
    .add(stat("Stagings in range",
              f'SELECT sum("n") FROM (SELECT spread("tasks_succeeded") + spread("tasks_failed") '
              f'AS "n" FROM "stager" WHERE {where()} GROUP BY "deployment", "job", "index")',
              description="Tasks finished (succeeded or failed) in the time range."), w=6, h=4)
    .add(stat("Failure ratio", FAILURE_RATIO, unit="percentunit", alarm=0.25,
              reduce="mean"), w=6, h=4)
    .row("Queue")
    .add(timeseries("Pending (queue)",
                    (f'SELECT last("tasks_pending") FROM "stager" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index")))
    .add(timeseries("Active",
                    (f'SELECT last("tasks_active") FROM "stager" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index")))
    .row("Outcomes")
    .add(timeseries("Succeeded and failed per minute",
                    (f'SELECT sum("succeeded") AS "succeeded", sum("failed") AS "failed" FROM '
                     f'(SELECT {rate("tasks_succeeded")} AS "succeeded", {rate("tasks_failed")} '
                     f'AS "failed" FROM "stager" WHERE {where()} {PER_STAGER}) '
                     f'GROUP BY time($__interval)', ""), unit="short", stack=True))
    .add(timeseries("Failures per minute by reason",
                    (f'SELECT sum("n") FROM (SELECT {rate("count")} AS "n" FROM '
                     f'"stager_failure" WHERE {where()} GROUP BY time($__interval), '
                     f'"deployment", "job", "index", "reason" fill(none)) '
                     f'GROUP BY time($__interval), "reason"', "$tag_reason"), stack=True))
    .add(timeseries("Failure ratio", (FAILURE_RATIO, "failed / finished"), unit="percentunit",
                    description="The StagerFailureRatio alert fires above 25 % over 10 m."))
    .add(timeseries("Droplet upload volume",
                    (f'SELECT non_negative_derivative(last("droplet_bytes_total"), 1s) FROM '
                     f'"stager" WHERE {where()} {by("job", "index")}', "$tag_job/$tag_index"),
                    unit="Bps"))
    .row("Duration")
    .add(timeseries("Staging duration percentiles",
                    (f'SELECT mean("duration_p50_seconds") AS "p50", '
                     f'mean("duration_p90_seconds") AS "p90", mean("duration_p99_seconds") '
                     f'AS "p99" FROM "stager" WHERE {where()} {by("job", "index")}',
                     "$tag_job/$tag_index $col"), unit="s",
                    description="Over the stager's sliding window (10 minutes by default)."),
         w=24)
)

dashboard = dashboard("fobs / Stager", "fobs-stager", "stager", grid, tags=["stager"],
                      description="Stagers: queue, active tasks, succeeded/failed, failure "
                                  "reasons, duration percentiles.")
