"""A private, throw-away `influxd` for `fobs alerts test` when no InfluxDB URL is given.

It runs Debian's influxd 1.x with its own config in a temporary directory, on free loopback
ports, and is killed and deleted on exit: nothing of it outlives the test run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from components.config import ConfigError

READY_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_influxd() -> str | None:
    found = shutil.which("influxd")
    if found:
        return found
    for candidate in ("/usr/bin/influxd", "/usr/sbin/influxd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class TemporaryInfluxd:
    """`with TemporaryInfluxd() as url:` — an influxd that lives for the `with` block."""

    def __init__(self) -> None:
        self.binary = find_influxd()
        if self.binary is None:
            raise ConfigError("no InfluxDB to test against: install influxd (Debian package "
                              "influxdb) or pass --influxdb URL / set FOBS_INFLUXDB_URL")
        self.dir = Path(tempfile.mkdtemp(prefix="fobs-ruletest-"))
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        data = self.dir / "data"
        config = self.dir / "influxdb.conf"
        config.write_text(
            "reporting-enabled = false\n"
            f'bind-address = "127.0.0.1:{_free_port()}"\n'
            f'[meta]\n  dir = "{data}/meta"\n'
            f'[data]\n  dir = "{data}/data"\n  wal-dir = "{data}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            '[logging]\n  level = "error"\n')
        log = open(self.dir / "influxd.log", "wb")
        assert self.binary is not None
        self.proc = subprocess.Popen([self.binary, "-config", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.dir / "influxd.log").read_text(errors="replace")[-500:]
                self._cleanup()
                raise ConfigError(f"influxd exited at start: {tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)   # influxd offers no readiness event
        self._cleanup()
        raise ConfigError(f"influxd did not answer within {READY_TIMEOUT:.0f}s")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
