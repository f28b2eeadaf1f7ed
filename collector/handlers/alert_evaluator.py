"""The alert evaluator's varz (type `AlertEvaluator`, `fobs alerts run`) → `alert_evaluator`,
`alert_rule`.

`alert_evaluator` — no tags:

| field                                  | type  | varz                                     |
|----------------------------------------|-------|------------------------------------------|
| rules                                  | float | `rules`                                  |
| rules_failing                          | float | entries of `rule_health` whose health is `err` |
| rounds, late_rounds                    | int   | same names (counters)                    |
| round_seconds                          | float | `round_seconds` (the last round)         |
| evaluations, evaluation_failures       | int   | same names                               |
| alerts_pending, alerts_firing          | float | `alerts.pending`, `alerts.firing`        |
| nats_published, nats_failed            | int   | `notifications.nats.*`                   |
| alertmanager_sent, alertmanager_failed | int   | `notifications.alertmanager.*`           |

`alert_rule` — tag `rule` (the rule's name, bounded by the rule files): `healthy` (float: 1 when
its last query answered, 0 when it failed; absent before the first evaluation), `evaluations`,
`failures` (int). `last_error` is free text and not collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Recorder, dig
from fobs.collector.handlers.registry import register
from fobs.collector.handlers.tables import code, entries, figures

MAX_RULES = 256
HEALTH = {"ok": 1.0, "err": 0.0}
GAUGES = {"rules": "rules", "round_seconds": "round_seconds"}
COUNTERS = {key: key for key in ("rounds", "late_rounds", "evaluations", "evaluation_failures")}
ALERTS = {"pending": "alerts_pending", "firing": "alerts_firing"}
NATS = {"published": "nats_published", "failed": "nats_failed"}
ALERTMANAGER = {"sent": "alertmanager_sent", "failed": "alertmanager_failed"}
RULE_COUNTERS = {"evaluations": "evaluations", "failures": "failures"}


@register("AlertEvaluator")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields = figures(varz, GAUGES, COUNTERS, rec)
    rec.gauges(fields, varz.get("alerts"), ALERTS)
    notifications = varz.get("notifications")
    rec.counters(fields, dig(notifications, "nats"), NATS)
    rec.counters(fields, dig(notifications, "alertmanager"), ALERTMANAGER)
    rule_health = varz.get("rule_health")
    failing = 0.0
    for name, health in entries(rule_health, rec, MAX_RULES):
        rule = figures(health, {}, RULE_COUNTERS, rec)
        code(rule, "healthy", health.get("health"), HEALTH, rec, ignore=("unknown",))
        rec.add("alert_rule", rule, {"rule": name})
        failing += rule.get("healthy") == 0.0
    if isinstance(rule_health, Mapping):
        fields["rules_failing"] = failing
    rec.add("alert_evaluator", fields)
