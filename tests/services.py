"""Real services for tests: nats-server, influxd and victoria-metrics on free loopback ports.

Each service runs in its own temp dir, is waited for until it answers, and can be killed and
restarted on the same port mid-test (`kill()` / `start()`), which the fault tests rely on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from fobs.influxd import find_influxd, influxd_config
from fobs.ports import free_ports

READY_TIMEOUT = 30.0


def free_port() -> int:
    return free_ports(1)[0]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(cert, key) for 127.0.0.1, made with openssl; the cert is its own CA."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def find_binary(name: str, *extra: str) -> str:
    for candidate in (name, *extra):
        found = shutil.which(candidate) or next(
            (p for p in (f"/usr/sbin/{candidate}", f"/usr/bin/{candidate}")
             if os.access(p, os.X_OK)),
            None,
        )
        if found:
            return found
    raise RuntimeError(f"{name} is not installed; run ./dev setup")


def wait_until(check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `check` until it is true; the services give us no readiness event to await."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


class Service:
    """One real server process; subclasses know its command line and readiness probe."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def reassign_ports(self) -> bool:
        """Pick new ports after a bind collision; False when the ports must stay (a restart)."""
        return False

    def start(self) -> None:
        """Start and wait until ready; a port taken meanwhile by someone else is retried on
        fresh ports, but only before the first successful start (restarts keep their port)."""
        for attempt in range(3):
            try:
                self._start_once()
                self._started_once = True
                return
            except RuntimeError as e:
                collided = "address already in use" in str(e).lower()
                if attempt == 2 or not collided or getattr(self, "_started_once", False) \
                        or not self.reassign_ports():
                    raise

    def _start_once(self) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            list(self.command()), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(lambda: self._alive_or_raise() and self.ready(), self.name)
        except BaseException:
            self.kill()
            raise

    def _alive_or_raise(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
        return True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP, returning once the whole process has stopped: kill() only asks, and on a busy
        machine a thread already running can still answer a request for a moment."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        os.waitpid(self.proc.pid, os.WUNTRACED)   # reports the stop; reaps nothing

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NatsServer(Service):
    name = "nats-server"

    def __init__(self, workdir: Path, *, cluster_port: int | None = None,
                 routes: Sequence[str] = (), cluster_name: str = "fobs-test",
                 ports: Sequence[int] | None = None, args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.port, self.monitor_port = ports or free_ports(2)
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.cluster_name = cluster_name
        self.args = list(args)      # e.g. --user/--pass, --tls --tlscert/--tlskey

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def reassign_ports(self) -> bool:
        if self.cluster_port:
            return False  # the other nodes route to this port
        self.port, self.monitor_port = free_ports(2)
        return True

    def command(self) -> Sequence[str]:
        cmd = [find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(self.port),
               "-m", str(self.monitor_port), *self.args]
        if self.cluster_port:
            cmd += ["--cluster_name", self.cluster_name,
                    "--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if self.routes:
                cmd += ["--routes", ",".join(self.routes)]
        return cmd

    def ready(self) -> bool:
        return http_status(f"http://127.0.0.1:{self.monitor_port}/healthz") == 200


class NatsCluster:
    """Three routed nats-servers; `urls` lists every member's client URL."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        all_ports = free_ports(3 * size)
        ports = all_ports[:size]
        routes = [f"nats://127.0.0.1:{p}" for p in ports]
        self.nodes = [
            NatsServer(workdir / f"node{i}", cluster_port=port,
                       routes=[r for r in routes if not r.endswith(f":{port}")],
                       ports=all_ports[size + 2 * i: size + 2 * i + 2])
            for i, port in enumerate(ports)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        wait_until(self._routed, "nats cluster routes")

    def _routed(self) -> bool:
        import json
        for node in self.nodes:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{node.monitor_port}/routez", timeout=1) as r:
                    if json.load(r).get("num_routes", 0) < len(self.nodes) - 1:
                        return False
            except OSError:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Influxd(Service):
    """InfluxDB 1.x (Debian's influxd) with its own config, data dir and ports."""

    name = "influxd"

    def __init__(self, workdir: Path, *, http_options: str = "") -> None:
        super().__init__(workdir)
        self.http_options = http_options  # extra lines of the [http] section
        self.port, self.rpc_port = free_ports(2)
        self.config_path = workdir / "influxdb.conf"
        self.write_config()

    def reassign_ports(self) -> bool:
        self.port, self.rpc_port = free_ports(2)
        self.write_config()
        return True

    def write_config(self) -> None:
        self.config_path.write_text(influxd_config(self.workdir / "data", self.port,
                                                   self.rpc_port,
                                                   http_options=self.http_options))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [find_influxd() or find_binary("influxd"), "-config", str(self.config_path)]

    def ready(self) -> bool:
        return http_status(f"{self.url}/ping") == 204

    def query(self, q: str, db: str | None = None) -> dict:
        """Run InfluxQL over HTTP and return the decoded JSON."""
        import json
        import urllib.parse
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        body = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=body, timeout=10) as r:
            return json.load(r)

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def count(self, db: str, measurement: str, field: str, where: str = "") -> int:
        """Number of points of `measurement` with `field` set (0 when there are none)."""
        q = f'SELECT count("{field}") FROM "{measurement}"' + (f" WHERE {where}" if where else "")
        series = self.query(q, db)["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0


class VictoriaMetrics(Service):
    """A second real target that speaks the InfluxDB 2.x write API."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()

    def reassign_ports(self) -> bool:
        self.port = free_port()
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [find_binary("victoria-metrics"), f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}", "-retentionPeriod=100y",
                "-loggerLevel=ERROR"]

    def ready(self) -> bool:
        return http_status(f"{self.url}/health") == 200

    def flush(self) -> None:
        """Make freshly written samples queryable now."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).close()

    def export(self, match: str) -> list[dict]:
        """Raw samples of the series matching a PromQL selector (one JSON object per series)."""
        import json
        import urllib.parse
        self.flush()
        q = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}", timeout=10) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]
