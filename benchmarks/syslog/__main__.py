"""UDP and TCP syslog ingest: the fobs aggregator in its default configuration against rsyslogd.

    python -m benchmarks.syslog [--quick] [--messages N] [--rates 50000,...,max] [--repeat R]
                                [--senders P] [--only fobs|rsyslogd] [--udp-workers N]
                                [--modes udp,fuzz,tcp,parse]

Both receivers run one after the other in the same run (receivers.py). Senders (senders.py) are
P processes sending with sendmmsg, so that together they outrun either receiver:
- UDP: N numbered RFC 5424 datagrams of ~200 B at each target rate (paced per millisecond;
  `max` = as fast as the senders go). Received = unique sequence numbers in the files;
  `rcvbuf` = the change of the kernel's Udp RcvbufErrors over the run.
- TCP: N messages over 1 and over 100 connections, LF framing and octet counting.
- Fuzz: hostile datagrams (random bytes, mutated and truncated RFC 5424/3164, invalid UTF-8,
  NULs, 1 % oversized) against the same number of clean ones at the same rate: CPU per message
  of each, and received = lines written (fobs writes one line per datagram). `fuzz` is a fresh
  receiver (for fobs that includes making a directory and a file for each of up to
  routing.max_components made-up names); `fuzz-warm` measures a second sending of the same
  datagrams to the same receiver.
- Parse: in this process, CPU per message of `parse()` alone and of the pipeline's
  parse → route → count → format, for plain RFC 5424, the CF forwarder form, BSD, and fuzz.
Each figure: the median of R runs; CPU is summed over the receiver's processes (µs per message
received), RSS is the peak (VmHWM) summed over them. Ratios are fobs / rsyslogd of this run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path

from benchmarks.syslog.receivers import REPO, Fobs, Receiver, Rsyslog, udp_rcvbuf_errors


@dataclass
class Result:
    receiver: str
    mode: str           # udp, fuzz, clean (fuzz's baseline), tcp1-lf, tcp100-octet, ...
    target: float       # msgs/s asked of the senders (0 = max, or TCP)
    sent: int
    received: float
    send_rate: float    # what the senders achieved
    sender_us: float    # senders' CPU per message
    accepted: float     # received / (first send .. last output growth)
    cpu_us: float       # receiver CPU per message received
    procs: int
    rss_mb: float
    rcvbuf: float       # kernel RcvbufErrors during the run

    @property
    def loss(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent


def _senders(args: list[list[str]]) -> tuple[float, float, float, int]:
    """Start sender processes, release them at once; (start, end, CPU s, messages)."""
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.syslog.senders", *a], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for a in args]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for p in procs:
            assert p.stdout is not None
            report = [float(x) for x in p.stdout.readline().split()]
            if p.wait() != 0 or len(report) != 4:
                raise RuntimeError(f"a sender failed (exit status {p.returncode}); see above")
            reports.append(report)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    start = min(r[0] for r in reports)
    end = max(r[0] + r[1] for r in reports)
    return start, end, sum(r[2] for r in reports), int(sum(r[3] for r in reports))


def _run(cls: type[Receiver], base: Path, mode: str, target: float,
         sender_args: list[list[str]], count: str, warm: bool = False) -> Result:
    """One receiver, one sending; with `warm`, the same sending once before, not measured
    (the fuzz's component names, directories and files are then made already)."""
    work = Path(tempfile.mkdtemp(prefix=f"{cls.name}-{mode}-", dir=base))
    receiver = cls(work)
    receiver.start()
    args = [[a[0], str(receiver.port), *a[1:]] for a in sender_args]
    before = 0
    try:
        if warm:
            _senders(args)
            receiver.wait_quiet()
            receiver.mark()
            before = receiver.count_lines()
        errors = udp_rcvbuf_errors()
        start, end_send, sender_cpu, n = _senders(args)
        end = max(receiver.wait_quiet(), end_send)
        errors = udp_rcvbuf_errors() - errors
    finally:
        cpu, procs, rss = receiver.stop()
    received = receiver.count_seq() if count == "seq" else receiver.count_lines() - before
    return Result(cls.name, mode, target, n, received, n / (end_send - start),
                  sender_cpu / n * 1e6, received / (end - start),
                  cpu / max(received, 1) * 1e6, procs, rss, errors)


def run_udp(cls: type[Receiver], base: Path, n: int, rate: float, senders: int,
            kind: str = "clean", mode: str = "udp", warm: bool = False) -> Result:
    return _run(cls, base, mode, rate,
                [["udp", kind, str(n), str(rate), str(i), str(senders)] for i in range(senders)],
                "lines" if kind == "fuzz" else "seq", warm)


def run_tcp(cls: type[Receiver], base: Path, n: int, framing: str, conns: int) -> Result:
    senders = 2 if conns > 1 else 1
    return _run(cls, base, f"tcp{conns}-{framing}", 0,
                [["tcp", framing, str(n), str(i), str(senders), str(conns // senders)]
                 for i in range(senders)], "seq")


def median(results: list[Result]) -> Result:
    first = results[0]
    values = {f.name: statistics.median(getattr(r, f.name) for r in results)
              for f in fields(Result) if f.name not in ("receiver", "mode", "target", "sent")}
    values["rss_mb"] = max(r.rss_mb for r in results)
    return Result(first.receiver, first.mode, first.target, first.sent, **values)


def parse_costs(n: int) -> dict[str, tuple[float, float]]:
    """CPU µs per message of parse() and of Pipeline.process (parse, route, count, format)."""
    from datetime import UTC, datetime

    from benchmarks.syslog.senders import fuzz_datagrams, message
    from fobs.syslog_agg.config import SyslogAggConfig
    from fobs.syslog_agg.parser import parse
    from fobs.syslog_agg.pipeline import Pipeline
    from fobs.syslog_agg.router import Router
    from fobs.syslog_agg.tail import Tail

    cfg = SyslogAggConfig()
    cf = [b"<14>Nov 24 15:56:52 10.0.0.7 vcap.dea_next [job=dea_next index=%d]  msg %d" % (
        i % 4, i) for i in range(n)]
    bsd = [b"<34>Nov 24 15:56:52 host%d sshd[%d]: Accepted publickey for root" % (i % 9, i)
           for i in range(n)]
    sets = {"rfc5424": [message(i) for i in range(n)], "cf forwarder": cf, "rfc3164": bsd,
            "fuzz": fuzz_datagrams(n)}
    now = datetime.now(UTC)
    out: dict[str, tuple[float, float]] = {}
    for name, msgs in sets.items():
        parse_us, pipe_us = [], []
        for _ in range(3):
            t = time.process_time()
            for m in msgs:
                parse(m, now=now)
            parse_us.append((time.process_time() - t) / n * 1e6)
            tail = Tail(cfg.tail)  # on by default; not connected here, as in the UDP runs
            pipeline = Pipeline(Router(cfg.routing), cfg.store.format, lambda c, d, s: None,
                                tail=(tail.admit, tail.publish, tail.limited))
            when = time.time()  # one receive batch
            for _ in range(2):  # the first pass meets every component name
                queue = deque((m, "127.0.0.1", when, False) for m in msgs)
                t = time.process_time()
                while queue:
                    pipeline.process(queue, min(len(queue), 2048))
            pipe_us.append((time.process_time() - t) / n * 1e6)
        out[name] = (min(parse_us), min(pipe_us))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.syslog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer messages, rates and runs (about a minute)")
    parser.add_argument("--messages", type=int, help="per UDP/TCP run (default 200000)")
    parser.add_argument("--rates", help="target msgs/s, comma-separated; 'max' = unthrottled "
                        "(default 50000,100000,150000,200000,300000,max)")
    parser.add_argument("--repeat", type=int, help="runs per point, median reported (default 3)")
    parser.add_argument("--senders", type=int, default=3, help="sender processes (default 3)")
    parser.add_argument("--fuzz-rate", type=float, default=20000,
                        help="msgs/s of the fuzz run and its clean baseline (default 20000)")
    parser.add_argument("--only", choices=("fobs", "rsyslogd"), help="one receiver only")
    parser.add_argument("--udp-workers", type=int,
                        help="fobs listen.udp_workers (default: the config default)")
    parser.add_argument("--modes", default="udp,fuzz,tcp,parse",
                        help="what to run, comma-separated (default udp,fuzz,tcp,parse)")
    args = parser.parse_args()
    quick = args.quick
    n = args.messages or (50_000 if quick else 200_000)
    repeat = args.repeat or (1 if quick else 3)
    rates_arg = args.rates or ("100000,max" if quick else "50000,100000,150000,200000,300000,max")
    rates = [0.0 if r == "max" else float(r) for r in rates_arg.split(",")]
    Fobs.workers = args.udp_workers
    receivers: list[type[Receiver]] = [Fobs, Rsyslog]
    if args.only:
        receivers = [r for r in receivers if r.name == args.only]
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    workers = "default config" if args.udp_workers is None else f"udp_workers={args.udp_workers}"
    print(f"{n} messages of 200 B per run, {repeat} run(s) per point, {args.senders} sender "
          f"processes, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; fobs {workers}")
    print()
    modes = set(args.modes.split(","))
    if "parse" in modes:
        print("parse cost, CPU µs per message (in this process; min of 3):")
        for name, (p, whole) in parse_costs(20_000 if quick else 50_000).items():
            print(f"  {name:13} parse {p:6.2f}   parse+route+count+format {whole:6.2f}")
        print()
    print(f"{'receiver':9} {'mode':13} {'target/s':>9} {'sent/s':>9} {'snd µs':>6} "
          f"{'accepted/s':>10} {'loss %':>7} {'rcvbuf':>7} {'CPU µs/msg':>10} {'procs':>5} "
          f"{'RSS MiB':>7}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-syslog-") as tmp:
        base = Path(tmp)

        def once(run: object, *a: object) -> Result:
            try:
                return run(*a)  # type: ignore[operator,no-any-return]
            except RuntimeError as e:  # a sender or receiver that failed: once more
                print(f"  ({e}; running this point again)", flush=True)
                return run(*a)  # type: ignore[operator,no-any-return]

        def point(run: object, *a: object) -> None:
            r = median([once(run, *a) for _ in range(repeat)])
            results.append(r)
            _print(r)

        for cls in receivers:
            for rate in rates if "udp" in modes else []:
                point(run_udp, cls, base, n, rate, args.senders)
            if "fuzz" in modes:
                fuzz_n = n // 2
                point(run_udp, cls, base, fuzz_n, args.fuzz_rate, args.senders, "clean",
                      "clean")
                point(run_udp, cls, base, fuzz_n, args.fuzz_rate, args.senders, "fuzz", "fuzz")
                point(run_udp, cls, base, fuzz_n, args.fuzz_rate, args.senders, "fuzz",
                      "fuzz-warm", True)
            for conns in (1, 100) if "tcp" in modes else ():
                for framing in ("lf", "octet"):
                    point(run_tcp, cls, base, n, framing, conns)
    _summary(results)
    return 0


def _summary(results: list[Result]) -> None:
    print()
    by = {(r.receiver, r.mode, r.target): r for r in results}
    names = sorted({r.receiver for r in results}, reverse=True)
    for name in names:
        udp = [r for r in results if r.receiver == name and r.mode == "udp"]
        clean = [r.send_rate for r in udp if r.received == r.sent]
        top = max(udp, key=lambda r: r.send_rate, default=None)
        parts = []
        if top is not None:
            parts.append(f"highest zero-loss UDP rate {max(clean, default=0):,.0f} msgs/s")
            parts.append(f"at the senders' top ({top.send_rate:,.0f}/s) {top.loss:.2f} % "
                         f"lost, {top.cpu_us:.2f} µs/msg")
        target = _fuzz_target(results)
        cl = by.get((name, "clean", target))
        for mode in ("fuzz", "fuzz-warm"):
            fz = by.get((name, mode, target))
            if fz and cl:
                parts.append(f"{mode} {fz.cpu_us:.2f} µs/msg = {fz.cpu_us / cl.cpu_us:.2f}x "
                             f"clean, {fz.received:,.0f} of {fz.sent} lines")
        print(f"{name}: {'; '.join(parts)}")
    if len(names) == 2:
        print("fobs / rsyslogd, same run:")
        for r in results:
            other = by.get(("rsyslogd", r.mode, r.target))
            if r.receiver != "fobs" or other is None:
                continue
            what = f"{r.mode} {_target(r)}"
            print(f"  {what:22} CPU/msg {r.cpu_us / other.cpu_us:5.2f}   accepted/s "
                  f"{r.accepted / max(other.accepted, 1):5.2f}   "
                  f"RSS {r.rss_mb / other.rss_mb:5.1f}")


def _fuzz_target(results: list[Result]) -> float:
    return next((r.target for r in results if r.mode == "fuzz"), 0.0)


def _target(r: Result) -> str:
    return "-" if r.mode.startswith("tcp") else ("max" if r.target == 0 else f"{r.target:,.0f}")


def _print(r: Result) -> None:
    print(f"{r.receiver:9} {r.mode:13} {_target(r):>9} {r.send_rate:>9,.0f} "
          f"{r.sender_us:>6.2f} {r.accepted:>10,.0f} {r.loss:>7.2f} {r.rcvbuf:>7,.0f} "
          f"{r.cpu_us:>10.2f} {r.procs:>5.0f} {r.rss_mb:>7.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
