"""Scale-out: N sharing collectors over a large fleet, a join and a kill -9, read from InfluxDB.

    ./dev bench scaleout [--targets 10000] [--collectors 3] [--interval 10] [--runs 3]
                         [--window 60] [--fleet-procs P]

A 3-node NATS cluster, an influxd and a fleet of `--targets` components
(`fobs component fleet --no-simulation`, in P processes) start once. Each run then starts
`--collectors` collector processes (`python -m fobs.collector`, `sharding = "rendezvous"`, the
default heartbeat 0.8 s × 3 misses, /varz only), waits until they share the fleet, and measures:

- steady window (`--window` s): each collector's CPU (utime+stime, % of one core, and seconds per
  1,000 scrapes), scrapes done, duplicates and missed scrapes of the whole fleet (from the
  `scrape` points and their `collector` tag: a duplicate is two scrapes of a target less than
  half an interval apart, a miss a gap above 1.5 intervals, counted per interval left out);
- join: one more collector starts; the share of targets whose collector changed;
- kill -9 of one collector: when the first survivor declared it dead (its log), for each of its
  targets the time from the kill to a survivor's first scrape (median and worst: a target is
  taken on its phase, so up to one interval), targets never taken over, duplicates and misses
  in the change window (kill − 1 interval … kill + 3 intervals), after its spool was drained
  (`fobs collector --drain`) so its last scrapes count.

Then every collector is stopped (SIGTERM) and the next run begins on the same fleet. The
figures are printed per run and as medians over the runs. Every process is stopped by its pid.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scaleout.cluster import (
    DB,
    Rig,
    Settings,
    cpu_seconds,
    detected,
    moved,
    read_scrapes,
    settled,
    takeover,
    wait_for,
    window,
)
from fobs.collector.config import DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_MISSES
from fobs.ports import free_ports
from tests.services import Influxd, NatsCluster


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./dev bench scaleout", description=__doc__.split("\n")[0])
    p.add_argument("--targets", type=int, default=10_000)
    p.add_argument("--collectors", type=int, default=3)
    p.add_argument("--interval", type=float, default=10.0, help="varz interval (s)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--window", type=float, default=60.0, help="steady window (s)")
    p.add_argument("--fleet-procs", type=int, default=0,
                   help="fleet processes (default: one per 1,250 targets)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args()


def one_run(rig: Rig, args: argparse.Namespace, run: int, ports: list[int]) -> dict[str, Any]:
    i = args.interval
    n = args.collectors
    first = run * 10 + 1                    # collector indexes of this run: 11, 12, …
    members = list(range(first, first + n))
    total = args.targets + n
    began = time.time()
    for k, index in enumerate(members):
        rig.start_collector(index, status_port=ports[k])
    wait_for(settled(rig, members, total), f"{n} collectors sharing",
               timeout=max(120.0, args.targets / 50))
    settle = time.time() - began
    time.sleep(2 * i)                       # the first scrapes of a fresh start are not steady
    pids = {m: rig.collectors[m].pid for m in members}
    cpu0 = {m: cpu_seconds(p) for m, p in pids.items()}
    steady_from = time.time()
    time.sleep(args.window)
    steady_to = time.time()
    cpu = {m: cpu_seconds(p) - cpu0[m] for m, p in pids.items()}

    joiner = first + n
    join_at = time.time()
    rig.start_collector(joiner, status_port=ports[n])
    wait_for(settled(rig, [*members, joiner], total + 1), "a collector joining", timeout=120)
    joined = time.time()
    time.sleep(3 * i)

    victim = members[0]
    died = rig.signal_collector(victim, signal.SIGKILL)
    time.sleep(3 * i)
    end = time.time()
    for index in [*members[1:], joiner]:
        rig.collectors[index].send_signal(signal.SIGTERM)
    for index in [*members[1:], joiner]:
        rig.collectors[index].wait(timeout=60)
    rig.drain(victim)                        # its last scrapes, spooled, not yet written

    scrapes = read_scrapes(rig.influx_url, steady_from - 2 * i, end)
    steady = window(scrapes, steady_from, steady_to, i, expect=args.targets)
    changed, seen_both = moved(scrapes, (join_at - 2 * i, join_at), (joined + i, died))
    change = window(scrapes, died - i, end - i, i, expect=args.targets)
    taken = takeover(scrapes, str(victim), died, i, end)
    seen = detected(rig, [*members[1:], joiner], died)
    per_collector = {}
    for m in members:
        done = sum(1 for times in scrapes.values() for t, c in times
                   if c == str(m) and steady_from < t <= steady_to)
        per_collector[m] = (cpu[m] / args.window * 100, cpu[m] / done * 1000 if done else math.nan,
                            done)
    return {"settle_s": round(settle, 1), "steady": steady, "per_collector": per_collector,
            "moved": (changed, seen_both), "change": change, "takeover": taken,
            "detected": seen}


def main() -> int:
    args = parse()
    workdir = Path(tempfile.mkdtemp(prefix="fobs-scaleout-"))
    cluster = NatsCluster(workdir / "nats")
    influxd = Influxd(workdir / "influxd")
    settings = Settings(interval=args.interval, heartbeat=DEFAULT_HEARTBEAT_INTERVAL,
                        misses=DEFAULT_HEARTBEAT_MISSES,
                        discover_interval=60.0, first_scrape_window=0.5, flush_interval=1.0)
    extra = {"max_targets": 2 * args.targets}   # above the default cap of 10,000 announced
    results: list[dict[str, Any]] = []
    rig: Rig | None = None
    try:
        cluster.start()
        influxd.start()
        influxd.create_database(DB)
        rig = Rig(workdir, cluster.urls, influxd.url, settings, discovery_extra=extra)
        procs = args.fleet_procs or max(1, -(-args.targets // 1250))
        for k in range(procs):
            count = args.targets // procs + (1 if k < args.targets % procs else 0)
            rig.start_fleet(count, [cluster.urls[k % len(cluster.urls)]])
        print(f"scale-out: {args.targets} targets in {procs} fleet processes, "
              f"{args.collectors} collectors, varz every {args.interval:g} s, "
              f"{args.runs} runs, steady window {args.window:g} s", flush=True)
        ports = free_ports(args.collectors + 1)
        for run in range(args.runs):
            result = one_run(rig, args, run, ports)
            results.append(result)
            report(run + 1, result)
    finally:
        if rig is not None:
            rig.close()
        influxd.stop()
        cluster.stop()
        if args.keep:
            print(f"(work directory {workdir} kept)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if results:
        medians(results)
    return 0


def report(run: int, r: dict[str, Any]) -> None:
    s, c, t = r["steady"], r["change"], r["takeover"]
    cpu = ", ".join(f"c{m}: {pct:.1f} % ({per_k:.3f} s/1k, {done} scrapes)"
                    for m, (pct, per_k, done) in r["per_collector"].items())
    print(f"run {run}: settled in {r['settle_s']} s | steady: {s.scrapes} scrapes, "
          f"{s.duplicates} duplicates, {s.missed} missed, max gap {s.max_gap} s | CPU {cpu} | "
          f"join moved {r['moved'][0]}/{r['moved'][1]} | kill -9: {t.targets} targets, "
          f"declared dead after {r['detected']} s, "
          f"takeover median {t.median_wait} s, worst {t.worst_wait} s, never {t.never}, "
          f"duplicates {t.duplicates}; change window missed {c.missed}, max gap {c.max_gap} s",
          flush=True)


def medians(results: list[dict[str, Any]]) -> None:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    cpu = [pct for r in results for pct, _, _ in r["per_collector"].values()]
    per_k = [k for r in results for _, k, _ in r["per_collector"].values()]
    rows = {
        "steady missed scrapes": med([r["steady"].missed for r in results]),
        "steady duplicates": med([r["steady"].duplicates for r in results]),
        "CPU per collector, % of a core": med(cpu),
        "CPU s per 1,000 scrapes": med(per_k),
        "targets moved on join, %": med([100 * r["moved"][0] / max(1, r["moved"][1])
                                          for r in results]),
        "kill -9 declared dead after, s": med([r["detected"] for r in results]),
        "takeover after kill -9, median s": med([r["takeover"].median_wait for r in results]),
        "takeover after kill -9, worst s": med([r["takeover"].worst_wait for r in results]),
        "duplicates during takeover": med([r["takeover"].duplicates for r in results]),
        "missed during takeover": med([r["change"].missed for r in results]),
        "settle time, s": med([r["settle_s"] for r in results]),
    }
    print(f"\nmedians of {len(results)} runs:")
    width = max(map(len, rows))
    for name, value in rows.items():
        print(f"  {name.ljust(width)}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
