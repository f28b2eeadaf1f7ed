"""Scrape cost: the fobs collector against Prometheus on the same fleet, in the same run.

    python -m benchmarks.scrape [--targets N] [--interval S] [--window S] [--fleet-procs P]
                                [--healthz] [--only fobs|prometheus]

A fleet of N components (`fobs component fleet --no-simulation`, P processes, credentials
u:p) registers on a private nats-server and writes Prometheus file_sd targets. Then, one after
the other (never at once, so they do not share the CPU):

- fobs: `python -m fobs.collector` discovers the fleet over NATS and scrapes /varz every interval
  (plus /healthz with --healthz), writing every point as line protocol to a file output (the
  full write path: encode, spool, write). Counters come from its own /varz.
- Prometheus (Debian's, foreground, tmp storage): file_sd from the fleet's targets file,
  basic_auth, scraping the same components' /metrics at the same interval.

Each is measured over a window that starts once every target has been scraped (warm-up):
CPU seconds (utime+stime from /proc) per 1,000 scrapes, points (samples) per second,
missed cycles (expected scrapes − scrapes done, plus the collector's own late/missed/skipped
counters) and peak RSS (VmHWM). Every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fobs.components.process import CLOCK_TICKS, ProcFS

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "u", "p"


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports that were free a moment ago (bound together, so distinct)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    st = ProcFS().stat(pid)
    if st is None:
        raise ProcessLookupError(f"no process {pid}")
    return st.cpu_ticks / CLOCK_TICKS     # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def get_json(url: str, auth: tuple[str, str] | None = None, timeout: float = 10) -> Any:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.load(r)


def wait_until(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            pass
        time.sleep(0.25)
    raise SystemExit(f"benchmark: {what} not ready after {timeout:.0f}s")


class Processes:
    """Every child started here, stopped by pid at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                env=env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


@dataclass
class Figures:
    name: str
    scrapes: int
    expected: int
    cpu: float
    points: float
    late: int
    rss_mb: float
    window: float

    def row(self) -> str:
        per_k = self.cpu / self.scrapes * 1000 if self.scrapes else float("nan")
        missed = max(0, self.expected - self.scrapes)
        return (f"{self.name:<11} {self.scrapes:>8} {self.expected:>8} {per_k:>10.3f} "
                f"{self.points / self.window:>10.0f} {missed:>7} {self.late:>6} "
                f"{self.rss_mb:>8.1f}")


HEADER = (f"{'scraper':<11} {'scrapes':>8} {'expected':>8} {'cpu s/1k':>10} {'points/s':>10} "
          f"{'missed':>7} {'late':>6} {'rss MB':>8}")


def start_fleet(procs: Processes, nats_url: str, targets: int, parts: int) -> list[dict]:
    files = []
    for i in range(parts):
        count = targets // parts + (1 if i < targets % parts else 0)
        path = procs.workdir / f"targets-{i}.json"
        files.append(path)
        procs.start(f"fleet-{i}", [sys.executable, "-m", "fobs", "component", "fleet",
                                   "--no-simulation", "--count", str(count), "--credentials",
                                   f"{USER}:{PASSWORD}", "--targets-file", str(path),
                                   "--nats", nats_url, "--log-level", "WARNING"])
    wait_until(lambda: all(f.exists() and f.stat().st_size for f in files), "the fleet",
               timeout=60 + targets / 50)
    groups: list[dict] = []
    for f in files:
        groups.extend(json.loads(f.read_text()))
    return groups


def bench_fobs(procs: Processes, nats_url: str, targets: int, interval: float, window: float,
               healthz: bool) -> Figures:
    status_port, varz_port = free_ports(2)
    out = procs.workdir / "points.lp"
    config = procs.workdir / "collector.toml"
    config.write_text(f"""
nats_ping_interval = 5.0
[component]
port = {varz_port}
user = "bench"
password = "bench"
log_level = "WARNING"
[component.nats]
servers = ["{nats_url}"]
[scrape]
varz_interval = {interval}
healthz_interval = {interval}
healthz = {str(healthz).lower()}
max_in_flight = 512
[status]
address = "127.0.0.1:{status_port}"
[outputs]
spool_dir = "{procs.workdir / 'spool'}"
[[outputs.file]]
path = "{out}"
rotate_bytes = 268435456
keep = 1
""")
    proc = procs.start("collector", [sys.executable, "-m", "fobs.collector",
                                     "--config", str(config)])
    varz_url = f"http://127.0.0.1:{varz_port}/varz"
    auth = ("bench", "bench")

    def scraped_all() -> bool:
        varz = get_json(varz_url, auth)
        return varz["targets"]["up"] >= targets

    wait_until(scraped_all, "fobs scraping every target", timeout=60 + targets / 50)
    time.sleep(interval)
    before, t0 = fresh_varz(varz_url, auth)
    cpu0 = cpu_seconds(proc.pid)
    time.sleep(window - 1.05)
    after, t1 = fresh_varz(varz_url, auth)
    cpu1 = cpu_seconds(proc.pid)
    rss = peak_rss_mb(proc.pid)
    procs.stop(proc)

    def scrapes(v: dict) -> int:
        s = v["scrapes"]
        return sum(s["ok"].values()) + sum(sum(c.values()) for c in s["failed"].values())

    def late(v: dict) -> int:
        s = v["scrapes"]
        return s["late"] + s["missed"] + s["skipped_overlap"]

    def written(v: dict) -> int:
        return sum(o.get("points_written", 0) for o in v["outputs"].get("outputs", {}).values()
                   ) if isinstance(v["outputs"].get("outputs"), dict) else v["scrapes"]["points"]

    endpoints = 2 if healthz else 1
    # counters exclude the collector scraping itself (one more target)
    expected = int(round((t1 - t0) / interval * (targets + 1) * endpoints))
    return Figures("fobs", scrapes(after) - scrapes(before), expected, cpu1 - cpu0,
                   written(after) - written(before), late(after) - late(before), rss, t1 - t0)


def bench_prometheus(procs: Processes, groups: list[dict], targets: int, interval: float,
                     window: float) -> Figures:
    [port] = free_ports(1)
    sd = procs.workdir / "file_sd.json"
    sd.write_text(json.dumps(groups))
    config = procs.workdir / "prometheus.yml"
    timeout = min(interval, 5.0)
    config.write_text(f"""
global:
  scrape_interval: {prom_duration(interval)}
  scrape_timeout: {prom_duration(timeout)}
scrape_configs:
  - job_name: fleet
    metrics_path: /metrics
    basic_auth:
      username: {USER}
      password: {PASSWORD}
    file_sd_configs:
      - files: ["{sd}"]
""")
    proc = procs.start("prometheus", [
        "prometheus", f"--config.file={config}", f"--storage.tsdb.path={procs.workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(q: str) -> float:
        data = get_json(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
        result = data["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def counter(name: str) -> float:
        for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                           timeout=10).read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    wait_until(lambda: query("count(up == 1)") >= targets,
               "Prometheus scraping every target", timeout=60 + targets / 50)
    time.sleep(interval)
    samples0 = counter("prometheus_tsdb_head_samples_appended_total")
    cpu0, t0, at0 = cpu_seconds(proc.pid), time.monotonic(), time.time()
    time.sleep(window)
    samples1 = counter("prometheus_tsdb_head_samples_appended_total")
    cpu1, t1, at1 = cpu_seconds(proc.pid), time.monotonic(), time.time()
    rss = peak_rss_mb(proc.pid)
    time.sleep(min(1.0, interval))
    span = f"{int(round(at1 - at0))}s"
    scrapes = int(query(f"sum(count_over_time(up[{span}] @ {at1:.3f}))"))
    late = int(query(f"sum(count_over_time((scrape_duration_seconds > {timeout * 0.99})"
                     f"[{span}:] @ {at1:.3f}))"))
    procs.stop(proc)
    expected = int(round((t1 - t0) / interval * targets))
    return Figures("prometheus", scrapes, expected, cpu1 - cpu0, samples1 - samples0, late,
                   rss, t1 - t0)


def prom_duration(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"


def fresh_varz(url: str, auth: tuple[str, str]) -> tuple[dict, float]:
    """The collector's varz recomputed at the time returned (it caches it for 1 s)."""
    get_json(url, auth)
    time.sleep(1.05)
    return get_json(url, auth), time.monotonic()


def start_nats(procs: Processes) -> str:
    port, monitor = free_ports(2)
    procs.start("nats", ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)])
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz",
                                              timeout=1).status == 200, "nats-server", 20)
    return f"nats://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--fleet-procs", type=int, default=0,
                        help="fleet processes (default: one per 2,500 targets)")
    parser.add_argument("--healthz", action="store_true", help="fobs also scrapes /healthz")
    parser.add_argument("--only", choices=("fobs", "prometheus"))
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (logs, configs) instead of a temp dir")
    args = parser.parse_args()
    parts = args.fleet_procs or max(1, -(-args.targets // 2500))
    with tempfile.TemporaryDirectory(prefix="fobs-bench-scrape-") as tmp:
        workdir = Path(tmp)
        if args.keep:
            workdir = args.keep
            workdir.mkdir(parents=True, exist_ok=True)
        procs = Processes(workdir)
        try:
            began = time.monotonic()
            nats_url = start_nats(procs)
            groups = start_fleet(procs, nats_url, args.targets, parts)
            print(f"fleet of {args.targets} components in {parts} processes up in "
                  f"{time.monotonic() - began:.0f}s; interval {args.interval:g}s, "
                  f"window {args.window:g}s", flush=True)
            print(HEADER, flush=True)
            if args.only in (None, "fobs"):
                print(bench_fobs(procs, nats_url, args.targets, args.interval, args.window,
                                 args.healthz).row(), flush=True)
            if args.only in (None, "prometheus"):
                print(bench_prometheus(procs, groups, args.targets, args.interval,
                                       args.window).row(), flush=True)
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
