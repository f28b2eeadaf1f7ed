"""Free loopback ports that stay free: drawn below the kernel's ephemeral range.

A port found by binding port 0 and closing the socket is in the ephemeral range, so any process
that binds port 0 meanwhile (every component does, for its /varz server) may be handed the same
port before the service it was meant for binds it. Ports below the range are never handed out
that way; only an explicit bind can take them.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

FALLBACK_EPHEMERAL_LOW = 32768
SPAN = 12000       # draw from [low - SPAN, low)


def ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return FALLBACK_EPHEMERAL_LOW


def port_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_ports(n: int, *, udp_too: bool = False, exclude: Collection[int] = ()) -> list[int]:
    """`n` distinct loopback TCP ports (and UDP, when asked) free right now, held together
    while they are chosen so none is returned twice."""
    low = ephemeral_low()
    rng = random.Random()
    held: list[socket.socket] = []
    try:
        while len(held) < n:
            port = rng.randint(max(1024, low - SPAN), low - 1)
            if port in exclude or (udp_too and not port_free(port, socket.SOCK_DGRAM)):
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()
