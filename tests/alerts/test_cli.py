"""`fobs alerts test` and `fobs alerts rules` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.services import Influxd

HERE = Path(__file__).parent


def fobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "FOBS_INFLUXDB_URL"}
    return subprocess.run([sys.executable, "-m", "fobs", *args], capture_output=True,
                          text=True, timeout=90, env={**environ, **(env or {})})


def test_without_an_influxdb_url_it_starts_its_own_influxd() -> None:
    result = fobs("alerts", "test", str(HERE / "component_down.toml"),
                  str(HERE / "router_error_ratio.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  SUCCESS") == 2
    # and leaves nothing behind
    assert "fobs-ruletest-" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                  text=True).stdout


def test_failure_exit_status_run_filter_and_env_url(tmp_path: Path,
                                                     influxd_shared: Influxd) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((HERE / "component_down.toml").read_text().replace(
        'exp_annotations = { summary = "DEA/0 is down"', 'exp_annotations = { summary = "x"'))
    env = {"FOBS_INFLUXDB_URL": influxd_shared.url}
    failed = fobs("alerts", "test", str(bad), env=env)
    assert failed.returncode == 1
    assert "  FAILED:" in failed.stdout and 'summary="x"' in failed.stdout
    # Only the must-not-fire groups: they pass.
    passed = fobs("alerts", "test", str(bad), "--run", "must not fire", env=env)
    assert passed.returncode == 0 and "SUCCESS" in passed.stdout
    wrong = fobs("alerts", "test", str(bad), "--run", "(", env=env)
    assert wrong.returncode == 2 and "--run: invalid regex" in wrong.stderr


def test_rules_lists_every_rule() -> None:
    result = fobs("alerts", "rules")
    assert result.returncode == 0
    names = [line.split(":")[0] for line in result.stdout.splitlines()
             if not line.startswith(" ")]
    assert names == ["ComponentDown", "ComponentUnhealthy", "DEACannotStage",
                     "DEAShortOfMemory", "RouterErrorRatio", "RouterHighLatency",
                     "StagerFailureRatio", "SyslogParseErrorSpike", "CollectorSpoolGrowing",
                     "CollectorWriteErrors"]
