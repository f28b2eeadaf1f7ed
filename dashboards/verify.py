"""`fobs dashboards verify`: run every panel's query against a real InfluxDB, as Grafana would.

For each dashboard the template variables are resolved first, in order, by running their own
`SHOW TAG VALUES` queries (earlier variables substituted), and every value is selected — a
multi-value variable becomes `(a|b|…)`, as Grafana renders it. Then every panel query is run
with `$timeFilter` = `time >= now() - <last> and time <= now()` and `$__interval` = `interval`.
A query that fails, or whose series hold no value at all, is a problem: a panel without data;
so is a series without a tag its alias names (`$tag_job`): a legend entry without a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fobs.dashboards.checks import alias_tags, queries
from fobs.dashboards.errors import QueryError, QueryFailed
from fobs.dashboards.influx import InfluxQuery
from fobs.dashboards.influxql import TimeRange, Variable, interpolate


@dataclass
class Report:
    queries: int = 0
    with_data: int = 0
    problems: list[str] = field(default_factory=list)
    variables: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


def has_values(result: Mapping[str, Any]) -> bool:
    """True when some series has a non-null value in a value column (not just time)."""
    for series in result.get("series") or []:
        columns = series.get("columns") or []
        for row in series.get("values") or []:
            if any(v is not None for c, v in zip(columns, row, strict=False) if c != "time"):
                return True
    return False


async def resolve_variables(dashboard: Mapping[str, Any], query: InfluxQuery, last: str,
                            interval: float) -> dict[str, Variable]:
    """Every template variable with all its values selected (QueryFailed/QueryError raise)."""
    resolved: dict[str, Variable] = {}
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        text = interpolate(variable["query"], TimeRange(last=last), interval, resolved)
        result = await query.raw(text)
        values = sorted({str(row[-1]) for s in result.get("series") or []
                         for row in s.get("values") or []})
        resolved[variable["name"]] = Variable(tuple(values), multi=bool(
            variable.get("multi") or variable.get("includeAll")))
    return resolved


async def verify(dashboards: Mapping[str, Mapping[str, Any]], url: str, database: str,
                 last: str = "15m", interval: float = 10.0) -> Report:
    report = Report()
    async with InfluxQuery(url, database) as query:
        for name, dashboard in dashboards.items():
            try:
                variables = await resolve_variables(dashboard, query, last, interval)
            except (QueryFailed, QueryError) as e:
                report.problems.append(f"{name}: template variables: {e}")
                continue
            report.variables[name] = {k: v.values for k, v in variables.items()}
            for k, v in variables.items():
                if not v.values:
                    report.problems.append(f"{name}: variable ${k} has no values")
            for panel, target in queries(dashboard):
                report.queries += 1
                where = f"{name} / {panel.get('title')} [{target.get('refId')}]"
                try:
                    text = interpolate(target["query"], TimeRange(last=last), interval,
                                       variables)
                    result = await query.raw(text)
                except (QueryFailed, QueryError) as e:
                    report.problems.append(f"{where}: {e}")
                    continue
                if not has_values(result):
                    report.problems.append(f"{where}: no data\n    {text}")
                    continue
                report.with_data += 1
                for tag in sorted(alias_tags(target.get("alias", ""))):
                    if any(not (s.get("tags") or {}).get(tag) for s in result["series"]):
                        report.problems.append(f"{where}: alias $tag_{tag}: a series has no "
                                               f"{tag!r} tag\n    {text}")
    return report
