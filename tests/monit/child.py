"""A tiny server to supervise in tests: TCP, UDP or HTTP, with knobs for misbehaviour.

    python child.py tcp PORT   [--journal FILE --name N] [--delay S] [--grandchild FILE]
    python child.py udp PORT   [--record FILE]
    python child.py http PORT  (GET /healthz hangs while a file `hang-<pid>` exists in cwd)
    python child.py ... --ignore-term   (SIGTERM is ignored: only SIGKILL stops it)

The journal gets one line per event ("start N", "listening N", "stop N") so tests can check
the order in which the supervisor started and stopped things.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time


def journal(path: str | None, event: str, name: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{event} {name} {time.monotonic():.6f}\n")


async def serve_tcp(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    await asyncio.start_server(handle, "127.0.0.1", port)


async def serve_udp(port: int, record: str | None) -> None:
    class Recorder(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if record:
                with open(record, "ab") as f:
                    f.write(data + b"\n")

    await asyncio.get_running_loop().create_datagram_endpoint(
        Recorder, local_addr=("127.0.0.1", port))


async def serve_http(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        if b"/healthz" in request.split(b"\r\n", 1)[0]:
            while os.path.exists(f"hang-{os.getpid()}"):
                await asyncio.sleep(0.05)
        body = f"ok pid={os.getpid()}\n".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    await asyncio.start_server(handle, "127.0.0.1", port)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("tcp", "udp", "http"))
    p.add_argument("port", type=int)
    p.add_argument("--journal")
    p.add_argument("--name", default="child")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--record")
    p.add_argument("--grandchild")
    p.add_argument("--ignore-term", action="store_true")
    args = p.parse_args()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    journal(args.journal, "start", args.name)
    if args.grandchild:
        sleeper = subprocess.Popen(["sleep", "600"])
        with open(args.grandchild, "w") as f:
            f.write(str(sleeper.pid))
    await asyncio.sleep(args.delay)
    server = {"tcp": serve_tcp, "http": serve_http}.get(args.kind)
    if server is not None:
        await server(args.port)
    else:
        await serve_udp(args.port, args.record)
    journal(args.journal, "listening", args.name)
    await stop.wait()
    journal(args.journal, "stop", args.name)


if __name__ == "__main__":
    asyncio.run(main())
