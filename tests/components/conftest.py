"""Helpers for component tests: start components against the real nats-server, read them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import nats
import pytest

from fobs.components.auth import basic_auth_header
from fobs.components.runtime import Component
from tests.services import NatsServer


async def http_get(comp: Component, path: str, auth: tuple[str, str] | None = None
                   ) -> tuple[int, str]:
    user, password = auth or comp.credentials
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{comp.host}{path}",
                         headers={"Authorization": basic_auth_header(user, password)}) as r:
            return r.status, await r.text()


async def varz(comp: Component) -> dict[str, Any]:
    status, body = await http_get(comp, "/varz")
    assert status == 200, body
    return json.loads(body)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Await a condition observable only by polling (an HTTP endpoint), with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.1)
    yield client
    await client.close()
