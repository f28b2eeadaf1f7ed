"""Helpers for the reference-component tests: build models on a fake clock, or run them for real.

`build` gives an unstarted Component plus the simulation on a FakeClock, stepped by hand.
`started` (a fixture factory) runs a reference component against the test's nats-server and
stops it, evacuation included, at the end. `subscribe` subscribes for sure, `next_json` awaits
a NATS message with a deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from fobs.components.bus import NatsConfig
from fobs.components.reference import COMPONENTS, TYPES, create
from fobs.components.runtime import Component, ComponentConfig
from fobs.components.sim.clock import FakeClock
from tests.services import NatsServer


def build(kind: str, index: int = 0, clock: FakeClock | None = None, **options: Any
          ) -> tuple[Any, Component, FakeClock]:
    clock = clock or FakeClock()
    config = replace(COMPONENTS[kind][1](), **options)
    component = Component(TYPES[kind], ComponentConfig(index=index))
    return create(kind, component, config, clock), component, clock


def run_for(model: Any, clock: FakeClock, seconds: float, tick: float = 1.0) -> None:
    for _ in range(int(seconds / tick)):
        model.step(clock.advance(tick))


def varz_now(model: Any, component: Component) -> dict[str, Any]:
    """The varz as of the model's clock (the runtime's snapshot caches for a wall-clock second)."""
    snapshot = dict(component.snapshot())
    model.refresh(snapshot)
    return snapshot


def sent(model: Any, subject: str | None = None) -> list[dict[str, Any]]:
    """Payloads the model queued (on `subject`, or all as {subject: payload}); clears the queue."""
    out = model.messages.outbox
    model.messages.outbox = []
    if subject is None:
        return [{s: p} for s, p in out]
    return [p for s, p in out if s == subject]


async def subscribe(nc: Any, subject: str) -> Any:
    """Subscribe and make sure the server has the subscription before returning.

    nats-py's flush() writes its PING straight to the socket, ahead of SUB commands still in
    the client's pending buffer, so one flush can come back before the SUB is sent. The second
    PING is written after the first PONG, by when the flusher has sent the SUB.
    """
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.flush()
    return sub


async def next_json(sub: Any, predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
                    timeout: float = 10.0) -> dict[str, Any]:
    """The next message on `sub` matching `predicate`, within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError("timed out waiting for a matching NATS message")
        try:
            msg = await sub.next_msg(timeout=left)
        except TimeoutError:
            raise AssertionError("timed out waiting for a matching NATS message") from None
        payload = json.loads(msg.data)
        if predicate(payload):
            return payload


@pytest.fixture
async def started(nats_server: NatsServer) -> AsyncIterator[Any]:
    """Factory: start(kind, index, **config) → (model, component), running on real NATS."""
    running: list[tuple[Any, Component, asyncio.Task[None]]] = []

    async def start(kind: str, index: int = 0, **options: Any) -> tuple[Any, Component]:
        config = replace(COMPONENTS[kind][1](), **options)
        component = Component(TYPES[kind], ComponentConfig(
            index=index, nats=NatsConfig(servers=(nats_server.url,), reconnect_wait=0.1)))
        model = create(kind, component, config)
        await component.start()
        task = asyncio.create_task(model.run())
        running.append((model, component, task))
        return model, component

    yield start
    for model, component, task in reversed(running):
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await model.shutdown()
        await component.stop()
