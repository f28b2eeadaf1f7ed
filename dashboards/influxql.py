"""Grafana's InfluxQL macros and template variables, substituted the way Grafana does.

Dashboards and alert rules are written once with Grafana's macros (`$timeFilter`,
`$__interval`, `$__interval_ms`) and `$variables`; fobs substitutes them itself wherever it runs
a query without Grafana: the alert evaluator (absolute times: the evaluation time replaces
`now()`), the rule test runner (times on the test's own clock) and the panel tests (Grafana's
relative range, `time >= now() - 15m`).

Grafana's rules, from its InfluxDB datasource: a relative range gives `time >= now() - 15m and
time <= now()`, an absolute one `time >= <epoch ms>ms and time <= <epoch ms>ms`. A variable that
is multi-value or has "All" is regex-escaped and several values become `(a|b)` (queries write
`"job" =~ /^$job$/`); a single-value variable is substituted with `\\` and `'` escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fobs.dashboards.errors import QueryError

_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+)\]\]|\$\{(\w+)\}")
_REGEX_SPECIAL = re.compile(r"[\\/$^*{}\[\]'+?.()|]")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                 "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration: `90s`, `1m30s`, `1h`, `250ms`."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling: 90 → `1m30s`, 0.25 → `250ms`, 0 → `0s`."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = "-" if ms < 0 else ""
    ms = abs(ms)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


def interval_string(seconds: float) -> str:
    """How Grafana renders `$__interval`: whole units, `10s`, `1m`, `500ms`."""
    return format_duration(seconds)


@dataclass(frozen=True)
class TimeRange:
    """A query's time range: absolute epoch seconds, or relative to now() (Grafana's "last 15m")."""

    start: float | None = None    # epoch seconds; None with `last` set
    end: float | None = None
    last: str | None = None       # e.g. "15m": time >= now() - 15m and time <= now()

    def filter(self) -> str:
        if self.last is not None:
            return f"time >= now() - {self.last} and time <= now()"
        assert self.start is not None and self.end is not None
        return f"time >= {_ms(self.start)}ms and time <= {_ms(self.end)}ms"


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def regex_escape(value: str) -> str:
    """Escape a value for an InfluxQL regex literal (Grafana's influxSpecialRegexEscape)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def literal_escape(value: str) -> str:
    """Escape a value for a single-quoted InfluxQL string (Grafana's influxRegularEscape)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


@dataclass(frozen=True)
class Variable:
    """A template variable's selected values, and whether Grafana regex-formats it."""

    values: tuple[str, ...]
    multi: bool = True            # multi-value or includeAll: values become a regex group
    all_value: str | None = None  # set when "All" is selected and the variable has an allValue

    def render(self) -> str:
        if self.all_value is not None:
            return self.all_value
        if not self.multi:
            return literal_escape(self.values[0]) if self.values else ""
        escaped = [regex_escape(v) for v in self.values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def macros(time_range: TimeRange, interval: float) -> dict[str, str]:
    """Grafana's InfluxQL macros that fobs substitutes, by name, for one query's range.

    `interval` (seconds) is what Grafana computed for `$__interval` (an alert rule's intervalMs,
    or the dashboard range divided by the panel width).
    """
    return {
        "timeFilter": time_range.filter(),
        "__interval": interval_string(interval),
        "interval": interval_string(interval),
        "__interval_ms": str(_ms(interval)),
    }


# The names `macros` fills in: all an alert rule may use, since fobs evaluates rules itself.
MACROS = frozenset(macros(TimeRange(0.0, 0.0), 1.0))
# Every macro Grafana fills in for an InfluxDB panel: a dashboard may use these too.
GRAFANA_MACROS = MACROS | {"__range", "__range_s", "__range_ms", "__rate_interval", "__from",
                           "__to", "__dashboard", "__org", "__user", "__name", "timeFrom",
                           "timeTo"}


def interpolate(query: str, time_range: TimeRange, interval: float,
                variables: Mapping[str, Variable | str | Sequence[str]] | None = None) -> str:
    """Substitute `macros` and `variables` in `query`; unknown `$names` raise QueryError."""
    known = macros(time_range, interval)
    for name, value in (variables or {}).items():
        if isinstance(value, str):
            value = Variable((value,), multi=False)
        elif not isinstance(value, Variable):
            value = Variable(tuple(value))
        known[name] = value.render()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in known:
            raise QueryError(f"undefined variable ${name} in query: {query}")
        return known[name]

    # A regex anchor `$` is never followed by a word character (`/^$job$/`), so it is left alone.
    return _VARIABLE.sub(substitute, query)


def variables_in(query: str) -> set[str]:
    """Names of the `$variables` and macros a query uses."""
    return {m.group(1) or m.group(2) or m.group(3) for m in _VARIABLE.finditer(query)}
