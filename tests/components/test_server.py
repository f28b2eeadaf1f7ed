"""The shared aiohttp server (components, collector status API, supervisor page) over real HTTP."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp import web

from fobs.components import server
from fobs.components.auth import basic_auth_header


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def test_open_server_with_health() -> None:
    reasons: list[str] = []

    async def health() -> list[str]:
        return list(reasons)

    srv = await server.serve("127.0.0.1", 0, [("GET", "/hello", hello)], health=health)
    try:
        assert srv.port > 0 and srv.url == f"http://127.0.0.1:{srv.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{srv.url}/hello") as r:
                assert (r.status, await r.text()) == (200, "hello")
            async with http.head(f"{srv.url}/hello") as r:
                assert r.status == 200
            async with http.get(f"{srv.url}/healthz") as r:
                assert (r.status, await r.text()) == (200, "ok")
            reasons.extend(["db: down", "disk: full"])
            async with http.get(f"{srv.url}/healthz") as r:
                assert (r.status, await r.text()) == (503, "db: down\ndisk: full\n")
    finally:
        await srv.close()


async def test_credentials_guard_every_path() -> None:
    srv = await server.serve("127.0.0.1", 0, [("POST", "/do", hello)],
                             credentials=("u", "p"), realm="test", health=_healthy)
    try:
        async with aiohttp.ClientSession() as http:
            for method, path in (("POST", "/do"), ("GET", "/healthz")):
                async with http.request(method, f"{srv.url}{path}") as r:
                    assert r.status == 401
                    assert r.headers["WWW-Authenticate"] == 'Basic realm="test"'
                async with http.request(method, f"{srv.url}{path}",
                                        headers={"Authorization": basic_auth_header("u", "p")}
                                        ) as r:
                    assert r.status == 200
    finally:
        await srv.close()


async def test_no_healthz_unless_asked() -> None:
    srv = await server.serve("127.0.0.1", 0, [("GET", "/", hello)])
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/healthz") as r:
            assert r.status == 404
    finally:
        await srv.close()


async def test_a_taken_port_raises() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await server.serve("127.0.0.1", port, [("GET", "/", hello)])


async def _healthy() -> list[str]:
    return []
