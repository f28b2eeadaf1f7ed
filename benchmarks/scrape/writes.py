"""What a write choice costs influxd and the collector: points per write, gzip, timestamp precision.

    python -m benchmarks.scrape.writes [--scrapes N] [--repeat R] [--sizes 500,1000,...]

The line protocol is what the collector writes for the cf fleet's payloads (cffleet's fixtures
through the real handlers and encoder, plus each scrape's `scrape` point, 1,000 targets scraped
every second). The series are made first; then for each choice ten seconds of the fleet's points
(new times for the same series) go to one private influxd over one keep-alive HTTP connection,
and the benchmark reports influxd's CPU from idle to idle again (what it does after answering
counts) and this process's CPU (gzip plus HTTP) per 1,000 points, the median of R repeats:

- points per write (the output's `batch_size`): 500 … 20,000;
- gzip on or off at level 1 (InfluxV1's), on loopback;
- precision: `ns` (what the collector sends) against `s`, timestamps cut to whole seconds —
  shorter numbers to parse; stored times would be rounded, so this is a measurement only.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scrape.cffleet import MIX, fixture
from benchmarks.scrape.procs import Processes, cpu_seconds, free_ports, wait_until
from fobs.collector.handlers import handler_for
from fobs.collector.lineprotocol import Encoder
from fobs.collector.point import ListAppender
from fobs.influxd import find_influxd, influxd_config

T0 = 1_700_000_000_000_000_000


def lines(scrapes: int, targets: int = 1000, t0: int = T0) -> list[bytes]:
    """One encoded scrape per element (its points' lines), as the collector spools them."""
    enc = Encoder()
    varz = {name: fixture(name) for _, name in MIX}
    out = []
    for i in range(scrapes):
        kind, name = MIX[i % len(MIX)]
        index = i % targets
        t = t0 + (i // targets) * 1_000_000_000 + index * 997_000    # spread over the second
        app = ListAppender({"deployment": "bench", "job": kind, "index": str(index),
                            "ip": "127.0.0.1"}, t)
        handler_for(kind)(varz[name], app)
        app.add("scrape", {"up": 1, "duration_seconds": 0.0012, "response_bytes": 20000,
                           "points": len(app.points), "skipped": 0}, {"endpoint": "varz"})
        out.append(enc.encode(app.points).data)
    return out


def to_seconds(data: bytes) -> bytes:
    return b"\n".join(line[:-9] if line else line for line in data.split(b"\n"))


def write_all(conn: http.client.HTTPConnection, db: str, batches: list[bytes], gz: bool,
              precision: str) -> float:
    """POST every batch; returns this process's CPU seconds for compressing and sending."""
    t0 = time.process_time()
    for data in batches:
        body = gzip.compress(data, 1) if gz else data
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gz:
            headers["Content-Encoding"] = "gzip"
        conn.request("POST", f"/write?db={db}&precision={precision}", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise SystemExit(f"influxd answered {resp.status}")
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape.writes")
    parser.add_argument("--scrapes", type=int, default=11_000,
                        help="the first 1,000 (one per target) only create the series")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="500,1000,5000,10000,20000",
                        help="points per write to try (precision s is tried at 5000)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # children stopped in finally
    warmup = lines(1000)
    measured = args.scrapes - 1000
    points = sum(s.count(b"\n") for s in lines(measured, t0=T0 + 10**9))
    print(f"{measured} scrapes of the cf fleet measured each time: {points} points")
    with tempfile.TemporaryDirectory(prefix="fobs-bench-writes-") as tmp:
        procs = Processes(Path(tmp))
        try:
            port, rpc = free_ports(2)
            conf = Path(tmp) / "influxdb.conf"
            conf.write_text(influxd_config(Path(tmp) / "data", port, rpc))
            influxd = procs.start("influxd", [find_influxd() or "influxd", "-config", str(conf)])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            wait_until(lambda: _ping(conn), "influxd", 30)
            conn.request("POST", "/query?q=CREATE+DATABASE+bench")
            conn.getresponse().read()
            write_all(conn, "bench", batch(warmup, 5000), False, "ns")   # the series exist
            print(f"{'points/write':>12} {'gzip':>5} {'prec':>4} {'writes':>7} "
                  f"{'influxd ms/1k':>14} {'client ms/1k':>13} {'sum ms/1k':>10}")
            n = 0
            for size in (int(n) for n in args.sizes.split(",")):
                for gz in (True, False):
                    for precision in (("ns", "s") if size == 5000 else ("ns",)):
                        server, client = [], []
                        for _ in range(args.repeat):
                            n += 1                # new times for the same series
                            batches = batch(lines(measured, t0=T0 + n * 3600 * 10**9), size)
                            if precision == "s":
                                batches = [to_seconds(b) for b in batches]
                            settle(influxd.pid)
                            c0 = cpu_seconds(influxd.pid)
                            client.append(write_all(conn, "bench", batches, gz, precision))
                            settle(influxd.pid)   # what influxd does after answering counts
                            server.append(cpu_seconds(influxd.pid) - c0)
                        s, c = statistics.median(server), statistics.median(client)
                        print(f"{size:>12} {str(gz):>5} {precision:>4} {len(batches):>7} "
                              f"{s / points * 1e6:>14.3f} {c / points * 1e6:>13.3f} "
                              f"{(s + c) / points * 1e6:>10.3f}", flush=True)
        finally:
            procs.stop_all()


def settle(pid: int, idle: float = 0.03, limit: float = 20.0) -> None:
    """Wait until influxd has been idle (under `idle` of a core) for half a second."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        c0 = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - c0 < idle * 0.5:
            return


def batch(scrapes: list[bytes], size: int) -> list[bytes]:
    """Whole scrapes joined into writes of at most `size` points (as the spool hands them)."""
    out, parts, count = [], [], 0
    for data in scrapes:
        n = data.count(b"\n")
        if parts and count + n > size:
            out.append(b"".join(parts))
            parts, count = [], 0
        parts.append(data)
        count += n
    if parts:
        out.append(b"".join(parts))
    return out


def _ping(conn: http.client.HTTPConnection) -> bool:
    try:
        conn.request("GET", "/ping")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 204
    except OSError:
        conn.close()
        return False


if __name__ == "__main__":
    main()
