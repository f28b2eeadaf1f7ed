"""The alert state machine with a scripted query function (no database needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

from fobs.dashboards.errors import QueryFailed
from fobs.dashboards.evaluator import (
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    Alert,
    Evaluator,
    Series,
)
from fobs.dashboards.rules import Rule

RULE = Rule(name="Hot", query='SELECT last("t") FROM "m" WHERE $timeFilter GROUP BY "host"',
            condition="> 10", for_="20s", window="1m", labels={"severity": "page"},
            annotations={"summary": "{{ $labels.host }} at {{ $value }}"})


class Script:
    """query(): answers from a dict time → {host: [values]}; raises for times in `fail`."""

    def __init__(self, answers: Mapping[float, Mapping[str, Sequence[object]]],
                 fail: Sequence[float] = ()) -> None:
        self.answers = answers
        self.fail = set(fail)
        self.statements: list[tuple[str, float]] = []

    async def __call__(self, statement: str, t: float) -> list[Series]:
        self.statements.append((statement, t))
        if t in self.fail:
            raise QueryFailed("connection refused")
        return [Series({"host": host}, [(i, v) for i, v in enumerate(values)])
                for host, values in self.answers.get(t, {}).items()]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, list[tuple[str, str, str, bool]]]] = []

    async def __call__(self, alerts: Sequence[Alert], t: float) -> None:
        self.calls.append((t, [(a.labels["host"], a.state, a.annotations["summary"], a.changed)
                               for a in alerts]))


async def test_pending_firing_resolved_with_resends() -> None:
    hot = {"a": [5, 12]}
    script = Script({0: hot, 10: hot, 20: hot, 30: hot, 40: {"a": [3]}, 50: {}})
    notify = Recorder()
    ev = Evaluator([RULE], script, notify, resend_delay=15)
    for t in (0, 10, 20, 30, 40, 50):
        await ev.evaluate(t)
    assert notify.calls == [
        (0, [("a", PENDING, "a at 12", True)]),
        (20, [("a", FIRING, "a at 12", True)]),        # held for 20 s = for
        (40, [("a", RESOLVED, "a at 12", True)]),      # 30 s was < resend_delay after 20 s
    ]
    assert script.statements[0] == (
        'SELECT last("t") FROM "m" WHERE time >= -60000ms and time <= 0ms GROUP BY "host"', 0)
    assert ev.firing() == [] and ev.pending() == []


async def test_firing_alerts_are_resent_after_resend_delay() -> None:
    hot = {"a": [11]}
    notify = Recorder()
    ev = Evaluator([RULE], Script({t: hot for t in range(0, 100, 10)}), notify, resend_delay=30)
    for t in range(0, 100, 10):
        await ev.evaluate(t)
    sent = [(t, state, changed) for t, calls in notify.calls for _, state, _, changed in calls]
    assert sent == [(0, PENDING, True), (20, FIRING, True), (50, FIRING, False),
                    (80, FIRING, False)]


async def test_pending_that_stops_is_inactive_and_never_fires() -> None:
    notify = Recorder()
    ev = Evaluator([RULE], Script({0: {"a": [11]}, 10: {"a": [11]}, 20: {"a": [9]}}), notify)
    for t in (0, 10, 20, 30):
        await ev.evaluate(t)
    assert [c[1][0][1] for c in notify.calls] == [PENDING, INACTIVE]


async def test_each_series_is_its_own_alert_and_nulls_are_ignored() -> None:
    answers: dict[float, dict[str, list[object]]] = {
        0: {"a": [None, 20, None], "b": [None, None], "c": [1, math.nan, 11.5],
            "d": ["text", 30]}}
    ev = Evaluator([RULE], Script(answers), None)
    await ev.evaluate(0)
    assert sorted((a.labels["host"], a.value) for a in ev.pending()) == [
        ("a", 20.0), ("c", 11.5), ("d", 30.0)]


async def test_for_zero_fires_at_once_and_labels_merge_rule_labels_last() -> None:
    rule = Rule(name="Now", query='SELECT last("t") FROM "m" WHERE $timeFilter GROUP BY "x"',
                condition=">= 1", labels={"x": "rule-wins"})

    async def query(statement: str, t: float) -> list[Series]:
        return [Series({"x": "a", "empty": ""}, [(0, 1)])]

    ev = Evaluator([rule], query, None)
    await ev.evaluate(0)
    [alert] = ev.firing()
    assert alert.labels == {"x": "rule-wins"}          # "" tags are absent, rule labels win


async def test_query_failure_keeps_states_and_marks_the_rule() -> None:
    hot = {"a": [11]}
    ev = Evaluator([RULE], Script({0: hot, 10: hot, 20: hot, 30: hot}, fail=[20]), None)
    await ev.evaluate(0)
    await ev.evaluate(10)
    await ev.evaluate(20)
    assert ev.health["Hot"].health == "err" and "refused" in ev.health["Hot"].last_error
    assert [a.state for a in ev.pending()] == [PENDING]
    await ev.evaluate(30)
    assert ev.health["Hot"].health == "ok" and ev.health["Hot"].failures == 1
    assert [a.state for a in ev.firing()] == [FIRING]


@pytest.mark.parametrize("no_data, expected", [("ok", []), ("alerting", [FIRING])])
async def test_no_data(no_data: str, expected: list[str]) -> None:
    rule = Rule(name="Silent", query='SELECT count("up") FROM "scrape" WHERE $timeFilter',
                condition="< 1", no_data=no_data)
    ev = Evaluator([rule], Script({}), None)
    await ev.evaluate(0)
    assert [a.state for a in ev.firing()] == expected
