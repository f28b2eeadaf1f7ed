"""`fobs up` — the whole stack on one machine, under the monit-style supervisor.

It writes one config file per daemon under `DIR/etc`, builds a supervisor config in code and
runs the supervisor in this process: nats-server, influxd, the syslog aggregator, the
collector, the reference components and the alert evaluator, started in dependency order and
kept alive. Ctrl-C or SIGTERM stops everything in reverse order.

Every daemon is a child process (`python -m fobs …`), so a crash of one is a restart, never a
crash of the stack; and the children are exactly what a user would run by hand.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from fobs.components import daemon
from fobs.components.logs import process_logging
from fobs.credentials import INFLUX_ADMIN, INFLUX_READER
from fobs.plan import Stack, plan_stack, supervisor_config, write_configs, write_state

if TYPE_CHECKING:  # imported where used: `fobs up --help` needs none of them
    from fobs.syslog_agg.monit import Supervisor


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up", help="run the whole stack on this machine",
        description="Start nats-server, influxd, the syslog aggregator, the collector, the "
                    "reference components and the alert evaluator under the supervisor, and "
                    "keep them alive. Ctrl-C stops everything.")
    p.add_argument("--dir", type=Path, default=Path("var"),
                   help="where configs, data, logs and spools go (default ./var)")
    p.add_argument("--deas", type=int, default=2, help="number of DEAs (default 2)")
    p.add_argument("--routers", type=int, default=2, help="number of routers (default 2)")
    p.add_argument("--stagers", type=int, default=1, help="number of stagers (default 1)")
    p.add_argument("--collectors", type=int, default=1,
                   help="collectors sharing the fleet (rendezvous sharding; default 1)")
    p.add_argument("--nats-cluster", type=int, default=1, metavar="NODES",
                   help="run NATS as a cluster of this many routed nodes (default 1)")
    p.add_argument("--influx-url", metavar="URL",
                   help="use this InfluxDB (1.x /write API, database 'fobs') instead of "
                        "starting influxd")
    p.add_argument("--alertmanager", metavar="URL", help="post alerts to this Alertmanager")
    p.add_argument("--nats-component", metavar="USER:PASS", action="append",
                   help="a NATS user for a Cloud Foundry component that connects with plain "
                        "user and password: it may announce and answer discover (repeatable)")
    p.add_argument("--rules", metavar="FILE", type=Path, action="append",
                   help="alert rules file (*.rules.py, repeatable; default: fobs' own rules)")
    p.add_argument("--alert-interval", type=float, default=10.0,
                   help="alert evaluation interval in seconds (default 10)")
    p.add_argument("--cycle", type=float, default=2.0,
                   help="supervisor check cycle in seconds (default 2)")
    p.add_argument("--varz-interval", type=float, default=10.0,
                   help="collector /varz interval in seconds (default 10)")
    p.add_argument("--ready-timeout", type=float, default=90.0,
                   help="seconds to wait for every service to be OK (default 90)")
    p.add_argument("--log-level", default="INFO", help="log level of fobs up itself")
    p.set_defaults(handler=run)


def build_dashboards(stack: Stack) -> Path | None:
    if not stack.influx_url:
        return None
    from fobs.dashboards.build import BuildOptions, build
    from fobs.dashboards.grafana import DatasourceSettings
    out = stack.root / "grafana"
    build(BuildOptions(out=out, datasource=DatasourceSettings(
        url=stack.influx_url, database="fobs",
        user=INFLUX_READER if stack.start_influxd else ""),
                       rule_files=stack.rules))
    return out


def where(stack: Stack, sup: Supervisor, dashboards: Path | None) -> str:
    rows = [
        ("Supervisor status page", sup.http_url or "-"),
        ("Supervisor control", "fobs monit summary (here, or --stack DIR)"),
        *((f"Collector {i} targets" if stack.collectors > 1 else "Collector targets",
           f"http://{stack.collector_status(i)}/api/v1/targets")
          for i in range(stack.collectors)),
        ("NATS", ", ".join(stack.nats_urls)),
        ("InfluxDB (database fobs)", stack.influx_url or f"none: {stack.root / 'points.lp'}"),
        ("Syslog (UDP and TCP)", stack.syslog_address),
        ("Component logs", str(stack.root / "logs")),
        ("Process logs", str(stack.root / "run")),
        ("Grafana provisioning", str(dashboards / "provisioning") if dashboards else "-"),
        ("Addresses and credentials", str(stack.root / "stack.toml")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from fobs.syslog_agg.monit import Supervisor, render
    process_logging().configure(args.log_level)
    stack = plan_stack(args)
    if not stack.start_influxd and not args.influx_url:
        logger.warning("No influxd found (Debian package 'influxdb'): points go to {} instead "
                       "of InfluxDB, and alerts are not evaluated", stack.root / "points.lp")
    files = write_configs(stack)
    config = supervisor_config(stack, files, args.cycle)
    if stack.start_influxd:
        assert stack.influxd is not None
        from fobs.influxd import bootstrap_users
        bootstrap_users(stack.influxd, files["influxd"], stack.influx_url,
                        (INFLUX_ADMIN, stack.creds.influx_admin), "fobs",
                        (INFLUX_READER, stack.creds.influx_reader))
    write_state(stack)
    dashboards = build_dashboards(stack)

    async def main(stop: asyncio.Event) -> int:
        sup = Supervisor(config)
        await sup.start()
        try:
            all_ok = lambda: all(s["status"] == "OK" for s in sup.status()["services"])  # noqa: E731
            waiter = asyncio.create_task(sup.wait_for(all_ok, args.ready_timeout))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not stop.is_set():
                if waiter.exception() is not None:
                    waiter.cancel()
                    logger.warning("Not every service is OK after {:g} s; see {}",
                                   args.ready_timeout, stack.root / "run")
                print(render.summary(sup.status()), flush=True)
                print("fobs is up:\n" + where(stack, sup, dashboards), flush=True)
                print("Ctrl-C stops everything.", flush=True)
            else:
                waiter.cancel()
            await stop.wait()
        finally:
            await asyncio.shield(sup.stop())
        return 0

    return daemon.run(main)
