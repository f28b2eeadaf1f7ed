"""Issue 9, findings 9 and 13, and "the CLI finds the running stack", against one real `fobs up`.

Each attack runs against the stack's own nats-server and influxd with what an attacker on the
host would have: no credentials, or one component's config file (its NATS user and varz
password). One stack serves every test of this module (it takes 10–20 s to start).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.aio.client
import pytest

from fobs.components import wire
from fobs.components.auth import basic_auth_header
from fobs.stack import State, read

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CF_USER, CF_PASSWORD = "cf-dea", "plain-cf-password"   # --nats-component: a real CF component
HEARTBEAT = "fobs.collector.heartbeat"                   # fobs/collector/membership.py


@dataclass
class Up:
    root: Path            # where fobs up ran (var/ under it)
    state: State
    output: list[str]

    def config(self, name: str) -> dict[str, Any]:
        return tomllib.loads((self.root / "var" / "etc" / f"{name}.toml").read_text())

    def fobs(self, *args: str, cwd: Path | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fobs", *args], cwd=cwd or self.root,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("stack")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fobs", "up", "--dir", str(root / "var"), "--deas", "1",
         "--routers", "1", "--stagers", "0", "--varz-interval", "1", "--cycle", "0.5",
         "--nats-component", f"{CF_USER}:{CF_PASSWORD}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    ready = threading.Event()

    def read_output() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                ready.set()
        ready.set()   # exited: the assertion below says so

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert ready.wait(120) and proc.poll() is None, "".join(output[-60:])
        yield Up(root, read(root / "var" / "stack.toml"), output)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, "".join(output[-60:])


# -- the bus ------------------------------------------------------------------------------


async def test_a_nats_client_without_the_stacks_credentials_cannot_connect(up: Up) -> None:
    url = up.state.nats_servers[0]
    attempts: tuple[dict[str, Any], ...] = ({}, {"user": "dea-0", "password": "guessed"})
    for credentials in attempts:
        nc = nats.aio.client.Client()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nc.connect(url, allow_reconnect=False, connect_timeout=5, **credentials)
        await nc.close()   # nats-py leaves the refused socket open otherwise


async def test_a_components_user_cannot_read_announces_nor_discover_nor_fake_a_collector(
        up: Up) -> None:
    """With dea-0's own config (its NATS user), try to learn the other components' varz
    credentials (read announces, send discover and read the answers) and to pass for a
    collector (its heartbeat). The server refuses each, and a collector-side observer that
    receives a marker sent afterwards never saw the attacker's messages."""
    dea = up.config("dea-0")["component"]["nats"]
    collector = up.config("collector")["component"]["nats"]
    url = up.state.nats_servers[0]
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))
    attacker = await nats.connect(url, user=dea["user"], password=dea["password"],
                                  error_cb=on_error)
    observer = await nats.connect(url, user=collector["user"], password=collector["password"])
    try:
        seen: dict[str, list[bytes]] = {}
        subs = {}
        for subject in (wire.DISCOVER, HEARTBEAT):
            subs[subject] = await observer.subscribe(subject)
            seen[subject] = []
        await observer.flush()

        leaked: list[bytes] = []

        async def steal(msg: Any) -> None:
            leaked.append(msg.data)
        for subject in (wire.ANNOUNCE, wire.UNREGISTER, "_INBOX.>", ">"):
            await attacker.subscribe(subject, cb=steal)
        await attacker.publish(wire.DISCOVER, b"attack", reply="_INBOX.attacker")
        await attacker.publish(HEARTBEAT, b'{"attack": true, "state": "active"}')
        await attacker.publish("fobs.collector.anything", b"attack")
        await attacker.flush()   # the server has handled all of the above before the PONG

        for subject in (wire.DISCOVER, HEARTBEAT):
            await observer.publish(subject, b"marker")
            while (msg := await subs[subject].next_msg(timeout=10)).data != b"marker":
                seen[subject].append(msg.data)
        assert not [d for d in seen[wire.DISCOVER] + seen[HEARTBEAT] if b"attack" in d]

        # A collector's discover: the components answer with their credentials. The server
        # queues a message to every matching subscription at once, so once the observer has
        # an answer, a PONG to the attacker comes after anything it could have been sent.
        inbox = observer.new_inbox()
        answers = await observer.subscribe(inbox)
        await observer.publish(wire.DISCOVER, b"", reply=inbox)
        assert "credentials" in json.loads((await answers.next_msg(timeout=10)).data)
        await attacker.flush()
        violations = "\n".join(errors)   # nats-py lower-cases the server's -ERR
        for subject in (wire.ANNOUNCE, wire.UNREGISTER, "_INBOX.>", ">"):
            assert f'subscription to "{subject.lower()}"' in violations, errors
        for subject in (wire.DISCOVER, HEARTBEAT, "fobs.collector.anything"):
            assert f'publish to "{subject}"' in violations, errors
        assert leaked == []
        assert attacker.is_connected   # refused, not disconnected: it may still announce
    finally:
        await attacker.close()
        await observer.close()


def targets(up: Up) -> list[dict[str, Any]]:
    done = up.fobs("status", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["data"]["activeTargets"])


async def test_a_cf_component_with_plain_user_and_password_still_registers(up: Up) -> None:
    """Wire compatibility: `--nats-component USER:PASS` lets a CF component that only knows
    `nats://user:pass@host:port` announce; the collector takes it as a target."""
    host, port = up.state.nats_servers[0].removeprefix("nats://").split(":")
    nc = await nats.connect(f"nats://{CF_USER}:{CF_PASSWORD}@{host}:{port}")
    try:
        await nc.publish(wire.ANNOUNCE, json.dumps({
            "type": "CloudController", "index": 0, "host": "127.0.0.1:1",
            "uuid": "cf-cc-0", "credentials": ["cc", "secret"]}).encode())
        await nc.flush()
    finally:
        await nc.close()
    from tests.waiting import until

    def registered() -> bool:
        return any(t["labels"].get("job") == "CloudController" for t in targets(up))
    await until(registered, "the CF component among the collector's targets", 30,
                interval=0.25, in_thread=True)


# -- InfluxDB -----------------------------------------------------------------------------


def post(url: str, data: bytes, credentials: tuple[str, str] | None = None) -> int:
    headers = {"Authorization": basic_auth_header(*credentials)} if credentials else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers),
                                    timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


async def test_influxd_refuses_unauthenticated_writes_and_the_stacks_data_arrives(
        up: Up) -> None:
    influx = up.state.influxdb.url
    write = f"{influx}/write?db=fobs"
    assert post(write, b"scrape,job=Evil up=0") == 401
    assert post(write, b"scrape,job=Evil up=0", ("fobs-admin", "guessed")) == 401
    # The reader (alerts, Grafana) cannot write either.
    assert post(write, b"scrape,job=Evil up=0", up.state.influxdb_reader.credentials) == 403
    query = f"{influx}/query?" + urllib.parse.urlencode({"db": "fobs", "q": (
        'SELECT last("up") FROM "scrape" WHERE endpoint = \'varz\' GROUP BY job')})
    from tests.waiting import until

    def jobs_up() -> set[str]:
        request = urllib.request.Request(query, headers={
            "Authorization": basic_auth_header(*up.state.influxdb_reader.credentials or ("",
                                                                                       ""))})
        with urllib.request.urlopen(request, timeout=5) as r:
            series = json.load(r)["results"][0].get("series") or []
        return {s["tags"]["job"] for s in series if s["values"][0][1] == 1}
    await until(lambda: {"DEA", "Router", "Collector"} <= jobs_up(),
                "the stack's own metrics in InfluxDB", 60, interval=0.25, errors=(OSError,),
                in_thread=True)
    assert "Evil" not in jobs_up()


# -- the clients find the stack -----------------------------------------------------------


def test_the_state_file_is_owner_only_and_holds_no_varz_password(up: Up) -> None:
    path = up.root / "var" / "stack.toml"
    assert path.stat().st_mode & 0o077 == 0
    for name in ("dea-0", "router-0", "collector"):
        assert up.config(name)["component"]["password"] not in path.read_text()
    assert all(p.stat().st_mode & 0o077 == 0 for p in (up.root / "var" / "etc").iterdir())


def test_status_monit_and_tail_need_no_flags_from_where_fobs_up_ran(up: Up) -> None:
    status = up.fobs("status")
    assert status.returncode == 0, status.stderr
    assert "DEA" in status.stdout and " collector " in status.stdout, status.stdout
    summary = up.fobs("monit", "summary")
    assert summary.returncode == 0 and " nats " in summary.stdout, summary.stderr
    tail = up.fobs("tail", "*", "-n", "1", "--json")
    assert tail.returncode == 0, tail.stderr
    assert json.loads(tail.stdout.splitlines()[0])["component"]


def test_stack_dir_works_from_another_directory(up: Up, tmp_path: Path) -> None:
    for stack in (up.root, up.root / "var"):
        status = up.fobs("status", "--stack", str(stack), cwd=tmp_path)
        assert status.returncode == 0 and "DEA" in status.stdout, status.stderr
    tail = up.fobs("tail", "router", "-n", "1", "--stack", str(up.root), cwd=tmp_path)
    assert tail.returncode == 0 and tail.stdout.strip(), tail.stderr
    summary = up.fobs("monit", "summary", "--stack", str(up.root), cwd=tmp_path)
    assert summary.returncode == 0 and " collector " in summary.stdout, summary.stderr
    # Without the state file and without flags there is nothing to find: said in one line.
    missing = up.fobs("status", "--stack", str(tmp_path), cwd=tmp_path)
    assert missing.returncode == 2 and "no stack.toml" in missing.stderr, missing.stderr
