"""`fobs alerts run` as a process against real influxd, nats-server and Alertmanager."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest

from fobs.components.config import ConfigError, load
from fobs.components.wire import ANNOUNCE, UNREGISTER
from fobs.dashboards.alertd import AlertsConfig, next_tick
from tests.alerts.conftest import Alertmanager
from tests.services import Influxd, NatsServer

RULES = '''
from fobs.dashboards.rules import Rule

rules = [Rule(
    name="TestDown",
    query='SELECT last("up") FROM "scrape" WHERE $timeFilter GROUP BY "job", "index"',
    condition="< 1", window="1m", for_="1s",
    labels={"severity": "page"},
    annotations={"summary": "{{ $labels.job }}/{{ $labels.index }} is down"},
)]
'''


def write_up(influxd: Influxd, db: str, value: int) -> None:
    line = f"scrape,job=DEA,index=0,endpoint=varz up={value}i {time.time_ns()}"
    req = urllib.request.Request(f"{influxd.url}/write?db={db}", data=line.encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204


async def next_state(sub: Any, state: str, timeout: float = 20.0) -> dict[str, Any]:
    """The next fobs.alerts message in `state` (earlier ones in other states are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
        data = json.loads(msg.data)
        if data["state"] == state:
            return data


async def eventually(check: Any, timeout: float = 20.0) -> None:
    """Alertmanager's API is the only way to observe it: poll with a deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_alert_lifecycle_on_nats_and_alertmanager(
        tmp_path: Path, influxd: Influxd, nats_server: NatsServer,
        alertmanager: Alertmanager) -> None:
    influxd.create_database("fobs")
    (tmp_path / "test.rules.py").write_text(RULES)
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[evaluation]\ninterval = 0.5\nrule_files = ["test.rules.py"]\n'
        f'[influxdb]\nurl = "{influxd.url}"\ndatabase = "fobs"\n'
        f'[alertmanager]\nurls = ["{alertmanager.url}"]\nresend_delay = 1.0\n'
        f'[component]\nindex = 3\n[component.nats]\nservers = ["{nats_server.url}"]\n')
    nc = await nats.connect(nats_server.url)
    alerts = await nc.subscribe("fobs.alerts")
    announces = await nc.subscribe(ANNOUNCE)
    goodbyes = await nc.subscribe(UNREGISTER)
    log_path = tmp_path / "alerts.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "fobs", "alerts", "run", "--config",
                                 str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        announce = json.loads((await announces.next_msg(timeout=20)).data)
        assert announce["type"] == "AlertEvaluator" and announce["index"] == 3

        write_up(influxd, "fobs", 0)
        pending = await next_state(alerts, "pending")
        assert pending["labels"] == {"job": "DEA", "index": "0", "severity": "page"}
        firing = await next_state(alerts, "firing")
        assert firing["fired_at"] - firing["active_at"] >= 1.0
        assert firing["annotations"] == {"summary": "DEA/0 is down"}
        await eventually(lambda: [a["labels"] for a in alertmanager.alerts()] == [
            {"alertname": "TestDown", "job": "DEA", "index": "0", "severity": "page"}])
        [held] = alertmanager.alerts()
        assert held["status"]["state"] == "active"
        assert held["annotations"] == {"summary": "DEA/0 is down"}

        write_up(influxd, "fobs", 1)
        resolved = await next_state(alerts, "resolved")
        assert resolved["resolved_at"] >= resolved["fired_at"]
        await eventually(lambda: alertmanager.alerts() == [])

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        goodbye = json.loads((await goodbyes.next_msg(timeout=5)).data)
        assert goodbye["uuid"] == announce["uuid"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await nc.close()
    log = log_path.read_text()
    assert "Alert TestDown firing" in log and "Traceback" not in log


async def test_unreachable_services_are_counted_not_fatal(
        tmp_path: Path, nats_server: NatsServer, influxd: Influxd) -> None:
    """InfluxDB gone and Alertmanager absent: the daemon keeps evaluating and reports it."""
    from fobs.dashboards.alertd import AlertDaemon
    config = load(AlertsConfig, None, {
        "evaluation.interval": 0.2, "influxdb.url": influxd.url,
        "alertmanager.urls": ["http://127.0.0.1:9"],
        "component.nats.servers": [nats_server.url]})
    daemon = AlertDaemon(config, config.rules())
    influxd.kill()
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await eventually(lambda: daemon.rounds >= 3)
    reasons = await daemon.component.health()
    assert any("every rule query fails" in r for r in reasons), reasons
    varz = daemon.component.snapshot()
    assert varz["evaluation_failures"] >= 3 * len(daemon.evaluator.rules)
    assert varz["rule_health"]["ComponentDown"]["health"] == "err"
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0


@pytest.mark.parametrize("toml, message", [
    ("[evaluation]\nintervall = 5\n", "unknown key 'evaluation.intervall'"),
    ("[evaluation]\ninterval = 0\n", "evaluation.interval: must be greater than 0"),
    ('[influxdb]\nurl = "localhost:8086"\n', "influxdb.url: expected http://HOST:PORT"),
    ('[alertmanager]\nurls = ["ftp://x"]\n', "alertmanager.urls[0]: expected http://HOST:PORT"),
    ('[evaluation]\nsubject = "fobs.*"\n', "evaluation.subject: not a NATS subject"),
    ('[evaluation]\nrule_files = ["nope.rules.py"]\n', "rules file not found"),
])
def test_config_errors_are_one_line(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(toml)
    result = subprocess.run([sys.executable, "-m", "fobs", "alerts", "run", "--config",
                             str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_defaults_and_next_tick() -> None:
    config = load(AlertsConfig)
    assert (config.evaluation.interval, config.influxdb.database, config.alertmanager.urls,
            config.evaluation.subject) == (10.0, "fobs", (), "fobs.alerts")
    assert len(config.rules()) == 10
    assert next_tick(1000.2, 10) == 1010 and next_tick(1010.0, 10) == 1020
    with pytest.raises(ConfigError):
        load(AlertsConfig, None, {"influxdb.timeout": -1})
