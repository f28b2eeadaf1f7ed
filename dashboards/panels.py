"""Building blocks shared by the `*.dashboard.py` files: variables, filters, panels, layout.

Every dashboard filters by the template variables `deployment`, `job` and `index` (multi-value,
with "All" as `.*`), so each query's WHERE clause starts with `where()`. Panels are placed by a
`Grid` that fills 24-column rows left to right, so positions never overlap by construction (and
the tests check it anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafanalib import core

from fobs.dashboards.grafana import DATASOURCE, InfluxQLTarget

IDENTITY = ("deployment", "job", "index")
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
WIDTH = 24


def where(*conditions: str, variables: Sequence[str] = IDENTITY) -> str:
    """`"tag" =~ /^$tag$/ AND … AND <conditions> AND $timeFilter`."""
    parts = [f'"{name}" =~ /^${name}$/' for name in variables]
    return " AND ".join([*parts, *conditions, "$timeFilter"])


def by(*tags: str, fill: str = "none") -> str:
    """`GROUP BY time($__interval), "tag", … fill(none)`."""
    return "GROUP BY " + ", ".join(["time($__interval)", *(f'"{t}"' for t in tags)]) + \
        f" fill({fill})"


def template(name: str, measurement: str, label: str | None = None,
             depends: Sequence[str] = (), job: str | None = None) -> core.Template:
    """A multi-value query variable over the tag's values (`SHOW TAG VALUES`), "All" = `.*`."""
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{name}"'
    conditions = [f'"{d}" =~ /^${d}$/' for d in depends]
    if job is not None:
        conditions.append(f'"job" = \'{job}\'')
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    variable = core.Template(name=name, label=label or name.capitalize(), query=query,
                             dataSource=DATASOURCE, multi=True, includeAll=True, allValue=".*",
                             refresh=core.REFRESH_ON_TIME_RANGE_CHANGE)
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def templating(measurement: str, job: str | None = None) -> core.Templating:
    """deployment, job and index; `job` restricts the choices to one component type."""
    return core.Templating(list=[
        template("deployment", measurement, job=job),
        template("job", measurement, depends=("deployment",), job=job),
        template("index", measurement, depends=("deployment", "job"), job=job),
    ])


def targets(*queries: str | tuple[str, str]) -> list[InfluxQLTarget]:
    """InfluxQL targets with refIds A, B, …; a query may come with an alias: (query, alias)."""
    out = []
    for ref, item in zip(REF_IDS, queries, strict=False):
        query, alias = (item, "") if isinstance(item, str) else item
        out.append(InfluxQLTarget(refId=ref, query=query,  # type: ignore[call-arg]
                                  alias=alias, datasource=DATASOURCE))
    return out


def timeseries(title: str, *queries: str | tuple[str, str], unit: str = "short",
               description: str = "", stack: bool = False, **kw: Any) -> core.TimeSeries:
    return core.TimeSeries(
        title=title, description=description or None, dataSource=DATASOURCE,
        targets=targets(*queries), unit=unit, legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"], tooltipMode="multi",
        stacking={"mode": "normal", "group": "A"} if stack else {},
        fillOpacity=30 if stack else 10, **kw)


def stat(title: str, *queries: str | tuple[str, str], unit: str = "short",
         description: str = "", reduce: str = "lastNotNull", alarm: float | None = None,
         **kw: Any) -> core.Stat:
    """A single number; with `alarm`, it turns red at that value."""
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if alarm is not None:
        steps.append({"color": "red", "value": alarm})
    return core.Stat(title=title, description=description or None, dataSource=DATASOURCE,
                     targets=targets(*queries), format=unit, reduceCalc=reduce,
                     graphMode="area", thresholds=steps, **kw)


def table(title: str, query: str, description: str = "") -> core.Table:
    target = InfluxQLTarget(refId="A", query=query,  # type: ignore[call-arg]
                            datasource=DATASOURCE, resultFormat="table")
    return core.Table(title=title, description=description or None, dataSource=DATASOURCE,
                      targets=[target])


class Grid:
    """Places panels in 24-column rows: `grid.add(panel, w, h)`; `grid.row(title)` starts one."""

    def __init__(self) -> None:
        self.panels: list[Any] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def add(self, panel: Any, w: int = 12, h: int = 8) -> Grid:
        if self.x + w > WIDTH:
            self._newline()
        panel.gridPos = core.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)
        return self

    def row(self, title: str) -> Grid:
        self._newline()
        self.panels.append(core.RowPanel(title=title, gridPos=core.GridPos(h=1, w=WIDTH, x=0,
                                                                           y=self.y)))
        self.y += 1
        return self

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0


def dashboard(title: str, uid: str, measurement: str, grid: Grid, description: str = "",
              tags: Sequence[str] = (), job: str | None = None) -> core.Dashboard:
    return core.Dashboard(
        title=title, uid=uid, description=description, tags=["fobs", *tags],
        panels=grid.panels, templating=templating(measurement, job),
        time=core.Time("now-1h", "now"), refresh="30s", timezone="browser",
        graphTooltip=core.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    ).auto_panel_ids()
