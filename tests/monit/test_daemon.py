"""`python -m fobs.syslog_agg.monit -c FILE` as a real process: CLI output, SIGTERM, nothing
left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fobs.components.auth import basic_auth_header
from tests.monit.conftest import child, wait_gone
from tests.services import free_port, wait_until

REPO = Path(__file__).parents[2]


def get_status(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={
        "Authorization": basic_auth_header("admin", "s3cret")})
    with urllib.request.urlopen(request, timeout=2) as r:
        return json.load(r)  # type: ignore[no-any-return]


class Daemon:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.http_port = free_port()
        self.web_port = free_port()
        self.term_port = free_port()
        self.grandchild = tmp_path / "grandchild.pid"
        self.pidfile = tmp_path / "daemon.pid"
        self.config = tmp_path / "monit.toml"
        self.config.write_text(f"""
cycle = 0.2
[http]
address = "127.0.0.1:{self.http_port}"
user = "admin"
password = "s3cret"

[[process]]
name = "web"
command = {json.dumps(child("tcp", self.web_port, "--grandchild", str(self.grandchild)))}
log = "{tmp_path / 'web.log'}"
[[process.tcp]]
port = {self.web_port}

[[process]]
name = "stubborn"
command = {json.dumps(child("tcp", self.term_port, "--ignore-term"))}
depends_on = ["web"]
stop_timeout = 0.5
[[process.tcp]]
port = {self.term_port}

[[process]]
name = "daemon"
start = ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $! > {self.pidfile}"]
pidfile = "{self.pidfile}"

[[program]]
name = "check"
command = "true"
""")
        self._output: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fobs.syslog_agg.monit", "-c", str(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def status(self) -> dict:
        return get_status(self.http_port)

    def all_ok(self) -> bool:
        try:
            services = self.status()["services"]
        except OSError:
            assert self.proc.poll() is None, self.output()
            return False
        return all(s["status"] == "OK" and not s["pending"] for s in services)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fobs", "monit", "-c", str(self.config),
                               *args], cwd=REPO, capture_output=True, text=True, timeout=20)

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        if self._output is None:
            self._output = self.proc.communicate(timeout=5)[0].decode(errors="replace")
        return self._output


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        wait_until(d.all_ok, "supervisor and its services", timeout=20)
        yield d
    finally:
        if d.proc.poll() is None:  # a clean stop, so that no child outlives the test
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        d.output()  # reaps it and closes the pipe


def test_sigterm_stops_every_child_in_reverse_order_and_leaves_nothing(daemon):
    services = {s["name"]: s for s in daemon.status()["services"]}
    pids = [services[n]["pid"] for n in ("web", "stubborn", "daemon")]
    pids.append(int(daemon.grandchild.read_text()))
    assert all(pids) and int(daemon.pidfile.read_text()) == services["daemon"]["pid"]
    assert os.getpgid(services["web"]["pid"]) == services["web"]["pid"]  # its own group

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=15) == 0
    log = daemon.output()
    assert wait_gone(pids) == [], log
    # The dependant went first; the stubborn one needed SIGKILL after its stop_timeout.
    assert log.index("Stopped 'stubborn'") < log.index("Stopped 'web'"), log
    assert "'stubborn' did not stop within 0.5 s: killed" in log


def test_cli_summary_status_and_control(daemon):
    summary = daemon.cli("summary")
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("fobs-monit ") and " uptime: " in lines[0]
    assert lines[1] == " Service Name                     Status                      Type"
    assert lines[2:] == [
        " web                              OK                          Process",
        " stubborn                         OK                          Process",
        " daemon                           OK                          Process",
        " check                            OK                          Program",
    ]

    status = daemon.cli("status", "web")
    assert status.returncode == 0, status.stderr
    text = status.stdout.splitlines()
    web_pid = daemon.status()["services"][0]["pid"]
    assert text[2] == "Process 'web'"
    assert "  status                       OK" in text
    assert "  monitoring status            Monitored" in text
    assert f"  pid                          {web_pid}" in text
    assert f"  parent pid                   {daemon.proc.pid}" in text
    assert any(t.startswith("  port response time") and f"[127.0.0.1]:{daemon.web_port} type "
               "TCP/IP" in t for t in text)
    assert any(t.startswith("  memory                       ") and "MB]" in t for t in text)

    report = daemon.cli("report").stdout.splitlines()
    assert report[0] == "up:             4 (100.0%)" and report[-1] == "total:          4 services"

    # Control: stop web (and its dependant), then start stubborn (and its prerequisite).
    assert daemon.cli("stop", "web").stdout == "'web' stop requested\n"
    wait_until(lambda: all(s["status"] == "Not monitored" and not s["pending"]
                           for s in daemon.status()["services"][:2]), "web stopped")
    assert wait_gone([web_pid]) == []
    daemon.cli("start", "stubborn")
    wait_until(daemon.all_ok, "everything back")

    missing = daemon.cli("status", "nope")
    assert missing.returncode == 2 and "no service named 'nope'" in missing.stderr
    bad = daemon.cli("--url", f"http://127.0.0.1:{free_port()}", "summary")
    assert bad.returncode == 2 and "cannot reach the supervisor" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1


def test_children_get_sigterm_when_the_supervisor_is_killed(tmp_path):
    port, http = free_port(), free_port()
    config = tmp_path / "monit.toml"
    config.write_text(f"""
cycle = 0.2
[http]
address = "127.0.0.1:{http}"
user = "admin"
password = "s3cret"
[[process]]
name = "web"
command = {json.dumps(child("tcp", port))}
[[process.tcp]]
port = {port}
""")
    sup = subprocess.Popen([sys.executable, "-m", "fobs.syslog_agg.monit", "-c", str(config)],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def web_pid() -> int | None:
            try:
                s = get_status(http)["services"][0]
            except OSError:
                return None
            return s["pid"] if s["status"] == "OK" else None

        wait_until(lambda: web_pid() is not None, "web running", timeout=20)
        pid = web_pid()
        assert pid is not None
        sup.send_signal(signal.SIGKILL)  # no chance to stop anything in order
        sup.wait(timeout=5)
        assert wait_gone([pid]) == []
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
