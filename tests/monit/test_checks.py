"""Single checks against real sockets."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from fobs.syslog_agg.monit import checks
from fobs.syslog_agg.monit.config import HttpCheck, TcpCheck, UdpCheck
from fobs.syslog_agg.parser import parse
from tests.services import free_port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_udp_check_refused_then_ok_with_a_syslog_probe():
    port = free_udp_port()
    refused = await checks.udp(UdpCheck(port=port, timeout=0.5))
    assert not refused.ok and "refused" in refused.message.lower()

    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Listener(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.put_nowait(data)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        Listener, local_addr=("127.0.0.1", port))
    try:
        ok = await checks.udp(UdpCheck(port=port, timeout=0.1))
        assert ok.ok
        probe = await asyncio.wait_for(got.get(), 1)
    finally:
        transport.close()
    message = parse(probe, now=datetime.now(UTC))
    assert message.format == "rfc5424" and message.error is None
    assert message.app_name == "fobs-monit" and message.msgid == "probe"
    assert message.severity == 6


async def test_tcp_check():
    port = free_port()
    assert not (await checks.tcp(TcpCheck(port=port, timeout=1))).ok
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with server:
        result = await checks.tcp(TcpCheck(port=port, timeout=1))
    assert result.ok and result.response_time is not None


async def test_http_check_status_body_and_basic_auth():
    async def healthz(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic dTpw":  # u:p
            return web.Response(status=401)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as session:
            assert (await checks.http(session, HttpCheck(url=url, user="u", password="p",
                                                         contains="ok"))).ok
            no_auth = await checks.http(session, HttpCheck(url=url))
            assert not no_auth.ok and "returned 401, expected 200" in no_auth.message
            wrong_body = await checks.http(session, HttpCheck(url=url, user="u", password="p",
                                                              contains="healthy"))
            assert not wrong_body.ok and "does not contain" in wrong_body.message
    finally:
        await runner.cleanup()
