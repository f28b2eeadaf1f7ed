"""`fobs component <kind>` — run one reference component, or a fleet of them in one process.

The flags and the config file are read here, for both; running a fleet is `fleet.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from fobs.components import daemon, fleet, reference
from fobs.components.config import ConfigError, credentials_flag, host_port, load
from fobs.components.logs import process_logging
from fobs.components.runtime import Component, ComponentConfig


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "component", help="run a reference component (DEA, router, stager) or a fleet",
        description="Run a simulated Cloud Foundry component that registers over NATS and "
                    "serves /varz, /healthz and /metrics behind basic auth.")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, help_text in (("dea", "a DEA: app instances that start, run and crash"),
                            ("router", "a router: request traffic routed to DEA instances"),
                            ("stager", "a stager: staging tasks that succeed or fail")):
        p = kinds.add_parser(kind, help=help_text, description=f"Run {help_text}.")
        p.add_argument("--index", type=int, help="component index (default 0)")
        _common_flags(p)
        p.set_defaults(handler=run_one)
    p = kinds.add_parser(
        "fleet", help="many simulated components in one process (load tests)",
        description="Host many reference components in one process; each has its own port, "
                    "uuid and NATS registration.")
    p.add_argument("--count", type=int, default=100, help="number of components (default 100)")
    p.add_argument("--mix", default="dea=8,router=2,stager=1",
                   help="relative share of each kind, e.g. dea=2,router=1 "
                        "(default dea=8,router=2,stager=1)")
    p.add_argument("--targets-file", type=Path, metavar="FILE",
                   help="write the fleet's /metrics targets as Prometheus file_sd JSON")
    p.add_argument("--no-simulation", action="store_true",
                   help="serve the runtime's generic varz only (no workload), for scrape "
                        "benchmarks")
    _common_flags(p)
    p.set_defaults(handler=run_fleet)


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", metavar="URL[,URL...]", help="NATS server URL(s) "
                   "(default nats://127.0.0.1:4222)")
    p.add_argument("--syslog", metavar="HOST:PORT", help="send logs to this syslog server")
    p.add_argument("--syslog-transport", choices=("udp", "tcp"), help="default udp")
    p.add_argument("--host", help="address the HTTP server binds (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default: ephemeral)")
    p.add_argument("--credentials", metavar="USER:PASS", help="basic auth credentials "
                   "(default: generated, shown only in the NATS announce)")
    p.add_argument("--seed", type=int, help="random seed of the simulation")
    p.add_argument("--log-level", help="TRACE, DEBUG, INFO, WARNING, ERROR (default INFO)")
    p.add_argument("--config", metavar="FILE", type=Path, help="TOML config file "
                   "([component] section plus one section per kind; flags override it)")


def component_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted-key overrides of ComponentConfig from the shared flags."""
    user, password = credentials_flag(args.credentials) if args.credentials else (None, None)
    if args.syslog:
        host_port(args.syslog, "--syslog")
    return {
        "index": getattr(args, "index", None),
        "nats.servers": args.nats.split(",") if args.nats else None,
        "syslog.address": args.syslog,
        "syslog.transport": args.syslog_transport,
        "host": args.host,
        "port": args.port,
        "user": user,
        "password": password,
        "log_level": args.log_level,
    }


def file_config(sim_configs: dict[str, type], args: argparse.Namespace
                ) -> tuple[ComponentConfig, dict[str, Any]]:
    """(ComponentConfig, {kind: simulation config}) from --config and flags.

    The file has a [component] table and one table per kind in `sim_configs` (a fleet accepts
    every kind's table; a single component only its own).
    """
    section = {f"component.{k}": v for k, v in component_overrides(args).items()}
    fields: list[tuple[str, Any, Any]] = [
        ("component", ComponentConfig, dataclasses.field(default_factory=ComponentConfig))]
    for kind, sim_config in sim_configs.items():
        fields.append((kind, sim_config, dataclasses.field(default_factory=sim_config)))
        if getattr(args, "seed", None) is not None and "seed" in {
                f.name for f in dataclasses.fields(sim_config)}:
            section[f"{kind}.seed"] = args.seed
    file_type = dataclasses.make_dataclass("ComponentFile", fields, frozen=True)
    loaded: Any = load(file_type, args.config, section)
    return loaded.component, {kind: getattr(loaded, kind) for kind in sim_configs}


def run_one(args: argparse.Namespace) -> int:
    sim_config_cls = reference.COMPONENTS[args.kind][1]
    comp_config, sims = file_config({args.kind: sim_config_cls}, args)
    sim_config = sims[args.kind]
    process_logging().configure(comp_config.log_level, comp_config.syslog)

    async def main(stop: asyncio.Event) -> int:
        comp = Component(reference.TYPES[args.kind], comp_config)
        sim = reference.create(args.kind, comp, sim_config)
        await comp.start()
        task = asyncio.create_task(sim.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception():
            comp.log.opt(exception=task.exception()).error("Simulation failed")
        stopped.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.shutdown()
        await comp.stop()
        await process_logging().close()
        return 0 if stop.is_set() else 1

    return daemon.run(main)


def run_fleet(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ConfigError("--count: must be at least 1")
    kinds = fleet.plan(args.count, fleet.parse_mix(args.mix))
    simulated = {} if args.no_simulation else reference.COMPONENTS
    base_config, sim_configs = file_config({k: v[1] for k, v in simulated.items()}, args)
    if base_config.port:
        raise ConfigError("--port: a fleet uses ephemeral ports; leave port unset")
    process_logging().configure(base_config.log_level, base_config.syslog)
    return daemon.run(lambda stop: fleet.run(kinds, base_config, sim_configs, stop,
                                             simulate=not args.no_simulation,
                                             targets_file=args.targets_file))
