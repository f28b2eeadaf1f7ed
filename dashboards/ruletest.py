"""`fobs alerts test`: unit tests for alert rules, the way `promtool test rules` runs them.

A test file (TOML, or YAML when PyYAML is installed) has promtool's layout:

    rule_files = ["my.rules.py"]        # optional; default: fobs' shipped rules
    evaluation_interval = "1m"
    [[tests]]
    name = "router 5xx"
    interval = "1m"                      # optional; default: evaluation_interval
    [[tests.input_series]]
    series = "router,job=Router,index=0 responses_5xx"
    values = "0+10x20"
    type = "int"                         # optional: float (default), int, bool
    [[tests.alert_rule_test]]
    eval_time = "5m"
    alertname = "RouterErrorRatio"
    [[tests.alert_rule_test.exp_alerts]]
    exp_labels = { job = "Router", index = "0", severity = "page" }
    exp_annotations = { summary = "…" }

Each group's series are written into a throw-away database of a real InfluxDB, and the group's
rules are evaluated by the production evaluator with the production queries at 0,
evaluation_interval, 2·evaluation_interval, … up to the last eval_time; a case compares the
*firing* alerts after the last evaluation at or before its eval_time (pending ones are not
listed, as in promtool). Every failure is collected and printed with exp, got and a diff.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fobs.components.config import ConfigError, build
from fobs.dashboards.errors import QueryFailed, RuleError, SeriesError
from fobs.dashboards.evaluator import Evaluator
from fobs.dashboards.influx import InfluxQuery, write_lines
from fobs.dashboards.influxql import format_duration, parse_duration
from fobs.dashboards.rules import Rule, load_rules
from fobs.dashboards.series import FIELD_TYPES, line_protocol, parse_key, parse_values


def _duration(value: str, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


@dataclass(frozen=True)
class ExpAlert:
    exp_labels: dict[str, str] = field(default_factory=dict)
    exp_annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertCase:
    eval_time: str
    alertname: str
    exp_alerts: tuple[ExpAlert, ...] = ()

    def validate(self) -> None:
        _duration(self.eval_time, "eval_time")


@dataclass(frozen=True)
class InputSeries:
    series: str
    values: str
    type: str = "float"

    def validate(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ConfigError(f"type: must be one of {', '.join(FIELD_TYPES)}, got {self.type!r}")
        try:
            parse_key(self.series)
            parse_values(self.values)
        except SeriesError as e:
            raise ConfigError(str(e)) from None


@dataclass(frozen=True)
class TestGroup:
    name: str = ""
    interval: str | None = None
    input_series: tuple[InputSeries, ...] = ()
    alert_rule_test: tuple[AlertCase, ...] = ()

    def validate(self) -> None:
        if self.interval is not None and _duration(self.interval, "interval") <= 0:
            raise ConfigError("interval: must be longer than 0s")


@dataclass(frozen=True)
class TestFile:
    tests: tuple[TestGroup, ...] = ()
    rule_files: tuple[str, ...] = ()
    evaluation_interval: str = "1m"

    def validate(self) -> None:
        if _duration(self.evaluation_interval, "evaluation_interval") <= 0:
            raise ConfigError("evaluation_interval: must be longer than 0s")


def read_test_file(path: Path) -> TestFile:
    """Parse and validate a test file strictly; ConfigError names the file and the bad key."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        if path.suffix in (".yml", ".yaml"):
            data = _yaml(text, path)
        else:
            data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    try:
        return build(TestFile, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: YAML test files need PyYAML (pip install pyyaml); "
                          f"TOML needs nothing") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None


@dataclass
class Failure:
    group: str
    alertname: str
    eval_time: float
    exp: list[tuple[dict[str, str], dict[str, str]]]
    got: list[tuple[dict[str, str], dict[str, str]]]

    def render(self) -> str:
        lines = [f"    name: {self.group},",
                 f"    alertname: {self.alertname}, time: {format_duration(self.eval_time)},",
                 "        exp:" + _alert_list(self.exp) + ",",
                 "        got:" + _alert_list(self.got)]
        exp, got = set(map(_alert_text, self.exp)), set(map(_alert_text, self.got))
        diff = [f"          - {a}" for a in sorted(exp - got)]
        diff += [f"          + {a}" for a in sorted(got - exp)]
        if diff:
            lines += ["        diff (- expected only, + got only):", *diff]
        return "\n".join(lines)


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _alert_text(alert: tuple[dict[str, str], dict[str, str]]) -> str:
    return f"Labels:{_labels_text(alert[0])} Annotations:{_labels_text(alert[1])}"


def _alert_list(alerts: list[tuple[dict[str, str], dict[str, str]]]) -> str:
    if not alerts:
        return "[]"
    body = "".join(f"\n            {i}:\n              Labels:{_labels_text(labels)}"
                   f"\n              Annotations:{_labels_text(annotations)}"
                   for i, (labels, annotations) in enumerate(alerts))
    return "[" + body + "\n            ]"


@dataclass
class FileResult:
    path: Path
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    groups_run: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.errors

    def render(self) -> str:
        head = f"Unit Testing:  {self.path}"
        if self.ok:
            return f"{head}\n  SUCCESS\n"
        body = [f"    {e}" for e in self.errors] + [f.render() for f in self.failures]
        return head + "\n  FAILED:\n" + "\n".join(body) + "\n"


class RuleTester:
    """Runs test files against one InfluxDB (each test group in its own throw-away database)."""

    def __init__(self, influx_url: str) -> None:
        self.influx_url = influx_url

    async def run_file(self, path: Path, run: re.Pattern[str] | None = None) -> FileResult:
        result = FileResult(path)
        try:
            spec = read_test_file(path)
            rules = {r.name: r for r in load_rules(
                [path.parent / f for f in spec.rule_files])}
        except (ConfigError, RuleError) as e:
            result.errors.append(str(e))
            return result
        eval_interval = parse_duration(spec.evaluation_interval)
        for group in spec.tests:
            if run is not None and not run.search(group.name):
                continue
            result.groups_run += 1
            try:
                result.failures.extend(await self.run_group(group, rules, eval_interval))
            except (QueryFailed, ConfigError, SeriesError) as e:
                result.errors.append(f"name: {group.name}: {e}")
        return result

    async def run_group(self, group: TestGroup, rules: Mapping[str, Rule],
                        eval_interval: float) -> list[Failure]:
        unknown = sorted({c.alertname for c in group.alert_rule_test} - set(rules))
        if unknown:
            raise ConfigError(f"alertname {unknown[0]!r}: no such rule (known: "
                              f"{', '.join(sorted(rules))})")
        interval = parse_duration(group.interval) if group.interval else eval_interval
        database = f"fobs_ruletest_{uuid.uuid4().hex[:16]}"
        admin = InfluxQuery(self.influx_url, "")
        query = InfluxQuery(self.influx_url, database)
        try:
            await admin.raw(f'CREATE DATABASE "{database}"')
            lines = [line for s in group.input_series for line in line_protocol(
                parse_key(s.series), parse_values(s.values), int(interval * 1e9), s.type)]
            if lines:
                await write_lines(self.influx_url, database, lines)
            return await self._evaluate(group, [rules[n] for n in sorted(
                {c.alertname for c in group.alert_rule_test})], query, eval_interval)
        finally:
            try:
                await admin.raw(f'DROP DATABASE "{database}"')
            finally:
                await admin.close()
                await query.close()

    async def _evaluate(self, group: TestGroup, rules: Sequence[Rule], query: InfluxQuery,
                        eval_interval: float) -> list[Failure]:
        cases = sorted(group.alert_rule_test, key=lambda c: parse_duration(c.eval_time))
        if not cases:
            return []
        evaluator = Evaluator(rules, query)
        failures: list[Failure] = []
        last = parse_duration(cases[-1].eval_time)
        pending = list(cases)
        step = 0
        while pending:
            t = step * eval_interval
            await evaluator.evaluate(t)
            nxt = t + eval_interval
            while pending and (parse_duration(pending[0].eval_time) < nxt or t >= last):
                case = pending.pop(0)
                failures.extend(self._check(group, case, evaluator))
            step += 1
        return failures

    @staticmethod
    def _check(group: TestGroup, case: AlertCase, evaluator: Evaluator) -> Iterable[Failure]:
        def key(a: tuple[dict[str, str], dict[str, str]]) -> str:
            return _alert_text(a)
        exp = sorted((({"alertname": case.alertname, **e.exp_labels}, dict(e.exp_annotations))
                      for e in case.exp_alerts), key=key)
        got = sorted((({"alertname": a.rule, **a.labels}, dict(a.annotations))
                      for a in evaluator.firing(case.alertname)), key=key)
        if exp != got:
            yield Failure(group.name, case.alertname, parse_duration(case.eval_time), exp, got)


async def run_files(paths: Sequence[Path], influx_url: str,
                    run: re.Pattern[str] | None = None) -> list[FileResult]:
    tester = RuleTester(influx_url)
    return [await tester.run_file(p, run) for p in paths]


def run_tests(paths: Sequence[Path], influx_url: str, run: str | None = None,
              out: Any = None) -> int:
    """Run test files, print promtool-style results; 0 when every test passed, else 1."""
    import sys
    out = out or sys.stdout
    pattern = re.compile(run) if run else None
    results = asyncio.run(run_files(paths, influx_url, pattern))
    for result in results:
        print(result.render(), file=out)
    return 0 if all(r.ok for r in results) else 1
