"""The alert state machine, independent of storage and notification (Prometheus' rules seam).

The evaluator gets two callables: `query(influxql, t)` runs a fully substituted query and returns
series, and `notify(alerts, t)` delivers alerts. It never imports a client, so the live daemon,
the rule test runner and the unit tests drive the very same code.

At each evaluation time `t`, a rule's query runs over `[t - window, t]` (`$timeFilter` with
absolute times: `t` replaces `now()`). Each returned series (one per tag set of its GROUP BY)
is reduced to one number, ignoring nulls; the series whose number meets the condition are
active. States follow Prometheus: a new active series is *pending*; once it has been active for
the rule's `for` it is *firing*; a firing alert that stops being active is *resolved* (sent
once, then forgotten); a pending one that stops is *inactive*. Every change is handed to
`notify`, and so is every firing alert whose last delivery is older than `resend_delay`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from loguru import logger

from fobs.dashboards.errors import QueryFailed
from fobs.dashboards.influxql import TimeRange, interpolate
from fobs.dashboards.rules import Rule

PENDING, FIRING, RESOLVED, INACTIVE = "pending", "firing", "resolved", "inactive"


class Series(NamedTuple):
    """One result series: its tags (GROUP BY) and (epoch ns, value or None) rows."""

    tags: dict[str, str]
    values: list[tuple[int, object]]


QueryFunc = Callable[[str, float], Awaitable[list[Series]]]


@dataclass
class Alert:
    """One alert instance: a rule and the labels of one series."""

    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    state: str
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    changed: bool = True            # its state changed at the latest evaluation
    last_sent: float | None = None  # last delivery of this state to notify (resends)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))

    def to_json(self) -> dict[str, object]:
        return {"alertname": self.rule, "state": self.state, "labels": self.labels,
                "annotations": self.annotations,
                "value": self.value if math.isfinite(self.value) else str(self.value),
                "active_at": self.active_at, "fired_at": self.fired_at,
                "resolved_at": self.resolved_at}


NotifyFunc = Callable[[Sequence[Alert], float], Awaitable[None]]   # (alerts, evaluation time)


@dataclass
class RuleHealth:
    """Prometheus' RuleHealth: "unknown" before the first evaluation, then "ok" or "err"."""

    health: str = "unknown"
    last_error: str = ""
    last_evaluation: float | None = None
    last_duration: float = 0.0
    evaluations: int = 0
    failures: int = 0


def reduce_series(rule: Rule, series: Series) -> float | None:
    """The series' number by the rule's reducer, ignoring nulls; None when all are null."""
    values: list[float] = []
    for _, raw in series.values:
        if not isinstance(raw, (int, float)):  # None (null) or a string
            continue
        number = float(raw)  # bools are 0/1
        if not math.isnan(number):
            values.append(number)
    return rule.reduced(values) if values else None


@dataclass
class Evaluator:
    """Evaluates rules against `query`, keeps alert states, hands changes to `notify`."""

    rules: Sequence[Rule]
    query: QueryFunc
    notify: NotifyFunc | None = None
    resend_delay: float = 60.0
    active: dict[str, dict[tuple[tuple[str, str], ...], Alert]] = field(default_factory=dict)
    health: dict[str, RuleHealth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.rules:
            self.active.setdefault(rule.name, {})
            self.health.setdefault(rule.name, RuleHealth())

    def query_for(self, rule: Rule, t: float) -> str:
        """The rule's query with its macros substituted for an evaluation at `t`."""
        window = TimeRange(start=t - rule.window_seconds, end=t)
        return interpolate(rule.query, window, rule.interval_seconds)

    async def evaluate(self, t: float, rules: Sequence[Rule] | None = None) -> list[Alert]:
        """Evaluate `rules` (default all) at `t`; returns what was handed to notify."""
        out: list[Alert] = []
        for rule in rules if rules is not None else self.rules:
            out.extend(await self._evaluate_rule(rule, t))
        if out and self.notify is not None:
            await self.notify(out, t)
            for alert in out:
                alert.last_sent = t
        return out

    async def _evaluate_rule(self, rule: Rule, t: float) -> list[Alert]:
        health = self.health[rule.name]
        began = time.monotonic()
        try:
            result = await self.query(self.query_for(rule, t), t)
        except QueryFailed as e:
            health.health, health.last_error = "err", str(e)
            health.failures += 1
            logger.warning("Rule {} failed: {}", rule.name, e)
            return []      # states stay as they were until a query answers again
        finally:
            health.evaluations += 1
            health.last_evaluation = t
            health.last_duration = time.monotonic() - began
        health.health, health.last_error = "ok", ""
        return self._transition(rule, t, result)

    def _transition(self, rule: Rule, t: float, result: list[Series]) -> list[Alert]:
        alerts = self.active[rule.name]
        seen: set[tuple[tuple[str, str], ...]] = set()
        out: list[Alert] = []
        series_list = result
        if not result and rule.no_data == "alerting":
            series_list = [Series({}, [(0, math.nan)])]
        for series in series_list:
            value = reduce_series(rule, series)
            if value is None:
                if rule.no_data != "alerting":
                    continue
                value = math.nan
            elif not rule.fires(value):
                continue
            tags = {k: v for k, v in series.tags.items() if v}  # "" = absent, as in Prometheus
            labels = {**tags, **rule.labels}
            key = tuple(sorted(labels.items()))
            seen.add(key)
            annotations = rule.render_annotations(tags, value)
            alert = alerts.get(key)
            if alert is None:
                alert = Alert(rule.name, labels, annotations, value, PENDING, active_at=t)
                alerts[key] = alert
            else:
                alert.changed = False
                alert.value, alert.annotations = value, annotations
            if alert.state == PENDING and t - alert.active_at >= rule.for_seconds:
                alert.state, alert.fired_at, alert.changed = FIRING, t, True
            if alert.changed or (alert.state == FIRING and (
                    alert.last_sent is None or t - alert.last_sent >= self.resend_delay)):
                out.append(alert)
        for key in [k for k in alerts if k not in seen]:
            alert = alerts.pop(key)
            alert.changed = True
            if alert.state == FIRING:
                alert.state, alert.resolved_at = RESOLVED, t
            else:
                alert.state = INACTIVE
            out.append(alert)
        return out

    def firing(self, rule: str | None = None) -> list[Alert]:
        return [a for name, alerts in self.active.items() if rule in (None, name)
                for a in alerts.values() if a.state == FIRING]

    def pending(self) -> list[Alert]:
        return [a for alerts in self.active.values() for a in alerts.values()
                if a.state == PENDING]
