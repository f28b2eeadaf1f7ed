"""`fobs monit`: run the supervisor, or talk to a running one over its HTTP address.

    fobs monit -c FILE                 run the supervisor in the foreground
    fobs monit -c FILE -t              check the config file and exit
    fobs monit -c FILE summary         one line per service (monit's layout)
    fobs monit status [NAME]           details of every service, or of one
    fobs monit report                  up/down/initialising/unmonitored counts
    fobs monit start|stop|restart|monitor|unmonitor NAME

The client commands send the credentials (`--credentials USER:PASS`, else the config file's
[http] user and password) and never an Origin header: the supervisor refuses cross-origin
requests, and a refusal (401, 403) is one line saying what to give.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fobs import stack
from fobs.components import auth, daemon
from fobs.components.config import ConfigError, credentials_flag, host_port
from fobs.syslog_agg.monit import render
from fobs.syslog_agg.monit.config import DEFAULT_HTTP_ADDRESS, load_config
from fobs.syslog_agg.monit.supervisor import ACTIONS

REQUEST_TIMEOUT = 10.0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "monit", help="monit-style supervisor: run it, or query and control a running one",
        description="Run the monit-style supervisor (-c FILE), or query and control a running "
                    "one through its HTTP address (taken from the same file, or --url).")
    configure(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    _connection_flags(parser, None)
    parser.add_argument("-t", "--test", action="store_true",
                        help="check the config file and exit (with -c)")
    parser.add_argument("--log-level", default=None,
                        help="TRACE, DEBUG, INFO, WARNING or ERROR (default: the config's "
                             "component.log_level, else INFO)")
    commands = parser.add_subparsers(dest="monit_command", metavar="COMMAND")
    for name, text in (("summary", "one line per service: name, status, type"),
                       ("report", "how many services are up, down, initialising, unmonitored")):
        p = commands.add_parser(name, help=text, description=text)
        _connection_flags(p, argparse.SUPPRESS)
    p = commands.add_parser("status", help="details of every service, or of NAME",
                            description="Details of every service, or of NAME.")
    p.add_argument("name", nargs="?", metavar="NAME")
    _connection_flags(p, argparse.SUPPRESS)
    for action in ACTIONS:
        p = commands.add_parser(action, help=f"{action} service NAME",
                                description=f"Ask the running supervisor to {action} NAME.")
        p.add_argument("name", metavar="NAME")
        _connection_flags(p, argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def _connection_flags(p: argparse.ArgumentParser, default: Any) -> None:
    # On subcommands the default is SUPPRESS, so `-c` given before the subcommand survives.
    p.add_argument("-c", "--config", metavar="FILE", type=Path, default=default,
                   help="supervisor config file (TOML)")
    p.add_argument("--url", default=default,
                   help=f"status URL of a running supervisor (default: the config's "
                        f"[http] address, else http://{DEFAULT_HTTP_ADDRESS})")
    p.add_argument("--credentials", metavar="USER:PASS", default=default,
                   help="basic auth for the supervisor (default: the config's [http] user "
                        "and password)")
    stack.add_flag(p, default)


def handle(args: argparse.Namespace) -> int:
    command = getattr(args, "monit_command", None)
    if command is None:
        return _run(args)
    url, credentials = _endpoint(args)
    client = _Client(url, credentials)
    if command in ACTIONS:
        client.post(f"/service/{args.name}/{command}")
        print(f"'{args.name}' {command} requested")
        return 0
    if command == "status" and args.name:
        status = client.get(f"/status/{args.name}")
        print(render.details(status, args.name), end="")
        return 0
    status = client.get("/status")
    text = {"summary": render.summary, "report": render.report,
            "status": render.details}[command](status)
    print(text, end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.config is None:
        raise ConfigError("-c FILE is required to run the supervisor")
    config = load_config(args.config)
    if args.test:
        print(f"Control file syntax OK: {args.config} "
              f"({len(config.process)} processes, {len(config.program)} programs)")
        return 0
    from fobs.components.logs import process_logging
    from fobs.syslog_agg.monit.supervisor import Supervisor
    component = config.component
    level = args.log_level or (component.log_level if component else "INFO")
    process_logging().configure(level.upper(), component.syslog if component else None)
    supervisor = Supervisor(config)

    async def main(stop: asyncio.Event) -> int:
        try:
            return await supervisor.run(stop)
        except OSError as e:  # the status address is taken, and the like
            from loguru import logger
            logger.error("Cannot start the supervisor: {}", e.strerror or e)
            return 1
        finally:
            await process_logging().close()

    return daemon.run(main)


def _endpoint(args: argparse.Namespace) -> tuple[str, tuple[str, str] | None]:
    """The supervisor's URL and credentials: the flags first, then the config file, else the
    state of the stack `fobs up` runs (--stack DIR, or ./var) when neither -c nor --url is
    given."""
    url = getattr(args, "url", None)
    path = getattr(args, "config", None)
    flag = getattr(args, "credentials", None)
    running = stack.find(getattr(args, "stack", None)) if path is None and not url else None
    found = (endpoint(path) if path is not None
             else (running.supervisor.url, running.supervisor.credentials) if running
             else (f"http://{DEFAULT_HTTP_ADDRESS}", None))
    credentials = credentials_flag(flag) if flag else found[1]
    return (url.rstrip("/") if url else found[0]), credentials


def endpoint(path: Path) -> tuple[str, tuple[str, str] | None]:
    """URL and credentials of the supervisor a config file describes (its [http] section)."""
    http = load_config(path).http
    if not http.address:
        raise ConfigError(f"{path}: http.address is empty: the supervisor serves no status")
    host, port = host_port(http.address, "http.address")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}", (http.user, http.password) if http.user else None


class _Client:
    """Blocking HTTP to the supervisor: a CLI command makes one request and exits."""

    def __init__(self, url: str, credentials: tuple[str, str] | None) -> None:
        self.url = url
        self.credentials = credentials
        self.headers = {"Accept": "application/json"}
        if credentials:
            self.headers["Authorization"] = auth.basic_auth_header(*credentials)

    def get(self, path: str) -> dict[str, Any]:
        return self._call(urllib.request.Request(self.url + path, headers=self.headers))

    def post(self, path: str) -> dict[str, Any]:
        return self._call(urllib.request.Request(self.url + path, data=b"", method="POST",
                                                 headers=self.headers))

    def _call(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as e:
            try:
                reason = json.load(e).get("error", e.reason)
            except (ValueError, AttributeError):
                reason = e.reason
            if e.code == 401:
                given = "were refused" if self.credentials else "are needed"
                raise ConfigError(f"the supervisor at {self.url} says: {reason} (HTTP 401): "
                                  f"credentials {given}; give --credentials USER:PASS or -c "
                                  f"FILE with [http] user and password") from None
            if e.code == 403:
                raise ConfigError(f"the supervisor at {self.url} refused the request "
                                  f"(HTTP 403): {reason}") from None
            raise ConfigError(f"{reason} (HTTP {e.code} from {self.url})") from None
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", None) or e
            raise ConfigError(f"cannot reach the supervisor at {self.url}: "
                              f"{getattr(why, 'strerror', None) or why}") from None
        except ValueError:
            raise ConfigError(f"{self.url} did not answer with JSON: is it a fobs "
                              f"supervisor?") from None
