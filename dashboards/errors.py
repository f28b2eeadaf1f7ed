"""What the dashboards and alerting code raises, in one tree so callers catch by category.

    DashboardsError
    ├── QueryError      a query names an undefined `$variable` or a macro fobs cannot substitute
    │                   (also a ValueError)
    ├── RuleError       an alert rule that cannot work; the message names the rule (ValueError)
    ├── TemplateError   an annotation template fobs cannot render as Grafana and Prometheus
    │                   would (ValueError)
    ├── SeriesError     a malformed rule-test series key or values string (ValueError)
    └── QueryFailed     InfluxDB could not answer: unreachable, HTTP error, bad statement, or a
                        rule test's input write refused (also a RuntimeError)

The first four are mistakes in what was written (a rules file, a dashboard, a test file) and are
reported with the name of the thing; QueryFailed is the database's, and the evaluator keeps going
(the rule's health becomes "err") while the test runner reports the group as an error. A config
mistake is `fobs.components.config.ConfigError`, as for every fobs daemon.
"""

from __future__ import annotations


class DashboardsError(Exception):
    """Base of the errors of fobs.dashboards."""


class QueryError(DashboardsError, ValueError):
    """A query refers to an undefined variable or has a malformed macro."""


class RuleError(DashboardsError, ValueError):
    """A rule definition that cannot work; the message names the rule."""


class TemplateError(DashboardsError, ValueError):
    """A template uses something fobs cannot render identically to Grafana and Prometheus."""


class SeriesError(DashboardsError, ValueError):
    """A malformed series key or values string; the message says which and why."""


class QueryFailed(DashboardsError, RuntimeError):
    """The query function could not get an answer (unreachable, HTTP error, bad statement)."""
