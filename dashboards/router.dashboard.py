"""Router: request rate, status classes, 5xx ratio, latency, traffic per component, routes."""

from fobs.dashboards.panels import Grid, by, dashboard, stat, timeseries, where

CLASSES = ("2xx", "3xx", "4xx", "5xx", "xxx")
APP = "\"component\" = 'app'"
PER_ROUTER = "GROUP BY time($__interval), \"deployment\", \"job\", \"index\" fill(none)"


def rate(field: str) -> str:
    return f'non_negative_derivative(last("{field}"), 1s)'


classes_inner = ", ".join(f'{rate("responses_" + c)} AS "{c}"' for c in CLASSES)
classes_outer = ", ".join(f'sum("{c}") AS "{c}"' for c in CLASSES)
ERRORS_RATIO = (f'SELECT sum("errors") / sum("requests") FROM (SELECT {rate("responses_5xx")} '
                f'AS "errors", {rate("requests")} AS "requests" FROM "router" WHERE {where()} '
                f'{PER_ROUTER})')

grid = (
    Grid()
    .add(stat("Requests/s",
              f'SELECT sum("r") FROM (SELECT {rate("requests")} AS "r" FROM "router" '
              f'WHERE {where()} {PER_ROUTER}) GROUP BY time($__interval)', unit="reqps"),
         w=6, h=4)
    .add(stat("5xx ratio", f'{ERRORS_RATIO} GROUP BY time($__interval)',
              unit="percentunit", alarm=0.05), w=6, h=4)
    .add(stat("p99 latency",
              f'SELECT max("latency_p99_seconds") FROM "router" WHERE {where()} '
              f'GROUP BY time($__interval) fill(none)', unit="s"), w=6, h=4)
    .add(stat("Routes",
              f'SELECT sum("urls") FROM (SELECT last("urls") AS "urls" FROM "router" '
              f'WHERE {where()} GROUP BY "deployment", "job", "index")'), w=6, h=4)
    .row("Traffic")
    .add(timeseries("Request rate per router",
                    (f'SELECT {rate("requests")} FROM "router" WHERE {where()} '
                     f'{by("job", "index")}', "$tag_job/$tag_index"), unit="reqps"))
    .add(timeseries("Responses by status class",
                    (f'SELECT {classes_outer} FROM (SELECT {classes_inner} FROM "router" '
                     f'WHERE {where()} {PER_ROUTER}) GROUP BY time($__interval)', ""),
                    unit="reqps", stack=True))
    .add(timeseries("5xx ratio",
                    (f'{ERRORS_RATIO} GROUP BY time($__interval)', "all routers"),
                    (f'SELECT {rate("responses_5xx")} / {rate("requests")} FROM "router" '
                     f'WHERE {where()} {by("job", "index")}', "$tag_job/$tag_index"),
                    unit="percentunit", description="Share of responses with a 5xx status; "
                                                    "the alert fires above 5 % for 1 m."))
    .add(timeseries("Bad gateways and bad requests",
                    (f'SELECT {rate("bad_gateways")} FROM "router" WHERE {where()} '
                     f'{by("job", "index")}', "502 $tag_job/$tag_index"),
                    (f'SELECT {rate("bad_requests")} FROM "router" WHERE {where()} '
                     f'{by("job", "index")}', "400 $tag_job/$tag_index"), unit="reqps"))
    .row("Latency")
    .add(timeseries("Latency percentiles",
                    (f'SELECT mean("latency_p50_seconds") AS "p50", '
                     f'mean("latency_p90_seconds") AS "p90", mean("latency_p99_seconds") '
                     f'AS "p99" FROM "router" WHERE {where()} {by("job", "index")}',
                     "$tag_job/$tag_index $col"), unit="s"))
    .add(timeseries("p99 latency per component",
                    (f'SELECT mean("latency_p99_seconds") FROM "router_route" '
                     f'WHERE {where()} {by("component")}', "$tag_component"), unit="s"))
    .row("Per component")
    .add(timeseries("Traffic per component",
                    (f'SELECT sum("r") FROM (SELECT {rate("requests")} AS "r" FROM '
                     f'"router_route" WHERE {where()} GROUP BY time($__interval), '
                     f'"deployment", "job", "index", "component", "dea_index" fill(none)) '
                     f'GROUP BY time($__interval), "component"', "$tag_component"),
                    unit="reqps", stack=True,
                    description="Requests per second routed to each component (`app` = "
                                "apps on DEAs)."))
    .add(timeseries("App traffic per DEA",
                    (f'SELECT sum("r") FROM (SELECT {rate("requests")} AS "r" FROM '
                     f'"router_route" WHERE {where(APP)} '
                     f'GROUP BY time($__interval), "deployment", "job", "index", "dea_index" '
                     f'fill(none)) GROUP BY time($__interval), "dea_index"', "DEA $tag_dea_index"),
                    unit="reqps", stack=True))
    .add(timeseries("Routes and droplets",
                    (f'SELECT last("urls") FROM "router" WHERE {where()} {by("job", "index")}',
                     "routes $tag_job/$tag_index"),
                    (f'SELECT last("droplets") FROM "router" WHERE {where()} '
                     f'{by("job", "index")}', "droplets $tag_job/$tag_index")))
    .add(timeseries("Registry update age",
                    (f'SELECT max("registry_update_age_seconds") FROM "router" '
                     f'WHERE {where()} {by("job", "index")}', "$tag_job/$tag_index"), unit="s",
                    description="Time since the router last heard a route (un)register."))
)

dashboard = dashboard("fobs / Router", "fobs-router", "router", grid, tags=["router"],
                      description="Routers: request rate, status classes, 5xx ratio, latency "
                                  "percentiles, traffic per component, bad gateways, routes.")
