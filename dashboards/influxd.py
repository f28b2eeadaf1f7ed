"""A private, throw-away `influxd` for `fobs alerts test` when no InfluxDB URL is given.

It runs Debian's influxd 1.x with its own config in a temporary directory, on free loopback
ports, and is killed and deleted on exit: nothing of it outlives the test run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from fobs.components.config import ConfigError
from fobs.influxd import find_influxd, influxd_config
from fobs.ports import free_ports

READY_TIMEOUT = 30.0


class TemporaryInfluxd:
    """`with TemporaryInfluxd() as url:` — an influxd that lives for the `with` block."""

    def __init__(self) -> None:
        self.binary = find_influxd()
        if self.binary is None:
            raise ConfigError("no InfluxDB to test against: install influxd (Debian package "
                              "influxdb) or pass --influxdb URL / set FOBS_INFLUXDB_URL")
        self.dir = Path(tempfile.mkdtemp(prefix="fobs-ruletest-"))
        self.port, self.rpc_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        data = self.dir / "data"
        config = self.dir / "influxdb.conf"
        config.write_text(influxd_config(data, self.port, self.rpc_port, log_level="error"))
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
