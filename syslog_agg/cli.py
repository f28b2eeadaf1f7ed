"""`fobs syslog` runs the aggregator; `fobs tail <component>` follows a component's messages."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from fobs import stack
from fobs.components import daemon
from fobs.components.config import ConfigError, host_port, load
from fobs.components.logs import process_logging
from fobs.syslog_agg.config import SyslogAggConfig

__all__ = ["add_commands", "main"]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "syslog", help="run the syslog aggregator",
        description="Receive syslog (UDP, TCP, TLS; RFC 5424 and 3164), write one file per "
                    "component and day, count messages in /varz, publish a live tail on NATS. "
                    "Flags override the config file.")
    add_syslog_flags(p)
    p.set_defaults(handler=run_syslog)
    t = sub.add_parser(
        "tail", help="follow a component's syslog messages live (over NATS)",
        description="Print the messages the aggregator publishes on NATS <prefix>.<component> "
                    "(rate-limited by the aggregator) until interrupted.")
    t.add_argument("component", help="component name, or '*' for all")
    t.add_argument("--config", metavar="FILE", type=Path,
                   help="aggregator config file (for [component.nats] and [tail])")
    t.add_argument("--nats", metavar="URL[,URL...]",
                   help="NATS server URL(s) (default: the stack's, else nats://127.0.0.1:4222)")
    stack.add_flag(t)
    t.add_argument("--prefix", help="subject prefix (default logs)")
    t.add_argument("--json", action="store_true", help="print the JSON objects as received")
    t.add_argument("-n", "--count", type=int, default=0,
                   help="exit after this many messages (default: follow forever)")
    t.set_defaults(handler=run_tail)


def add_syslog_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", type=Path, help="TOML config file")
    p.add_argument("--udp", metavar="HOST:PORT", help="UDP listen address ('' = none; "
                   "default 0.0.0.0:5514)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="TCP listen address ('' = none; "
                   "default 0.0.0.0:5514)")
    p.add_argument("--store", metavar="DIR", help="root of the log files (default /var/log/fobs)")
    p.add_argument("--format", choices=("text", "json"), help="line format (default text)")
    p.add_argument("--nats", metavar="URL[,URL...]",
                   help="NATS server URL(s) (default nats://127.0.0.1:4222)")


def load_config(args: argparse.Namespace) -> SyslogAggConfig:
    for flag in ("udp", "tcp"):
        value = getattr(args, flag)
        if value:
            host_port(value, f"--{flag}")
    return load(SyslogAggConfig, args.config, {
        "listen.udp": args.udp,
        "listen.tcp": args.tcp,
        "store.root": args.store,
        "store.format": args.format,
        "component.nats.servers": args.nats.split(",") if args.nats else None,
    })


def run_syslog(args: argparse.Namespace) -> int:
    config = load_config(args)
    process_logging().configure(config.component.log_level, config.component.syslog)
    from fobs.syslog_agg.server import Aggregator

    async def main(stop: asyncio.Event) -> int:
        agg = Aggregator(config)
        try:
            await agg.start()
        except OSError as e:
            raise ConfigError(f"cannot listen: {e.strerror or e}") from None
        await stop.wait()
        await agg.stop()
        await process_logging().close()
        return 0

    return daemon.run(main)


def format_human(obj: dict[str, Any]) -> str:
    """`timestamp host app[pid]: message`, like a classic syslog file."""
    stamp = obj.get("timestamp") or obj.get("received_at") or "-"
    app = obj.get("app_name") or "-"
    if obj.get("procid"):
        app += f"[{obj['procid']}]"
    text = obj.get("message") if obj.get("format") != "unparsed" else obj.get("raw")
    return f"{stamp} {obj.get('hostname') or obj.get('peer') or '-'} {app}: {text or ''}"


def run_tail(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        "component.nats.servers": args.nats.split(",") if args.nats else None,
        "tail.subject_prefix": args.prefix}
    running = stack.find(args.stack) if not args.config and not args.nats else None
    if running is not None:   # fobs up's bus, as its read-only operator user
        overrides.update({"component.nats.servers": list(running.nats_servers),
                          "component.nats.user": running.nats_operator.user,
                          "component.nats.password": running.nats_operator.password})
    config = load(SyslogAggConfig, args.config, overrides)
    process_logging().configure("WARNING")  # stdout is for the messages, stderr for trouble
    from fobs.components.bus import Bus
    from fobs.syslog_agg.tail import subject_for
    from fobs.syslog_agg.text import escape_controls

    component = args.component
    subject = (f"{config.tail.subject_prefix}.*" if component in ("*", ">")
               else subject_for(config.tail.subject_prefix, component))

    async def main(stop: asyncio.Event) -> int:
        bus = await Bus.connect(config.component.nats, "fobs-tail")
        seen = 0
        done = asyncio.Event()

        async def on_message(msg: Any) -> None:
            nonlocal seen
            if done.is_set():
                return
            if args.json:
                line = msg.data.decode(errors="replace")
            else:
                try:
                    line = format_human(json.loads(msg.data))
                except ValueError:
                    line = msg.data.decode(errors="replace")
            print(escape_controls(line), flush=True)  # the sender's text meets a terminal
            seen += 1
            if args.count and seen >= args.count:
                done.set()

        await bus.client.subscribe(subject, cb=on_message)
        await bus.client.flush()
        print(f"# following {subject}", file=sys.stderr, flush=True)
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(done.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        await bus.close()
        return 0

    return daemon.run(main)


def main(argv: list[str] | None = None) -> int:
    """`python -m fobs.syslog_agg [flags]`: the same as `fobs syslog [flags]`."""
    parser = argparse.ArgumentParser(prog="python -m fobs.syslog_agg",
                                     description="Run the fobs syslog aggregator.")
    add_syslog_flags(parser)
    args = parser.parse_args(argv)
    try:
        return run_syslog(args)
    except ConfigError as e:
        print(f"syslog_agg: error: {e}", file=sys.stderr)
        return 2
