"""Scale-out rig: fleet and collector processes on a NATS cluster, and what InfluxDB says.

Shared by `python -m benchmarks.scaleout` and tests/collector/test_scale_out.py, so the figures
of the benchmark and the assertions of the test come from one reading of the data:

- `Rig` starts fleet processes (`fobs component fleet --no-simulation`, distinct index ranges)
  and collector processes (`python -m fobs.collector`, `sharding = "rendezvous"`, each with its
  index as the `collector` tag of its `scrape` points, writing to one InfluxDB), and stops every
  process it started by its pid.
- `read_scrapes` reads the `scrape` points of the fleet (varz) back from InfluxDB: per target
  (job/index) the times and the collector of every scrape.
- `window` counts, in a time window, duplicates (two scrapes of a target less than half an
  interval apart) and missed scrapes (a gap above 1.5 intervals counts each interval it left
  out); `takeover` measures, after a collector died, how long each of its targets waited for a
  survivor; `moved` the share of targets whose collector changed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fobs.collector.config import DiscoveryConfig

REPO = Path(__file__).resolve().parents[2]
DISCOVERY_KEYS = {f.name for f in dataclasses.fields(DiscoveryConfig)}
DB = "scaleout"
FLEET_INDEX_STRIDE = 100_000      # fleet process k numbers its components from k × stride

Scrapes = dict[str, list[tuple[float, str]]]     # "job/index" → [(time s, collector)], sorted


@dataclass
class Settings:
    interval: float = 2.0            # varz interval
    heartbeat: float = 0.25
    misses: int = 3
    discover_interval: float = 2.0
    first_scrape_window: float = 0.2
    flush_interval: float = 0.5
    nats_ping_interval: float = 20.0   # the client's ping: a frozen node goes unnoticed
    nats_rtt_interval: float = 10.0    # the collector's NATS round trip (a flush; timeout half)


@dataclass
class Rig:
    """The processes of one run; `close()` stops every one of them by pid."""

    workdir: Path
    nats_urls: list[str]
    influx_url: str
    settings: Settings = field(default_factory=Settings)
    fleets: list[subprocess.Popen[bytes]] = field(default_factory=list)
    collectors: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    status_ports: dict[int, int] = field(default_factory=dict)
    discovery_extra: dict[str, Any] = field(default_factory=dict)   # more [discovery] keys

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO,
                                    env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_fleet(self, count: int, urls: Sequence[str] | None = None) -> None:
        k = len(self.fleets)
        config = self.workdir / f"fleet{k}.toml"
        servers = ", ".join(f'"{u}"' for u in (urls or self.nats_urls))
        config.write_text(f"[component]\nindex = {k * FLEET_INDEX_STRIDE}\nlog_level = "
                          f'"WARNING"\n[component.nats]\nservers = [{servers}]\n'
                          f"reconnect_wait = 0.1\n")
        self.fleets.append(self._spawn(f"fleet{k}", [
            "fobs", "component", "fleet", "--no-simulation", "--count", str(count),
            "--mix", "dea=8,router=2,stager=1", "--config", str(config)]))

    def start_collector(self, index: int, urls: Sequence[str] | None = None,
                        status_port: int = 0) -> subprocess.Popen[bytes]:
        s = self.settings
        config = self.workdir / f"collector{index}.toml"
        servers = ", ".join(f'"{u}"' for u in (urls or self.nats_urls))
        if status_port:
            self.status_ports[index] = status_port
        config.write_text(
            f'deployment = "scaleout"\nnats_ping_interval = {s.nats_rtt_interval}\n'
            f"[component]\nindex = {index}\n"
            f"[component.nats]\nservers = [{servers}]\nreconnect_wait = 0.1\n"
            f"ping_interval = {s.nats_ping_interval}\n"
            f'[discovery]\nsharding = "rendezvous"\ndiscover_interval = {s.discover_interval}\n'
            f"heartbeat_interval = {s.heartbeat}\nheartbeat_misses = {s.misses}\n"
            + "".join(f"{k} = {v!r}\n" for k, v in self.discovery_extra.items()
                      if k in DISCOVERY_KEYS) +
            f"[scrape]\nvarz_interval = {s.interval}\nhealthz = false\n"
            f"first_scrape_window = {s.first_scrape_window}\n"
            f'[status]\naddress = "{f"127.0.0.1:{status_port}" if status_port else ""}"\n'
            f'[outputs]\nspool_dir = "{self.workdir / f"spool{index}"}"\n'
            f'[[outputs.influxdb_v1]]\nurl = "{self.influx_url}"\ndatabase = "{DB}"\n'
            f"flush_interval = {s.flush_interval}\n")
        proc = self._spawn(f"collector{index}", ["fobs.collector", "--config", str(config)])
        self.collectors[index] = proc
        return proc

    def signal_collector(self, index: int, sig: int) -> float:
        """Send `sig`; returns the wall time it was sent (SIGKILL: waits for the death)."""
        proc = self.collectors[index]
        sent = time.time()
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            proc.wait()
        return sent

    def drain(self, index: int, wait: float = 60.0) -> str:
        """Hand a killed collector's spool to its own config's outputs (`--drain`): what it
        scraped in its last moments reaches InfluxDB, as an operator would make it."""
        done = subprocess.run(
            [sys.executable, "-m", "fobs.collector", "--config",
             str(self.workdir / f"collector{index}.toml"), "--drain",
             str(self.workdir / f"spool{index}"), "--wait", str(wait)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
            text=True, timeout=wait + 30)
        if done.returncode != 0:
            raise RuntimeError(f"drain of collector {index}'s spool: {done.stdout}{done.stderr}")
        return done.stdout.strip()

    def members(self, index: int) -> list[dict[str, Any]]:
        """A collector's view of the members (its status API)."""
        url = f"http://127.0.0.1:{self.status_ports[index]}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as r:
            return list(json.load(r)["data"].get("collectors") or [])

    def close(self) -> None:
        for proc in [*self.collectors.values(), *self.fleets]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.collectors.values(), *self.fleets]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(check: Callable[[], bool], what: str, timeout: float, every: float = 0.5) -> None:
    """Poll another process's state (a status API) until `check()`; a status document of a
    large fleet is megabytes, so not more often than `every` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g}s")
        time.sleep(every)


def settled(rig: Rig, indexes: Sequence[int], targets: int) -> Callable[[], bool]:
    """True once every collector in `indexes` sees exactly those members, all active and heard
    within the miss window (a collector deaf to NATS keeps its last view: that is not
    agreement), and their shares add up to `targets` (fleet and collectors)."""
    window = rig.settings.heartbeat * rig.settings.misses

    def check() -> bool:
        shares = []
        for i in indexes:
            try:
                members = rig.members(i)
            except (OSError, ValueError):     # not listening yet
                return False
            if sorted(m["name"] for m in members) != sorted(str(j) for j in indexes) or any(
                    m["state"] != "active" or m["heard_ago"] > window for m in members):
                return False
            shares.append(next(m["owned"] for m in members if m.get("self")))
        return bool(sum(shares) == targets)
    return check


# -- reading InfluxDB ------------------------------------------------------------------------

def query(influx_url: str, q: str) -> list[dict[str, Any]]:
    body = urllib.parse.urlencode({"q": q, "db": DB, "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{influx_url}/query", data=body, timeout=30) as r:
        result = json.load(r)["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    return list(result.get("series") or [])


def read_scrapes(influx_url: str, start: float, end: float) -> Scrapes:
    """Every varz scrape of a fleet component between `start` and `end` (wall seconds)."""
    found: Scrapes = {}
    q = (f'SELECT "up", "collector", "job", "index" FROM "scrape" WHERE "endpoint" = \'varz\' '
         f"AND \"job\" != 'Collector' AND time >= {int(start * 1000)}ms "
         f"AND time <= {int(end * 1000)}ms")
    for series in query(influx_url, q):
        cols = series["columns"]
        t, c, j, i = (cols.index(k) for k in ("time", "collector", "job", "index"))
        for row in series["values"]:
            found.setdefault(f"{row[j]}/{row[i]}", []).append((row[t] / 1000, row[c] or "?"))
    for times in found.values():
        times.sort()
    return found


@dataclass
class Window:
    """Coverage of a time window: what was scraped twice, what was left out."""

    targets: int
    scrapes: int
    duplicates: int
    missed: int
    max_gap: float                  # longest time a target waited, seconds
    worst: list[str]                # a few targets with a duplicate or a miss


def window(scrapes: Scrapes, start: float, end: float, interval: float,
           expect: int | None = None) -> Window:
    """Duplicates and misses of the scrapes whose later end lies in (start, end]; `scrapes`
    must reach 2 intervals beyond both ends. A target of `expect` never seen misses all."""
    dup = missed = total = 0
    max_gap = 0.0
    worst: list[str] = []
    for key, times in scrapes.items():
        ts = [start - 2 * interval] + [t for t, _ in times] + [end + 2 * interval]
        bad = False
        for before, after in zip(ts, ts[1:], strict=False):
            if not (after > start and before < end):
                continue
            gap = after - before
            if start < after <= end:
                total += 1
            if gap < 0.5 * interval and start < after <= end:
                dup += 1
                bad = True
            elif gap > 1.5 * interval:
                missed += round(gap / interval) - 1
                bad = True
            if after > start and before >= start - interval:
                max_gap = max(max_gap, gap)
        if bad and len(worst) < 5:
            worst.append(key)
    targets = len(scrapes)
    if expect is not None and expect > targets:
        missed += (expect - targets) * max(1, math.floor((end - start) / interval))
        max_gap = math.inf
    return Window(targets, total, dup, missed, round(max_gap, 3), worst)


def owners(scrapes: Scrapes, start: float, end: float) -> dict[str, str]:
    """The collector of each target's last scrape in [start, end]."""
    result = {}
    for key, times in scrapes.items():
        last = [c for t, c in times if start <= t <= end]
        if last:
            result[key] = last[-1]
    return result


def moved(scrapes: Scrapes, before: tuple[float, float], after: tuple[float, float]
          ) -> tuple[int, int]:
    """(targets whose collector changed, targets seen in both windows)."""
    a, b = owners(scrapes, *before), owners(scrapes, *after)
    both = set(a) & set(b)
    return sum(1 for k in both if a[k] != b[k]), len(both)


@dataclass
class Takeover:
    targets: int                    # targets the dead collector had
    worst_wait: float               # longest time from the death (or the dying one's last
                                    # scrape, if later) to a survivor's first scrape
    median_wait: float
    never: int                      # targets no survivor scraped in the window
    duplicates: int                 # of its targets, scraped twice within half an interval


def takeover(scrapes: Scrapes, victim: str, died: float, interval: float,
             until: float) -> Takeover:
    """How the targets `victim` scraped last before `died` were picked up by the others."""
    waits: list[float] = []
    never = dup = 0
    for times in scrapes.values():
        before = [c for t, c in times if died - 2 * interval <= t <= died]
        if not before or before[-1] != victim:
            continue
        after = [t for t, c in times if died < t <= until and c != victim]
        if not after:
            never += 1
            continue
        # from the death, or from the victim's own last scrape when it still made one after
        # the signal (SIGTERM: it says goodbye first, then stops its scheduler)
        last = max([t for t, c in times if c == victim and t < after[0]], default=died)
        waits.append(after[0] - max(died, last))
        ts = [t for t, _ in times if died - interval <= t <= until]
        dup += sum(1 for x, y in zip(ts, ts[1:], strict=False) if y - x < 0.5 * interval)
    waits.sort()
    median = waits[len(waits) // 2] if waits else math.inf
    return Takeover(len(waits) + never, round(max(waits, default=math.inf), 3),
                    round(median, 3), never, dup)


def detected(rig: Rig, survivors: Sequence[int], died: float) -> float:
    """Seconds from a death to the first survivor declaring it dead (its log line)."""
    seen = []
    for index in survivors:
        for line in (rig.workdir / f"collector{index}.log").read_text().splitlines():
            if "silent for" in line and "its targets move" in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                if stamp > died:
                    seen.append(stamp - died)
    return round(min(seen, default=math.inf), 3)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
