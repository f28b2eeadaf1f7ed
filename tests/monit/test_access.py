"""The control API against the attacks of issue 9 (finding 1), on a real supervisor process.

A web page in the operator's browser (a cross-origin form POST, or DNS rebinding under its own
name) and any local client without the credentials must change nothing; the CLI and the
status page's own buttons (same origin) keep working.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fobs.components.auth import basic_auth_header
from fobs.components.config import ConfigError
from fobs.syslog_agg.monit import HttpConfig, ProcessConfig, TcpCheck
from fobs.syslog_agg.monit.config import load_config
from tests.monit.conftest import child, svc
from tests.services import free_port, wait_until

REPO = Path(__file__).parents[2]
AUTH = {"Authorization": basic_auth_header("admin", "s3cret")}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         host: str | None = "") -> tuple[int, dict]:
    """One request with exactly these headers; `host=""` is the client's own Host, None none."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=host != "",
                        skip_accept_encoding=True)
        if host:
            conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        body = b"action=stop" if method == "POST" else b""
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, {"text": data.decode(errors="replace")}
    finally:
        conn.close()


async def acall(*args: object, **kw: object) -> tuple[int, dict]:
    """`call` off the loop: the in-process supervisor answers on this test's event loop."""
    return await asyncio.to_thread(call, *args, **kw)  # type: ignore[arg-type]


class Monit:
    """`python -m fobs.syslog_agg.monit -c FILE` with credentials and one TCP service, `web`."""

    def __init__(self, tmp_path: Path, http_extra: str = "") -> None:
        self.port, self.web_port = free_port(), free_port()
        self.config = tmp_path / "monit.toml"
        self.config.write_text(f"""
cycle = 0.2
[http]
address = "127.0.0.1:{self.port}"
user = "admin"
password = "s3cret"
{http_extra}
[[process]]
name = "web"
command = {json.dumps(child("tcp", self.web_port))}
[[process.tcp]]
port = {self.web_port}
""")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fobs.syslog_agg.monit", "-c", str(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = ""

    def status(self) -> dict:
        code, body = call(self.port, "GET", "/status", AUTH)
        assert code == 200, body
        return body

    def web(self) -> dict:
        return next(s for s in self.status()["services"] if s["name"] == "web")

    def web_ok(self) -> bool:
        try:
            web = self.web()
        except OSError:
            assert self.proc.poll() is None, self.stop()
            return False
        return web["status"] == "OK" and web["monitoring_status"] == "Monitored" \
            and not web["pending"]

    def cli(self, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fobs", "monit", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=20)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.output = self.proc.communicate(timeout=15)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()[0].decode(errors="replace")
        return self.output


@pytest.fixture
def monit(tmp_path: Path) -> Iterator[Monit]:
    m = Monit(tmp_path, 'allowed_hosts = ["monit.example", "proxy.example:8443"]')
    try:
        wait_until(m.web_ok, "the supervisor and 'web'", timeout=20)
        yield m
    finally:
        m.stop()


def test_cross_origin_and_unauthenticated_requests_change_nothing(monit):
    before = monit.web()
    evil = {"Origin": "http://evil.example", **FORM}
    # The attack of the issue: a form on evil.example posting to the supervisor, no auth.
    assert call(monit.port, "POST", "/service/web/stop", evil)[0] in (401, 403)
    # With the credentials the browser may have cached, the Origin still refuses it.
    code, body = call(monit.port, "POST", "/service/web/stop", {**evil, **AUTH})
    assert code == 403 and "cross-origin" in body["error"]
    for origin in ("null", f"http://127.0.0.1:{monit.port + 1}", "http://127.0.0.1"):
        assert call(monit.port, "POST", "/service/web/stop", {"Origin": origin, **AUTH})[0] == 403
    # A browser that sends no Origin still says where the request comes from.
    assert call(monit.port, "POST", "/service/web/stop",
                {"Sec-Fetch-Site": "cross-site", **AUTH, **FORM})[0] == 403
    # No credentials, or wrong ones, from a local client (no Origin): 401.
    code, body = call(monit.port, "POST", "/service/web/unmonitor")
    assert code == 401 and body["error"] == "wrong or missing credentials"
    bad = {"Authorization": basic_auth_header("admin", "s3cre")}
    assert call(monit.port, "POST", "/service/web/stop", bad)[0] == 401
    # A GET of a state-changing path (an <img src>, a link): 405, even with the credentials.
    assert call(monit.port, "GET", "/service/web/stop", AUTH)[0] == 405
    assert call(monit.port, "GET", "/service/web/stop")[0] == 405

    after = monit.web()
    assert (after["status"], after["monitoring_status"], after["pid"]) == \
        ("OK", "Monitored", before["pid"]) and not after["pending"]
    refused = monit.status()["supervisor"]["http_refused"]
    assert refused == {"origin": 6, "credentials": 2}, refused

    # The same request with the credentials and no Origin (the CLI) does what it says,
    # at once: so the checks above would have seen a stop that got through.
    assert call(monit.port, "POST", "/service/web/unmonitor", AUTH)[0] == 202
    assert monit.web()["monitoring_status"] == "Not monitored"
    log = monit.stop()
    assert log.count("Request to ") == 1 and "Request to unmonitor 'web'" in log, log


def test_only_this_servers_host_names_are_served(monit):
    port = monit.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}",
                 "monit.example", "monit.example:80", "proxy.example:8443"):
        assert call(port, "GET", "/status", AUTH, host=host)[0] == 200, host
    # DNS rebinding: evil.example now resolves to 127.0.0.1, and the page is same-origin.
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}",
                 "proxy.example:443", f"10.1.2.3:{port}", "a@b", f"[::1:{port}"):
        code, body = call(port, "GET", "/status", AUTH, host=host)
        assert code == 403 and "unknown Host header" in body["error"], host
    code, _ = call(port, "POST", "/service/web/stop",
                   {"Origin": f"http://evil.example:{port}", **AUTH},
                   host=f"evil.example:{port}")
    assert code == 403
    assert call(port, "GET", "/status", AUTH, host=None)[0] in (400, 403)  # no Host at all
    assert monit.web()["monitoring_status"] == "Monitored"


def test_status_page_needs_the_credentials_and_its_buttons_work(monit):
    port = monit.port
    for path in ("/", "/status", "/status/web"):
        code, _ = call(port, "GET", path)
        assert code == 401, path
    code, page = call(port, "GET", "/", AUTH)
    assert code == 200 and 'action="/service/web/restart"' in page["text"]
    # A button of the page: same origin, the browser's basic auth, a form body.
    first = monit.web()["pid"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/service/web/restart", body=b"",
                  headers={"Origin": f"http://127.0.0.1:{port}", "Accept": "text/html",
                           "Sec-Fetch-Site": "same-origin", **AUTH, **FORM})
    resp = conn.getresponse()
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert resp.headers["X-Frame-Options"] == "DENY"
    conn.close()
    wait_until(lambda: monit.web_ok() and monit.web()["pid"] != first, "web restarted", 20)


def test_cli_sends_the_credentials_and_says_why_it_was_refused(monit):
    ok = monit.cli("-c", str(monit.config), "summary")
    assert ok.returncode == 0 and " web " in ok.stdout, ok.stderr
    url = f"http://127.0.0.1:{monit.port}"
    nothing = monit.cli("--url", url, "stop", "web")
    assert nothing.returncode == 2 and nothing.stdout == ""
    assert nothing.stderr.count("\n") == 1 and "HTTP 401" in nothing.stderr
    assert "--credentials USER:PASS" in nothing.stderr
    wrong = monit.cli("--url", url, "--credentials", "admin:nope", "stop", "web")
    assert wrong.returncode == 2 and "credentials were refused" in wrong.stderr
    assert monit.web()["monitoring_status"] == "Monitored"
    stop = monit.cli("--url", url, "--credentials", "admin:s3cret", "stop", "web")
    assert stop.returncode == 0 and stop.stdout == "'web' stop requested\n", stop.stderr
    wait_until(lambda: monit.web()["monitoring_status"] == "Not monitored"
               and not monit.web()["pending"], "web stopped", 20)
    # With no flags, from the directory `fobs up` ran in: its state file var/stack.toml; from
    # elsewhere with --stack DIR.
    from fobs.stack import Endpoint, State, write
    stack = monit.config.parent / "stack"
    write(stack / "var", State(supervisor=Endpoint(f"http://127.0.0.1:{monit.port}", "admin",
                                                   "s3cret")))
    start = monit.cli("start", "web", cwd=stack)
    assert start.returncode == 0, start.stderr
    wait_until(monit.web_ok, "web started again", 20)
    summary = monit.cli("summary", "--stack", str(stack), cwd=monit.config.parent)
    assert summary.returncode == 0 and " web " in summary.stdout, summary.stderr


# -- in-process: the policy's other settings ------------------------------------------------


def web_service(port: int) -> tuple[ProcessConfig, ...]:
    return (ProcessConfig(name="web", command=child("tcp", port), tcp=(TcpCheck(port=port),)),)


async def test_without_credentials_nothing_changes_and_the_page_is_closed(supervise):
    sup = await supervise(processes=web_service(free_port()))
    port = int(sup.http_url.rpartition(":")[2])
    await sup.wait_for(lambda: svc(sup, "web")["monitoring_status"] == "Monitored")
    code, body = await acall(port, "POST", "/service/web/stop")
    assert code == 403 and "no credentials configured (http.user" in body["error"]
    assert (await acall(port, "GET", "/status"))[0] == 403
    assert (await acall(port, "POST", "/service/web/stop", AUTH))[0] == 403
    assert svc(sup, "web")["monitoring_status"] == "Monitored" and not svc(sup, "web")["pending"]


async def test_a_public_status_page_still_guards_the_control(supervise):
    sup = await supervise(processes=web_service(free_port()), http=HttpConfig(
        address="127.0.0.1:0", user="admin", password="s3cret", status_page="public"))
    port = int(sup.http_url.rpartition(":")[2])
    await sup.wait_for(lambda: svc(sup, "web")["monitoring_status"] == "Monitored")
    code, body = await acall(port, "GET", "/status/web")
    assert code == 200 and body["services"][0]["name"] == "web"
    assert (await acall(port, "POST", "/service/web/stop"))[0] == 401
    assert (await acall(port, "GET", "/status", {"Origin": "http://evil.example"}))[0] == 403
    assert svc(sup, "web")["monitoring_status"] == "Monitored" and not svc(sup, "web")["pending"]


async def test_clients_outside_the_allowed_networks_are_refused(supervise):
    sup = await supervise(http=HttpConfig(address="127.0.0.1:0", user="admin",
                                          password="s3cret", allow=("10.0.0.0/8",)))
    port = int(sup.http_url.rpartition(":")[2])
    code, body = await acall(port, "GET", "/status", AUTH)
    assert code == 403 and body["error"] == "client address 127.0.0.1 is not allowed"
    allowed = await supervise(http=HttpConfig(address="127.0.0.1:0", user="admin",
                                              password="s3cret", allow=("127.0.0.1",)))
    port = int(allowed.http_url.rpartition(":")[2])
    assert (await acall(port, "GET", "/status", AUTH))[0] == 200


@pytest.mark.parametrize("text,error", [
    ('allow = []', "http.allow: must list at least one network"),
    ('allow = ["10.0.0.1/8"]', "http.allow[0]: 10.0.0.1/8 has host bits set"),
    ('allow = ["::1", "localhost"]', "http.allow[1]: 'localhost' does not appear to be"),
    ('allowed_hosts = ["http://x"]', "http.allowed_hosts[0]: expected a host name or HOST:PORT"),
    ('status_page = "open"', "http.status_page: must be one of 'private', 'public'"),
    ('user = "admin"', "http.user: user and password go together"),
])
def test_http_config_errors_name_the_key(tmp_path, text, error):
    path = tmp_path / "bad.toml"
    path.write_text(f"[http]\n{text}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert error in str(e.value)


def test_the_samples_commented_http_values_are_the_defaults(tmp_path):
    sample = (REPO / "syslog_agg" / "monit" / "fobs-monit.toml").read_text()
    values = []
    for line in sample.split("\n[http]\n", 1)[1].splitlines():
        if line.startswith(("[", "# [")):  # the next table
            break
        if line.startswith("# "):
            values.append(line[2:])
    assert {v.split(" =")[0] for v in values} == set(HttpConfig.__dataclass_fields__)
    path = tmp_path / "defaults.toml"
    path.write_text("[http]\n" + "\n".join(values) + "\n")
    assert load_config(path).http == HttpConfig()
