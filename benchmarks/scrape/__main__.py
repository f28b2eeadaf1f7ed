"""Scrape cost, storage counted: fobs collector + influxd, Prometheus, vmagent + victoria-metrics.

    python -m benchmarks.scrape [--quick] [--targets N] [--interval S] [--window S] [--runs R]
                                [--modes small,realistic,cf] [--sides fobs,prometheus,vmagent]
                                [--fleet-procs P] [--batch-size N] [--gzip|--no-gzip] [--keep DIR]

For each payload mode a fleet of N components registers on a private nats-server (credentials
u:p) and writes Prometheus file_sd targets; then, one after the other on that fleet (never at
once), each side scrapes it every interval and stores what it scraped (sides.py):

- small: `fobs component fleet --no-simulation` (a /varz of ~380 bytes; ~18 values a scrape);
- realistic: `fobs component fleet` (default mix dea=8,router=2,stager=1 with its simulation:
  DEAs with instance registries, routers with route tables; 5–10 KB a varz);
- cf: `benchmarks.scrape.cffleet`, the real Cloud Foundry payloads (dea_ng 20 KB, gorouter,
  cloud_controller, a gateway) from cloudfoundry-attic/collector's fixtures.

Prometheus and vmagent scrape the same components' /metrics. Per side it prints scrapes done /
expected, CPU per scrape of each process and their sum (ms), values stored per scrape, CPU per
stored value (µs), peak RSS, the fleet's CPU (% of one core: a fleet near 100 % per process is
the bottleneck, not the side), and for fobs the memory per target above an idle collector.
The ratios compare fobs with each other side, per scrape and per stored value. Every figure is
the median over R runs (the sides take turns within each run).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scrape import sides
from benchmarks.scrape.procs import Processes, free_ports, wait_until
from benchmarks.scrape.sides import Figures, Setup

MODES = ("small", "realistic", "cf")
SIDES = ("fobs", "prometheus", "vmagent")


def start_nats(procs: Processes) -> str:
    import urllib.request
    port, monitor = free_ports(2)
    procs.start("nats", ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)])
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz",
                                              timeout=1).status == 200, "nats-server", 20)
    return f"nats://127.0.0.1:{port}"


def start_fleet(procs: Processes, mode: str, nats_url: str, targets: int, parts: int
                ) -> tuple[list[dict[str, Any]], list[int]]:
    """Start the fleet of `mode` in `parts` processes: (file_sd groups, pids)."""
    files, pids = [], []
    for i in range(parts):
        count = targets // parts + (1 if i < targets % parts else 0)
        path = procs.workdir / f"targets-{mode}-{i}.json"
        files.append(path)
        if mode == "cf":
            cmd = [sys.executable, "-m", "benchmarks.scrape.cffleet", "--count", str(count),
                   "--credentials", f"{sides.USER}:{sides.PASSWORD}", "--targets-file",
                   str(path), "--nats", nats_url]
        else:
            cmd = [sys.executable, "-m", "fobs", "component", "fleet", "--count", str(count),
                   "--credentials", f"{sides.USER}:{sides.PASSWORD}", "--targets-file",
                   str(path), "--nats", nats_url, "--log-level", "WARNING"]
            if mode == "small":
                cmd.append("--no-simulation")
        pids.append(procs.start(f"fleet-{mode}-{i}", cmd).pid)
    wait_until(lambda: all(f.exists() and f.stat().st_size for f in files), "the fleet",
               timeout=60 + targets / 20)
    groups: list[dict[str, Any]] = []
    for f in files:
        groups.extend(json.loads(f.read_text()))
    return groups, pids


def median(runs: list[Figures]) -> Figures:
    """A Figures whose every number is the median over the runs."""
    def med(values: list[float]) -> float:
        return float(statistics.median(values))
    first = runs[0]
    return Figures(
        first.side, med([r.window for r in runs]), int(med([r.scrapes for r in runs])),
        int(med([r.expected for r in runs])), int(med([r.late for r in runs])),
        med([r.values for r in runs]),
        {k: med([r.cpu[k] for r in runs]) for k in first.cpu},
        {k: med([r.rss_mb[k] for r in runs]) for k in first.rss_mb},
        med([r.fleet_cpu for r in runs]), med([r.idle_rss_mb for r in runs]),
        med([r.end_rss_mb for r in runs]))


HEADER = (f"{'side':<11} {'scrapes':>8} {'expected':>8} {'done %':>7} {'late':>5} "
          f"{'ms/scrape':>10} {'values':>7} {'µs/value':>9} {'fleet %':>8}  per process")


def row(f: Figures, targets: int) -> str:
    done = 100 * f.scrapes / f.expected if f.expected else float("nan")
    parts = ", ".join(f"{name} {f.ms_per_scrape(cpu):.3f} ms ({cpu / f.values * 1e6:.2f} µs/value)"
                      f" {f.rss_mb[name]:.0f} MB" for name, cpu in f.cpu.items() if f.values)
    if f.idle_rss_mb:
        peak = (f.rss_mb["collector"] - f.idle_rss_mb) * 1024 / targets
        end = (f.end_rss_mb - f.idle_rss_mb) * 1024 / targets
        parts += (f"; collector above idle ({f.idle_rss_mb:.0f} MB): {peak:.1f} KB/target at "
                  f"its peak, {end:.1f} at the end")
    fleet = 100 * f.fleet_cpu / f.window
    return (f"{f.side:<11} {f.scrapes:>8} {f.expected:>8} {done:>7.2f} {f.late:>5} "
            f"{f.ms_per_scrape(f.cpu_total):>10.3f} {f.values_per_scrape:>7.1f} "
            f"{f.us_per_value:>9.2f} {fleet:>8.0f}  {parts}")


def ratios(figures: dict[str, Figures]) -> str:
    fobs = figures.get("fobs")
    if fobs is None:
        return ""
    out = []
    for name, other in figures.items():
        if name != "fobs" and other.scrapes and fobs.scrapes:
            per_scrape = fobs.ms_per_scrape(fobs.cpu_total) / other.ms_per_scrape(other.cpu_total)
            per_value = fobs.us_per_value / other.us_per_value
            out.append(f"fobs / {name}: {per_scrape:.2f}× CPU per scrape, "
                       f"{per_value:.2f}× CPU per stored value")
    return "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 targets, 8 s windows, one run (a smoke test, not figures)")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (medians)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--fleet-procs", type=int, default=0,
                        help="fleet processes (default: one per 250 targets, 2 to 16)")
    parser.add_argument("--batch-size", type=int, help="fobs output batch_size")
    parser.add_argument("--gzip", action=argparse.BooleanOptionalAction, default=None,
                        help="fobs output gzip (default: the output's default)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run the collector under cProfile; print its top functions and "
                             "keep the stats in DIR (the CPU figures are then not comparable)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (logs, configs) instead of a temp dir")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # children stopped in finally
    if args.quick:
        args.targets, args.window, args.runs = min(args.targets, 200), 8.0, 1
    modes = [m for m in args.modes.split(",") if m]
    chosen = [s for s in args.sides.split(",") if s]
    if not set(modes) <= set(MODES) or not set(chosen) <= set(SIDES):
        parser.error(f"--modes from {', '.join(MODES)}; --sides from {', '.join(SIDES)}")
    parts = args.fleet_procs or max(2, min(16, -(-args.targets // 250)))
    writes: dict[str, Any] = {}
    if args.batch_size:
        writes["batch_size"] = args.batch_size
    if args.gzip is not None:
        writes["gzip"] = args.gzip
    with tempfile.TemporaryDirectory(prefix="fobs-bench-scrape-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        procs = Processes(workdir)
        try:
            nats_url = start_nats(procs)
            for mode in modes:
                began = time.monotonic()
                groups, pids = start_fleet(procs, mode, nats_url, args.targets, parts)
                print(f"\n== {mode}: {args.targets} components in {parts} fleet processes "
                      f"(up in {time.monotonic() - began:.0f}s); every {args.interval:g}s, "
                      f"{args.window:g}s windows, {args.runs} run(s)", flush=True)
                setup = Setup(procs, nats_url, groups, args.targets, args.interval, args.window,
                              pids, writes)
                runs: dict[str, list[Figures]] = {s: [] for s in chosen}
                for r in range(args.runs):
                    for side in chosen:
                        if args.profile:
                            args.profile.mkdir(parents=True, exist_ok=True)
                            setup.profile = args.profile / f"collector-{mode}-{r + 1}.prof"
                        figures = run_side(side, setup)
                        if side == "fobs" and setup.profile:
                            top(setup.profile)
                        runs[side].append(figures)
                        print(f"  run {r + 1}: {row(figures, args.targets)}", flush=True)
                medians = {side: median(results) for side, results in runs.items()}
                print(f"median of {args.runs}:\n{HEADER}")
                for figures in medians.values():
                    print(row(figures, args.targets))
                print(ratios(medians), flush=True)
                for pid in pids:
                    proc = next(p for p in procs.procs if p.pid == pid)
                    procs.stop(proc)
        finally:
            procs.stop_all()


def top(path: Path, count: int = 25) -> None:
    """The collector's functions by own time, and the scrape path's by cumulative time."""
    import pstats
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats("collector|aiohttp|msgspec|json", count)


def run_side(side: str, setup: Setup) -> Figures:
    if side == "fobs":
        return sides.bench_fobs(setup, sys.executable)
    if side == "prometheus":
        return sides.bench_prometheus(setup)
    return sides.bench_vmagent(setup)


if __name__ == "__main__":
    main()
