"""A component's JSON traffic on NATS: handlers for inbound messages, a queue for outbound ones.

Models stay synchronous: handlers receive a decoded dict and call `publish`, which only queues;
`flush` sends the queue. Subscriptions go through the connection's `Fanout`, so components
sharing a connection share one NATS subscription per subject. Malformed or unexpected input is
logged, counted in `bad_messages` and survived, as is a handler raising on odd content.
"""

from __future__ import annotations

import json
from typing import Any

from fobs.components.sim.fanout import Fanout, Handler


class Messages:
    def __init__(self, component: Any) -> None:
        self.component = component
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.published = 0
        self.publish_errors = 0
        self.bad_messages = 0
        self._failing = False
        self._tokens: list[tuple[str, str, int]] = []

    def publish(self, subject: str, payload: dict[str, Any]) -> None:
        self.outbox.append((subject, payload))

    async def flush(self) -> None:
        """Send what is queued; a message that cannot be sent (NATS gone) is dropped and counted."""
        if not self.outbox:
            return
        batch, self.outbox = self.outbox, []
        nc = self.component.nc
        for subject, payload in batch:
            try:
                await nc.publish(subject, json.dumps(payload, separators=(",", ":")).encode())
            except Exception as e:
                self.publish_errors += 1
                if not self._failing:
                    self._failing = True
                    self.component.log.warning("Could not publish {}: {}", subject,
                                               e or type(e).__name__)
                continue
            self.published += 1
            self._failing = False

    async def subscribe(self, subject: str, handler: Handler, queue: str = "") -> None:
        self._tokens.append(await Fanout.of(self.component.nc).add(subject, queue, self, handler))

    async def close(self) -> None:
        if self._tokens:
            fanout = Fanout.of(self.component.nc)
            for token in self._tokens:
                await fanout.remove(token)
            self._tokens.clear()
