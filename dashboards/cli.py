"""`fobs dashboards …` and `fobs alerts …`: build Grafana files, run and test alert rules."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from fobs.components.config import ConfigError, load

DEFAULT_OUT = Path("grafana")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_dashboards(sub)
    add_alerts(sub)


# -- dashboards ---------------------------------------------------------------------------

def add_dashboards(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "dashboards", help="build the Grafana dashboards and provisioning files",
        description="Grafana dashboards (written with grafanalib) and the provisioning files "
                    "a stock Grafana needs to show them and to evaluate the alert rules.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_dashboard_actions(commands)


def add_dashboard_actions(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    build = commands.add_parser(
        "build", help="write dashboard JSON and Grafana provisioning files",
        description="Write OUT/dashboards/*.json and OUT/provisioning/{datasources,dashboards,"
                    "alerting}/fobs.yaml. Start Grafana with GF_PATHS_PROVISIONING="
                    "OUT/provisioning to load them (see docs/dashboards.md).")
    build.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                       help=f"output directory (default ./{DEFAULT_OUT})")
    build.add_argument("--influxdb-url", default="http://127.0.0.1:8086", metavar="URL",
                       help="InfluxDB URL as Grafana reaches it (default http://127.0.0.1:8086)")
    build.add_argument("--database", default="fobs",
                       help="InfluxDB database the collector writes (default fobs)")
    build.add_argument("--influxdb-user", default="", metavar="USER",
                       help="InfluxDB user; the password is read by Grafana from "
                            "$FOBS_INFLUXDB_PASSWORD")
    build.add_argument("--dashboards-path", default="", metavar="PATH",
                       help="OUT/dashboards as Grafana sees it, e.g. inside a container "
                            "(default: its absolute path here)")
    build.add_argument("--rules", action="append", default=[], metavar="FILE",
                       help="*.rules.py file (repeatable; default: fobs' shipped rules)")
    build.add_argument("--evaluate-every", default="10s", metavar="DURATION",
                       help="Grafana alert group evaluation interval (default 10s)")
    build.set_defaults(handler=run_build)

    check = commands.add_parser(
        "check", help="check the dashboards offline (ids, grid, refIds, variables, "
                      "datasources, $timeFilter)",
        description="Run fobs' offline dashboard checks; exit 1 when a problem is found.")
    check.set_defaults(handler=run_check)

    verify = commands.add_parser(
        "verify", help="run every panel query against InfluxDB; fail on panels without data",
        description="Resolve the template variables with their SHOW TAG VALUES queries "
                    "(all values selected), run every panel query as Grafana would (macros "
                    "substituted, $timeFilter = the last --last) and report the queries that "
                    "fail or return no data; exit 1 if any.")
    verify.add_argument("--influxdb", default="http://127.0.0.1:8086", metavar="URL",
                        help="InfluxDB URL (default http://127.0.0.1:8086)")
    verify.add_argument("--database", default="fobs", help="database (default fobs)")
    verify.add_argument("--last", default="15m", metavar="DURATION",
                        help="time range, as Grafana's 'Last 15 minutes' (default 15m)")
    verify.add_argument("--interval", default="10s", metavar="DURATION",
                        help="what $__interval becomes (default 10s)")
    verify.set_defaults(handler=run_verify)


def run_build(args: argparse.Namespace) -> int:
    from fobs.dashboards.build import BuildOptions, build
    from fobs.dashboards.grafana import DatasourceSettings
    from fobs.dashboards.influxql import parse_duration
    try:
        parse_duration(args.evaluate_every)
    except ValueError as e:
        raise ConfigError(f"--evaluate-every: {e}") from None
    options = BuildOptions(
        out=args.out,
        datasource=DatasourceSettings(url=args.influxdb_url, database=args.database,
                                      user=args.influxdb_user),
        dashboards_path=args.dashboards_path, rule_files=tuple(args.rules),
        evaluate_every=args.evaluate_every)
    written = build(options)
    for what, path in written.items():
        print(f"{what:28} {path}")
    print(f"\nStart Grafana with GF_PATHS_PROVISIONING={(args.out / 'provisioning').resolve()}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from fobs.dashboards.build import load_dashboards
    from fobs.dashboards.checks import check_all
    from fobs.dashboards.grafana import DATASOURCE_UID
    dashboards = load_dashboards()
    problems = check_all(dashboards, {DATASOURCE_UID})
    for problem in problems:
        print(problem)
    panels = sum(len(d.get("panels") or []) for d in dashboards.values())
    print(f"{len(dashboards)} dashboards, {panels} panels: "
          f"{len(problems) or 'no'} problem{'s' if len(problems) != 1 else ''}")
    return 1 if problems else 0


def run_verify(args: argparse.Namespace) -> int:
    from fobs.dashboards.build import load_dashboards
    from fobs.dashboards.influxql import parse_duration
    from fobs.dashboards.verify import verify
    try:
        parse_duration(args.last)
        interval = parse_duration(args.interval)
    except ValueError as e:
        raise ConfigError(f"--last/--interval: {e}") from None
    report = asyncio.run(verify(load_dashboards(), args.influxdb, args.database, args.last,
                                interval))
    for problem in report.problems:
        print(problem)
    print(f"{report.with_data}/{report.queries} panel queries returned data")
    return 1 if report.problems else 0


# -- alerts -------------------------------------------------------------------------------

def add_alerts(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "alerts", help="evaluate alert rules against InfluxDB, or unit-test them",
        description="fobs' alert rules (dashboards/fobs.rules.py): list them, evaluate them "
                    "live, or unit-test them like `promtool test rules`.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = commands.add_parser(
        "run", help="evaluate the rules on a schedule; publish changes on NATS and send "
                    "alerts to Alertmanager",
        description="Evaluate the alert rules every evaluation.interval seconds against "
                    "InfluxDB. Each state change (pending, firing, resolved, inactive) is "
                    "published on NATS (fobs.alerts); firing and resolved alerts are POSTed "
                    "to each Alertmanager in alertmanager.urls. SIGTERM stops cleanly.")
    run.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    run.add_argument("--influxdb", metavar="URL", help="InfluxDB URL (influxdb.url)")
    run.add_argument("--database", help="InfluxDB database (influxdb.database)")
    run.add_argument("--alertmanager", metavar="URL", action="append",
                     help="Alertmanager URL (repeatable; alertmanager.urls)")
    run.add_argument("--nats", metavar="URL[,URL...]", help="NATS server URL(s)")
    run.add_argument("--interval", type=float, metavar="SECONDS",
                     help="evaluation interval (evaluation.interval, default 10)")
    run.add_argument("--rules", action="append", metavar="FILE",
                     help="*.rules.py file (repeatable; default: fobs' shipped rules)")
    run.set_defaults(handler=run_alerts)

    test = commands.add_parser(
        "test", help="unit-test alert rules (like promtool test rules)",
        description="Run rule test files (TOML, or YAML with PyYAML): each test group's input "
                    "series are loaded into a throw-away database of a real InfluxDB and the "
                    "rules are evaluated at each evaluation_interval with the production "
                    "queries. Prints SUCCESS or FAILED with exp/got; exits 1 on any failure. "
                    "Without --influxdb (or $FOBS_INFLUXDB_URL) a private influxd is started "
                    "for the run.")
    test.add_argument("files", nargs="+", type=Path, metavar="FILE")
    test.add_argument("--run", metavar="REGEX",
                      help="only the test groups whose name matches REGEX")
    test.add_argument("--influxdb", metavar="URL", default=os.environ.get("FOBS_INFLUXDB_URL"),
                      help="InfluxDB 1.x to use (default $FOBS_INFLUXDB_URL, else start one)")
    test.set_defaults(handler=run_rule_tests)

    rules = commands.add_parser("rules", help="list the alert rules",
                                description="Print each rule: condition, for, window, query.")
    rules.add_argument("--rules", action="append", metavar="FILE",
                       help="*.rules.py file (repeatable; default: fobs' shipped rules)")
    rules.set_defaults(handler=run_list)


def alerts_config(args: argparse.Namespace) -> object:
    from fobs.dashboards.alertd import AlertsConfig
    overrides = {
        "influxdb.url": args.influxdb,
        "influxdb.database": args.database,
        "alertmanager.urls": args.alertmanager,
        "component.nats.servers": args.nats.split(",") if args.nats else None,
        "evaluation.interval": args.interval,
        # flags are relative to the working directory, file entries to the config file
        "evaluation.rule_files": [str(Path(r).resolve()) for r in args.rules]
        if args.rules else None,
    }
    return load(AlertsConfig, args.config, overrides)


def run_alerts(args: argparse.Namespace) -> int:
    from fobs.components import daemon
    from fobs.components.logs import process_logging
    from fobs.dashboards.alertd import AlertDaemon
    config = alerts_config(args)
    rules = config.rules(args.config.parent if args.config else None)  # type: ignore[attr-defined]
    process_logging().configure(config.component.log_level,  # type: ignore[attr-defined]
                                config.component.syslog)  # type: ignore[attr-defined]

    async def main(stop: asyncio.Event) -> int:
        code = await AlertDaemon(config, rules).run(stop)  # type: ignore[arg-type]
        await process_logging().close()
        return code

    return daemon.run(main)


def run_rule_tests(args: argparse.Namespace) -> int:
    import re

    from fobs.dashboards.influxd import TemporaryInfluxd
    from fobs.dashboards.ruletest import run_tests
    if args.run:
        try:
            re.compile(args.run)
        except re.error as e:
            raise ConfigError(f"--run: invalid regex: {e}") from None
    if args.influxdb:
        return run_tests(args.files, args.influxdb, args.run)
    with TemporaryInfluxd() as url:
        return run_tests(args.files, url, args.run)


def run_list(args: argparse.Namespace) -> int:
    from fobs.dashboards.errors import RuleError
    from fobs.dashboards.rules import load_rules
    try:
        rules = load_rules(args.rules or ())
    except RuleError as e:
        raise ConfigError(str(e)) from None
    for rule in rules:
        labels = ", ".join(f"{k}={v}" for k, v in rule.labels.items())
        print(f"{rule.name}: {rule.reduce} {rule.condition} over {rule.window}, "
              f"for {rule.for_} [{labels}]\n    {rule.query}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m fobs.dashboards [build|check] [options]` (build when no action is given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "build")
    parser = argparse.ArgumentParser(prog="python -m fobs.dashboards",
                                     description="Build or check fobs' Grafana dashboards.")
    add_dashboard_actions(parser.add_subparsers(dest="action", metavar="ACTION",
                                                required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as e:
        print(f"python -m fobs.dashboards: error: {e}", file=sys.stderr)
        return 2
