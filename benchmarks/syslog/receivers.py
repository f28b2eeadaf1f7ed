"""The two receivers of the syslog benchmark, started in the foreground on a fresh port and folder.

fobs runs as `fobs syslog` does by default (`python -m fobs.syslog_agg` with the default config:
full parsing, per-component text files, the live tail on; only the addresses, the store root and
`register = false`, as there is no NATS here, are set). rsyslogd runs imudp and imtcp with an
8 MiB receive buffer, writing `%rawmsg%` to one file. CPU and peak RSS (VmHWM) are added up over
the receiver's process tree; every process is stopped by its pid.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from fobs.components.process import CLOCK_TICKS, ProcFS

__all__ = ["Receiver", "Fobs", "Rsyslog", "free_port", "udp_rcvbuf_errors"]

REPO = Path(__file__).resolve().parents[2]
SEQ = re.compile(rb"seq=(\d+)")
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


def udp_rcvbuf_errors() -> int:
    """The kernel's count of datagrams dropped for a full receive buffer (all sockets)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
             if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


class Receiver:
    name = "?"
    quiet = 1.5  # seconds without output growth that mean "done" (both flush every second)

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpu_start: dict[int, float] = {}

    def command(self) -> list[str]:
        raise NotImplementedError

    def outputs(self) -> list[Path]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "stderr.log", "wb"))
        deadline = time.monotonic() + 30
        while not _tcp_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.work}/stderr.log")
            time.sleep(0.05)
        time.sleep(0.5)  # start-up work (imports, workers) settles before CPU is measured
        self.cpu_start = _cpu_by_pid(self.proc.pid)

    def mark(self) -> None:
        """Count CPU from now on."""
        assert self.proc is not None
        self.cpu_start = _cpu_by_pid(self.proc.pid)

    def output_size(self) -> int:
        return sum(p.stat().st_size for p in self.outputs())

    def wait_quiet(self, timeout: float = 120.0) -> float:
        """Wait until the output has been still for `quiet` s; return when the receiver was
        last busy (15 % of a CPU or more over 200 ms): the end of its work, which the output
        shows only at its next flush, up to a second later."""
        assert self.proc is not None
        last_size, last_change, last_busy = -1, time.time(), 0.0
        recent = deque([(time.time(), sum(_cpu_by_pid(self.proc.pid).values()))], maxlen=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = time.time()
            cpu = sum(_cpu_by_pid(self.proc.pid).values())
            then, cpu_then = recent[0]
            if cpu - cpu_then >= 0.15 * (now - then):
                last_busy = now
            recent.append((now, cpu))
            size = self.output_size()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change > self.quiet:
                break
        return min(last_busy, last_change) if last_busy else last_change

    def stop(self) -> tuple[float, int, float]:
        """SIGTERM and wait: (CPU seconds since start, processes, peak RSS MiB summed)."""
        assert self.proc is not None
        cpu = _cpu_by_pid(self.proc.pid)
        used = sum(cpu.values()) - sum(self.cpu_start.get(p, 0.0) for p in cpu)
        # VmHWM, not wait4's ru_maxrss: Linux carries a forking parent's peak into the child
        peak_kib = sum(_status_kib(p, "VmHWM") for p in _tree(self.proc.pid))
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return used, len(cpu), peak_kib / 1024

    def count_seq(self) -> int:
        """Unique sequence numbers in the output."""
        seen: set[bytes] = set()
        for path in self.outputs():
            seen.update(SEQ.findall(path.read_bytes()))
        return len(seen)

    def count_lines(self) -> int:
        return sum(path.read_bytes().count(b"\n") for path in self.outputs())


class Fobs(Receiver):
    name = "fobs"
    workers: int | None = None  # None = the default config's listen.udp_workers

    def command(self) -> list[str]:
        workers = "" if self.workers is None else f"udp_workers = {self.workers}\n"
        config = self.work / "syslog.toml"
        config.write_text(
            f'register = false\n[listen]\nudp = "127.0.0.1:{self.port}"\n'
            f'tcp = "127.0.0.1:{self.port}"\n{workers}'
            f'[store]\nroot = "{self.work / "logs"}"\n')
        return [sys.executable, "-m", "fobs.syslog_agg", "--config", str(config)]

    def outputs(self) -> list[Path]:
        return list((self.work / "logs").rglob("*.log"))


class Rsyslog(Receiver):
    name = "rsyslogd"

    def command(self) -> list[str]:
        conf = self.work / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{self.work}" maxMessageSize="8k" net.enableDNS="off")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{self.port}" rcvbufSize="{RCVBUF}")
input(type="imtcp" address="127.0.0.1" port="{self.port}" maxSessions="1000")
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
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += _tree(int(child))
    except FileNotFoundError:
        pass
    return pids


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def _cpu_by_pid(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each process of the tree (all its threads)."""
    procfs = ProcFS()
    out = {}
    for p in _tree(pid):
        st = procfs.stat(p)
        if st is not None:
            out[p] = st.cpu_ticks / CLOCK_TICKS
    return out
