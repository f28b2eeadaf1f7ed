"""Every secret `fobs up` hands out, one per process and purpose, and where each one goes.

- varz: each process its own basic-auth password for `/varz` and `/healthz`. A component
  announces it on NATS for the collector; the supervisor's health checks know it from here.
- NATS: each process its own user, with its role's permissions (fobs/natsauth.py), so what one
  process' credentials can do on the bus is what its role needs, nothing more; the operator
  user (`fobs tail`) only reads; the routes of a NATS cluster have their own user.
- InfluxDB: an admin (the collector writes and creates the database) and a reader with READ on
  `fobs` (the alert evaluator and Grafana). These two outlive a restart of `fobs up`, because
  influxd keeps its users in its data directory: they are read back from the state file.
- the supervisor's control API: its own password (docs/security.md).

Everything except the InfluxDB users is new at every start: configs are rewritten each time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from fobs.components.config import ConfigError, credentials_flag
from fobs.natsauth import User

USER = "fobs"                    # the user name of every varz and of the control API
INFLUX_ADMIN = "fobs-admin"
INFLUX_READER = "fobs-reader"
OPERATOR = "operator"            # NATS user of the operator's tools (fobs tail)
ROUTE_USER = "route"             # NATS cluster routes
CF_KINDS = ("dea", "router", "stager")


def new_secret() -> str:
    return secrets.token_hex(16)


def role_of(process: str) -> str:
    """The NATS role of a process of the stack, by its name (`dea-0`, `collector-1`, …)."""
    kind = process.split("-")[0]
    if kind in CF_KINDS:
        return "cf"
    if kind in ("collector", "syslog", "alerts", "supervisor", OPERATOR):
        return kind
    return "component"


@dataclass
class Credentials:
    influx_admin: str = field(default_factory=new_secret)
    influx_reader: str = field(default_factory=new_secret)
    control: str = field(default_factory=new_secret)
    status: str = field(default_factory=new_secret)      # the collectors' status API
    route: str = field(default_factory=new_secret)
    varz: dict[str, str] = field(default_factory=dict)
    nats: dict[str, str] = field(default_factory=dict)
    # Users the operator adds for real Cloud Foundry components (`--nats-component USER:PASS`).
    extra: tuple[User, ...] = ()

    def __post_init__(self) -> None:
        for name in ("supervisor", OPERATOR):   # the in-process supervisor; fobs tail
            self.nats_password(name)

    def varz_password(self, process: str) -> str:
        return self.varz.setdefault(process, new_secret())

    def nats_password(self, process: str) -> str:
        return self.nats.setdefault(process, new_secret())

    def nats_client(self, process: str, servers: list[str]) -> dict[str, object]:
        """The [component.nats] table of a process: the servers and its own user."""
        return {"servers": servers, "user": process, "password": self.nats_password(process)}

    def nats_users(self) -> list[User]:
        return [User(name, password, role_of(name)) for name, password in self.nats.items()] \
            + list(self.extra)


def component_users(flags: list[str] | None) -> tuple[User, ...]:
    """`--nats-component USER:PASS`: NATS users with the component role, for CF components
    that connect with a plain `nats://user:pass@host:port` (wire compatibility)."""
    users = []
    for flag in flags or ():
        user, password = credentials_flag(flag, "--nats-component")
        if role_of(user) != "component":
            raise ConfigError(f"--nats-component: {user!r} is the name of one of fobs up's "
                              "own processes; choose another user name")
        users.append(User(user, password, "component"))
    return tuple(users)


def load(root: Path, extra: tuple[User, ...] = ()) -> Credentials:
    """New credentials, keeping the InfluxDB users of a previous run on the same directory."""
    from fobs.stack import FILE, read
    previous = read(root / FILE) if (root / FILE).is_file() else None
    creds = Credentials(extra=extra)
    if previous is not None and previous.influxdb.password:
        creds.influx_admin = previous.influxdb.password
        creds.influx_reader = previous.influxdb_reader.password or creds.influx_reader
    return creds
