"""The three sides of the scrape benchmark, each with its storage, measured over one window.

- fobs: `python -m fobs.collector` (NATS discovery, /varz) writing to its own influxd through
  `[[outputs.influxdb_v1]]` (disk spool, batching, gzip: the defaults unless told otherwise).
- prometheus: Debian's Prometheus (TSDB in the process), file_sd of the fleet, /metrics.
- vmagent: Debian's vmagent scraping the same /metrics, remote-writing to victoria-metrics.

Each side starts, waits until every target has been scraped, waits one more interval, then
measures `window` seconds: CPU (utime+stime) of each of its processes and of the fleet's,
scrapes done and values stored in that window, peak RSS; then it stops. Scrapes and values are
what the storage holds: for fobs counted by influxd (the window's `scrape` points and every
field stamped in it), for Prometheus by its TSDB (`up` samples, appended samples), for vmagent
by its scrape counter and victoria-metrics' inserted rows. The sides run one after the other,
never at once, so they never share the CPU.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.scrape.procs import (
    Processes,
    cpu_seconds,
    free_ports,
    get_json,
    prom_counter,
    status_mb,
    wait_until,
)
from fobs.influxd import find_influxd, influxd_config

USER, PASSWORD = "u", "p"


@dataclass
class Figures:
    """One side over one window."""

    side: str
    window: float                     # seconds measured
    scrapes: int
    expected: int
    late: int                         # fobs: late + missed + skipped; others: timed out/failed
    values: float                     # values stored in the window
    cpu: dict[str, float] = field(default_factory=dict)     # process → CPU seconds
    rss_mb: dict[str, float] = field(default_factory=dict)  # process → peak RSS
    fleet_cpu: float = 0.0
    idle_rss_mb: float = 0.0          # fobs: the collector with no target
    end_rss_mb: float = 0.0           # fobs: the collector's VmRSS at the window's end

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def ms_per_scrape(self, cpu: float) -> float:
        return cpu / self.scrapes * 1000 if self.scrapes else float("nan")

    @property
    def values_per_scrape(self) -> float:
        return self.values / self.scrapes if self.scrapes else float("nan")

    @property
    def us_per_value(self) -> float:
        return self.cpu_total / self.values * 1e6 if self.values else float("nan")


@dataclass
class Setup:
    """What every side is given: the fleet and the schedule."""

    procs: Processes
    nats_url: str
    groups: list[dict[str, Any]]      # Prometheus file_sd of the fleet
    targets: int
    interval: float
    window: float
    fleet_pids: list[int]
    writes: dict[str, Any] = field(default_factory=dict)    # fobs output overrides
    profile: Path | None = None       # fobs: run the collector under cProfile, stats here
    cache: dict[str, float] = field(default_factory=dict)   # fobs: measured once per fleet


def fresh(setup: Setup, name: str) -> Path:
    """A new directory for one run's data (database, spool), so no run inherits another's."""
    k = 0
    while (setup.procs.workdir / f"{name}-{k}").exists():
        k += 1
    path = setup.procs.workdir / f"{name}-{k}"
    path.mkdir()
    return path


def measure(setup: Setup, pids: dict[str, int], counters: Callable[[], tuple[float, ...]]
            ) -> tuple[float, dict[str, float], float, tuple[float, ...], tuple[float, ...]]:
    """(seconds, CPU per process, fleet CPU, counters before, after) over one window."""
    before = counters()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    fleet0 = sum(cpu_seconds(pid) for pid in setup.fleet_pids)
    t0 = time.monotonic()
    time.sleep(setup.window)
    after = counters()
    cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    fleet1 = sum(cpu_seconds(pid) for pid in setup.fleet_pids)
    seconds = time.monotonic() - t0
    return (seconds, {n: cpu1[n] - cpu0[n] for n in pids}, fleet1 - fleet0, before, after)


def start_influxd(setup: Setup) -> tuple[Any, str]:
    port, rpc = free_ports(2)
    conf = setup.procs.workdir / "influxdb.conf"
    conf.write_text(influxd_config(fresh(setup, "influxdb"), port, rpc))
    proc = setup.procs.start("influxd", [find_influxd() or "influxd", "-config", str(conf)])
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: urllib.request.urlopen(f"{url}/ping", timeout=1).status == 204,
               "influxd", 30)
    return proc, url


def collector_config(setup: Setup, varz_port: int, status_port: int, influx: str) -> str:
    writes = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                     for k, v in setup.writes.items())
    return f"""
nats_ping_interval = 5.0
[component]
port = {varz_port}
user = "bench"
password = "bench"
log_level = "WARNING"
[component.nats]
servers = ["{setup.nats_url}"]
[scrape]
varz_interval = {setup.interval}
healthz = false
max_in_flight = 512
[status]
address = "127.0.0.1:{status_port}"
[outputs]
spool_dir = "{fresh(setup, 'spool')}"
[[outputs.influxdb_v1]]
url = "{influx}"
database = "bench"
{writes}"""


def idle_rss(setup: Setup, python: str) -> float:
    """VmRSS of a collector with nothing to scrape (no discovery), after it settled."""
    status_port, varz_port = free_ports(2)
    config = setup.procs.workdir / "idle.toml"
    config.write_text(f"""
[component]
port = {varz_port}
log_level = "WARNING"
[discovery]
nats = false
[status]
address = "127.0.0.1:{status_port}"
[outputs]
spool_dir = "{fresh(setup, 'idle-spool')}"
[[outputs.influxdb_v1]]
url = "http://127.0.0.1:9"
""")
    proc = setup.procs.start("idle", [python, "-m", "fobs.collector", "--config", str(config)])
    wait_until(lambda: get_json(f"http://127.0.0.1:{status_port}/api/v1/targets") is not None,
               "the idle collector", 30)
    time.sleep(2)
    rss = status_mb(proc.pid, "VmRSS")
    setup.procs.stop(proc)
    return rss


def values_per_scrape(config: Path, python: str, setup: Setup) -> float:
    """Values (fields) the collector stores per /varz scrape of this fleet: `fobs collector
    --once` scrapes every target once and prints the line protocol it would write."""
    out = subprocess.run([python, "-m", "fobs.collector", "--config", str(config), "--once",
                          "--wait", "3"], capture_output=True, check=True, timeout=300,
                         cwd=setup.procs.workdir).stdout.decode()
    lines = [line for line in out.splitlines() if line]
    scrapes = sum(1 for line in lines if line.startswith("scrape,"))
    return sum(_fields(line) for line in lines) / max(1, scrapes)


def _fields(line: str) -> int:
    """Number of fields of a line-protocol line (commas outside quotes and escapes, + 1)."""
    section, quoted, escaped, spaces, count = 0, False, False, 0, 1
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            spaces += 1
            section = spaces
        elif ch == "," and not quoted and section == 1:
            count += 1
    return count


def bench_fobs(setup: Setup, python: str) -> Figures:
    influxd, influx = start_influxd(setup)
    status_port, varz_port = free_ports(2)
    config = setup.procs.workdir / "collector.toml"
    config.write_text(collector_config(setup, varz_port, status_port, influx))
    if "values" not in setup.cache:            # the same fleet gives the same figures
        setup.cache["values"] = values_per_scrape(config, python, setup)
        setup.cache["idle"] = idle_rss(setup, python)
    per_scrape, idle = setup.cache["values"], setup.cache["idle"]
    profiler = ["-m", "cProfile", "-o", str(setup.profile)] if setup.profile else []
    proc = setup.procs.start("collector", [python, *profiler, "-m", "fobs.collector",
                                           "--config", str(config)])
    varz_url = f"http://127.0.0.1:{varz_port}/varz"
    auth = ("bench", "bench")
    wait_until(lambda: get_json(varz_url, auth)["targets"]["up"] >= setup.targets,
               "fobs scraping every target", timeout=60 + setup.targets / 50)
    time.sleep(setup.interval + 1)

    def counters() -> tuple[float, ...]:
        get_json(varz_url, auth)          # varz is cached for 1 s: ask, wait, ask again
        time.sleep(1.05)
        s = get_json(varz_url, auth)["scrapes"]
        return (float(s["late"] + s["missed"] + s["skipped_overlap"]), time.time())

    seconds, cpu, fleet, before, after = measure(
        setup, {"collector": proc.pid, "influxd": influxd.pid}, counters)
    rss = {"collector": status_mb(proc.pid, "VmHWM"), "influxd": status_mb(influxd.pid, "VmHWM")}
    end_rss = status_mb(proc.pid, "VmRSS")
    # what influxd stored in the window (scrape points are stamped with the scrape's start):
    # the window's points are written within flush_interval + a write, the spool drains
    span = int(before[1] * 1e9), int(after[1] * 1e9)
    stored = stored_in_window(influx, span, wait=setup.interval + 3.0)
    setup.procs.stop(proc)
    setup.procs.stop(influxd)
    scrapes = stored["scrapes"]
    expected = (span[1] - span[0]) / 1e9 / setup.interval * (setup.targets + 1)
    values = stored["values"] if stored["values"] else scrapes * per_scrape
    return Figures("fobs", seconds, scrapes, int(round(expected)), int(after[0] - before[0]),
                   values, cpu, rss, fleet, idle, end_rss)


def influx_query(url: str, q: str) -> list[dict[str, Any]]:
    """The series of an InfluxQL answer from database `bench` (raises on an error)."""
    query = urllib.parse.urlencode({"db": "bench", "q": q, "epoch": "ns"})
    answer = get_json(f"{url}/query?{query}", timeout=120)
    result = answer["results"][0]
    if "error" in result:
        raise RuntimeError(f"influxd: {result['error']} ({q})")
    return list(result.get("series", []))


def stored_in_window(url: str, span: tuple[int, int], wait: float) -> dict[str, int]:
    """Scrapes (varz `scrape` points, the collector's own healthz and varz scrapes included, as
    `expected` counts them) and values (every stored field) that influxd holds with a time in
    `span` (ns): counted by influxd itself, once two counts `wait`/2 apart agree (the spool
    has drained)."""
    where = f"time >= {span[0]} AND time < {span[1]}"
    last: dict[str, int] = {}
    deadline = time.monotonic() + 4 * wait
    while True:
        time.sleep(wait / 2)
        series = influx_query(url, f'SELECT count("up") FROM "scrape" WHERE {where} '
                                   f"AND \"endpoint\" = 'varz'")
        scrapes = int(series[0]["values"][0][1]) if series else 0
        values = 0
        for s in influx_query(url, f"SELECT count(*) FROM /.*/ WHERE {where}"):
            values += sum(int(v) for v in s["values"][0][1:] if v is not None)
        now = {"scrapes": scrapes, "values": values}
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def scrape_config(setup: Setup) -> tuple[str, float]:
    sd = setup.procs.workdir / "file_sd.json"
    sd.write_text(json.dumps(setup.groups))
    timeout = min(setup.interval, 5.0)
    return f"""
global:
  scrape_interval: {prom_duration(setup.interval)}
  scrape_timeout: {prom_duration(timeout)}
scrape_configs:
  - job_name: fleet
    metrics_path: /metrics
    basic_auth:
      username: {USER}
      password: {PASSWORD}
    file_sd_configs:
      - files: ["{sd}"]
""", timeout


def bench_prometheus(setup: Setup) -> Figures:
    [port] = free_ports(1)
    config = setup.procs.workdir / "prometheus.yml"
    text, timeout = scrape_config(setup)
    config.write_text(text)
    proc = setup.procs.start("prometheus", [
        "prometheus", f"--config.file={config}",
        f"--storage.tsdb.path={fresh(setup, 'tsdb')}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    api = f"http://127.0.0.1:{port}/api/v1"
    metrics = f"http://127.0.0.1:{port}/metrics"

    def query(q: str) -> float:
        data = get_json(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
        result = data["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(lambda: query("count(up == 1)") >= setup.targets,
               "Prometheus scraping every target", timeout=60 + setup.targets / 50)
    time.sleep(setup.interval + 1)
    at0 = time.time()
    seconds, cpu, fleet, before, after = measure(setup, {"prometheus": proc.pid}, lambda: (
        prom_counter(metrics, "prometheus_tsdb_head_samples_appended_total"),))
    at1 = time.time()
    rss = {"prometheus": status_mb(proc.pid, "VmHWM")}
    time.sleep(min(1.0, setup.interval) + 0.5)
    span = f"{int(round(at1 - at0))}s"
    scrapes = int(query(f"sum(count_over_time(up[{span}] @ {at1:.3f}))"))
    late = int(query(f"sum(count_over_time((scrape_duration_seconds > {timeout * 0.99})"
                     f"[{span}:] @ {at1:.3f}))"))
    setup.procs.stop(proc)
    return Figures("prometheus", seconds, scrapes,
                   int(round(seconds / setup.interval * setup.targets)), late,
                   after[0] - before[0], cpu, rss, fleet)


def bench_vmagent(setup: Setup) -> Figures:
    vm_port, agent_port = free_ports(2)
    work = setup.procs.workdir
    vm = setup.procs.start("victoria-metrics", [
        "victoria-metrics", f"-storageDataPath={fresh(setup, 'vmdata')}",
        f"-httpListenAddr=127.0.0.1:{vm_port}", "-loggerLevel=ERROR"])
    vm_metrics = f"http://127.0.0.1:{vm_port}/metrics"
    wait_until(lambda: prom_counter(vm_metrics, "vm_rows_inserted_total") >= 0,
               "victoria-metrics", 30)
    config = work / "vmagent.yml"
    config.write_text(scrape_config(setup)[0])
    agent = setup.procs.start("vmagent", [
        "vmagent", f"-promscrape.config={config}",
        f"-remoteWrite.url=http://127.0.0.1:{vm_port}/api/v1/write",
        f"-remoteWrite.tmpDataPath={fresh(setup, 'vmagent-tmp')}",
        f"-httpListenAddr=127.0.0.1:{agent_port}", "-loggerLevel=ERROR"])
    metrics = f"http://127.0.0.1:{agent_port}/metrics"
    wait_until(lambda: prom_counter(metrics, "vm_promscrape_targets", 'status="up"')
               >= setup.targets, "vmagent scraping every target",
               timeout=60 + setup.targets / 50)
    time.sleep(setup.interval + 1)

    def counters() -> tuple[float, ...]:
        return (prom_counter(metrics, "vm_promscrape_scrapes_total"),
                prom_counter(metrics, "vm_promscrape_scrapes_timed_out_total")
                + prom_counter(metrics, "vm_promscrape_scrapes_failed_total"),
                prom_counter(vm_metrics, "vm_rows_inserted_total", "promremotewrite"))

    seconds, cpu, fleet, before, after = measure(
        setup, {"vmagent": agent.pid, "victoria-metrics": vm.pid}, counters)
    rss = {"vmagent": status_mb(agent.pid, "VmHWM"),
           "victoria-metrics": status_mb(vm.pid, "VmHWM")}
    setup.procs.stop(agent)
    setup.procs.stop(vm)
    return Figures("vmagent", seconds, int(after[0] - before[0]),
                   int(round(seconds / setup.interval * setup.targets)),
                   int(after[1] - before[1]), after[2] - before[2], cpu, rss, fleet)


def prom_duration(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"
