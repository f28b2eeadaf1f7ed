"""fobs/influxd.py's bootstrap of an auth-enabled influxd, and fobs up keeping its InfluxDB users
across restarts (influxd keeps them in its data directory; fobs up in its state file)."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fobs.components.auth import basic_auth_header
from fobs.components.config import ConfigError
from fobs.credentials import load
from fobs.influxd import AUTH_ENABLED, bootstrap_users, find_influxd, influxd_config
from fobs.ports import free_ports
from fobs.stack import Endpoint, State, write
from tests.services import wait_until

INFLUXD = find_influxd()


def write_status(url: str, credentials: tuple[str, str] | None) -> int:
    headers = {"Authorization": basic_auth_header(*credentials)} if credentials else {}
    request = urllib.request.Request(f"{url}/write?db=fobs", data=b"m v=1", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.skipif(INFLUXD is None, reason="influxd not installed")
def test_bootstrap_creates_the_admin_once_and_refuses_a_stranger(tmp_path: Path) -> None:
    assert INFLUXD is not None
    http, rpc = free_ports(2)
    config = tmp_path / "influxdb.conf"
    config.write_text(influxd_config(tmp_path / "data", http, rpc, http_options=AUTH_ENABLED))
    url = f"http://127.0.0.1:{http}"
    admin, reader = ("fobs-admin", "a'dmin\\pw"), ("fobs-reader", "r1")
    bootstrap_users(INFLUXD, config, url, admin, "fobs", reader)
    # A restart of fobs up: same admin, the reader's password may change.
    bootstrap_users(INFLUXD, config, url, admin, "fobs", ("fobs-reader", "r2"))
    with pytest.raises(ConfigError, match="users whose passwords fobs up does not know"):
        bootstrap_users(INFLUXD, config, url, ("fobs-admin", "guessed"), "fobs", reader)

    proc = subprocess.Popen([INFLUXD, "-config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(url), "influxd", 30)
        assert write_status(url, None) == 401
        assert write_status(url, ("fobs-reader", "r1")) == 401     # the old password is gone
        assert write_status(url, ("fobs-reader", "r2")) == 403     # read only
        assert write_status(url, admin) == 204
    finally:
        proc.terminate()
        proc.wait(30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
            return r.status == 204
    except OSError:
        return False


def test_fobs_up_keeps_the_influxdb_users_of_the_previous_run(tmp_path: Path) -> None:
    first = load(tmp_path)
    write(tmp_path, State(influxdb=Endpoint("http://x", "fobs-admin", first.influx_admin),
                          influxdb_reader=Endpoint("http://x", "fobs-reader",
                                                   first.influx_reader)))
    again = load(tmp_path)
    assert (again.influx_admin, again.influx_reader) == (first.influx_admin,
                                                          first.influx_reader)
    # Everything else is new at every start.
    assert again.control != first.control
    assert again.varz_password("dea-0") != first.varz_password("dea-0")
    assert (tmp_path / "stack.toml").stat().st_mode & 0o077 == 0
