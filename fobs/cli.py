"""`fobs` — one command, one subcommand per daemon or tool.

Each package contributes its subcommands through `add_commands(subparsers)` in its own `cli`
module, so this file only knows the list of packages. A subcommand's handler returns an exit
code; a `ConfigError` (a user mistake) is printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fobs.components.config import ConfigError

# Modules that define add_commands(subparsers); order is the order in `fobs --help`.
COMMAND_MODULES = (
    "fobs.up",
    "fobs.components.cli",
    "fobs.collector.cli",
    "fobs.syslog_agg.cli",
    "fobs.syslog_agg.monit.cli",
    "fobs.dashboards.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fobs",
        description="Observability for fleets of services that expose /varz and /healthz.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that part of fobs is not built yet
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as e:
        print(f"fobs {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
