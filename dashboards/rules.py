"""Alert rules, defined once in Grafana unified-alerting terms and used three ways.

A rule is an InfluxQL query (with `$timeFilter`, optionally `$__interval`), a reduction of each
returned series to one number, a condition on that number, a `for` duration, labels and
templated annotations. The same object is rendered to Grafana alert provisioning
(`grafana.py`), evaluated live by `fobs alerts run` (`evaluator.py`) and unit-tested by
`fobs alerts test` (`ruletest.py`).

Why Python rather than YAML: rules sit beside the dashboards that chart the same series and share
their query fragments; a typo is an exception at import with the rule's name, not a silently
ignored key; and fobs needs no YAML parser at run time. A rules file is any `*.rules.py`
defining `rules` (a list of `Rule`), loaded by path like grafanalib's `*.dashboard.py`.
"""

from __future__ import annotations

import math
import operator
import re
import runpy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fobs.dashboards.errors import RuleError, TemplateError
from fobs.dashboards.influxql import MACROS, parse_duration, variables_in
from fobs.dashboards.templates import Template

REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1],
    "mean": lambda v: math.fsum(v) / len(v),
    "max": max,
    "min": min,
    "sum": math.fsum,
    "count": lambda v: float(len(v)),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
# Reducer → PromQL's *_over_time equivalent (for the promtool cross-check).
PROMQL_OVER_TIME = {"last": "last_over_time", "mean": "avg_over_time", "max": "max_over_time",
                    "min": "min_over_time", "sum": "sum_over_time", "count": "count_over_time"}
_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
SHIPPED = Path(__file__).with_name("fobs.rules.py")


@dataclass(frozen=True)
class Rule:
    """One alert rule. Durations are Prometheus-style strings (`30s`, `5m`, `1h`).

    `window` is how far back `$timeFilter` reaches at each evaluation (Grafana's relative time
    range `from`); `interval` is what `$__interval` becomes (the query's intervalMs).
    """

    name: str
    query: str
    condition: str                      # e.g. "> 0.05", "< 1"
    reduce: str = "last"
    for_: str = "0s"
    window: str = "5m"
    interval: str = "10s"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    group: str = "fobs"
    no_data: str = "ok"                 # Grafana's no_data_state when the query returns nothing
    uid: str = ""

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise RuleError(f"{where}: the name must be an identifier (it is the alertname)")
        if self.reduce not in REDUCERS:
            raise RuleError(f"{where}: reduce must be one of {', '.join(REDUCERS)}")
        if _CONDITION.match(self.condition) is None:
            raise RuleError(f"{where}: condition must be '<op> <number>' with op one of "
                            f"{' '.join(OPERATORS)}, got {self.condition!r}")
        for key in ("for_", "window", "interval"):
            try:
                seconds = parse_duration(getattr(self, key))
            except ValueError as e:
                raise RuleError(f"{where}: {key.rstrip('_')}: {e}") from None
            if key != "for_" and seconds <= 0:
                raise RuleError(f"{where}: {key} must be longer than 0s")
        if "$timeFilter" not in self.query:
            raise RuleError(f"{where}: the query must be filtered by $timeFilter")
        if re.search(r"\bnow\(\)", self.query, re.I):
            raise RuleError(f"{where}: use $timeFilter, not now(): the evaluation time "
                            f"replaces now() so that tests can run on their own clock")
        unknown = variables_in(self.query) - MACROS
        if unknown:
            raise RuleError(f"{where}: a rule query can use only Grafana's macros "
                            f"({', '.join(sorted(MACROS))}), not "
                            f"{', '.join('$' + u for u in sorted(unknown))}")
        for name, value in self.labels.items():
            if not _NAME.match(name) or not isinstance(value, str) or "{{" in value:
                raise RuleError(f"{where}: label {name!r} must be a plain string")
        for name, text in self.annotations.items():
            try:
                Template(text)
            except TemplateError as e:
                raise RuleError(f"{where}: annotation {name!r}: {e}") from None
        if self.no_data not in ("ok", "alerting", "nodata"):
            raise RuleError(f"{where}: no_data must be ok, alerting or nodata")

    @property
    def operator(self) -> str:
        m = _CONDITION.match(self.condition)
        assert m is not None
        return m.group(1)

    @property
    def threshold(self) -> float:
        m = _CONDITION.match(self.condition)
        assert m is not None
        return float(m.group(2))

    @property
    def for_seconds(self) -> float:
        return parse_duration(self.for_)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def rule_uid(self) -> str:
        """A stable Grafana uid (≤ 40 characters)."""
        return self.uid or ("fobs-" + re.sub(r"(?<!^)(?=[A-Z])", "-", self.name).lower())[:40]

    def fires(self, value: float) -> bool:
        return OPERATORS[self.operator](value, self.threshold)

    def reduced(self, values: Sequence[float]) -> float:
        return REDUCERS[self.reduce](list(values))

    def render_annotations(self, labels: Mapping[str, str], value: float) -> dict[str, str]:
        return {k: Template(v).render(labels, value) for k, v in self.annotations.items()}


def check_unique(rules: Iterable[Rule]) -> list[Rule]:
    out, seen = [], set()
    for rule in rules:
        if not isinstance(rule, Rule):
            raise RuleError(f"expected Rule objects, got {type(rule).__name__}")
        if rule.name in seen:
            raise RuleError(f"rule {rule.name!r} is defined twice")
        seen.add(rule.name)
        out.append(rule)
    return out


def load_rules(paths: Sequence[str | Path] = ()) -> list[Rule]:
    """Rules from `*.rules.py` files (each defines `rules`); no paths means fobs' own rules."""
    rules: list[Rule] = []
    for path in paths or (SHIPPED,):
        path = Path(path)
        if not path.is_file():
            raise RuleError(f"rules file not found: {path}")
        try:
            namespace = runpy.run_path(str(path))
        except RuleError as e:
            raise RuleError(f"{path}: {e}") from None
        if "rules" not in namespace:
            raise RuleError(f"{path}: defines no `rules` list")
        rules.extend(namespace["rules"])
    return check_unique(rules)
