"""The shipped rule tests (tests/alerts/*.toml) pass, and the runner reports failures well."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from fobs.dashboards.errors import QueryFailed
from fobs.dashboards.influx import InfluxQuery, write_lines
from fobs.dashboards.rules import load_rules
from fobs.dashboards.ruletest import read_test_file, run_files, run_tests
from tests.services import Influxd

HERE = Path(__file__).parent
TEST_FILES = sorted(HERE.glob("*.toml"))


def test_every_shipped_rule_has_a_test_file_with_a_firing_and_a_quiet_case() -> None:
    tested: dict[str, tuple[int, int]] = {}
    for path in TEST_FILES:
        for group in read_test_file(path).tests:
            for case in group.alert_rule_test:
                fired, quiet = tested.get(case.alertname, (0, 0))
                tested[case.alertname] = (fired + bool(case.exp_alerts),
                                          quiet + (not case.exp_alerts))
    for rule in load_rules():
        fired, quiet = tested.get(rule.name, (0, 0))
        assert fired and quiet, f"{rule.name}: needs cases where it fires and where it must not"


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.stem)
async def test_rule_file_passes(path: Path, influxd_shared: Influxd) -> None:
    [result] = await run_files([path], influxd_shared.url)
    assert result.groups_run > 0
    assert result.ok, result.render()


def failing_file(tmp_path: Path) -> Path:
    """router_high_latency.toml with a wrong annotation and an alert expected too early."""
    text = (HERE / "router_high_latency.toml").read_text()
    text = text.replace("p99 latency is 1.5s", "p99 latency is 1.4s")
    early = ('eval_time = "12m"    # pending since 8m (mean 1.067 s)\n'
             'alertname = "RouterHighLatency"')
    assert early in text
    text = text.replace(early, early + '\n[[tests.alert_rule_test.exp_alerts]]\n'
                        'exp_labels = { deployment = "prod", job = "Router", index = "0", '
                        'severity = "warning" }')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def test_failures_print_exp_got_and_a_diff_and_exit_1(tmp_path: Path,
                                                      influxd_shared: Influxd) -> None:
    out = io.StringIO()
    code = run_tests([failing_file(tmp_path), HERE / "component_down.toml"],
                     influxd_shared.url, out=out)
    text = out.getvalue()
    assert code == 1
    assert "  FAILED:\n" in text and "  SUCCESS\n" in text      # one file each
    assert "alertname: RouterHighLatency, time: 12m," in text    # still pending at 12m
    assert "alertname: RouterHighLatency, time: 13m," in text    # wrong annotation
    assert '- Labels:{alertname="RouterHighLatency", deployment="prod", index="0", ' \
           'job="Router", severity="warning"} Annotations:{description=' in text
    assert 'summary="Router 0 p99 latency is 1.4s"' in text
    assert 'summary="Router 0 p99 latency is 1.5s"' in text
    assert text.count("        got:[]") == 1                   # the early case got nothing


def test_run_selects_groups_by_regex(influxd_shared: Influxd) -> None:
    out = io.StringIO()
    path = HERE / "component_down.toml"
    assert run_tests([path], influxd_shared.url, run="restarted", out=out) == 0
    import asyncio
    [result] = asyncio.run(run_files([path], influxd_shared.url, re.compile("restarted")))
    assert result.groups_run == 1
    [none] = asyncio.run(run_files([path], influxd_shared.url, re.compile("^nothing$")))
    assert none.groups_run == 0 and none.ok


@pytest.mark.parametrize("text, message", [
    ('evaluation_interval = "1m"\n[[tests]]\npromql_expr_test = []\n',
     "unknown key 'tests[0].promql_expr_test'"),
    ('[[tests]]\n[[tests.input_series]]\nseries = "up"\nvalues = "1"\n',
     "series: expected 'measurement,tag=value,... field'"),
    ('[[tests]]\n[[tests.input_series]]\nseries = "scrape up"\nvalues = "1 stale"\n',
     "'stale' has no InfluxDB equivalent"),
    ('[[tests]]\n[[tests.input_series]]\nseries = "scrape up"\nvalues = "1 x"\n',
     "cannot read 'x'"),
    ('[[tests]]\n[[tests.input_series]]\nseries = "scrape up"\nvalues = "1"\ntype = "str"\n',
     "type: must be one of float, int, bool"),
    ('[[tests]]\n[[tests.alert_rule_test]]\neval_time = "soon"\nalertname = "X"\n',
     "eval_time: expected a duration"),
    ('[[tests]]\n[[tests.alert_rule_test]]\neval_time = "1m"\nalertname = "NoSuchRule"\n',
     "alertname 'NoSuchRule': no such rule"),
    ('evaluation_interval = 60\n', "evaluation_interval: expected a string"),
    ('rule_files = ["missing.rules.py"]\n', "rules file not found"),
])
def test_bad_test_files_are_refused_with_the_key(tmp_path: Path, influxd_shared: Influxd,
                                                 text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    out = io.StringIO()
    assert run_tests([path], influxd_shared.url, out=out) == 1
    assert "FAILED" in out.getvalue()
    assert message in out.getvalue()


def test_yaml_test_files_read_like_promtool_ones(tmp_path: Path,
                                                 influxd_shared: Influxd) -> None:
    pytest.importorskip("yaml", reason="YAML test files need PyYAML")
    path = tmp_path / "t.yml"
    path.write_text(
        "evaluation_interval: 10s\n"
        "tests:\n"
        "  - interval: 10s\n"
        "    input_series:\n"
        "      - series: scrape,deployment=d,endpoint=varz,index=0,job=DEA up\n"
        "        values: '0x20'\n"      # unquoted, YAML reads 0x20 as hex 32
        "        type: int\n"
        "    alert_rule_test:\n"
        "      - eval_time: 1m\n"
        "        alertname: ComponentDown\n"
        "        exp_alerts:\n"
        "          - exp_labels: {deployment: d, job: DEA, index: '0', severity: page}\n"
        "            exp_annotations:\n"
        "              summary: DEA/0 is down\n"
        "              description: No scrape of /varz of DEA/0 (d) has succeeded for over "
        "a minute.\n")
    out = io.StringIO()
    assert run_tests([path], influxd_shared.url, out=out) == 0, out.getvalue()


async def test_input_written_through_the_historian_and_refusals_are_query_failed(
        influxd_shared: Influxd) -> None:
    """The runner writes with the collector's /write client; its errors reach the runner as
    QueryFailed with InfluxDB's reason (no CREATE DATABASE behind the runner's back)."""
    db = "fobs_write_lines_test"
    admin = InfluxQuery(influxd_shared.url, "")
    try:
        await admin.raw(f'CREATE DATABASE "{db}"')
        await write_lines(influxd_shared.url, db, ["m,host=a v=1 1000000000",
                                                   "m,host=a v=2 2000000000"])
        got = await admin.raw('SELECT sum("v") FROM "m"', db)
        assert got["series"][0]["values"][0][1] == 3
        with pytest.raises(QueryFailed, match="unable to parse"):
            await write_lines(influxd_shared.url, db, ["m,host=a v="])
        with pytest.raises(QueryFailed, match="database not found"):
            await write_lines(influxd_shared.url, "fobs_no_such_db", ["m v=1 1000000000"])
        missing = await admin.raw("SHOW DATABASES")
        assert ["fobs_no_such_db"] not in missing["series"][0]["values"]
    finally:
        await admin.raw(f'DROP DATABASE "{db}"')
        await admin.close()
