"""Subscriptions shared by the simulated components on one NATS connection.

A fleet runs thousands of components over one connection. Subscribing each on its own would
have every broadcast (a DEA's `router.register`, `dea.advertise`) delivered, decoded and handled
once per subscriber: quadratic in the fleet size, and the server cuts the connection off as a
slow consumer. Instead there is one NATS subscription per subject (and queue group) per
connection; a message is decoded once and handed to every registered handler (to one of them,
round-robin, for a queue group). State that all components of a kind would build identically
from the same messages (the routers' route table, the stagers' view of the DEAs) is shared too,
through `shared()`.

The registry is keyed by connection (weakly), so unrelated connections never meet.
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], str], None]   # (payload, reply subject or "")

_FANOUTS: weakref.WeakKeyDictionary[Any, Fanout] = weakref.WeakKeyDictionary()


class _Subject:
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.subscription: Any = None
        self.handlers: dict[int, tuple[Any, Handler]] = {}   # token → (Messages, handler)
        self.turn = 0


class Fanout:
    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self._subjects: dict[tuple[str, str], _Subject] = {}
        self._tokens = itertools.count()
        self._shared: dict[str, list[Any]] = {}       # key → [object, users]

    @classmethod
    def of(cls, nc: Any) -> Fanout:
        fanout = _FANOUTS.get(nc)
        if fanout is None:
            fanout = _FANOUTS[nc] = cls(nc)
        return fanout

    async def add(self, subject: str, queue: str, messages: Any, handler: Handler
                  ) -> tuple[str, str, int]:
        key = (subject, queue)
        entry = self._subjects.get(key)
        if entry is None:
            entry = self._subjects[key] = _Subject(queue)

            async def deliver(msg: Any, entry: _Subject = entry) -> None:
                await self._deliver(entry, msg)
            entry.subscription = await self.nc.subscribe(subject, queue=queue, cb=deliver)
        token = next(self._tokens)
        entry.handlers[token] = (messages, handler)
        return subject, queue, token

    async def remove(self, token: tuple[str, str, int]) -> None:
        subject, queue, number = token
        entry = self._subjects.get((subject, queue))
        if entry is None:
            return
        entry.handlers.pop(number, None)
        if not entry.handlers:
            del self._subjects[(subject, queue)]
            try:
                await entry.subscription.unsubscribe()
            except Exception:
                pass   # connection already closed

    def shared(self, key: str, factory: Callable[[], Any]) -> tuple[Any, bool]:
        """(the object shared under `key` on this connection, whether this call created it)."""
        slot = self._shared.get(key)
        if slot is None:
            slot = self._shared[key] = [factory(), 0]
        slot[1] += 1
        return slot[0], slot[1] == 1

    def release(self, key: str) -> bool:
        """Drop one user of a shared object; True when it was the last."""
        slot = self._shared.get(key)
        if slot is None:
            return False
        slot[1] -= 1
        if slot[1] > 0:
            return False
        del self._shared[key]
        return True

    async def _deliver(self, entry: _Subject, msg: Any) -> None:
        receivers = list(entry.handlers.values())
        if not receivers:
            return
        payload = _decode(msg.data)
        if payload is None:
            for messages, _ in receivers:
                messages.bad_messages += 1
            receivers[0][0].component.log.warning(
                "Ignored a message on {} that is not a JSON object", msg.subject)
            return
        if entry.queue:
            entry.turn = (entry.turn + 1) % len(receivers)
            receivers = [receivers[entry.turn]]
        reply = msg.reply or ""
        logged = False
        for messages, handler in receivers:
            try:
                handler(payload, reply)
            except Exception as e:   # odd content must not kill a component
                messages.bad_messages += 1
                if not logged:
                    logged = True
                    messages.component.log.warning(
                        "Ignored message on {} that could not be handled: {!r}", msg.subject, e)
        for messages, _ in receivers:
            if messages.outbox:
                await messages.flush()


def _decode(data: bytes) -> dict[str, Any] | None:
    if not data:
        return {}
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
