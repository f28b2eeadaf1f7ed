"""What `fobs up` runs: ports, credentials, one config file per daemon, the supervisor's config.

`plan_stack` decides (free ports, generated or kept credentials, where InfluxDB is);
`write_configs` writes each daemon's TOML under `DIR/etc` (owner-only) with the one writer,
tomli-w; `supervisor_config` builds, in code, the config the supervisor runs them from, in
dependency order; `write_state` leaves `DIR/stack.toml` for the clients (`fobs status`, `fobs
tail`, `fobs monit`). Nothing here starts a process: `fobs.up.run` does.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from fobs.components.config import ConfigError
from fobs.credentials import INFLUX_ADMIN, INFLUX_READER, OPERATOR, ROUTE_USER, Credentials
from fobs.influxd import AUTH_ENABLED, find_influxd, influxd_config
from fobs.natsauth import Cluster, server_config
from fobs.ports import free_ports, port_free
from fobs.stack import Endpoint, State, write_private

if TYPE_CHECKING:  # imported where used: `fobs up --help` needs none of them
    from fobs.components.runtime import ComponentConfig
    from fobs.syslog_agg.monit import HttpCheck, SupervisorConfig

USER = "fobs"   # user name of every /varz, the collector's status and the control API
DEFAULT_PORTS = {"nats": 4222, "nats_monitor": 8222, "influxd": 8086, "syslog": 5514,
                 "supervisor": 2812, "collector_status": 9190}


# -- ports and config files ---------------------------------------------------------------


class Ports:
    """Hands out free loopback ports, never the same one twice (the kernel might)."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def pick(self, preferred: int = 0, *, udp_too: bool = False) -> int:
        """`preferred` when it is free (TCP, and UDP when asked), else any free port."""
        usable = (preferred and preferred not in self.taken and port_free(preferred)
                  and (not udp_too or port_free(preferred, socket.SOCK_DGRAM)))
        port = preferred if usable else free_ports(1, udp_too=udp_too, exclude=self.taken)[0]
        self.taken.add(port)
        return port


@dataclass
class Stack:
    """Everything `fobs up` decided: paths, ports, credentials, what runs."""

    root: Path
    creds: Credentials
    ports: dict[str, int]
    influx_url: str          # "" = no InfluxDB
    start_influxd: bool
    influxd: str | None
    counts: dict[str, int]
    alertmanager: str | None
    varz_interval: float
    rules: tuple[str, ...] = ()
    alert_interval: float = 10.0
    collectors: int = 1      # sharing the fleet (rendezvous) when more than one
    nats_nodes: int = 1      # a routed NATS cluster when more than one
    allocator: Ports = field(default_factory=Ports)
    component_ports: dict[str, int] = field(default_factory=dict)

    @property
    def control_password(self) -> str:
        """The supervisor's control API: its own secret, no component's varz password."""
        return self.creds.control

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    @property
    def nats_urls(self) -> list[str]:
        """Every NATS node's URL: each daemon is given all, and moves when its node dies."""
        return [self.nats_url] + [f"nats://127.0.0.1:{self.ports[f'nats-{n}']}"
                                  for n in range(1, self.nats_nodes)]

    def collector_names(self) -> list[str]:
        """`collector` (status on the usual port), then `collector-1`, `collector-2`, …"""
        return ["collector"] + [f"collector-{i}" for i in range(1, self.collectors)]

    def collector_status(self, index: int) -> str:
        key = "collector_status" if index == 0 else f"collector_status-{index}"
        return f"127.0.0.1:{self.ports[key]}"

    @property
    def syslog_address(self) -> str:
        return f"127.0.0.1:{self.ports['syslog']}"

    def component(self, name: str, **extra: Any) -> dict[str, Any]:
        """The [component] table of a daemon: fixed port (for its health check), its own varz
        credentials and its own NATS user."""
        if name not in self.component_ports:
            self.component_ports[name] = self.allocator.pick()
        port = self.component_ports[name]
        return {"host": "127.0.0.1", "port": port, "user": USER,
                "password": self.creds.varz_password(name),
                "nats": self.creds.nats_client(name, self.nats_urls), **extra}

    def influx_auth(self, user: str, key: str = "username") -> dict[str, str]:
        """The InfluxDB credentials of `user` (admin or reader) when fobs up runs influxd."""
        if not self.start_influxd:
            return {}
        secret = self.creds.influx_admin if user == INFLUX_ADMIN else self.creds.influx_reader
        return {key: user, "password": secret}

    def healthz(self, name: str) -> str:
        return f"http://127.0.0.1:{self.component_ports[name]}/healthz"


def plan_stack(args: argparse.Namespace) -> Stack:
    for name in ("deas", "routers", "stagers"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name}: must be 0 or more")
    for name in ("collectors", "nats_cluster"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be 1 or more")
    if min(args.cycle, args.varz_interval, args.alert_interval) <= 0:
        raise ConfigError("--cycle, --varz-interval and --alert-interval must be greater than 0")
    for path in args.rules or ():
        if not path.is_file():
            raise ConfigError(f"--rules: file not found: {path}")
    root = args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    from fobs import credentials
    creds = credentials.load(root, credentials.component_users(args.nats_component))
    allocator = Ports()
    ports = {name: allocator.pick(port, udp_too=name == "syslog")
             for name, port in DEFAULT_PORTS.items()}
    for node in range(args.nats_cluster if args.nats_cluster > 1 else 0):
        for key in ("nats", "nats_monitor", "nats_cluster"):   # node 0 keeps the defaults
            name = f"{key}-{node}" if node or key == "nats_cluster" else key
            ports.setdefault(name, allocator.pick())
    for index in range(1, args.collectors):
        ports[f"collector_status-{index}"] = allocator.pick()
    influxd = find_influxd()
    start_influxd = not args.influx_url and influxd is not None
    # "" = no InfluxDB at all: points go to a line-protocol file, no alert evaluation.
    influx_url = args.influx_url or (f"http://127.0.0.1:{ports['influxd']}"
                                     if start_influxd else "")
    return Stack(root=root, creds=creds, ports=ports, influx_url=influx_url,
                 start_influxd=start_influxd, influxd=influxd,
                 counts={"dea": args.deas, "router": args.routers, "stager": args.stagers},
                 alertmanager=args.alertmanager, varz_interval=args.varz_interval,
                 rules=tuple(str(p.resolve()) for p in args.rules or ()),
                 alert_interval=args.alert_interval, allocator=allocator,
                 collectors=args.collectors, nats_nodes=args.nats_cluster)


def write_configs(stack: Stack) -> dict[str, Path]:
    etc = stack.root / "etc"
    outputs: dict[str, Any] = {
        "spool_dir": str(stack.root / "spool"),
        "quarantine_dir": str(stack.root / "quarantine"),
    }
    if stack.influx_url:
        outputs["influxdb_v1"] = [{"name": "influxdb", "url": stack.influx_url,
                                   "database": "fobs", **stack.influx_auth(INFLUX_ADMIN)}]
    else:
        outputs["file"] = [{"name": "file", "path": str(stack.root / "points.lp")}]
    files = {}
    if stack.start_influxd:
        files["influxd"] = write_private(etc / "influxdb.conf", influxd_config(
            stack.root / "influxd", stack.ports["influxd"], stack.allocator.pick(),
            log_level="info", http_options=AUTH_ENABLED))
    syslog = {
        "listen": {"udp": stack.syslog_address, "tcp": stack.syslog_address},
        "store": {"root": str(stack.root / "logs"), "format": "json"},
        "component": stack.component("syslog"),
    }
    files["syslog"] = write_private(etc / "syslog.toml", tomli_w.dumps(syslog))
    for index, name in enumerate(stack.collector_names()):
        collector: dict[str, Any] = {
            "component": {**stack.component(name, index=index),
                          "syslog": {"address": stack.syslog_address}},
            "scrape": {"varz_interval": stack.varz_interval},
            "status": {"address": stack.collector_status(index), "user": USER,
                       "password": stack.creds.status},
            # each collector its own spool (a dead one's is handed over: docs/collector.md)
            "outputs": {**outputs, "spool_dir": str(stack.root / name.replace("collector",
                                                                            "spool"))},
        }
        if stack.collectors > 1:
            collector["discovery"] = {"sharding": "rendezvous"}
        files[name] = write_private(etc / f"{name}.toml", tomli_w.dumps(collector))
    alerts = {
        "evaluation": {"interval": stack.alert_interval, "rule_files": list(stack.rules)},
        "influxdb": {"url": stack.influx_url, "database": "fobs",
                     **stack.influx_auth(INFLUX_READER)},
        "component": {**stack.component("alerts"),
                      "syslog": {"address": stack.syslog_address}},
    }
    if stack.alertmanager:
        alerts["alertmanager"] = {"urls": [stack.alertmanager]}
    files["alerts"] = write_private(etc / "alerts.toml", tomli_w.dumps(alerts))
    for kind, count in stack.counts.items():
        for index in range(count):
            name = f"{kind}-{index}"
            files[name] = write_private(etc / f"{name}.toml", tomli_w.dumps({
                "component": {**stack.component(name, index=index),
                              "syslog": {"address": stack.syslog_address}}}))
    return files


# -- the supervisor config ----------------------------------------------------------------


def supervisor_config(stack: Stack, files: dict[str, Path], cycle: float) -> SupervisorConfig:
    from fobs.syslog_agg.monit import (
        HttpCheck,
        HttpConfig,
        ProcessConfig,
        SupervisorConfig,
        TcpCheck,
        UdpCheck,
    )
    from fobs.syslog_agg.monit.config import RestartLimit
    run = stack.root / "run"
    run.mkdir(parents=True, exist_ok=True)
    fobs = (sys.executable, "-m", "fobs")
    limit = RestartLimit(restarts=5, cycles=30)

    def proc(name: str, command: tuple[str, ...], depends: tuple[str, ...] = (),
             **checks: Any) -> ProcessConfig:
        return ProcessConfig(name=name, command=command, depends_on=depends,
                             log=str(run / f"{name}.log"), stop_timeout=10.0,
                             restart_limit=limit, **checks)

    def healthz(name: str) -> tuple[HttpCheck, ...]:
        return (HttpCheck(url=stack.healthz(name), user=USER,
                          password=stack.creds.varz_password(name),
                          cycles=2, timeout=3.0),)

    procs = [proc(name, command, tcp=(TcpCheck(port=port),))
             for name, command, port in nats_nodes(stack)]
    nats = tuple(name for name, _, _ in nats_nodes(stack))
    storage: tuple[str, ...] = ()
    if stack.start_influxd:
        assert stack.influxd is not None
        procs.append(proc("influxd", (stack.influxd, "-config", str(files["influxd"])),
                          http=(HttpCheck(url=f"{stack.influx_url}/ping", status=204),)))
        storage = ("influxd",)
    procs.append(proc("syslog", (*fobs, "syslog", "--config", str(files["syslog"])), nats,
                      udp=(UdpCheck(port=stack.ports["syslog"]),), http=healthz("syslog")))
    for name in stack.collector_names():
        procs.append(proc(name, (*fobs, "collector", "--config", str(files[name])),
                          (*nats, "syslog", *storage), http=healthz(name)))
    for kind, count in stack.counts.items():
        for index in range(count):
            name = f"{kind}-{index}"
            procs.append(proc(name, (*fobs, "component", kind, "--config", str(files[name])),
                              (*nats, "syslog"), http=healthz(name)))
    if stack.influx_url:
        procs.append(proc("alerts", (*fobs, "alerts", "run", "--config", str(files["alerts"])),
                          (*nats, "collector", *storage), http=healthz("alerts")))
    component = _supervisor_component(stack)
    return SupervisorConfig(
        cycle=cycle,
        http=HttpConfig(address=f"127.0.0.1:{stack.ports['supervisor']}", user=USER,
                        password=stack.control_password),
        component=component, process=tuple(procs))


def nats_nodes(stack: Stack) -> list[tuple[str, tuple[str, ...], int]]:
    """(process name, command, client port) of each NATS node: `nats`, then `nats-1`, … routed
    to each other when `--nats-cluster` asks for more than one."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    nodes = []
    for n in range(stack.nats_nodes):
        suffix = f"-{n}" if n else ""
        port = stack.ports[f"nats{suffix}"]
        cluster = None
        if stack.nats_nodes > 1:   # routes authenticate too: nobody joins to read it all
            cluster = Cluster(listen=f"127.0.0.1:{stack.ports[f'nats_cluster-{n}']}",
                              peers=[f"127.0.0.1:{stack.ports[f'nats_cluster-{m}']}"
                                     for m in range(stack.nats_nodes) if m != n],
                              user=ROUTE_USER, password=stack.creds.route)
        conf = write_private(stack.root / "etc" / f"nats{suffix}.conf", server_config(
            f"127.0.0.1:{port}", f"127.0.0.1:{stack.ports[f'nats_monitor{suffix}']}",
            stack.creds.nats_users(), cluster))
        command: tuple[str, ...] = (binary, "-c", str(conf))
        nodes.append((f"nats{suffix}", command, port))
    return nodes


def write_state(stack: Stack) -> Path:
    """Where everything listens and the clients' credentials, for `fobs status|tail|monit`."""
    from fobs import stack as state
    influx = Endpoint(stack.influx_url, **stack.influx_auth(INFLUX_ADMIN, "user"))
    return state.write(stack.root, State(
        root=str(stack.root),
        supervisor=Endpoint(f"http://127.0.0.1:{stack.ports['supervisor']}", USER,
                            stack.control_password),
        collector=Endpoint(f"http://{stack.collector_status(0)}", USER, stack.creds.status),
        influxdb=influx, influxdb_reader=Endpoint(
            stack.influx_url, **stack.influx_auth(INFLUX_READER, "user")),
        nats_servers=tuple(stack.nats_urls),
        nats_operator=Endpoint(stack.nats_url, OPERATOR, stack.creds.nats_password(OPERATOR))))


def _supervisor_component(stack: Stack) -> ComponentConfig:
    from fobs.components.bus import NatsConfig
    from fobs.components.logs import SyslogConfig
    from fobs.components.runtime import ComponentConfig
    return ComponentConfig(user=USER, password=stack.creds.varz_password("supervisor"),
                           nats=NatsConfig(servers=tuple(stack.nats_urls), user="supervisor",
                                           password=stack.creds.nats_password("supervisor")),
                           syslog=SyslogConfig(address=stack.syslog_address))
