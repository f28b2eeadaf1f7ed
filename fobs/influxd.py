"""Running Debian's influxd 1.x privately: where the binary is and its config file.

`fobs up`, `fobs alerts test` (a throw-away database server) and the test fixtures all start
their own influxd on loopback ports with data in a directory of their own; they share this.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def find_influxd() -> str | None:
    """The influxd binary (Debian installs it in /usr/bin), or None."""
    found = shutil.which("influxd")
    if found:
        return found
    return next((p for p in ("/usr/bin/influxd", "/usr/sbin/influxd") if os.access(p, os.X_OK)),
                None)


def influxd_config(data_dir: Path, http_port: int, rpc_port: int, *,
                   log_level: str = "warn", http_options: str = "") -> str:
    """An influxdb.conf for a private instance: loopback only, no reporting, no self-monitor."""
    return (
        "reporting-enabled = false\n"
        f'bind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{data_dir}/meta"\n'
        f'[data]\n  dir = "{data_dir}/data"\n  wal-dir = "{data_dir}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
        + http_options
        + "[monitor]\n  store-enabled = false\n"
        f'[logging]\n  level = "{log_level}"\n'
    )


AUTH_ENABLED = "  auth-enabled = true\n"   # [http] option: every request needs a user
READY_TIMEOUT = 30.0


def _query(url: str, q: str, auth: tuple[str, str] | None) -> tuple[int, str]:
    """POST /query; (status, body). A refused connection raises OSError."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from fobs.components.auth import basic_auth_header
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = basic_auth_header(*auth)
    request = urllib.request.Request(f"{url}/query", headers=headers,
                                     data=urllib.parse.urlencode({"q": q}).encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def bootstrap_users(binary: str, config: Path, url: str, admin: tuple[str, str],
                    database: str, reader: tuple[str, str]) -> None:
    """Create the admin (the first user: influxd accepts that one query without credentials
    while it has no users), the database, and a reader with READ on it.

    influxd runs for the moment with the stack's own config (auth enabled), so the collector
    never meets an influxd that refuses its first write for lack of a user (a 401 is retried
    only every `retry.max_delay`). Raises ConfigError when users exist that are not ours."""
    import subprocess
    import time

    from fobs.components.config import ConfigError
    proc = subprocess.Popen([binary, "-config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise ConfigError(f"influxd exited at start (code {proc.returncode}); "
                                  f"see {config}")
            try:
                status, body = _query(url, f"CREATE USER \"{admin[0]}\" WITH PASSWORD "
                                           f"'{_quote(admin[1])}' WITH ALL PRIVILEGES", None)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"influxd at {url} did not answer in "
                                      f"{READY_TIMEOUT:g} s") from None
                time.sleep(0.1)   # polling a process we just started; nothing to wait on
        if status == 401 and _query(url, "SHOW USERS", admin)[0] != 200:
            raise ConfigError(f"influxd's data in {config.parent} has users whose passwords "
                              "fobs up does not know: remove its data directory")
        for q in (f'CREATE DATABASE "{database}"',
                  f"CREATE USER \"{reader[0]}\" WITH PASSWORD '{_quote(reader[1])}'",
                  f"SET PASSWORD FOR \"{reader[0]}\" = '{_quote(reader[1])}'",
                  f'GRANT READ ON "{database}" TO "{reader[0]}"'):
            status, body = _query(url, q, admin)
            if status != 200 or '"error"' in body and "already exists" not in body:
                raise ConfigError(f"influxd: {q.split(' WITH')[0]}: HTTP {status}: {body[:200]}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
