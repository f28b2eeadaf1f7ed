"""The scrape's HTTP client's connections (`collector/http.py` through `fetch.Fetcher`):
keep-alive reuse with real servers (aiohttp's, the component runtime's), servers that close,
refused connections, the bound on connections, idle ones closed, close(), TLS. The tests with
scripted servers run on asyncio's loop and on uvloop (the collector's)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fobs.collector.errors import ServerDisconnected
from fobs.collector.fetch import Fetcher, error_class
from fobs.collector.http import HttpClient
from fobs.components.auth import basic_auth_header
from tests.collector.collector_helpers import HttpTarget
from tests.collector.http_helpers import OK, Collect, Env, answer, on_both_loops


@on_both_loops
async def test_keep_alive_reuses_one_connection_and_sends_the_headers(
        env: Env) -> None:
    server = await env.server(answer(OK))
    for _ in range(5):
        assert await env.fetcher.get(server.url, {"Authorization": "Basic dTpw"}, 2.0) == (
            200, b'{"a": 1234}')
    assert server.connections == 1 and len(server.requests) == 5
    head = server.requests[0].decode()
    assert head.startswith("GET /varz HTTP/1.1\r\n")
    assert f"Host: {server.url.split('/')[2]}\r\n" in head
    assert "Authorization: Basic dTpw\r\n" in head and "Accept-Encoding: gzip, deflate" in head
    assert env.fetcher.buffered == 0


@on_both_loops
async def test_a_real_aiohttp_server_with_a_large_body(env: Env) -> None:
    target = await HttpTarget().start()
    try:
        target.set_varz({"pad": "x" * 50_000})
        for _ in range(3):
            status, body = await env.fetcher.get(f"http://{target.host}/varz", None, 2.0)
            assert status == 200 and body == target.varz_body
        assert env.fetcher.client is not None and env.fetcher.client.connections == 1
    finally:
        await target.stop()


@on_both_loops
async def test_a_server_that_closes_kept_alive_connections(env: Env) -> None:
    """It says nothing of closing (HTTP/1.1 keeps alive), then closes after each answer: the
    client finds the connection dead when reusing it, or retries once on a new one."""
    server = await env.server(answer(OK, keep=False))
    for _ in range(4):
        assert (await env.fetcher.get(server.url, None, 2.0))[0] == 200
    assert server.connections == 4


@on_both_loops
async def test_connection_close_and_http_1_0_are_not_reused(env: Env) -> None:
    close = await env.server(answer(OK.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n")))
    old = await env.server(answer(OK.replace(b"HTTP/1.1", b"HTTP/1.0")))
    for server in (close, old):
        for _ in range(2):
            assert (await env.fetcher.get(server.url, None, 2.0))[0] == 200
        assert server.connections == 2


@on_both_loops
async def test_refused_and_closed_clients(env: Env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = Fetcher(max_in_flight=2, max_response_bytes=1024)
    f.open()
    with pytest.raises(OSError) as caught:
        await f.get(f"http://127.0.0.1:{port}/varz", None, 2.0)
    assert error_class(caught.value) == "refused"
    server = await env.server(answer(b""))        # reads requests, never answers
    pending = asyncio.create_task(f.get(server.url, None, 5.0))
    while not server.requests:                    # no event from a server that says nothing
        await asyncio.sleep(0.01)
    await f.close()
    with pytest.raises(ServerDisconnected):
        await pending
    await asyncio.wait_for(server.closed.wait(), 2)
    assert f.client is not None and f.client.connections == 0


@on_both_loops
async def test_connections_are_bounded_and_idle_ones_closed(env: Env) -> None:
    release = asyncio.Event()

    async def slow(writer: asyncio.StreamWriter, n: int) -> bool:
        await release.wait()
        writer.write(OK)
        return True

    server = await env.server(slow)
    client = HttpClient(max_connections=2, idle_timeout=0.3)
    sinks = [Collect() for _ in range(5)]
    gets = [asyncio.create_task(client.get(server.url, None, 5.0, s)) for s in sinks]
    while len(server.requests) < 2:
        await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*gets) == [200] * 5
    assert server.most_open == 2 and server.connections == 2
    assert all(b"".join(s.parts) == b'{"a": 1234}' for s in sinks)
    server.closed.clear()
    await asyncio.wait_for(server.closed.wait(), 3)   # the idle sweep closes them
    await client.close()


@on_both_loops
async def test_header_injection_is_refused(env: Env) -> None:
    server = await env.server(answer(OK))
    with pytest.raises(ValueError):
        await env.fetcher.get(server.url, {"X": "a\r\nHost: evil"}, 2.0)
    assert not server.requests


@on_both_loops
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_with_the_callers_trust(env: Env, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(OK)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/varz"
    trusting = Fetcher(2, 1024, ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = Fetcher(2, 1024)
    trusting.open()
    default.open()
    try:
        for _ in range(2):
            assert await trusting.get(url, None, 5.0) == (200, b'{"a": 1234}')
        with pytest.raises(ssl.SSLCertVerificationError):
            await default.get(url, None, 5.0)
    finally:
        await trusting.close()
        await default.close()
        server.close()


async def test_a_real_component_keeps_one_connection(start_component: Any) -> None:
    """The component runtime's own server: basic auth passed by the caller, one keep-alive
    connection for every scrape, a 401 without the body."""
    comp = await start_component("DEA", varz={"test_value": 5})
    auth = {"Authorization": basic_auth_header(*comp.credentials)}
    f = Fetcher(max_in_flight=4, max_response_bytes=1 << 20)
    f.open()
    try:
        for _ in range(5):
            status, body = await f.get(f"http://{comp.host}/varz", auth, 2.0)
            assert status == 200 and json.loads(body)["test_value"] == 5
        assert f.client is not None and f.client.connections == 1
        assert await f.get(f"http://{comp.host}/varz", None, 2.0) == (401, b"")
    finally:
        await f.close()
