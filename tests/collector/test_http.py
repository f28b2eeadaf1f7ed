"""The scrape's HTTP client (`collector/http.py`, `httpconn.py`, through `fetch.Fetcher`) reading
responses: framings, interim answers, statuses, and hostile servers — garbage status lines,
endless headers, wrong lengths, resets mid-body. Each test runs on asyncio's loop and on uvloop
(the collector's)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct

import pytest

from fobs.collector.errors import BadResponse, ResponseTooLarge, ServerDisconnected
from fobs.collector.fetch import error_class
from fobs.collector.httpconn import MAX_HEAD
from tests.collector.http_helpers import OK, Env, answer, on_both_loops


@on_both_loops
async def test_chunked_body_split_everywhere(env: Env) -> None:
    """Chunk extensions and trailers, sent a byte at a time, then a second response on the
    same connection."""
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\n{\"a\":\r\nA\r\n 12345678}\r\n0\r\nX-Trailer: yes\r\n\r\n")

    async def bytewise(writer: asyncio.StreamWriter, n: int) -> bool:
        for i in range(len(raw)):
            writer.write(raw[i:i + 1])
            await writer.drain()
        return True

    server = await env.server(bytewise)
    for _ in range(2):
        assert await env.fetcher.get(server.url, None, 2.0) == (200, b'{"a": 12345678}')
    assert server.connections == 1


@on_both_loops
async def test_body_until_close_and_interim_answers(env: Env) -> None:
    until_close = await env.server(answer(b"HTTP/1.1 200 OK\r\n\r\n{\"b\": 2}", keep=False))
    assert await env.fetcher.get(until_close.url, None, 2.0) == (200, b'{"b": 2}')
    interim = await env.server(answer(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    assert (await env.fetcher.get(interim.url, None, 2.0))[0] == 200


@on_both_loops
async def test_non_2xx_and_redirects_are_statuses(env: Env) -> None:
    moved = await env.server(answer(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n"
                                  b"Content-Length: 3\r\n\r\nbye"))
    assert await env.fetcher.get(moved.url, None, 2.0) == (302, b"")
    assert len(moved.requests) == 1
    busy = await env.server(answer(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"))
    assert await env.fetcher.get(busy.url, None, 2.0) == (503, b"")


@on_both_loops
@pytest.mark.parametrize("raw,message", [
    (b"garbage\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"),
    (b"HTTP/2 200 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "bad Content"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX", "CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, "chunk-size line"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "header lines"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X: y\r\n" * 20000,
     "chunked trailer longer than"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Encoding: br\r\n\r\n{\"a\": 1234}",
     "unsupported Content-Encoding"),
])
async def test_malformed_responses_are_refused(env: Env, raw: bytes,
                                               message: str) -> None:
    server = await env.server(answer(raw))
    with pytest.raises(BadResponse, match=message) as caught:
        await env.fetcher.get(server.url, None, 2.0)
    assert error_class(caught.value) == "other"
    await asyncio.wait_for(server.closed.wait(), 2)     # the connection is dropped
    assert env.fetcher.buffered == 0


@on_both_loops
async def test_endless_headers_are_cut_at_the_head_limit(env: Env) -> None:
    sent = 0

    async def endless(writer: asyncio.StreamWriter, n: int) -> bool:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while sent < 1000 * MAX_HEAD and not writer.is_closing():
            writer.write(b"X-Padding: " + b"p" * 1000 + b"\r\n")
            sent += 1013
            await writer.drain()
        return False

    server = await env.server(endless)
    with pytest.raises(BadResponse, match="response head longer than"):
        await env.fetcher.get(server.url, None, 5.0)
    await asyncio.wait_for(server.closed.wait(), 5)
    assert sent < 1000 * MAX_HEAD, "the client read every header the server sent"


@on_both_loops
@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"short\": 1}",      # then closes
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"short\"",
    b"HTTP/1.1 200 OK\r\nContent-Len",
])
async def test_a_body_cut_short_by_a_close_fails(env: Env,
                                                 raw: bytes) -> None:
    server = await env.server(answer(raw, keep=False))
    with pytest.raises(ServerDisconnected) as caught:
        await env.fetcher.get(server.url, None, 2.0)
    assert caught.value.answered and error_class(caught.value) == "other"


@on_both_loops
async def test_a_connection_reset_mid_body(env: Env) -> None:
    async def reset(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n" + b" " * 5000)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()                       # RST, not FIN
        return False

    server = await env.server(reset)
    with pytest.raises(ServerDisconnected, match="before the response's end"):
        await env.fetcher.get(server.url, None, 2.0)
    assert env.fetcher.buffered == 0


@on_both_loops
async def test_a_wrong_content_length_that_never_comes_times_out(env: Env) -> None:
    server = await env.server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError) as caught:
        await env.fetcher.get(server.url, None, 0.3)
    assert error_class(caught.value) == "timeout" and 0.25 < loop.time() - began < 1.0
    await asyncio.wait_for(server.closed.wait(), 2)


@on_both_loops
async def test_a_content_length_over_the_limit_is_refused_before_the_body(
        env: Env) -> None:
    """The server sends only the head and waits: the refusal cannot have waited for a body."""
    server = await env.server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"))
    with pytest.raises(ResponseTooLarge):
        await env.fetcher.get(server.url, None, 5.0)
    await asyncio.wait_for(server.closed.wait(), 2)


@on_both_loops
async def test_gzip_inflated_within_the_limit_in_any_split(env: Env) -> None:
    body = b'{"pad": "' + b"z" * 30_000 + b'"}'
    packed = gzip.compress(body)
    head = (f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}"
            "\r\n\r\n").encode()

    async def halves(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(head + packed[:40])
        await writer.drain()
        writer.write(packed[40:])
        return True

    server = await env.server(halves)
    assert await env.fetcher.get(server.url, None, 2.0) == (200, body)
