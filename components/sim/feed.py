"""State built from broadcast messages, shared by the like components of one NATS connection.

Every router builds the same route table from the same `router.register` messages, and every
stager the same view of the DEAs from `dea.advertise`. In a fleet, hundreds of them share one
connection, so they share one such feed: the first to `join` subscribes it (with its own
`Messages`, whose `bad_messages` the members add to theirs), the last to `leave` unsubscribes.
Without NATS (unit tests) a component simply keeps its own feed and calls its handlers directly.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fobs.components.sim.fanout import Fanout, Handler
from fobs.components.sim.messages import Messages


class Feed:
    key: ClassVar[str]

    def __init__(self) -> None:
        self.messages: Messages | None = None

    def handlers(self) -> dict[str, Handler]:
        """Subject → handler of the messages that feed this state."""
        raise NotImplementedError

    @property
    def bad_messages(self) -> int:
        return self.messages.bad_messages if self.messages is not None else 0

    async def join(self, component: Any) -> Any:
        """The connection's shared feed of this kind (this one, if it is the first)."""
        feed, first = Fanout.of(component.nc).shared(self.key, lambda: self)
        if first:
            feed.messages = Messages(component)
            for subject, handler in feed.handlers().items():
                await feed.messages.subscribe(subject, handler)
        return feed

    async def leave(self, component: Any) -> None:
        if Fanout.of(component.nc).release(self.key) and self.messages is not None:
            await self.messages.close()
