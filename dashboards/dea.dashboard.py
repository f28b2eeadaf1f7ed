"""DEA: app instances by state, crashes, free memory and disk, staging capacity, warden."""

from fobs.dashboards.panels import Grid, by, dashboard, stat, timeseries, where

STATES = ("running", "starting", "born", "stopping", "stopped", "crashed", "resuming",
          "evacuating", "deleted")
# Per-DEA last value per interval, then summed over DEAs (a plain sum would add every scrape).
PER_DEA = "GROUP BY time($__interval), \"deployment\", \"job\", \"index\" fill(none)"
states_inner = ", ".join(f'last("instances_{s}") AS "{s}"' for s in STATES)
states_outer = ", ".join(f'sum("{s}") AS "{s}"' for s in STATES)

grid = (
    Grid()
    .add(stat("Running instances",
              f'SELECT sum("running") FROM (SELECT last("instances_running") AS "running" '
              f'FROM "dea" WHERE {where()} GROUP BY "deployment", "job", "index")'), w=6, h=4)
    .add(stat("Crashed instances",
              f'SELECT sum("crashed") FROM (SELECT last("instances_crashed") AS "crashed" '
              f'FROM "dea" WHERE {where()} GROUP BY "deployment", "job", "index")',
              description="Instances in state CRASHED now (kept 5 minutes after a crash)."),
         w=6, h=4)
    .add(stat("DEAs able to stage",
              f'SELECT sum("can_stage") FROM (SELECT last("can_stage") AS "can_stage" '
              f'FROM "dea" WHERE {where()} GROUP BY "deployment", "job", "index")'), w=6, h=4)
    .add(stat("Lowest available memory",
              f'SELECT min("ratio") FROM (SELECT last("available_memory_ratio") AS "ratio" '
              f'FROM "dea" WHERE {where()} GROUP BY "deployment", "job", "index")',
              unit="percentunit"), w=6, h=4)
    .row("Instances")
    .add(timeseries("Instances by state",
                    (f'SELECT {states_outer} FROM (SELECT {states_inner} FROM "dea" '
                     f'WHERE {where()} {PER_DEA}) GROUP BY time($__interval)', ""),
                    stack=True, description="All DEAs together."))
    .add(timeseries("Crashed instances per DEA",
                    (f'SELECT last("instances_crashed") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index")))
    .add(timeseries("Running instances per DEA",
                    (f'SELECT last("instances_running") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index")))
    .add(timeseries("Reserved and used memory",
                    (f'SELECT sum("reserved") AS "reserved", sum("used") AS "used" FROM '
                     f'(SELECT last("reserved_memory_bytes") AS "reserved", '
                     f'last("used_memory_bytes") AS "used" FROM "dea" WHERE {where()} '
                     f'{PER_DEA}) GROUP BY time($__interval)', ""),
                    unit="bytes", description="Σ memory limits of live instances, and Σ what "
                                              "they use."))
    .row("Capacity")
    .add(timeseries("Available memory",
                    (f'SELECT mean("available_memory_ratio") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="percentunit",
                    valueMin=0, valueMax=1))
    .add(timeseries("Available disk",
                    (f'SELECT mean("available_disk_ratio") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="percentunit",
                    valueMin=0, valueMax=1))
    .add(timeseries("Can stage (1) / cannot (0)",
                    (f'SELECT last("can_stage") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), valueMin=0, valueMax=1))
    .add(timeseries("Reservable stagers",
                    (f'SELECT last("reservable_stagers") FROM "dea" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index")))
    .row("Warden")
    .add(timeseries("Warden response time",
                    (f'SELECT non_negative_derivative(last("warden_response_time_ms"), 1s) / '
                     f'non_negative_derivative(last("warden_requests"), 1s) FROM "dea" '
                     f'WHERE {where()} {by("job", "index")}', "$tag_job/$tag_index"),
                    unit="ms", description="Mean time per warden request in each interval."))
    .add(timeseries("Warden requests and errors",
                    (f'SELECT non_negative_derivative(last("warden_requests"), 1s) FROM "dea" '
                     f'WHERE {where()} {by("job", "index")}', "requests $tag_job/$tag_index"),
                    (f'SELECT non_negative_derivative(last("warden_errors"), 1s) FROM "dea" '
                     f'WHERE {where()} {by("job", "index")}', "errors $tag_job/$tag_index"),
                    unit="reqps"))
)

dashboard = dashboard("fobs / DEA", "fobs-dea", "dea", grid, tags=["dea"],
                      description="DEAs: instances by state, crashes, memory and disk "
                                  "available, staging capacity, warden.")
