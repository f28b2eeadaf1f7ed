"""A component's JSON traffic on NATS: decode inbound messages, queue outbound ones.

Models stay synchronous: handlers receive a decoded dict and call `publish`, which only queues;
`flush` sends the queue. Malformed or unexpected input is logged, counted in `bad_messages` and
survived, as is a handler raising on odd content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], str], None]   # (payload, reply subject or "")


class Messages:
    def __init__(self, component: Any) -> None:
        self.component = component
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.published = 0
        self.publish_errors = 0
        self.bad_messages = 0
        self._failing = False
        self._subscriptions: list[Any] = []

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
        async def callback(msg: Any) -> None:
            payload = self.decode(msg.subject, msg.data)
            if payload is None:
                return
            try:
                handler(payload, msg.reply or "")
            except Exception as e:  # odd content must not kill the component
                self.bad_messages += 1
                self.component.log.warning("Ignored message on {} that could not be handled: {!r}",
                                           msg.subject, e)
                return
            await self.flush()

        self._subscriptions.append(
            await self.component.nc.subscribe(subject, queue=queue, cb=callback))

    def decode(self, subject: str, data: bytes) -> dict[str, Any] | None:
        if not data:
            return {}
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.bad_messages += 1
            self.component.log.warning("Ignored a message on {} that is not a JSON object",
                                       subject)
            return None
        return payload

    async def close(self) -> None:
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subscriptions.clear()
