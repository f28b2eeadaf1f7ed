"""Macro and variable substitution (Grafana's rules), durations, series notation, templates."""

from __future__ import annotations

import math

import pytest

from fobs.dashboards.errors import QueryError, SeriesError
from fobs.dashboards.influxql import (
    TimeRange,
    Variable,
    format_duration,
    interpolate,
    parse_duration,
    variables_in,
)
from fobs.dashboards.series import line_protocol, parse_key, parse_values
from fobs.dashboards.templates import (
    Template,
    go_float,
    humanize,
    humanize_duration,
    humanize_percentage,
)

Q = 'SELECT mean("x") FROM "m" WHERE "job" =~ /^$job$/ AND $timeFilter GROUP BY time($__interval)'


def test_relative_range_as_grafana_writes_it() -> None:
    out = interpolate(Q, TimeRange(last="15m"), 10, {"job": ["DEA", "Router"]})
    assert out == ('SELECT mean("x") FROM "m" WHERE "job" =~ /^(DEA|Router)$/ AND '
                   'time >= now() - 15m and time <= now() GROUP BY time(10s)')


def test_absolute_range_replaces_now_with_the_evaluation_time() -> None:
    out = interpolate(Q, TimeRange(start=1700000000, end=1700000300.5), 60,
                      {"job": Variable(("DEA",))})
    assert "time >= 1700000000000ms and time <= 1700000300500ms" in out
    assert "GROUP BY time(1m)" in out and '/^DEA$/' in out


def test_values_are_regex_escaped_and_all_uses_all_value() -> None:
    assert Variable(("a.b", "c|d", "x/y")).render() == r"(a\.b|c\|d|x\/y)"
    assert Variable(("DEA", "Router"), all_value=".*").render() == ".*"
    assert Variable(("it's",), multi=False).render() == r"it\'s"
    out = interpolate("SELECT 1 FROM m WHERE $timeFilter AND a = '$one' AND $__interval_ms > 0",
                      TimeRange(last="1h"), 0.5, {"one": "it's"})
    assert r"a = 'it\'s'" in out and "500 > 0" in out


def test_undefined_variables_are_errors_and_regex_anchors_are_not_variables() -> None:
    with pytest.raises(QueryError, match=r"\$index"):
        interpolate('SELECT 1 FROM m WHERE "index" =~ /^$index$/ AND $timeFilter',
                    TimeRange(last="5m"), 10)
    assert variables_in('SELECT 1 FROM m WHERE "i" =~ /^$index$/ AND ${job} AND [[dc]]') == {
        "index", "job", "dc"}


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("1m30s", 90), ("2h", 7200),
                                           ("250ms", 0.25), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", ["", "5", "m5", "1m 30s", "1.5.m", "-1m"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text, values", [
    ("1+1x3", [1, 2, 3, 4]),                     # promtool's own documentation examples
    ("5-2x2", [5, 3, 1]),
    ("7x2", [7, 7, 7]),
    ("1 _ 3", [1, None, 3]),
    ("_x3 2", [None, None, None, 2]),
    ("-1.5e2 0.25+0.25x1", [-150, 0.25, 0.5]),
])
def test_expanding_notation(text: str, values: list[float | None]) -> None:
    assert parse_values(text) == values


def test_series_keys_and_line_protocol() -> None:
    key = parse_key(r"my\ m,z=1,a=b\,c spool.points")
    assert (key.measurement, key.tags, key.field) == ("my m", (("a", "b,c"), ("z", "1")),
                                                      "spool.points")
    assert line_protocol(key, [1, None, 2.5], 10_000_000_000) == [
        r"my\ m,a=b\,c,z=1 spool.points=1.0 0",
        r"my\ m,a=b\,c,z=1 spool.points=2.5 20000000000"]
    assert line_protocol(parse_key("s up"), [1, 0], 1, "int") == ["s up=1i 0", "s up=0i 1"]
    assert line_protocol(parse_key("s up"), [1, 0], 1, "bool") == ["s up=true 0",
                                                                   "s up=false 1"]
    with pytest.raises(SeriesError, match="not an integer"):
        line_protocol(parse_key("s up"), [0.5], 1, "int")


@pytest.mark.parametrize("value, text", [(0.05, "0.05"), (1e6, "1e+06"),
                                         (123456.7, "123456.7"),
                                         (100000.0, "100000"), (1234567.0, "1.234567e+06"),
                                         (1e-5, "1e-05"),
                                         (0.0001, "0.0001"), (2.0, "2"), (-0.5, "-0.5"),
                                         (math.inf, "+Inf"), (math.nan, "NaN"),
                                         (0.1 + 0.2, "0.30000000000000004")])
def test_go_float_formatting(value: float, text: str) -> None:
    assert go_float(value) == text


def test_prometheus_humanize_functions() -> None:
    assert humanize(1234567) == "1.235M"
    assert humanize(0.00123) == "1.23m"
    assert humanize(0) == "0"
    assert humanize_percentage(0.0512) == "5.12%"
    assert humanize_duration(3725) == "1h 2m 5s"
    assert humanize_duration(90061) == "1d 1h 1m 1s"
    assert humanize_duration(1.0666666) == "1.067s"
    assert humanize_duration(0.25) == "250ms"


def test_templates_render_labels_values_and_pipelines() -> None:
    t = Template('{{ $labels.job }}/{{ .Labels.index }} {{ $value }} {{ $value | humanize }} '
                 '{{ printf "%.1f%%" $value }} {{ $labels.none }} {{ toUpper "x" }}')
    assert t.render({"job": "DEA", "index": "2"}, 1500.0) == \
        "DEA/2 1500 1.5k 1500.0% <no value> X"


@pytest.mark.parametrize("text", ["{{ $values.B }}", "{{ range . }}", "{{ index $labels 0 }}"])
def test_templates_refuse_what_fobs_cannot_render_like_grafana(text: str) -> None:
    with pytest.raises(ValueError):
        Template(text)
