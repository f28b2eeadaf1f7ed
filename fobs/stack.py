"""The running stack's state file: where `fobs up`'s services listen and their credentials.

`fobs up` picks free ports when the preferred ones are taken and generates every credential, so
the clients cannot guess either: it writes them to `DIR/stack.toml` (owner-only, `0600`; the file
is the credential), and `fobs status`, `fobs tail` and `fobs monit …` read it when they run
from the directory `fobs up` ran in (its default `--dir var`), or are given `--stack DIR`.
This module is the one reader and writer of that file.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomli_w

from fobs.components.config import ConfigError

FILE = "stack.toml"
DEFAULT_DIR = Path("var")       # fobs up's default --dir, relative to where it ran


@dataclass(frozen=True)
class Endpoint:
    """An HTTP service (or NATS, with `servers`) and the credentials a client uses on it."""

    url: str = ""
    user: str = ""
    password: str = ""

    @property
    def credentials(self) -> tuple[str, str] | None:
        return (self.user, self.password) if self.user else None


@dataclass(frozen=True)
class State:
    root: str = ""
    supervisor: Endpoint = Endpoint()
    collector: Endpoint = Endpoint()                 # the first collector's status API
    influxdb: Endpoint = Endpoint()                  # database fobs; admin credentials
    influxdb_reader: Endpoint = Endpoint()           # READ on fobs (alerts, Grafana)
    nats_servers: tuple[str, ...] = ()
    nats_operator: Endpoint = Endpoint()             # read-only: logs and alerts


def write_private(path: Path, text: str) -> Path:
    """Files that hold the stack's credentials: readable by the owner only, from creation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return path


def write(root: Path, state: State) -> Path:
    document = asdict(state)
    document["nats_servers"] = list(state.nats_servers)
    return write_private(root / FILE, tomli_w.dumps(document))


def read(path: Path) -> State:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read fobs up's state: {e}") from None

    def endpoint(key: str) -> Endpoint:
        value = doc.get(key) or {}
        return Endpoint(**{k: str(value.get(k, "")) for k in ("url", "user", "password")})
    return State(root=str(doc.get("root", path.parent)), supervisor=endpoint("supervisor"),
                 collector=endpoint("collector"), influxdb=endpoint("influxdb"),
                 influxdb_reader=endpoint("influxdb_reader"),
                 nats_servers=tuple(doc.get("nats_servers") or ()),
                 nats_operator=endpoint("nats_operator"))


def locate(directory: Path | None) -> Path | None:
    """The state file for `--stack DIR` (DIR is fobs up's --dir, or where it ran), or of the
    working directory's `var/` when no DIR is given; None when there is none."""
    if directory is None:
        candidate = DEFAULT_DIR / FILE
        return candidate if candidate.is_file() else None
    for candidate in (directory / FILE, directory / DEFAULT_DIR / FILE):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"--stack: no {FILE} in {directory} or {directory / DEFAULT_DIR} "
                      "(is this where fobs up ran?)")


def find(directory: Path | None) -> State | None:
    path = locate(directory)
    return read(path) if path is not None else None


def add_flag(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--stack", metavar="DIR", type=Path, default=default,
                        help=f"the stack fobs up runs: its --dir, or the directory it ran in "
                             f"(default: ./{DEFAULT_DIR / FILE} when it is there)")
