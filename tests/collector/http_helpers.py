"""Helpers of the scrape HTTP client's tests (test_http*.py): raw TCP servers that answer what a
test scripts, and running a test on both event loops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from fobs.collector.fetch import Fetcher

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": 1234}"
Respond = Callable[[asyncio.StreamWriter, int], Awaitable[bool]]


def answer(raw: bytes, keep: bool = True) -> Respond:
    """Every request gets `raw`; the connection stays open if `keep`."""
    async def respond(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep
    return respond


class Scripted:
    """A raw TCP server: reads each request's head and lets `respond` write whatever it likes
    (returning whether to read another request on that connection)."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.connections = self.open = self.most_open = 0
        self.closed = asyncio.Event()           # set whenever a connection ends
        self.server: asyncio.Server | None = None
        self.handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers[task] = writer
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.requests.append(head)
                if not await self.respond(writer, len(self.requests)):
                    break
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()
            self.closed.set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/varz"


class Env:
    """A test's world: a Fetcher and the scripted servers it made, all closed at the end."""

    async def __aenter__(self) -> Env:
        self.fetcher = Fetcher(max_in_flight=8, max_response_bytes=64 * 1024)
        self.fetcher.open()
        self.servers: list[Scripted] = []
        return self

    async def server(self, respond: Respond) -> Scripted:
        s = Scripted(respond)
        s.server = await asyncio.start_server(s._handle, "127.0.0.1", 0)
        self.servers.append(s)
        return s

    async def __aexit__(self, *exc: object) -> None:
        await self.fetcher.close()
        await asyncio.sleep(0)  # a connection accepted just now: its handler starts
        for s in self.servers:
            assert s.server is not None
            s.server.close()    # (3.11 leaves the accepted connections open)
            for task in s.handlers:
                task.cancel()   # a handler still waiting (a hung server): its finally closes
            await asyncio.gather(*s.handlers, return_exceptions=True)
            for writer in s.handlers.values():  # every server-side socket closed on this loop
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


def on_both_loops(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run `test(env, ...)` once on asyncio's loop and once on uvloop, each in an Env."""
    @functools.wraps(test)
    def run(loop: str, *args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            async with Env() as env:
                await test(env, *args, **kwargs)
        (uvloop.run if loop == "uvloop" else asyncio.run)(main())

    params = list(inspect.signature(test).parameters.values())[1:]
    run.__signature__ = inspect.Signature(      # type: ignore[attr-defined]
        [inspect.Parameter("loop", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params])
    return pytest.mark.parametrize("loop", ["asyncio", "uvloop"])(run)


class Collect:
    """A Sink that keeps whatever comes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def head(self, status: int, length: int | None, encoding: str) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        self.parts.append(data)

    def done(self) -> None:
        pass
