"""What the syslog benchmark sends: numbered messages, hostile datagrams, and the sender processes.

A sender must not be the bottleneck, so UDP goes out with `sendmmsg(2)` (called through ctypes:
the socket module has no binding), 64 datagrams a system call, from several processes at once;
each process sends every P-th message of the run, paced per millisecond at rate/P, and prints
its achieved rate and the CPU it used. TCP senders write pre-built blocks with `sendall`.
"""

from __future__ import annotations

import ctypes
import random
import resource
import socket
import sys
import time

from fobs.syslog_agg.mmsg import IoVec, MMsgHdr

__all__ = ["message", "fuzz_datagrams", "udp_sender_main", "tcp_sender_main", "frame"]

COMPONENTS = 8
_BATCH = 64


def message(i: int) -> bytes:
    """The i-th numbered RFC 5424 message of a run, ~200 bytes, 8 components."""
    line = (f"<165>1 2026-11-24T15:56:52.{i % 1000000:06d}Z web-{i % 16:02d}.example.com "
            f"vcap.comp{i % COMPONENTS} {4000 + i % 100} - - seq={i} GET /v2/apps/"
            f"{i:08x} status=200 bytes=1234 duration_ms=12 from 10.0.0.7")
    return line.ljust(200, "x").encode()


def frame(data: bytes, framing: str) -> bytes:
    """One TCP frame (RFC 6587): `lf` = non-transparent with LF, `octet` = octet counting."""
    return b"%d %s" % (len(data), data) if framing == "octet" else data + b"\n"


_BSD = b"<34>Oct 11 22:14:15 mymachine su[231]: 'su root' failed for lonvick on /dev/pts/8"


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(b) + 1)
        op = rng.randrange(3)
        if op == 0 and b:
            del b[min(pos, len(b) - 1)]
        elif op == 1:
            b[pos:pos] = rng.randbytes(rng.randint(1, 4))
        elif b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
    return bytes(b)


def fuzz_datagrams(n: int, seed: int = 11) -> list[bytes]:
    """`n` hostile datagrams: random bytes, mutated and truncated RFC 5424/3164 lines, invalid
    UTF-8, NULs, oversized (> 8 KiB, truncated by both receivers). None is empty or a single
    NUL (a monit probe: counted apart by fobs)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.randrange(100)
        clean = message(i) if rng.randrange(2) else _BSD
        if kind < 25:
            data = rng.randbytes(rng.randint(2, 600))
        elif kind < 50:
            data = _mutate(rng, clean)
        elif kind < 65:
            data = clean[:rng.randint(2, len(clean))]
        elif kind < 75:  # invalid UTF-8: lone continuation, overlong, truncated sequences
            bad = rng.choice((b"\x80", b"\xc0\xaf", b"\xe2\x82", b"\xff\xfe", b"\xed\xa0\x80"))
            pos = rng.randrange(len(clean))
            data = clean[:pos] + bad * rng.randint(1, 3) + clean[pos:]
        elif kind < 85:
            pos = rng.randrange(len(clean))
            data = clean[:pos] + b"\x00" * rng.randint(1, 5) + clean[pos:]
        elif kind < 99:
            data = _mutate(rng, _BSD)
        else:  # 1 %: oversized, 9..20 KiB, half of them random bytes
            size = rng.randint(9000, 20000)
            data = rng.randbytes(size) if rng.randrange(2) else (clean * 100)[:size]
        out.append(data if data and data != b"\x00" else b"xx")
    return out


def _sendmmsg_all(sock: socket.socket, msgs: list[bytes], rate: float) -> None:
    """Send `msgs` on the connected `sock`, `_BATCH` per sendmmsg, paced at `rate` (0 = max)."""
    libc = ctypes.CDLL(None, use_errno=True)
    sendmmsg = libc.sendmmsg
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    n = len(msgs)
    blob = ctypes.create_string_buffer(b"".join(msgs))
    iovs = (IoVec * n)()
    hdrs = (MMsgHdr * n)()
    base, off = ctypes.addressof(blob), 0
    iov_size = ctypes.sizeof(IoVec)
    iov_base = ctypes.addressof(iovs)
    for i, m in enumerate(msgs):
        iovs[i].base, iovs[i].len = base + off, len(m)
        hdrs[i].hdr.iov, hdrs[i].hdr.iovlen = iov_base + i * iov_size, 1
        off += len(m)
    hdr_size = ctypes.sizeof(MMsgHdr)
    hdr_base = ctypes.addressof(hdrs)
    fd = sock.fileno()
    per_tick = n if rate <= 0 else max(1, int(rate / 1000))
    tick = time.perf_counter()
    i = 0
    while i < n:
        stop = min(n, i + per_tick)
        while i < stop:
            sent = sendmmsg(fd, hdr_base + i * hdr_size, min(_BATCH, stop - i), 0)
            if sent < 0:
                i += 1  # ECONNREFUSED from an earlier ICMP error, ENOBUFS: skip one
            else:
                i += sent
        if rate > 0:
            tick += per_tick / rate
            delay = tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


def udp_sender_main(argv: list[str]) -> None:
    """port kind n rate index count: send messages index, index+count, ... of the run."""
    port, kind, n, rate, index, count = (int(argv[0]), argv[1], int(argv[2]), float(argv[3]),
                                         int(argv[4]), int(argv[5]))
    if kind == "fuzz":
        msgs = fuzz_datagrams(n)[index::count]
    else:
        msgs = [message(i) for i in range(index, n, count)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    print("ready", flush=True)
    sys.stdin.readline()
    _report(lambda: _sendmmsg_all(sock, msgs, rate / count), len(msgs))


def tcp_sender_main(argv: list[str]) -> None:
    """port framing n index count conns: `conns` connections, messages index, index+count, ...
    spread over them round-robin, each connection's share sent as one block."""
    port, framing, n, index, count, conns = (int(argv[0]), argv[1], int(argv[2]),
                                             int(argv[3]), int(argv[4]), int(argv[5]))
    mine = list(range(index, n, count))
    blocks = [b"".join(frame(message(i), framing) for i in mine[c::conns]) for c in range(conns)]
    # each connection from its own loopback address, as from many hosts: fobs caps connections
    # per source address (listen.max_connections_per_source, 64 by default)
    socks = [socket.create_connection(("127.0.0.1", port),
                                      source_address=(f"127.0.{index + 1}.{c + 1}", 0))
             for c in range(conns)]
    print("ready", flush=True)
    sys.stdin.readline()

    def send() -> None:
        chunk = 64 * 1024
        views = [memoryview(b) for b in blocks]
        offsets = [0] * conns
        live = list(range(conns))
        while live:  # round-robin in 64 KiB steps, so that all connections are busy at once
            for c in list(live):
                socks[c].sendall(views[c][offsets[c]:offsets[c] + chunk])
                offsets[c] += chunk
                if offsets[c] >= len(blocks[c]):
                    socks[c].close()
                    live.remove(c)
    _report(send, len(mine))


def _report(send: object, n: int) -> None:
    wall = time.time()
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    send()  # type: ignore[operator]
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print(f"{wall!r} {elapsed!r} {cpu!r} {n}", flush=True)


if __name__ == "__main__":
    {"udp": udp_sender_main, "tcp": tcp_sender_main}[sys.argv[1]](sys.argv[2:])
