"""`fobs collector` (the daemon, `--once`, `--check`) and `fobs status` (the targets table)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

import uvloop

from fobs import stack
from fobs.collector.config import CollectorConfig
from fobs.collector.config import load_config as load_file
from fobs.components import daemon
from fobs.components.config import ConfigError, credentials_flag
from fobs.components.logs import process_logging

DEFAULT_STATUS_URL = "http://127.0.0.1:9190"
# A fleet is millions of long-lived objects (targets, jobs, connections) and every scrape
# allocates thousands of short-lived ones: with CPython's default gen0 threshold of 700 the
# collector spent ~40 % of its CPU re-walking the long-lived ones (benchmarks/scrape, 10,000
# targets). Collecting gen0 every 50,000 allocations keeps the same cycles collected, later.
GC_THRESHOLDS = (50_000, 20, 100)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "collector", help="discover components over NATS, scrape /varz and /healthz, "
                          "write to InfluxDB",
        description="Run the collector: discover components (NATS announce/discover and "
                    "static targets), scrape their /varz and /healthz on a schedule, and write "
                    "the points to InfluxDB through a disk spool. Flags override the config "
                    "file.")
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="TOML config file (see collector/fobs-collector.toml)")
    p.add_argument("--nats", metavar="URL[,URL...]",
                   help="NATS server URL(s) (default nats://127.0.0.1:4222)")
    p.add_argument("--influx-url", metavar="URL", help="InfluxDB URL; with --influx-db the "
                   "1.x /write API, with --influx-org/--influx-bucket/--influx-token the 2.x API")
    p.add_argument("--influx-db", metavar="DB", help="InfluxDB 1.x database")
    p.add_argument("--influx-org", metavar="ORG", help="InfluxDB 2.x organisation")
    p.add_argument("--influx-bucket", metavar="BUCKET", help="InfluxDB 2.x bucket")
    p.add_argument("--influx-token", metavar="TOKEN", help="InfluxDB 2.x API token")
    p.add_argument("--spool-dir", metavar="DIR", help="directory of the disk spools")
    p.add_argument("--varz-interval", metavar="S", type=float,
                   help="seconds between /varz scrapes (default 10)")
    p.add_argument("--healthz-interval", metavar="S", type=float,
                   help="seconds between /healthz scrapes (default 5)")
    p.add_argument("--status", metavar="HOST:PORT",
                   help="address of the status API (default 127.0.0.1:9190)")
    p.add_argument("--log-level", help="TRACE, DEBUG, INFO, WARNING, ERROR (default INFO)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true",
                      help="discover, scrape every target once, print the points as line "
                           "protocol and exit; writes nothing")
    mode.add_argument("--check", action="store_true",
                      help="exit 0 if the running collector's /healthz says ok, else 1")
    mode.add_argument("--drain", metavar="SPOOL_DIR",
                      help="write what a dead collector spooled in SPOOL_DIR to this config's "
                           "outputs, then exit (0 = nothing left; docs/collector.md)")
    p.add_argument("--wait", metavar="S", type=float, default=None,
                   help="with --once: seconds to gather discover replies (default 2); with "
                        "--drain: the longest to wait for the spool to empty (default 300)")
    p.set_defaults(handler=run)

    s = sub.add_parser(
        "status", help="components the collector scrapes, and the supervisor's processes",
        description="Print the components a running collector knows, from its status API "
                    "(type, index, host, up, healthy, last scrape and last error), then the "
                    "supervisor's process table when a supervisor answers (as under fobs up).")
    s.add_argument("--collector", metavar="URL", default=None,
                   help=f"the collector's status URL (default: the stack's, else "
                        f"{DEFAULT_STATUS_URL})")
    s.add_argument("--credentials", metavar="USER:PASS",
                   help="basic auth, when the collector's [status] sets user and password "
                        "(default: the stack's)")
    s.add_argument("--supervisor", metavar="URL", default=None,
                   help="the supervisor's status URL (default: the stack's, else "
                        "http://127.0.0.1:2812; '' = don't ask)")
    s.add_argument("--supervisor-credentials", metavar="USER:PASS",
                   help="basic auth for the supervisor's status (default: the stack's)")
    stack.add_flag(s)
    s.add_argument("--json", action="store_true", help="print the raw targets document")
    s.set_defaults(handler=status)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config keys from the flags (None = not given)."""
    values: dict[str, Any] = {
        "component.nats.servers": args.nats.split(",") if args.nats else None,
        "scrape.varz_interval": args.varz_interval,
        "scrape.healthz_interval": args.healthz_interval,
        "status.address": args.status,
        "component.log_level": args.log_level,
    }
    values.update(output_overrides(args))
    return values


def output_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The --influx-* flags as one InfluxDB output (replacing the file's of that kind)."""
    values: dict[str, Any] = {"outputs.spool_dir": args.spool_dir}
    v2 = {k: v for k, v in (("org", args.influx_org), ("bucket", args.influx_bucket),
                            ("token", args.influx_token)) if v is not None}
    if v2 and args.influx_db is not None:
        raise ConfigError("--influx-db: the 1.x database and the 2.x --influx-org/"
                          "--influx-bucket/--influx-token do not go together")
    url = {"url": args.influx_url} if args.influx_url is not None else {}
    if v2:
        values["outputs.influxdb_v2"] = [{**url, **v2}]
    elif url or args.influx_db is not None:
        db = {"database": args.influx_db} if args.influx_db is not None else {}
        values["outputs.influxdb_v1"] = [{**url, **db}]
    return values


def load_config(args: argparse.Namespace) -> CollectorConfig:
    return load_file(args.config, overrides(args))


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.check:
        return check(config)
    process_logging().configure(config.component.log_level, config.component.syslog)
    gc.set_threshold(*GC_THRESHOLDS)
    if args.once:
        return once(config, 2.0 if args.wait is None else args.wait)
    if args.drain:
        from fobs.collector.handover import drain
        done = asyncio.run(drain(config.outputs, args.drain,
                                 300.0 if args.wait is None else args.wait))
        print(f"{done.written} points written, {done.left} left in {args.drain}")
        return 0 if done.left == 0 else 1
    from fobs.collector.daemon import Collector

    async def main(stop: asyncio.Event) -> int:
        collector = Collector(config)
        code = await collector.run(stop)
        await process_logging().close()
        return code

    return daemon.run(main, loop_factory=uvloop.new_event_loop)   # README: dependencies


def once(config: CollectorConfig, wait: float) -> int:
    from fobs.collector.daemon import collect_once
    from fobs.collector.lineprotocol import encode
    try:
        points = asyncio.run(collect_once(config, wait))
    except OSError as e:
        print(f"fobs collector --once: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(encode(points))
    sys.stdout.flush()
    return 0


def check(config: CollectorConfig) -> int:
    from fobs.collector.status import fetch
    if not config.status.address:
        raise ConfigError("--check: the status API is disabled (status.address is empty)")
    url = f"http://{config.status.address}"
    credentials = (config.status.user, config.status.password) if config.status.user else None
    try:
        code, body = fetch(url, "/healthz", timeout=5.0, credentials=credentials)
    except OSError as e:
        print(f"collector at {url} is not answering: {e}", file=sys.stderr)
        return 1
    text = body.decode(errors="replace").strip()
    if code == 200:
        print(text or "ok")
        return 0
    print(f"collector unhealthy (HTTP {code}): {text}", file=sys.stderr)
    return 1


def status(args: argparse.Namespace) -> int:
    from fobs.collector.status import fetch_targets, print_components
    running = stack.find(args.stack)   # what fobs up wrote: addresses and credentials
    collector = args.collector or (running.collector.url if running else DEFAULT_STATUS_URL)
    credentials = (credentials_flag(args.credentials) if args.credentials
                   else running.collector.credentials if running and not args.collector
                   else None)
    try:
        document = fetch_targets(collector, credentials=credentials)
    except (OSError, ValueError) as e:
        print(f"fobs status: cannot read {collector}: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(document, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print_components(document)
    if args.supervisor != "":
        url, found = ((running.supervisor.url, running.supervisor.credentials) if running
                      else ("http://127.0.0.1:2812", None))
        if args.supervisor and args.supervisor.rstrip("/") != url:
            url, found = args.supervisor.rstrip("/"), None
        print_supervisor(url, credentials_flag(
            args.supervisor_credentials, "--supervisor-credentials")
            if args.supervisor_credentials else found)
    return 0


def print_supervisor(url: str, credentials: tuple[str, str] | None = None) -> None:
    """The supervisor's process table in monit's summary layout, if one answers at `url`."""
    import urllib.error
    import urllib.request

    from fobs.components.auth import basic_auth_header
    from fobs.syslog_agg.monit import render
    headers = {"Authorization": basic_auth_header(*credentials)} if credentials else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/status", headers=headers),
                                    timeout=5) as resp:
            supervisor = json.load(resp)
    except urllib.error.HTTPError as e:
        print(f"\n(the supervisor at {url} refused: HTTP {e.code}"
              + ("; give --supervisor-credentials USER:PASS)" if e.code == 401 else ")"))
        return
    except (OSError, ValueError) as e:
        print(f"\n(no supervisor at {url}: {e})")
        return
    print()
    print(render.summary(supervisor), end="")
