"""Cross-check the rule test runner against Debian's `promtool test rules`.

For each shared case a rule is written twice — InfluxQL for fobs, the PromQL equivalent for
Prometheus (`<reducer>_over_time(x[window]) <op> threshold`) — over the same input series in
the same notation. fobs' runner reports which alerts fire at every evaluation step; those become
promtool's `exp_alerts`, and promtool must agree: same alerts, same labels, same `for` timing
(pending vs firing) and the same annotation text from the same templates.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fobs.dashboards.evaluator import Evaluator
from fobs.dashboards.influx import InfluxQuery, write_lines
from fobs.dashboards.influxql import format_duration, parse_duration
from fobs.dashboards.rules import PROMQL_OVER_TIME, Rule
from fobs.dashboards.series import line_protocol, parse_key, parse_values
from tests.services import Influxd

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(),
                                reason="promtool is not installed (Debian package prometheus)")


@dataclass
class Case:
    name: str
    rule: Rule
    series: list[tuple[str, str]]          # (line-protocol key, values); metric = field name
    interval: str = "1m"
    evaluation_interval: str = "1m"
    until: str = "15m"

    @property
    def metric(self) -> str:
        return parse_key(self.series[0][0]).field

    def promql(self) -> str:
        window = self.rule.window
        return (f"{PROMQL_OVER_TIME[self.rule.reduce]}({self.metric}[{window}]) "
                f"{self.rule.operator} {self.rule.threshold:g}")


def rule(name: str, reduce: str, condition: str, window: str, for_: str, summary: str,
         field_name: str) -> Rule:
    """Raw samples in the window, reduced by fobs' reducer (PromQL: `<reduce>_over_time`)."""
    return Rule(name=name, reduce=reduce, condition=condition, window=window, for_=for_,
                query=f'SELECT "{field_name}" FROM "m" WHERE $timeFilter GROUP BY "job", "index"',
                labels={"severity": "page"}, annotations={"summary": summary})


CASES = [
    Case("last value, for 2m, a gap longer than the window",
         rule("Down", "last", "< 1", "5m", "2m",
              "{{ $labels.job }}/{{ $labels.index }} is down ({{ $value }})", "up"),
         [("m,index=0,job=dea up", "1 1 0 0 0 0 _x6 1 1"),
          ("m,index=1,job=dea up", "1 0 1 0 0 0 0 1 1 1 1 1 1 1 1")]),
    Case("max over 3m, for 0, evaluated off the sample grid",
         rule("Slow", "max", "> 2", "3m", "0s",
              "{{ $labels.job }} p99 {{ humanizeDuration $value }} ({{ humanize $value }})",
              "latency"),
         [("m,index=0,job=router latency", "0.5 0.7 2.5 0.4x3 3.25 _ 0.1x4"),
          ("m,index=1,job=router latency", "0.001+0.5x10")],
         evaluation_interval="30s"),
    Case("mean over 5m, for 1m, two series",
         rule("Full", "mean", "< 0.1", "5m", "1m",
              "{{ $labels.index }} has {{ $value | humanizePercentage }} free", "free"),
         [("m,index=0,job=dea free", "0.5x3 0.05x10"),
          ("m,index=1,job=dea free", "0.245-0.02x12")]),
    Case("sum over 2m, for 30s, printf",
         rule("Errors", "sum", ">= 4", "2m", "30s",
              '{{ printf "%.2f" $value }} errors on {{ $labels.job | toUpper }}', "errors"),
         [("m,index=0,job=stager errors", "0 1 0 3 2 0 0 5 _ _ 1")],
         interval="30s", evaluation_interval="30s", until="6m"),
    Case("count over 2m, for 1m, samples appear and vanish",
         rule("Busy", "count", "> 3", "2m", "1m", "{{ $value }} samples", "hits"),
         [("m,index=0,job=dea hits", "_x2 1x6 _ 1 _ 1 1 1 1 1"),
          ("m,index=1,job=dea hits", "1 _ 1 _ 1 _ 1 _ 1")],
         interval="30s", evaluation_interval="30s", until="8m"),
]


async def fobs_firing(case: Case, influx_url: str) -> dict[float, list[dict[str, object]]]:
    """What fobs' evaluator fires after each evaluation step (the runner's own loop)."""
    db = "promtool_" + re.sub(r"\W", "_", case.name)[:40]
    admin = InfluxQuery(influx_url, "")
    query = InfluxQuery(influx_url, db)
    await admin.raw(f'DROP DATABASE "{db}"')
    await admin.raw(f'CREATE DATABASE "{db}"')
    lines = [line for key, values in case.series
             for line in line_protocol(parse_key(key), parse_values(values),
                                       int(parse_duration(case.interval) * 1e9))]
    await write_lines(influx_url, db, lines)
    evaluator = Evaluator([case.rule], query)
    step = parse_duration(case.evaluation_interval)
    out: dict[float, list[dict[str, object]]] = {}
    try:
        t = 0.0
        while t <= parse_duration(case.until):
            await evaluator.evaluate(t)
            out[t] = [{"exp_labels": dict(a.labels), "exp_annotations": dict(a.annotations)}
                      for a in evaluator.firing()]
            t += step
    finally:
        await admin.raw(f'DROP DATABASE "{db}"')
        await admin.close()
        await query.close()
    return out


def promtool(case: Case, expected: dict[float, list[dict[str, object]]], tmp: Path
             ) -> subprocess.CompletedProcess[str]:
    r = case.rule
    rules = {"groups": [{"name": "g", "rules": [{
        "alert": r.name, "expr": case.promql(), "for": r.for_, "labels": dict(r.labels),
        "annotations": dict(r.annotations)}]}]}
    series = []
    for key, values in case.series:
        k = parse_key(key)
        labels = ",".join(f'{name}="{value}"' for name, value in k.tags)
        series.append({"series": f"{k.field}{{{labels}}}", "values": values})
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": case.evaluation_interval,
             "tests": [{"name": case.name, "interval": case.interval, "input_series": series,
                        "alert_rule_test": [{"eval_time": format_duration(t),
                                             "alertname": r.name, "exp_alerts": alerts}
                                            for t, alerts in expected.items()]}]}
    (tmp / "rules.yml").write_text(json.dumps(rules))     # JSON is YAML
    (tmp / "test.yml").write_text(json.dumps(tests))
    return subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_promtool_agrees_with_fobs(case: Case, tmp_path: Path,
                                         influxd_shared: Influxd) -> None:
    expected = await fobs_firing(case, influxd_shared.url)
    firing = [t for t, alerts in expected.items() if alerts]
    quiet = [t for t, alerts in expected.items() if not alerts]
    assert firing and quiet, "a useful case has steps with and without alerts"
    result = promtool(case, expected, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_promtool_disagrees_when_fobs_would_be_wrong(tmp_path: Path,
                                                           influxd_shared: Influxd) -> None:
    """The oracle is not vacuous: shifting fobs' answer by one step makes promtool fail."""
    case = CASES[0]
    expected = await fobs_firing(case, influxd_shared.url)
    times = sorted(expected)
    first = next(i for i, t in enumerate(times) if expected[t])
    expected[times[first - 1]] = expected[times[first]]     # claim it fired one step early
    result = promtool(case, expected, tmp_path)
    assert result.returncode == 1
    assert f"alertname: Down, time: {format_duration(times[first - 1])}" in result.stdout \
        + result.stderr
