"""Live tail: parsed messages published on NATS `<prefix>.<component>`, rate-limited.

Each component has a token bucket (`rate` per second, `burst` deep), so a noisy component
cannot flood NATS; what is over the limit, or arrives while NATS is not connected, is counted in
`rate_limited` / `not_connected` and not published. Publishing happens in a task of its own,
off the receive path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from fobs.syslog_agg.config import TailConfig
from fobs.syslog_agg.stats import TailStats

__all__ = ["Tail", "subject_for"]

_BACKLOG = 10_000


def subject_for(prefix: str, component: str) -> str:
    """NATS subject of a component's messages (dots in the name would split the token)."""
    return f"{prefix}.{component.replace('.', '_')}"


class Tail:
    def __init__(self, config: TailConfig) -> None:
        self.config = config
        self._buckets: dict[str, list[float]] = {}  # component -> [tokens, last refill]
        self._subjects: dict[str, str] = {}
        self._out: deque[tuple[str, bytes]] = deque()
        self._ready = asyncio.Event()
        self.nc: Any = None
        self.stats = TailStats()

    def admit(self, component: str, now: float) -> bool:
        """Whether one more message of `component` may be published now."""
        bucket = self._buckets.get(component)
        cfg = self.config
        if bucket is None:
            bucket = self._buckets[component] = [float(cfg.burst), now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * cfg.rate
            bucket[0] = tokens if tokens < cfg.burst else float(cfg.burst)
            bucket[1] = now
        if bucket[0] < 1.0:
            self.stats.rate_limited += 1
            return False
        bucket[0] -= 1.0
        return True

    def limited(self, component: str, n: int) -> None:
        """Count `n` more messages of `component` refused (the pipeline stops asking `admit`
        for a component within one slice once it has said no)."""
        self.stats.rate_limited += n

    def publish(self, component: str, line: str) -> None:
        """Queue one JSON line of an `admit`ted message (dropped, counted, without NATS)."""
        nc = self.nc
        if nc is None or not nc.is_connected or len(self._out) >= _BACKLOG:
            self.stats.not_connected += 1
            return
        subject = self._subjects.get(component)
        if subject is None:
            subject = self._subjects[component] = subject_for(self.config.subject_prefix,
                                                              component)
        self._out.append((subject, line.rstrip("\n").encode()))
        self._ready.set()

    async def run(self) -> None:
        """Publish queued lines until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            nc = self.nc
            while self._out:
                subject, payload = self._out.popleft()
                try:
                    await nc.publish(subject, payload)
                    self.stats.published += 1
                except Exception:
                    self.stats.not_connected += 1


