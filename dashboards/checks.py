"""Offline checks of dashboard JSON, since no Grafana validator can run here.

Each check returns a list of human-readable problems (empty = fine):

- panel ids unique within a dashboard, dashboard uids unique across dashboards;
- grid positions inside 24 columns (0 < w ≤ 24, x + w ≤ 24, h > 0) and no two panels overlap;
- refIds present and unique within each panel;
- every `$variable` in a query is a template variable or one of Grafana's macros;
- every datasource a panel, target or variable names is provisioned;
- every InfluxQL SELECT is filtered by `$timeFilter` (else a panel reads the whole history);
- every `$tag_x` in an alias is a tag the query groups by.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from fobs.dashboards.influxql import GRAFANA_MACROS, variables_in

WIDTH = 24


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows and legacy rows."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []
    for row in dashboard.get("rows") or []:
        yield from row.get("panels") or []


def queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every target that has an InfluxQL query."""
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            if target.get("query"):
                yield panel, target


def _where(dashboard: Mapping[str, Any], panel: Mapping[str, Any] | None = None) -> str:
    where = f"dashboard {dashboard.get('uid') or dashboard.get('title')!r}"
    if panel is not None:
        where += f" panel {panel.get('id')} ({panel.get('title')!r})"
    return where


def check_ids(dashboard: Mapping[str, Any]) -> list[str]:
    seen: dict[Any, str] = {}
    problems = []
    for panel in panels(dashboard):
        pid = panel.get("id")
        if not isinstance(pid, int):
            problems.append(f"{_where(dashboard, panel)}: no numeric id")
        elif pid in seen:
            problems.append(f"{_where(dashboard, panel)}: id {pid} already used by "
                            f"{seen[pid]!r}")
        else:
            seen[pid] = str(panel.get("title"))
    return problems


def check_grid(dashboard: Mapping[str, Any]) -> list[str]:
    problems = []
    placed: list[tuple[dict[str, Any], tuple[int, int, int, int]]] = []
    for panel in dashboard.get("panels") or []:   # grid positions are top-level
        pos = panel.get("gridPos") or {}
        try:
            x, y, w, h = (int(pos[k]) for k in ("x", "y", "w", "h"))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{_where(dashboard, panel)}: no complete gridPos")
            continue
        if not (0 < w <= WIDTH and 0 <= x and x + w <= WIDTH and h > 0 and y >= 0):
            problems.append(f"{_where(dashboard, panel)}: gridPos x={x} w={w} y={y} h={h} "
                            f"is outside the {WIDTH}-column grid")
            continue
        for other, (ox, oy, ow, oh) in placed:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"{_where(dashboard, panel)}: overlaps panel {other.get('id')} "
                                f"({other.get('title')!r})")
        placed.append((panel, (x, y, w, h)))
    return problems


def check_ref_ids(dashboard: Mapping[str, Any]) -> list[str]:
    problems = []
    for panel in panels(dashboard):
        refs = [t.get("refId") for t in panel.get("targets") or []]
        if any(not r for r in refs):
            problems.append(f"{_where(dashboard, panel)}: a target has no refId")
        duplicates = sorted({r for r in refs if r and refs.count(r) > 1})
        if duplicates:
            problems.append(f"{_where(dashboard, panel)}: refId {duplicates[0]} used twice")
    return problems


def check_variables(dashboard: Mapping[str, Any]) -> list[str]:
    defined = {v.get("name") for v in (dashboard.get("templating") or {}).get("list") or []}
    known = defined | GRAFANA_MACROS
    problems = []
    for panel, target in queries(dashboard):
        for name in sorted(variables_in(target["query"]) - known):
            problems.append(f"{_where(dashboard, panel)} refId {target.get('refId')}: "
                            f"${name} is not defined")
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        if isinstance(query, str):
            for name in sorted(variables_in(query) - known):
                problems.append(f"{_where(dashboard)} variable {variable.get('name')!r}: "
                                f"${name} is not defined")
    return problems


def _uid(datasource: Any) -> str | None:
    if isinstance(datasource, Mapping):
        return datasource.get("uid")
    return datasource if isinstance(datasource, str) else None


def check_datasources(dashboard: Mapping[str, Any], provisioned: set[str]) -> list[str]:
    """`provisioned`: the uids (and names) of the provisioned datasources."""
    problems = []
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        for owner, source in [(f"panel {panel.get('id')}", panel.get("datasource")),
                              *((f"panel {panel.get('id')} refId {t.get('refId')}",
                                 t.get("datasource")) for t in panel.get("targets") or [])]:
            uid = _uid(source)
            if uid not in provisioned:
                problems.append(f"{_where(dashboard)} {owner}: datasource {uid!r} is not "
                                f"provisioned")
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") == "query" and _uid(variable.get("datasource")) not in provisioned:
            problems.append(f"{_where(dashboard)} variable {variable.get('name')!r}: datasource "
                            f"{_uid(variable.get('datasource'))!r} is not provisioned")
    return problems


def check_time_filter(dashboard: Mapping[str, Any]) -> list[str]:
    problems = []
    for panel, target in queries(dashboard):
        query = target["query"]
        if query.lstrip().upper().startswith("SELECT") and "$timeFilter" not in query:
            problems.append(f"{_where(dashboard, panel)} refId {target.get('refId')}: query "
                            f"is not filtered by $timeFilter")
        if not target.get("rawQuery"):
            problems.append(f"{_where(dashboard, panel)} refId {target.get('refId')}: "
                            f"rawQuery is not true, Grafana would ignore the query text")
    return problems


_GROUP_BY = re.compile(r"GROUP BY (.*?)(?:fill\(|ORDER|LIMIT|\)|$)")
_ALIAS_TAG = re.compile(r"\$tag_(\w+)|\[\[tag_(\w+)\]\]")


def alias_tags(alias: str) -> set[str]:
    """Tag keys an alias names (`$tag_job`, `[[tag_job]]`): Grafana fills them per series."""
    return {m.group(1) or m.group(2) for m in _ALIAS_TAG.finditer(alias or "")}


def check_aliases(dashboard: Mapping[str, Any]) -> list[str]:
    """An alias's `$tag_x` needs `x` in a GROUP BY, else the legend shows an empty name."""
    problems = []
    for panel, target in queries(dashboard):
        query = re.sub(r"time\([^)]*\)", "", target["query"])
        grouped = {m.group(1) for clause in _GROUP_BY.findall(query)
                   for m in re.finditer(r'"(\w+)"', clause)}
        for tag in sorted(alias_tags(target.get("alias", "")) - grouped):
            problems.append(f"{_where(dashboard, panel)} refId {target.get('refId')}: alias "
                            f"uses $tag_{tag} but the query does not GROUP BY \"{tag}\"")
    return problems


def check_all(dashboards: Mapping[str, Mapping[str, Any]], provisioned: set[str]) -> list[str]:
    problems = []
    uids: dict[str, str] = {}
    for name, dashboard in dashboards.items():
        uid = dashboard.get("uid")
        if not uid:
            problems.append(f"{name}: no uid")
        elif uid in uids:
            problems.append(f"{name}: uid {uid!r} already used by {uids[uid]}")
        else:
            uids[uid] = name
        problems += check_ids(dashboard) + check_grid(dashboard) + check_ref_ids(dashboard)
        problems += check_variables(dashboard) + check_datasources(dashboard, provisioned)
        problems += check_time_filter(dashboard) + check_aliases(dashboard)
    return problems
