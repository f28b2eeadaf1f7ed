"""fobs' alert rules: one definition, rendered for Grafana, run by `fobs alerts run`, tested by
`fobs alerts test` (tests/alerts/). Measurement and field names are those of docs/schema.md.

Every query groups by the identity tags it wants as alert labels; `$timeFilter` reaches back
`window` from the evaluation time. See docs/alerts.md for the reasoning behind each threshold.
"""

from fobs.dashboards.rules import Rule

IDENTITY = '"deployment", "job", "index"'
# The collector's outputs are points of `collector_output` tagged with the output's name, so
# its rules fire per output, whatever the outputs are called.
PER_OUTPUT = f'{IDENTITY}, "output"'


def _ratio(numerator: str, denominator: str, measurement: str, where: str = "") -> str:
    """Σ increase(numerator) / Σ increase(denominator) per component over the window.

    Differences are taken per series in a subquery, so a counter reset (a restarted
    component) costs one interval instead of a negative spike.
    """
    cond = f"{where} AND " if where else ""
    return (f'SELECT sum("n") / sum("d") FROM (SELECT non_negative_difference("{numerator}") '
            f'AS "n", non_negative_difference("{denominator}") AS "d" FROM "{measurement}" '
            f'WHERE {cond}$timeFilter GROUP BY {IDENTITY}) GROUP BY {IDENTITY}')


rules = [
    Rule(
        name="ComponentDown",
        query=f'SELECT max("up") FROM "scrape" WHERE "endpoint" = \'varz\' AND $timeFilter '
              f'GROUP BY {IDENTITY}',
        reduce="last", condition="< 1", window="30s", for_="1m",
        labels={"severity": "page"},
        annotations={
            "summary": "{{ $labels.job }}/{{ $labels.index }} is down",
            "description": "No scrape of /varz of {{ $labels.job }}/{{ $labels.index }} "
                           "({{ $labels.deployment }}) has succeeded for over a minute.",
        },
    ),
    Rule(
        name="ComponentUnhealthy",
        query=f'SELECT max("healthy") FROM "scrape" WHERE "endpoint" = \'healthz\' AND '
              f'$timeFilter GROUP BY {IDENTITY}',
        reduce="last", condition="< 1", window="30s", for_="2m",
        labels={"severity": "warning"},
        annotations={
            "summary": "{{ $labels.job }}/{{ $labels.index }} is unhealthy",
            "description": "/healthz of {{ $labels.job }}/{{ $labels.index }} "
                           "({{ $labels.deployment }}) has not answered ok for over 2 minutes.",
        },
    ),
    Rule(
        name="DEACannotStage",
        query=f'SELECT max("can_stage") FROM "dea" WHERE $timeFilter GROUP BY {IDENTITY}',
        reduce="last", condition="< 1", window="1m", for_="5m",
        labels={"severity": "warning"},
        annotations={
            "summary": "DEA {{ $labels.index }} cannot stage",
            "description": "DEA {{ $labels.index }} ({{ $labels.deployment }}) has reported "
                           "can_stage = 0 for over 5 minutes: no memory or disk left for a "
                           "staging task.",
        },
    ),
    Rule(
        name="DEAShortOfMemory",
        query=f'SELECT mean("available_memory_ratio") FROM "dea" WHERE $timeFilter '
              f'GROUP BY {IDENTITY}',
        reduce="last", condition="< 0.1", window="5m", for_="5m",
        labels={"severity": "warning"},
        annotations={
            "summary": "DEA {{ $labels.index }} is short of memory",
            "description": "DEA {{ $labels.index }} ({{ $labels.deployment }}) has had only "
                           "{{ humanizePercentage $value }} of its memory available on average "
                           "over 5 minutes.",
        },
    ),
    Rule(
        name="RouterErrorRatio",
        query=_ratio("responses_5xx", "requests", "router"),
        reduce="last", condition="> 0.05", window="1m", for_="1m",
        labels={"severity": "page"},
        annotations={
            "summary": "Router {{ $labels.index }} answers {{ humanizePercentage $value }} "
                       "with 5xx",
            "description": "More than 5 % of the requests through router {{ $labels.index }} "
                           "({{ $labels.deployment }}) got a 5xx response over the last "
                           "minute, for over a minute.",
        },
    ),
    Rule(
        name="RouterHighLatency",
        query=f'SELECT mean("latency_p99_seconds") FROM "router" WHERE $timeFilter '
              f'GROUP BY {IDENTITY}',
        reduce="last", condition="> 1", window="5m", for_="5m",
        labels={"severity": "warning"},
        annotations={
            "summary": "Router {{ $labels.index }} p99 latency is {{ humanizeDuration $value }}",
            "description": "The 99th percentile of request latency through router "
                           "{{ $labels.index }} ({{ $labels.deployment }}) has averaged over "
                           "1 s for 5 minutes.",
        },
    ),
    Rule(
        name="StagerFailureRatio",
        query=('SELECT sum("failed") / (sum("failed") + sum("succeeded")) FROM (SELECT '
               'non_negative_difference("tasks_failed") AS "failed", '
               'non_negative_difference("tasks_succeeded") AS "succeeded" FROM "stager" '
               f'WHERE $timeFilter GROUP BY {IDENTITY}) GROUP BY {IDENTITY}'),
        reduce="last", condition="> 0.25", window="10m", for_="5m",
        labels={"severity": "warning"},
        annotations={
            "summary": "Stager {{ $labels.index }} fails {{ humanizePercentage $value }} "
                       "of stagings",
            "description": "More than a quarter of the staging tasks finished by stager "
                           "{{ $labels.index }} ({{ $labels.deployment }}) in the last 10 "
                           "minutes failed.",
        },
    ),
    Rule(
        name="SyslogParseErrorSpike",
        query=('SELECT non_negative_derivative(last("parse_errors"), 1s) FROM "syslog" '
               f'WHERE $timeFilter GROUP BY time($__interval), {IDENTITY} fill(none)'),
        reduce="mean", condition="> 1", window="5m", interval="1m", for_="5m",
        labels={"severity": "warning"},
        annotations={
            "summary": "Syslog aggregator {{ $labels.index }} cannot parse "
                       "{{ printf \"%.1f\" $value }} messages/s",
            "description": "Syslog aggregator {{ $labels.index }} ({{ $labels.deployment }}) "
                           "has received more than one unparsable message per second on "
                           "average for 5 minutes: a sender with a broken format?",
        },
    ),
    Rule(
        name="CollectorSpoolGrowing",
        query=('SELECT non_negative_derivative(last("points_added"), 1m) - '
               'non_negative_derivative(last("points_written"), 1m) FROM "collector_output" '
               f'WHERE $timeFilter GROUP BY time($__interval), {PER_OUTPUT} fill(none)'),
        reduce="min", condition="> 10", window="5m", interval="1m", for_="2m",
        labels={"severity": "warning"},
        annotations={
            "summary": "Collector {{ $labels.index }} spool of output {{ $labels.output }} "
                       "keeps growing",
            "description": "Collector {{ $labels.index }} ({{ $labels.deployment }}) has "
                           "spooled more points than it wrote to output {{ $labels.output }} "
                           "in each of the last 8 minutes (at least {{ humanize $value }} a "
                           "minute): its database is down or slower than the fleet.",
        },
    ),
    Rule(
        name="CollectorWriteErrors",
        query=('SELECT sum("errors") FROM (SELECT non_negative_difference("write_errors") AS '
               f'"errors" FROM "collector_output" WHERE $timeFilter GROUP BY {PER_OUTPUT}) '
               f'GROUP BY {PER_OUTPUT}'),
        reduce="last", condition="> 0", window="5m", for_="1m",
        labels={"severity": "warning"},
        annotations={
            "summary": "Collector {{ $labels.index }} cannot write to output "
                       "{{ $labels.output }}",
            "description": "Collector {{ $labels.index }} ({{ $labels.deployment }}) has had "
                           "{{ $value }} failed writes to output {{ $labels.output }} in the "
                           "last 5 minutes.",
        },
    ),
]
