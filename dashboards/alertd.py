"""`fobs alerts run`: evaluate the alert rules against InfluxDB on a schedule.

The daemon registers as component `AlertEvaluator` (so the collector scrapes its varz and the
fleet dashboard shows it), evaluates every rule each `evaluation.interval` seconds on a grid
aligned to the wall clock, publishes each alert state change on NATS and sends firing and
resolved alerts to the configured Alertmanagers. SIGTERM stops it after the evaluation in
progress; alerts are not resolved on the way out (Alertmanager lets them expire, as with
Prometheus).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from fobs.components.config import ConfigError, nats_subject, positive
from fobs.components.metrics import Counter, Gauge, Number, Registry
from fobs.components.runtime import Component, ComponentConfig
from fobs.dashboards.errors import RuleError
from fobs.dashboards.evaluator import Alert, Evaluator, RuleHealth
from fobs.dashboards.influx import InfluxQuery
from fobs.dashboards.notify import AlertmanagerNotifier, NatsNotifier
from fobs.dashboards.rules import Rule, load_rules

COMPONENT_TYPE = "AlertEvaluator"
MEASUREMENT, RULE = "alert_evaluator", "alert_rule"
HEALTH = {"ok": 1.0, "err": 0.0}  # "unknown" (not evaluated yet): no figure

Read = Callable[[], Number | None]


def _check_url(url: str, key: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key}: expected http://HOST:PORT, got {url!r}")


@dataclass(frozen=True)
class EvaluationConfig:
    """[evaluation] — which rules, how often, where state changes go on NATS."""

    interval: float = 10.0
    rule_files: tuple[str, ...] = ()     # *.rules.py files; empty = fobs' shipped rules
    subject: str = "fobs.alerts"

    def validate(self) -> None:
        positive(self.interval, "interval")
        nats_subject(self.subject, "subject")


@dataclass(frozen=True)
class InfluxConfig:
    """[influxdb] — the InfluxDB 1.x the collector writes to."""

    url: str = "http://127.0.0.1:8086"
    database: str = "fobs"
    username: str = ""
    password: str = ""
    timeout: float = 10.0

    def validate(self) -> None:
        _check_url(self.url, "url")
        if not self.database:
            raise ConfigError("database: must not be empty")
        positive(self.timeout, "timeout")


@dataclass(frozen=True)
class AlertmanagerConfig:
    """[alertmanager] — where firing and resolved alerts are sent (none: only NATS)."""

    urls: tuple[str, ...] = ()
    timeout: float = 5.0
    resend_delay: float = 60.0
    generator_url: str = ""            # link put in each alert, e.g. the Grafana dashboard

    def validate(self) -> None:
        for i, url in enumerate(self.urls):
            _check_url(url, f"urls[{i}]")
        positive(self.timeout, "timeout")
        positive(self.resend_delay, "resend_delay")


@dataclass(frozen=True)
class AlertsConfig:
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    influxdb: InfluxConfig = field(default_factory=InfluxConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    component: ComponentConfig = field(default_factory=ComponentConfig)

    def rules(self, base: Path | None = None) -> list[Rule]:
        """Load and check the rules (before anything connects): RuleError → ConfigError."""
        files = [Path(f) if base is None or Path(f).is_absolute() else base / f
                 for f in self.evaluation.rule_files]
        try:
            return load_rules(files)
        except RuleError as e:
            raise ConfigError(f"evaluation.rule_files: {e}") from None


def _healthy(health: RuleHealth) -> float | None:
    return HEALTH.get(health.health)


def next_tick(now: float, interval: float) -> float:
    """The next multiple of `interval` after `now` (evaluations sit on a wall-clock grid)."""
    return (now // interval + 1) * interval


class AlertDaemon:
    """Evaluator + InfluxDB query + notifiers + component registration, for `run()`."""

    def __init__(self, config: AlertsConfig, rules: Sequence[Rule]) -> None:
        self.config = config
        self.component = Component(COMPONENT_TYPE, config.component)
        db = config.influxdb
        self.query = InfluxQuery(db.url, db.database, username=db.username,
                                 password=db.password, timeout=db.timeout)
        self.nats = NatsNotifier(lambda: self.component.nc, config.evaluation.subject)
        am = config.alertmanager
        self.alertmanager = AlertmanagerNotifier(
            am.urls, timeout=am.timeout, resend_delay=am.resend_delay,
            interval=config.evaluation.interval, generator_url=am.generator_url)
        self.evaluator = Evaluator(rules, self.query, self._notify,
                                   resend_delay=am.resend_delay)
        self.rounds = 0
        self.late = 0
        self.last_round_seconds = 0.0
        declare(self.component.metrics, self)
        self.component.on_refresh(self._refresh_varz)
        self.component.add_health_check("influxdb", self._health)

    async def _notify(self, alerts: Sequence[Alert], now: float) -> None:
        for alert in alerts:
            if alert.changed:
                logger.info("Alert {} {} {}", alert.rule, alert.state,
                            ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
        await asyncio.gather(self.nats(alerts, now), self.alertmanager(alerts, now))

    def _health(self) -> str | None:
        failing = [name for name, h in self.evaluator.health.items() if h.health == "err"]
        if failing and len(failing) == len(self.evaluator.health):
            return f"every rule query fails: {self.evaluator.health[failing[0]].last_error}"
        return None

    def _refresh_varz(self, varz: dict[str, Any]) -> None:
        """The words beside the declared numbers: each rule's health and last error."""
        varz["rule_health"] = {name: {"health": h.health, "last_error": h.last_error}
                               for name, h in self.evaluator.health.items()}

    async def run(self, stop: asyncio.Event) -> int:
        await self.component.start()
        interval = self.config.evaluation.interval
        logger.info("Evaluating {} rules every {}s against {} (database {})",
                    len(self.evaluator.rules), interval, self.config.influxdb.url,
                    self.config.influxdb.database)
        try:
            while not stop.is_set():
                began = time.time()
                await self.evaluator.evaluate(began)
                self.rounds += 1
                self.last_round_seconds = time.time() - began
                due = next_tick(began, interval)
                if time.time() > due:
                    self.late += 1
                    due = next_tick(time.time(), interval)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - time.time()))
                except TimeoutError:
                    pass
        finally:
            await self.query.close()
            await self.alertmanager.close()
            await self.component.stop()
        return 0


def declare(registry: Registry, daemon: AlertDaemon) -> None:
    """The evaluator's own metrics (`alert_evaluator`, `alert_rule`), declared once in
    `registry`, read from `daemon` at render time; the runtime renders them into varz and
    /metrics, the collector stores them as declared."""
    ev = daemon.evaluator
    health = ev.health

    def gauge(field: str, help: str, read: Read, varz: str | None = None) -> None:
        Gauge(MEASUREMENT, field, help, varz=varz, registry=registry).set_function(read)

    def counter(field: str, help: str, read: Read, varz: str | None = None) -> None:
        Counter(MEASUREMENT, field, help, varz=varz, registry=registry).set_function(read)

    gauge("rules", "Rules loaded", lambda: len(ev.rules))
    gauge("rules_failing", "Rules whose last query failed",
          lambda: sum(h.health == "err" for h in health.values()))
    counter("rounds", "Evaluation rounds", lambda: daemon.rounds)
    counter("late_rounds", "Rounds that overran the interval", lambda: daemon.late)
    gauge("round_seconds", "Duration of the last round",
          lambda: round(daemon.last_round_seconds, 6))
    counter("evaluations", "Rule evaluations",
            lambda: sum(h.evaluations for h in health.values()))
    counter("evaluation_failures", "Rule evaluations whose query failed",
            lambda: sum(h.failures for h in health.values()))
    gauge("alerts_pending", "Alerts pending", lambda: len(ev.pending()), "alerts.pending")
    gauge("alerts_firing", "Alerts firing", lambda: len(ev.firing()), "alerts.firing")
    for name, stats, outcomes in (
            ("nats", daemon.nats.stats, {"published": "Alert state changes published on NATS",
                                         "failed": "Alert state changes NATS did not take"}),
            ("alertmanager", daemon.alertmanager.stats,
             {"sent": "Alerts sent to the Alertmanagers",
              "failed": "Alerts an Alertmanager did not take"})):
        for outcome, help in outcomes.items():
            counter(f"{name}_{outcome}", help, partial(stats.__getitem__, outcome),
                    f"notifications.{name}.{outcome}")
    rule_path = "rule_health.{rule}."
    healthy = Gauge(RULE, "healthy", "1 when the rule's last query answered, 0 when it "
                    "failed; absent before its first evaluation", tags=("rule",),
                    varz=rule_path + "healthy", registry=registry)
    evaluations = Counter(RULE, "evaluations", "Evaluations of the rule", tags=("rule",),
                          varz=rule_path + "evaluations", registry=registry)
    failures = Counter(RULE, "failures", "Evaluations of the rule whose query failed",
                       tags=("rule",), varz=rule_path + "failures", registry=registry)
    for name, h in health.items():  # one RuleHealth per rule, for the daemon's life
        healthy.labels(name).set_function(partial(_healthy, h))
        evaluations.labels(name).set_function(partial(getattr, h, "evaluations"))
        failures.labels(name).set_function(partial(getattr, h, "failures"))
