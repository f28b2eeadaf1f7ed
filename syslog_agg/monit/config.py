"""The supervisor's config: frozen dataclasses loaded strictly from TOML or built in code.

Checks are per-type arrays of tables (`[[process.tcp]]`, `[[process.http]]`, …) rather than
one table with a `type` key, so that the strict loader rejects a key that does not belong to
that type and its errors name the exact dotted path (`process[0].http[1].status`).
`fobs up` builds the same objects in Python; the supervisor runs them through the loader's one
validation walk (`fobs.components.config.validate`), so both get the same messages.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fobs.components import access
from fobs.components.config import (
    ConfigError,
    host_port,
    load,
    nats_subject,
    positive,
    user_and_password,
)
from fobs.components.runtime import ComponentConfig

Action = Literal["restart", "stop", "alert", "unmonitor"]
Command = str | tuple[str, ...]
StopSignal = Literal["TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "KILL"]

DEFAULT_CYCLE = 5.0
DEFAULT_HTTP_ADDRESS = "127.0.0.1:2812"
DEFAULT_HTTP_ALLOW = access.LOOPBACK
DEFAULT_ALERT_SUBJECT = "fobs.monit.alerts"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_NETWORK_TIMEOUT = 5.0
DEFAULT_UDP_TIMEOUT = 0.5
DEFAULT_PROGRAM_TIMEOUT = 10.0
MAX_CYCLES = 64  # monit's window limit; also bounds per-check history


def argv(command: Command) -> tuple[str, ...]:
    """A command as an argv: a string is split like a shell would, but no shell runs it."""
    if isinstance(command, str):
        try:
            return tuple(shlex.split(command))
        except ValueError as e:
            raise ConfigError(f"cannot split command {command!r}: {e}") from None
    return tuple(command)


def _check_cycles(cycles: int, key: str = "cycles") -> None:
    if not 1 <= cycles <= MAX_CYCLES:
        raise ConfigError(f"{key}: must be between 1 and {MAX_CYCLES}, got {cycles}")


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"port: must be between 1 and 65535, got {port}")


@dataclass(frozen=True)
class _Test:
    """What every check has: the action to take once it has failed `cycles` cycles in a row."""

    action: Action = "restart"
    cycles: int = 1

    def validate(self) -> None:
        _check_cycles(self.cycles)


@dataclass(frozen=True)
class AliveCheck(_Test):
    """The implicit "if does not exist then restart" of every process."""


@dataclass(frozen=True)
class _PortTest(_Test):
    port: int = 0
    host: str = "127.0.0.1"
    timeout: float = DEFAULT_NETWORK_TIMEOUT

    def validate(self) -> None:
        _check_port(self.port)
        positive(self.timeout, "timeout")
        super().validate()


@dataclass(frozen=True)
class TcpCheck(_PortTest):
    """Connect to a TCP port; fails on refusal or timeout."""


@dataclass(frozen=True)
class UdpCheck(_PortTest):
    """Send one datagram; fails on ICMP port unreachable. Silence counts as success."""

    send: str = ""  # "" = an RFC 5424 probe message (see checks.syslog_probe)
    timeout: float = DEFAULT_UDP_TIMEOUT


@dataclass(frozen=True)
class HttpCheck(_Test):
    """GET a URL; fails unless the status matches and the body contains `contains`."""

    url: str = ""
    status: int = 200
    contains: str = ""
    user: str = ""
    password: str = ""
    timeout: float = DEFAULT_NETWORK_TIMEOUT

    def validate(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if not 100 <= self.status <= 599:
            raise ConfigError(f"status: must be an HTTP status code, got {self.status}")
        positive(self.timeout, "timeout")
        super().validate()


@dataclass(frozen=True)
class MemoryCheck(_Test):
    """Resident memory above `above_mb` (MiB), of the process or with its children (`total`)."""

    above_mb: float = 0.0
    total: bool = False

    def validate(self) -> None:
        positive(self.above_mb, "above_mb")
        super().validate()


@dataclass(frozen=True)
class CpuCheck(_Test):
    """CPU use above `above_percent` of one core between two cycles (100 = one core busy)."""

    above_percent: float = 0.0
    total: bool = False

    def validate(self) -> None:
        positive(self.above_percent, "above_percent")
        super().validate()


@dataclass(frozen=True)
class ExitCheck(_Test):
    """Run a command; fails unless it exits with `status` within `timeout`."""

    command: Command = ()
    status: int = 0
    timeout: float = DEFAULT_PROGRAM_TIMEOUT

    def validate(self) -> None:
        if not argv(self.command):
            raise ConfigError("command: must not be empty")
        positive(self.timeout, "timeout")
        super().validate()


@dataclass(frozen=True)
class RestartLimit:
    """`restarts` restarts within `cycles` cycles → `action` (0 restarts = no limit)."""

    restarts: int = 5
    cycles: int = 10
    action: Literal["unmonitor", "stop", "alert"] = "unmonitor"

    def validate(self) -> None:
        if self.restarts < 0:
            raise ConfigError(f"restarts: must be 0 or more, got {self.restarts}")
        _check_cycles(self.cycles)


@dataclass(frozen=True)
class ProcessConfig:
    """A process: a managed child (`command`) or a daemon with start/stop programs + pidfile."""

    name: str = ""
    command: Command = ()
    start: Command = ()
    stop: Command = ()
    pidfile: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    log: str = ""
    depends_on: tuple[str, ...] = ()
    start_timeout: float = DEFAULT_START_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    stop_signal: StopSignal = "TERM"
    alive: AliveCheck = AliveCheck()
    restart_limit: RestartLimit = RestartLimit()
    tcp: tuple[TcpCheck, ...] = ()
    udp: tuple[UdpCheck, ...] = ()
    http: tuple[HttpCheck, ...] = ()
    memory: tuple[MemoryCheck, ...] = ()
    cpu: tuple[CpuCheck, ...] = ()
    program: tuple[ExitCheck, ...] = ()

    @property
    def managed(self) -> bool:
        return bool(argv(self.command))

    def validate(self) -> None:
        _check_name(self.name)
        has_command, has_start = bool(argv(self.command)), bool(argv(self.start))
        if has_command == has_start:
            raise ConfigError("command: give either command (a managed child) "
                              "or start (a start program with a pidfile)")
        if has_command and (argv(self.stop) or self.pidfile):
            raise ConfigError("stop: stop and pidfile go with start, not with command")
        if has_start and not self.pidfile:
            raise ConfigError("pidfile: a process with a start program needs a pidfile")
        argv(self.stop)
        positive(self.start_timeout, "start_timeout")
        positive(self.stop_timeout, "stop_timeout")


@dataclass(frozen=True)
class ProgramConfig:
    """A program service (monit's `check program`): run `command` each cycle, test its exit."""

    name: str = ""
    command: Command = ()
    status: int = 0
    timeout: float = DEFAULT_PROGRAM_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    depends_on: tuple[str, ...] = ()
    action: Literal["alert", "unmonitor"] = "alert"
    cycles: int = 1

    def validate(self) -> None:
        _check_name(self.name)
        if not argv(self.command):
            raise ConfigError("command: must not be empty")
        positive(self.timeout, "timeout")
        _check_cycles(self.cycles)


@dataclass(frozen=True)
class HttpConfig:
    """The status page and control API; `address = ""` turns it off.

    Who may use it is `fobs.components.access` (see docs/security.md): clients from `allow`
    only, the `Host` of this server (or one of `allowed_hosts`), no cross-origin requests, and
    the credentials for every state change, and for the status page too unless
    `status_page = "public"`. Without `user`/`password` nothing can be changed over HTTP.
    """

    address: str = DEFAULT_HTTP_ADDRESS
    user: str = ""
    password: str = ""
    allow: tuple[str, ...] = DEFAULT_HTTP_ALLOW
    allowed_hosts: tuple[str, ...] = ()
    status_page: Literal["private", "public"] = "private"

    def validate(self) -> None:
        if self.address:
            host_port(self.address, "address")
        user_and_password(self.user, self.password)
        if not self.allow:
            raise ConfigError('allow: must list at least one network ("0.0.0.0/0" and '
                              '"::/0" = any client)')
        try:
            access.networks(self.allow, "allow")
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for i, host in enumerate(self.allowed_hosts):
            if access.split_host(host) is None:
                raise ConfigError(f"allowed_hosts[{i}]: expected a host name or HOST:PORT "
                                  f"as a Host header has it, got {host!r}")


@dataclass(frozen=True)
class SupervisorConfig:
    """Everything `fobs monit` runs: the cycle, the status page, registration, the services."""

    cycle: float = DEFAULT_CYCLE
    alert_subject: str = DEFAULT_ALERT_SUBJECT
    http: HttpConfig = HttpConfig()
    component: ComponentConfig | None = None  # None: no NATS, no alerts published, no registration
    process: tuple[ProcessConfig, ...] = ()
    program: tuple[ProgramConfig, ...] = ()

    def validate(self) -> None:
        positive(self.cycle, "cycle")
        nats_subject(self.alert_subject, "alert_subject")
        keys: dict[str, str] = {}
        groups: tuple[tuple[str, tuple[ProcessConfig | ProgramConfig, ...]], ...] = (
            ("process", self.process), ("program", self.program))
        for kind, services in groups:
            for i, svc in enumerate(services):
                key = f"{kind}[{i}]"
                if svc.name in keys:
                    raise ConfigError(f"{key}.name: {svc.name!r} is already used by "
                                      f"{keys[svc.name]}")
                keys[svc.name] = key
        deps = {s.name: s.depends_on for _, services in groups for s in services}
        for name, wants in deps.items():
            for dep in wants:
                if dep not in deps:
                    raise ConfigError(f"{keys[name]}.depends_on: unknown service {dep!r}")
                if dep == name:
                    raise ConfigError(f"{keys[name]}.depends_on: a service cannot depend on itself")
        loop = _find_cycle(deps)
        if loop:
            raise ConfigError(f"{keys[loop[0]]}.depends_on: dependency cycle "
                              f"{' -> '.join(loop)}")


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "/" for c in name):
        raise ConfigError(f"name: must be a non-empty word without spaces or '/', got {name!r}")


def _find_cycle(deps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A dependency loop as a list of names (first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for dep in deps.get(name, ()):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[name] = 2
        return []

    for name in deps:
        if name not in state and (found := visit(name)):
            return found
    return []


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> SupervisorConfig:
    """Read a supervisor config file (strict: unknown keys and bad types raise ConfigError)."""
    return load(SupervisorConfig, path, overrides)
