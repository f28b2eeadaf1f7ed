"""Helpers for the aggregator tests: an in-process aggregator on ephemeral loopback ports."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fobs.components.config import build
from fobs.syslog_agg.config import SyslogAggConfig
from fobs.syslog_agg.server import Aggregator


async def eventually(check: Callable[[], bool], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll a condition with a deadline, where no event can be awaited (kernel, files)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def agg_config(tmp_path: Path, **sections: Any) -> SyslogAggConfig:
    data: dict[str, Any] = {
        "listen": {"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0", "tls": "127.0.0.1:0"},
        "store": {"root": str(tmp_path / "logs"), "flush_interval": 0.05},
        "register": False,
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return build(SyslogAggConfig, data)


class Running:
    def __init__(self, agg: Aggregator, root: Path) -> None:
        self.agg = agg
        self.root = root

    @property
    def udp_port(self) -> int:
        assert self.agg.udp is not None
        return int(self.agg.udp.address[1])

    def port(self, transport: str = "tcp") -> int:
        return next(int(t.address[1]) for t in self.agg.tcp if t.transport_name == transport)

    def send_udp(self, *messages: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for m in messages:
                s.sendto(m, ("127.0.0.1", self.udp_port))

    async def received(self, n: int, timeout: float = 10.0) -> None:
        await eventually(lambda: self.agg.intake.stats.received +
                         self.agg.intake.stats.probes >= n, timeout, f"{n} messages")

    def lines(self, component: str) -> list[str]:
        return [line for path in sorted(self.root.glob(f"{component}/*/*/*/{component}.log"))
                for line in path.read_text().splitlines()]

    def json_lines(self, component: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines(component)]


@pytest.fixture
async def aggregator(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Factory: `await aggregator(store={...}, listen={...})` starts one; stopped at the end."""
    started: list[Aggregator] = []

    async def make(**sections: dict[str, Any]) -> Running:
        config = agg_config(tmp_path, **sections)
        agg = Aggregator(config)
        await agg.start()
        started.append(agg)
        return Running(agg, Path(config.store.root))

    yield make
    for agg in started:
        await agg.stop()
