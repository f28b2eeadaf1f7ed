"""UDP and TCP syslog ingest: the fobs aggregator against rsyslogd, in the same run.

    python -m benchmarks.syslog [--messages N] [--rates 50000,100000,...] [--repeat R] [--only NAME]

For each receiver (fobs: `python -m fobs.syslog_agg`, full parsing, per-component text files;
rsyslogd: imudp/imtcp writing one file, both in the foreground with their own config in a temp
dir, 8 MiB receive buffer) and each target rate, a sender process sends N numbered RFC 5424
datagrams of ~200 bytes over loopback, paced in bursts of 1 ms; "max" sends as fast as one
Python sender can. Received = unique sequence numbers in the output files once they stop
growing. Then N messages go over one TCP connection (LF framing) as fast as possible.
Figures: accepted msgs/s (received / time from the first send to the last line written),
loss %, receiver CPU µs per message, peak RSS. The highest rate with zero loss is the headline.
Every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fobs.components.process import CLOCK_TICKS, ProcFS

REPO = Path(__file__).resolve().parents[2]
SEQ = re.compile(rb"seq=(\d+)")
COMPONENTS = 8
RCVBUF = 8 << 20


def free_port() -> int:
    """A port free for both UDP and TCP a moment ago."""
    while True:
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return int(port)


def message(i: int) -> bytes:
    line = (f"<165>1 2026-11-24T15:56:52.{i % 1000000:06d}Z web-{i % 16:02d}.example.com "
            f"vcap.comp{i % COMPONENTS} {4000 + i % 100} - - seq={i} GET /v2/apps/"
            f"{i:08x} status=200 bytes=1234 duration_ms=12 from 10.0.0.7")
    return line.ljust(200, "x").encode()


SENDER = r"""
import socket, sys, time
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
from benchmarks.syslog.__main__ import message
msgs = [message(i) for i in range(n)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
addr = ("127.0.0.1", port)
send = s.sendto
print("ready", flush=True)
sys.stdin.readline()
wall = time.time()
start = time.perf_counter()
if rate <= 0:
    for m in msgs:
        send(m, addr)
else:
    per_ms = max(1, int(rate / 1000))
    i = 0
    tick = start
    while i < n:
        for m in msgs[i:i + per_ms]:
            try:
                send(m, addr)
            except BlockingIOError:
                pass
        i += per_ms
        tick += per_ms / rate
        delay = tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
elapsed = time.perf_counter() - start
print(f"{wall!r} {elapsed!r}", flush=True)
"""


@dataclass
class Result:
    receiver: str
    mode: str
    target: float
    sent: int
    received: int
    send_rate: float
    accepted_rate: float
    cpu_us: float
    rss_mb: float

    @property
    def loss(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent


class Receiver:
    """One receiver process on a fresh port and directory."""

    name = "?"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpu_start = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def outputs(self) -> list[Path]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "stderr.log", "wb"))
        deadline = time.monotonic() + 20
        while not _tcp_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.work}/stderr.log")
            time.sleep(0.05)
        time.sleep(0.3)  # let startup work (imports, binding UDP) settle before measuring CPU
        self.cpu_start = _cpu_seconds(self.proc.pid)

    def output_size(self) -> int:
        return sum(p.stat().st_size for p in self.outputs())

    def wait_quiet(self, quiet: float = 0.7, timeout: float = 60.0) -> float:
        """Time of the last growth of the output, once it has been still for `quiet` s."""
        last_size, last_change = -1, time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            size = self.output_size()
            if size != last_size:
                last_size, last_change = size, time.time()
            elif time.time() - last_change > quiet:
                break
            time.sleep(0.02)
        return last_change

    def stop(self) -> tuple[float, float]:
        """SIGTERM, wait; (CPU seconds used since start(), peak RSS in MiB)."""
        assert self.proc is not None
        cpu_end = _cpu_seconds(self.proc.pid)
        # VmHWM, not wait4's ru_maxrss: Linux carries the forking parent's peak into the child;
        # summed over the process tree (an upper bound of the peak of the sum)
        peak_kib = _status_kib(self.proc.pid, "VmHWM")
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        return cpu_end - self.cpu_start, peak_kib / 1024

    def count(self) -> int:
        seen: set[bytes] = set()
        for path in self.outputs():
            seen.update(SEQ.findall(path.read_bytes()))
        return len(seen)


class Fobs(Receiver):
    name = "fobs"
    workers = 2

    def command(self) -> list[str]:
        config = self.work / "syslog.toml"
        config.write_text(
            f'register = false\n[listen]\nudp = "127.0.0.1:{self.port}"\n'
            f'tcp = "127.0.0.1:{self.port}"\nudp_rcvbuf = {RCVBUF}\n'
            f'udp_workers = {self.workers}\n'
            f'[store]\nroot = "{self.work / "logs"}"\nflush_interval = 0.2\n'
            f'[tail]\nenabled = false\n')
        return [sys.executable, "-m", "fobs.syslog_agg", "--config", str(config)]

    def outputs(self) -> list[Path]:
        return list((self.work / "logs").rglob("*.log"))


class Rsyslog(Receiver):
    name = "rsyslogd"

    def command(self) -> list[str]:
        conf = self.work / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{self.work}" maxMessageSize="8k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{self.port}" rcvbufSize="{RCVBUF}")
input(type="imtcp" address="127.0.0.1" port="{self.port}")
template(name="raw" type="string" string="%rawmsg%\\n")
*.* action(type="omfile" file="{self.work}/out.log" template="raw" asyncWriting="on"
           ioBufferSize="256k" flushInterval="1")
""")
        return ["rsyslogd", "-n", "-f", str(conf), "-i", str(self.work / "rsyslogd.pid")]

    def outputs(self) -> list[Path]:
        path = self.work / "out.log"
        return [path] if path.exists() else []


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (fobs UDP workers are child processes)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids += _tree(int(child))
    return pids


def _status_kib(pid: int, key: str) -> int:
    """`key` (e.g. VmHWM) of /proc/PID/status, added up over the process tree."""
    total = 0
    for p in _tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
    return total


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of the process tree."""
    procfs = ProcFS()
    stats = [procfs.stat(p) for p in _tree(pid)]
    return sum(st.cpu_ticks for st in stats if st is not None) / CLOCK_TICKS


def run_udp(cls: type[Receiver], base: Path, n: int, rate: float) -> Result:
    work = Path(tempfile.mkdtemp(prefix=f"{cls.name}-udp-", dir=base))
    receiver = cls(work)
    receiver.start()
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(receiver.port), str(n),
                               str(rate)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None and sender.stdin is not None
        sender.stdout.readline()  # messages built
        sender.stdin.write("go\n")
        sender.stdin.flush()
        start_s, elapsed_s = sender.stdout.readline().split()
        sender.wait()
        end = receiver.wait_quiet()
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        cpu, rss = receiver.stop()
    received = receiver.count()
    duration = max(end - float(start_s), float(elapsed_s))
    return Result(cls.name, "udp", rate, n, received, n / float(elapsed_s),
                  received / duration, cpu / max(received, 1) * 1e6, rss)


def run_tcp(cls: type[Receiver], base: Path, n: int) -> Result:
    work = Path(tempfile.mkdtemp(prefix=f"{cls.name}-tcp-", dir=base))
    receiver = cls(work)
    receiver.start()
    data = b"".join(message(i) + b"\n" for i in range(n))
    start = time.time()
    try:
        with socket.create_connection(("127.0.0.1", receiver.port)) as s:
            s.sendall(data)
        sent_at = time.time()
        end = receiver.wait_quiet()
    finally:
        cpu, rss = receiver.stop()
    received = receiver.count()
    return Result(cls.name, "tcp", 0, n, received, n / (sent_at - start),
                  received / max(end - start, 1e-6), cpu / max(received, 1) * 1e6, rss)


def median_result(results: list[Result]) -> Result:
    first = results[0]
    return Result(first.receiver, first.mode, first.target, first.sent,
                  int(statistics.median(r.received for r in results)),
                  statistics.median(r.send_rate for r in results),
                  statistics.median(r.accepted_rate for r in results),
                  statistics.median(r.cpu_us for r in results),
                  max(r.rss_mb for r in results))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.syslog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="per run (default 100000)")
    parser.add_argument("--rates", default="50000,100000,150000,200000,max",
                        help="target msgs/s, comma-separated; 'max' = unthrottled")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per point, median reported (default 3)")
    parser.add_argument("--only", choices=("fobs", "rsyslogd"), help="one receiver only")
    parser.add_argument("--udp-workers", type=int, default=Fobs.workers,
                        help=f"fobs listen.udp_workers (default {Fobs.workers})")
    args = parser.parse_args()
    Fobs.workers = args.udp_workers
    rates = [0.0 if r == "max" else float(r) for r in args.rates.split(",")]
    receivers: list[type[Receiver]] = [Fobs, Rsyslog]
    if args.only:
        receivers = [r for r in receivers if r.name == args.only]
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    print(f"{args.messages} messages of 200 B per run, {args.repeat} run(s) per point, "
          f"{os.cpu_count()} CPUs, receive buffer {RCVBUF >> 20} MiB, "
          f"fobs udp_workers={Fobs.workers}")
    print(f"{'receiver':9} {'mode':4} {'target/s':>9} {'sent/s':>9} {'accepted/s':>10} "
          f"{'loss %':>7} {'CPU µs/msg':>10} {'peak RSS MiB':>12}")
    summary: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-syslog-") as tmp:
        base = Path(tmp)
        for cls in receivers:
            for rate in rates:
                r = median_result([run_udp(cls, base, args.messages, rate)
                                   for _ in range(args.repeat)])
                summary.setdefault(cls.name, []).append(r)
                _print(r)
            r = median_result([run_tcp(cls, base, args.messages) for _ in range(args.repeat)])
            summary.setdefault(cls.name, []).append(r)
            _print(r)
    print()
    best: dict[str, float] = {}
    for name, results in summary.items():
        clean = [r.send_rate for r in results if r.mode == "udp" and r.received == r.sent]
        best[name] = max(clean, default=0.0)
        tcp = next(r for r in results if r.mode == "tcp")
        print(f"{name}: highest zero-loss UDP rate {best[name]:,.0f} msgs/s; "
              f"TCP {tcp.accepted_rate:,.0f} msgs/s")
    if "fobs" in best and best.get("rsyslogd"):
        print(f"fobs / rsyslogd zero-loss UDP rate: {best['fobs'] / best['rsyslogd']:.2f}")
    return 0


def _print(r: Result) -> None:
    target = "max" if r.target == 0 and r.mode == "udp" else ("-" if r.mode == "tcp"
                                                              else f"{r.target:,.0f}")
    print(f"{r.receiver:9} {r.mode:4} {target:>9} {r.send_rate:>9,.0f} {r.accepted_rate:>10,.0f} "
          f"{r.loss:>7.2f} {r.cpu_us:>10.2f} {r.rss_mb:>12.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
