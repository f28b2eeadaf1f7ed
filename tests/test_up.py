"""`fobs up`: the whole stack under the supervisor, as a user runs it (README quick start)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import until as _until

EVERY_TYPE = {"DEA", "Router", "Stager", "Collector", "SyslogAggregator", "Supervisor",
              "AlertEvaluator"}


def test_written_configs_load_with_each_daemons_strict_loader(tmp_path: Path) -> None:
    """The TOML `fobs up` writes (tomli-w) is what every daemon's own loader accepts, values
    intact: a path with a quote and a backslash, floats, arrays of tables."""
    import argparse
    import tomllib

    from fobs.collector.config import load_config as load_collector
    from fobs.components import ComponentConfig
    from fobs.components.config import build, load
    from fobs.dashboards.alertd import AlertsConfig
    from fobs.plan import plan_stack, write_configs
    from fobs.syslog_agg.config import SyslogAggConfig
    from fobs.up import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    root = tmp_path / 'odd "dir" \\ name'
    args = parser.parse_args(["up", "--dir", str(root), "--deas", "1", "--routers", "0",
                              "--stagers", "0", "--influx-url", "http://127.0.0.1:1",
                              "--varz-interval", "0.5"])
    files = write_configs(plan_stack(args))
    assert set(files) == {"syslog", "collector", "alerts", "dea-0"}
    collector = load_collector(files["collector"])
    assert collector.scrape.varz_interval == 0.5
    # Each process its own varz password and its own NATS user (issue 9, finding 9).
    syslog = load(SyslogAggConfig, files["syslog"])
    assert collector.component.nats.user == "collector"
    assert syslog.component.nats.user == "syslog"
    assert len({collector.component.password, syslog.component.password,
                collector.component.nats.password, syslog.component.nats.password}) == 4
    assert load(SyslogAggConfig, files["syslog"]).store.root == str(root.resolve() / "logs")
    assert load(AlertsConfig, files["alerts"]).influxdb.url == "http://127.0.0.1:1"
    dea = build(ComponentConfig, tomllib.loads(files["dea-0"].read_text())["component"])
    assert (dea.index, dea.user, dea.nats.user) == (0, "fobs", "dea-0")
    assert dea.password not in (collector.component.password, syslog.component.password)
    assert all(path.stat().st_mode & 0o077 == 0 for path in files.values())


def get_json(url: str, credentials: tuple[str, str] | None = None) -> Any:
    from fobs.components.auth import basic_auth_header
    headers = {"Authorization": basic_auth_header(*credentials)} if credentials else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return json.load(r)


def supervisor_client(tmp_path: Path) -> tuple[Path, tuple[str, str]]:
    """The state file `fobs up` writes for its clients, and the supervisor's credentials."""
    from fobs.stack import FILE, read
    path = tmp_path / "var" / FILE
    assert path.stat().st_mode & 0o077 == 0
    credentials = read(path).supervisor.credentials
    assert credentials is not None
    return path, credentials


def influx(url: str, q: str, credentials: tuple[str, str] | None) -> list[dict[str, Any]]:
    from fobs.components.auth import basic_auth_header
    body = urllib.parse.urlencode({"db": "fobs", "q": q}).encode()
    headers = {"Authorization": basic_auth_header(*credentials)} if credentials else {}
    request = urllib.request.Request(f"{url}/query", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.load(r)["results"][0].get("series") or []


async def until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll an HTTP API of another process; a refused connection means not yet."""
    return await _until(check, what, timeout, interval=0.25, errors=(OSError,))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def fobs_up(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Start `fobs up` and read its output until it says the stack is up."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs", "up", "--dir", str(tmp_path / "var"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    assert proc.stdout is not None
    output: list[str] = []

    async def read_until_up() -> None:
        while "Ctrl-C stops everything" not in "".join(output):
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise AssertionError("fobs up exited:\n" + "".join(output[-50:]))
            output.append(line.decode())
    try:
        await asyncio.wait_for(read_until_up(), 120)
    except BaseException:
        await stop_up(proc, output)
        raise
    return proc, output


def supervisor_refuses(url: str, creds: tuple[str, str]) -> list[int]:
    """HTTP codes of: the status without credentials, the issue's cross-origin form POST
    without credentials, and the same POST with them (the browser may have cached them)."""
    from fobs.components.auth import basic_auth_header
    codes = []
    for path, headers in (
            ("/status", {}),
            ("/service/nats/stop", {"Origin": "http://evil.example"}),
            ("/service/nats/stop", {"Origin": "http://evil.example",
                                    "Authorization": basic_auth_header(*creds)})):
        data = b"x=1" if "service" in path else None
        try:
            urllib.request.urlopen(urllib.request.Request(url + path, data=data, headers={
                "Content-Type": "application/x-www-form-urlencoded", **headers}), timeout=5)
            codes.append(200)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    return codes


async def stop_up(proc: asyncio.subprocess.Process, output: list[str]) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    output.append(rest.decode())


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fobs_up_runs_the_stack_and_stops_cleanly(tmp_path: Path) -> None:
    proc, output = await fobs_up(tmp_path, "--varz-interval", "1", "--cycle", "0.5",
                                 "--deas", "2", "--routers", "1")
    pids: list[int] = []
    try:
        text = "".join(output)
        summary = re.findall(r"^ (\S+)\s+(OK|\S.*?)\s{2,}Process$", text, re.M)
        assert dict(summary) == {name: "OK" for name in (
            "nats", "influxd", "syslog", "collector", "dea-0", "dea-1", "router-0",
            "stager-0", "alerts")}, text
        status_url = re.search(r"Supervisor status page\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        influx_url = re.search(r"InfluxDB \(database fobs\)\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        logs = Path(re.search(r"Component logs\s+(\S+)", text).group(1))  # type: ignore[union-attr]
        state_file, creds = supervisor_client(tmp_path)
        from fobs.stack import read
        reader = read(state_file).influxdb_reader.credentials  # InfluxDB needs credentials
        services = {s["name"]: s for s in get_json(f"{status_url}/status", creds)["services"]}
        pids = [s["pid"] for s in services.values() if s["pid"]]

        # The supervisor answers only with the credentials fobs up generated, and a
        # cross-origin form POST (issue 9) stops nothing.
        refused = await asyncio.to_thread(supervisor_refuses, status_url, creds)
        assert refused == [401, 403, 403], refused
        assert get_json(f"{status_url}/status/nats", creds)["services"][0]["monitoring_status"] \
            == "Monitored"
        # From the directory fobs up ran in, the client finds var/stack.toml itself.
        summary_cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fobs", "monit", "summary", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE)
        table = (await summary_cli.communicate())[0].decode()
        assert summary_cli.returncode == 0 and re.search(r"^ nats\s+OK\s+Process$", table, re.M)

        # Every component type of the stack is in InfluxDB, scraped by the collector.
        def types_up() -> bool:
            series = influx(influx_url, 'SELECT last("up") FROM "scrape" WHERE '
                                        "endpoint = 'varz' GROUP BY job", reader)
            return {s["tags"]["job"] for s in series if s["values"][0][1] == 1} >= EVERY_TYPE
        await until(types_up, "every component type scraped up=1 into InfluxDB")
        assert influx(influx_url, 'SELECT count("requests") FROM "router"', reader)
        # `fobs status`: the collector's components, then the supervisor's processes.
        shown = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fobs", "status", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE)
        table = (await shown.communicate())[0].decode()
        assert shown.returncode == 0, table
        assert re.search(r"^DEA\s+1\s+\S+\s+up\s+yes", table, re.M), table
        assert re.search(r"^ collector\s+OK\s+Process$", table, re.M), table
        # Component logs are filed per component by the syslog aggregator.
        for component in ("dea", "router", "stager"):
            await until(lambda c=component: list((logs / c).rglob(f"{c}.log")),
                        f"{component} log file")

        # kill -9 a DEA: the supervisor restarts it.
        old_pid = services["dea-1"]["pid"]
        os.kill(old_pid, signal.SIGKILL)

        def restarted() -> bool:
            dea = {s["name"]: s for s in get_json(f"{status_url}/status", creds)["services"]}[
                "dea-1"]
            return bool(dea["pid"] not in (None, old_pid) and dea["status"] == "OK")
        await until(restarted, "dea-1 restarted")
        services = {s["name"]: s for s in get_json(f"{status_url}/status", creds)["services"]}
        pids = [s["pid"] for s in services.values() if s["pid"]]
    finally:
        await stop_up(proc, output)
    assert proc.returncode == 0, "".join(output)[-3000:]
    assert pids and not [pid for pid in pids if alive(pid)], "processes left behind"


FAST_RULES = '''
from fobs.dashboards.rules import Rule

rules = [Rule(
    name="ComponentDown",
    query="SELECT max(\\"up\\") FROM \\"scrape\\" WHERE \\"endpoint\\" = 'varz' AND $timeFilter "
          "GROUP BY \\"deployment\\", \\"job\\", \\"index\\"",
    reduce="last", condition="< 1", window="2s", for_="1s",
    labels={"severity": "page"},
    annotations={"summary": "{{ $labels.job }}/{{ $labels.index }} is down"},
)]
'''


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_killed_dea_fires_component_down_restarts_and_resolves(tmp_path: Path) -> None:
    """Issue 5's end-to-end: kill -9 a DEA under `fobs up` → ComponentDown fires (over NATS),
    the supervisor restarts the DEA → the alert resolves → clean stop, nothing left behind.

    The shipped rule waits 30 s + 1 m; this run uses the same query with a 2 s window and
    1 s `for`, and a 6 s supervisor cycle, so the DEA stays down long enough to fire."""
    import nats

    from tests.components.reference_helpers import subscribe
    rules = tmp_path / "fast.rules.py"
    rules.write_text(FAST_RULES)
    proc, output = await fobs_up(tmp_path, "--varz-interval", "0.5", "--alert-interval", "0.5",
                                 "--cycle", "6", "--rules", str(rules), "--deas", "2",
                                 "--routers", "1")
    pids: list[int] = []
    nc = None
    try:
        text = "".join(output)
        status_url = re.search(r"Supervisor status page\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        # The bus needs credentials: the operator's, read-only, from the state file.
        from fobs.stack import read
        state = read(tmp_path / "var" / "stack.toml")
        nc = await nats.connect(list(state.nats_servers), user=state.nats_operator.user,
                                password=state.nats_operator.password)
        alerts = await subscribe(nc, "fobs.alerts")

        async def next_change(state: str) -> dict[str, Any]:
            while True:
                event = json.loads((await alerts.next_msg(timeout=60)).data)
                labels = event["labels"]
                if event["state"] == "firing":
                    assert (labels["job"], labels["index"]) == ("DEA", "1"), event
                if (event["alertname"], event["state"]) == ("ComponentDown", state) \
                        and (labels["job"], labels["index"]) == ("DEA", "1"):
                    return event

        _, creds = supervisor_client(tmp_path)

        def status() -> dict[str, Any]:
            return get_json(f"{status_url}/status", creds)  # type: ignore[no-any-return]

        # Kill right after a supervisor cycle, so the DEA stays dead until the next one.
        cycles = status()["supervisor"]["cycles"]
        await until(lambda: status()["supervisor"]["cycles"] > cycles, "a supervisor cycle")
        dea = {s["name"]: s for s in status()["services"]}["dea-1"]
        os.kill(dea["pid"], signal.SIGKILL)

        firing = await next_change("firing")
        assert firing["labels"]["severity"] == "page"
        assert firing["annotations"]["summary"] == "DEA/1 is down"

        def restarted() -> bool:
            now = {s["name"]: s for s in status()["services"]}["dea-1"]
            return bool(now["pid"] not in (None, dea["pid"]) and now["status"] == "OK")
        await until(restarted, "dea-1 restarted by the supervisor")
        await next_change("resolved")
        pids = [s["pid"] for s in status()["services"] if s["pid"]]
    finally:
        if nc is not None:
            await nc.close()
        await stop_up(proc, output)
    assert proc.returncode == 0, "".join(output)[-3000:]
    assert pids and not [pid for pid in pids if alive(pid)], "processes left behind"
