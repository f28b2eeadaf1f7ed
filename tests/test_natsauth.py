"""fobs/natsauth.py against a real nats-server: the config it renders, and routes that must
authenticate (a rogue node that does not know the route credentials never joins the cluster)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fobs.natsauth import Cluster, User, roles, server_config
from fobs.ports import free_ports

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"
pytestmark = pytest.mark.skipif(not Path(NATS).exists(), reason="nats-server not installed")


def test_every_role_renders_a_config_nats_server_accepts(tmp_path: Path) -> None:
    users = [User(f"u-{role}", 'pa"ss\\word', role) for role in roles()]
    conf = tmp_path / "nats.conf"
    conf.write_text(server_config("127.0.0.1:1", "127.0.0.1:2", users, Cluster(
        "127.0.0.1:3", ["127.0.0.1:4"], "route", "secret")))
    done = subprocess.run([NATS, "-c", str(conf), "-t"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def routes(monitor: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/routez", timeout=2) as r:
        return int(json.load(r)["num_routes"])


def wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)   # polling other processes' state; nothing to wait on
    raise AssertionError(f"{what}: not after {timeout:g} s")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        proc.wait(10)


def test_a_node_without_the_route_credentials_does_not_join(
        tmp_path: Path, servers: list[subprocess.Popen[bytes]]) -> None:
    ports = free_ports(9)
    client, monitor, route = ports[0:3], ports[3:6], ports[6:9]
    users = [User("collector", "pw", "collector")]

    def start(n: int, cluster: Cluster) -> Path:
        conf, log = tmp_path / f"n{n}.conf", tmp_path / f"n{n}.log"
        conf.write_text(server_config(f"127.0.0.1:{client[n]}", f"127.0.0.1:{monitor[n]}",
                                      users, cluster) + f'log_file: "{log}"\n')
        servers.append(subprocess.Popen([NATS, "-c", str(conf)]))
        return log
    node = [f"127.0.0.1:{route[n]}" for n in range(3)]
    start(0, Cluster(node[0], [node[1]], "route", "right"))
    start(1, Cluster(node[1], [node[0]], "route", "right"))
    wait_for(lambda: routes(monitor[0]) == 1 and routes(monitor[1]) == 1, "the two nodes routed")
    # The rogue knows where the routes listen, not their password.
    rogue_log = start(2, Cluster(node[2], [node[0], node[1]], "route", "guessed"))
    wait_for(lambda: rogue_log.is_file() and "authorization violation" in
             rogue_log.read_text().lower(), "the rogue node refused")
    wait_for(lambda: routes(monitor[2]) >= 0, "the rogue node's monitor")
    assert routes(monitor[0]) == 1 and routes(monitor[1]) == 1 and routes(monitor[2]) == 0
