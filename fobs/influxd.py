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
