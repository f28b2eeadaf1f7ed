"""Fleet overview: every component the collector knows, up or down, healthy or not."""

from fobs.dashboards.panels import Grid, by, dashboard, stat, table, timeseries, where

VARZ = "\"endpoint\" = 'varz'"
HEALTHZ = "\"endpoint\" = 'healthz'"
FAILED = "\"error\" <> ''"
# The last /varz scrape of each component in the range (a subquery: one row per component).
LAST_UP = (f'(SELECT last("up") AS "up" FROM "scrape" WHERE {where(VARZ)} '
           f'GROUP BY "deployment", "job", "index")')

grid = (
    Grid()
    .add(stat("Components", f'SELECT count("up") FROM {LAST_UP}',
              description="Components scraped in the time range (by their last /varz scrape)."),
         w=6, h=4)
    .add(stat("Up", f'SELECT sum("up") FROM {LAST_UP}',
              description="Components whose last /varz scrape succeeded."), w=6, h=4)
    .add(stat("Down", f'SELECT count("up") - sum("up") FROM {LAST_UP}',
              description="Components whose last /varz scrape failed.", alarm=1), w=6, h=4)
    .add(stat("Unhealthy",
              f'SELECT count("healthy") - sum("healthy") FROM (SELECT last("healthy") AS '
              f'"healthy" FROM "scrape" WHERE {where(HEALTHZ)} GROUP BY "deployment", "job", '
              f'"index")',
              description="Components whose last /healthz answer was not ok.", alarm=1),
         w=6, h=4)
    .row("Components")
    .add(timeseries("Components by type",
                    (f'SELECT count("up") FROM (SELECT last("up") AS "up" FROM "scrape" '
                     f'WHERE {where(VARZ)} {by("deployment", "job", "index")}) '
                     f'GROUP BY time($__interval), "job" fill(none)', "$tag_job"),
                    description="Components scraped per interval, by type.", stack=True))
    .add(timeseries("Up (1) / down (0)",
                    (f'SELECT last("up") FROM "scrape" WHERE {where(VARZ)} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"),
                    description="Result of each /varz scrape."))
    .add(timeseries("Healthy (1) / unhealthy (0)",
                    (f'SELECT last("healthy") FROM "scrape" WHERE {where(HEALTHZ)} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"),
                    description="/healthz answered ok (1) or not (0)."))
    .add(timeseries("Failed scrapes",
                    (f'SELECT count("up") - sum("up") FROM "scrape" WHERE {where()} '
                     f'{by("job", "endpoint")}', "$tag_job $tag_endpoint"),
                    description="Scrapes that failed per interval, by type and endpoint."))
    .add(table("Recent scrape errors",
               f'SELECT "job", "index", "endpoint", "error" FROM "scrape" '
               f'WHERE {where(FAILED)} '
               f'ORDER BY time DESC LIMIT 50',
               description="The last 50 failed scrapes and their error class."), w=24)
    .row("Resources")
    .add(timeseries("Memory (RSS)",
                    (f'SELECT mean("mem_bytes") FROM "component" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="bytes"))
    .add(timeseries("CPU",
                    (f'SELECT mean("cpu") FROM "component" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="percent"))
    .add(timeseries("Errors logged",
                    (f'SELECT non_negative_derivative(last("log_error"), 1s) FROM "component" '
                     f'WHERE {where()} {by("job", "index")}', "$tag_job/$tag_index"),
                    unit="reqps", description="Lines logged at level error, per second."))
    .add(timeseries("Uptime",
                    (f'SELECT last("uptime_seconds") FROM "component" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="s"))
)

dashboard = dashboard("fobs / Fleet overview", "fobs-fleet", "scrape", grid,
                      description="Every component the collector scrapes: up/down, /healthz, "
                                  "scrape errors and resources.", tags=["fleet"])
