"""`fobs dashboards build`: the files a stock Grafana provisions, and the alert rules in them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fobs.cli import main
from fobs.dashboards.checks import check_all
from fobs.dashboards.rules import load_rules


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grafana")
    assert main(["dashboards", "build", "--out", str(out), "--influxdb-url",
                 "http://influx.example:8086", "--database", "metrics",
                 "--influxdb-user", "grafana"]) == 0
    return out


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_layout_and_dashboards(built: Path) -> None:
    assert sorted(p.name for p in (built / "dashboards").iterdir()) == [
        "collector.json", "dea.json", "fleet.json", "router.json", "stager.json", "syslog.json"]
    assert sorted(str(p.relative_to(built)) for p in (built / "provisioning").rglob("*.yaml")) == [
        "provisioning/alerting/fobs.yaml", "provisioning/dashboards/fobs.yaml",
        "provisioning/datasources/fobs.yaml"]
    fleet = read(built / "dashboards" / "fleet.json")
    assert fleet["uid"] == "fobs-fleet" and fleet["title"] == "fobs / Fleet overview"


def test_datasource_and_provider(built: Path) -> None:
    [source] = read(built / "provisioning/datasources/fobs.yaml")["datasources"]
    assert source["type"] == "influxdb" and source["url"] == "http://influx.example:8086"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "metrics" and source["database"] == "metrics"
    assert source["user"] == "grafana"
    assert source["secureJsonData"] == {"password": "$FOBS_INFLUXDB_PASSWORD"}
    [provider] = read(built / "provisioning/dashboards/fobs.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == str((built / "dashboards").resolve())
    # Every datasource the dashboards name is the provisioned one.
    boards = {p.stem: read(p) for p in (built / "dashboards").glob("*.json")}
    assert check_all(boards, {source["uid"]}) == []


def test_alert_rules_in_unified_alerting_terms(built: Path) -> None:
    document = read(built / "provisioning/alerting/fobs.yaml")
    assert document["apiVersion"] == 1
    [group] = document["groups"]
    assert (group["orgId"], group["name"], group["folder"], group["interval"]) == (
        1, "fobs", "fobs", "10s")
    by_title = {r["title"]: r for r in group["rules"]}
    rules = {r.name: r for r in load_rules()}
    assert set(by_title) == set(rules)
    for name, rendered in by_title.items():
        rule = rules[name]
        assert set(rendered) == {"uid", "title", "condition", "data", "noDataState",
                                 "execErrState", "for", "labels", "annotations", "isPaused"}
        a, b, c = rendered["data"]
        assert (a["refId"], b["refId"], c["refId"], rendered["condition"]) == (
            "A", "B", "C", "C")
        assert a["datasourceUid"] == "fobs-influxdb"
        assert b["datasourceUid"] == c["datasourceUid"] == "__expr__"
        assert b["model"]["datasource"] == {"type": "__expr__", "uid": "__expr__"}
        assert a["model"]["rawQuery"] is True and a["model"]["query"] == rule.query
        assert a["model"]["intervalMs"] == rule.interval_seconds * 1000
        assert a["relativeTimeRange"] == {"from": rule.window_seconds, "to": 0}
        assert b["model"]["type"] == "reduce" and b["model"]["reducer"] == rule.reduce
        assert b["model"]["settings"]["mode"] == "dropNN"
        assert c["model"]["type"] == "math"
        assert c["model"]["expression"] == f"$B {rule.operator} {rule.threshold:g}"
        assert rendered["for"] == rule.for_ and rendered["labels"] == dict(rule.labels)
        assert rendered["noDataState"] == "OK" and rendered["execErrState"] == "Error"
        assert rendered["uid"] == rule.rule_uid and len(rendered["uid"]) <= 40
        for text in rendered["annotations"].values():
            assert "$value " not in text and "$value}" not in text
    summary = by_title["RouterErrorRatio"]["annotations"]["summary"]
    assert summary == ("Router {{ $labels.index }} answers {{ humanizePercentage "
                       "$values.B.Value }} with 5xx")


def test_python_m_dashboards_builds_too(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "fobs.dashboards", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "provisioning/alerting/fobs.yaml").exists()
    check = subprocess.run([sys.executable, "-m", "fobs.dashboards", "check"], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and "no problems" in check.stdout


def test_bad_rules_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    bad = tmp_path / "bad.rules.py"
    bad.write_text("from fobs.dashboards.rules import Rule\n"
                   "rules = [Rule(name='X', query='SELECT 1 FROM m WHERE time > now() - 1m',"
                   " condition='> 1')]\n")
    assert main(["dashboards", "build", "--out", str(tmp_path / "o"), "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be filtered by $timeFilter" in err
