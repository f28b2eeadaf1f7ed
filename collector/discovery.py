"""Where targets come from: NATS announce/discover/unregister, and static targets from config.

Both sources implement one shape, Prometheus' discoverer: `run(send)` sends the full set of its
targets first, then only changes, as `Update`s; the registry applies them. Discovery never
scrapes and never decides what to drop on a timer — pruning is the registry's.

Cloud Foundry payloads are accepted unchanged; what that means is `fobs.components.wire`'s,
the one module that spells the protocol for both the components and the collector.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from loguru import logger

from fobs.collector.config import IPNetwork, StaticTarget
from fobs.collector.target import Discovered
from fobs.components import wire
from fobs.components.bus import Bus
from fobs.components.text import escape_controls


class Update(NamedTuple):
    """A change from one discovery source.

    `full`: `upserts` is the source's complete set (targets of the source not in it go away).
    `online`: the source lost (False) or regained (True) its view of the world, e.g. NATS was
    disconnected; while a source is offline its targets are not pruned, and coming back online
    counts as having seen every one of them.
    """

    source: str
    upserts: tuple[Discovered, ...] = ()
    removals: tuple[str, ...] = ()
    full: bool = False
    online: bool | None = None


Send = Callable[[Update], Awaitable[None] | None]


class Discoverer(Protocol):
    source: str

    async def run(self, send: Send) -> None:
        """Send the full set, then changes, until cancelled."""


@dataclass
class DiscoveryStats:
    announces: int = 0
    discover_replies: int = 0
    unregisters: int = 0
    discover_requests: int = 0
    ignored_no_index: int = 0
    invalid: int = 0
    refused_network: int = 0


def parse_announcement(data: bytes) -> Discovered | None:
    """A discover payload → Discovered; None when it has no index (ignored, as CF did)."""
    found = wire.parse_announcement(data)
    if found is None:
        return None
    return Discovered(uuid=found.uuid, type=found.type, index=found.index, host=found.host,
                      credentials=found.credentials, source="nats", start=found.start)


def static_target(target: StaticTarget) -> Discovered:
    parts = urlsplit(target.url)
    host = parts.netloc.rpartition("@")[2]
    if parts.port is None:
        host = f"{host}:{443 if parts.scheme == 'https' else 80}"
    creds = (target.credentials[0], target.credentials[1]) if target.credentials else None
    return Discovered(uuid=target.uuid or f"static-{target.type}-{target.index}",
                      type=target.type, index=target.index, host=host, credentials=creds,
                      source="static", scheme=parts.scheme,
                      path_prefix=parts.path.rstrip("/"))


class StaticDiscoverer:
    """Targets from `[[discovery.static]]`: the full set once; they never change."""

    source = "static"

    def __init__(self, targets: tuple[StaticTarget, ...]) -> None:
        self.targets = tuple(static_target(t) for t in targets)

    async def run(self, send: Send) -> None:
        await _call(send, Update(self.source, self.targets, full=True))


@dataclass
class NatsDiscoverer:
    """Announce, discover (scatter-gather on a private inbox) and unregister over NATS."""

    bus: Bus
    discover_interval: float
    stats: DiscoveryStats = field(default_factory=DiscoveryStats)
    allow_networks: tuple[IPNetwork, ...] = ()      # () = any host
    source: str = "nats"
    _queue: asyncio.Queue[Discovered | str | bool] = field(default_factory=asyncio.Queue)
    _inbox: str = ""
    _subs: list[Any] = field(default_factory=list)

    async def run(self, send: Send) -> None:
        nc = self.bus.client
        self._inbox = nc.new_inbox()
        self._subs = [await nc.subscribe(wire.ANNOUNCE, cb=self._on_announce),
                      await nc.subscribe(self._inbox, cb=self._on_reply),
                      await nc.subscribe(wire.UNREGISTER, cb=self._on_unregister)]
        self.bus.reconnect_hooks.append(self._on_reconnect)
        await _call(send, Update(self.source, full=True))   # nothing known yet
        ticker = asyncio.create_task(self._discover_every())
        try:
            while True:
                await self._send_batch(send, await self._queue.get())
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self.bus.release(self._on_reconnect, self._subs)

    async def discover(self) -> None:
        """Ask every component to reply on our inbox (answers arrive as they come)."""
        if not self._inbox or self.bus.client.is_closed:
            return
        try:
            await self.bus.client.publish(wire.DISCOVER, b"", reply=self._inbox)
            self.stats.discover_requests += 1
        except Exception as e:
            logger.warning("Could not send discover request: {}", e or type(e).__name__)

    async def _discover_every(self) -> None:
        while True:
            await self.discover()
            await asyncio.sleep(self.discover_interval)

    async def _send_batch(self, send: Send, first: Discovered | str | bool) -> None:
        """Coalesce whatever is queued into one update (cheap under a flood of replies)."""
        items = [first]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        upserts: dict[str, Discovered] = {}
        removals: list[str] = []
        for item in items:
            if isinstance(item, bool):
                if upserts or removals:
                    await _call(send, Update(self.source, tuple(upserts.values()),
                                             tuple(removals)))
                    upserts, removals = {}, []
                await _call(send, Update(self.source, online=item))
            elif isinstance(item, str):
                upserts.pop(item, None)
                removals.append(item)
            else:
                upserts[item.uuid] = item
                if item.uuid in removals:
                    removals.remove(item.uuid)
        if upserts or removals:
            await _call(send, Update(self.source, tuple(upserts.values()), tuple(removals)))

    async def _on_reconnect(self) -> None:
        self._queue.put_nowait(True)
        await self.discover()

    async def _on_announce(self, msg: Any) -> None:
        self.stats.announces += 1
        self._take(msg.data)

    async def _on_reply(self, msg: Any) -> None:
        if not msg.data:   # the server's "no responders" status when no component is up
            return
        self.stats.discover_replies += 1
        self._take(msg.data)

    def _take(self, data: bytes) -> None:
        try:
            found = parse_announcement(data)
        except wire.PayloadError as e:
            self.stats.invalid += 1
            logger.debug("Ignored discovery message: {}", e)
            return
        if found is None:
            self.stats.ignored_no_index += 1
            return
        if self.allow_networks and not allowed(found.ip, self.allow_networks):
            self.stats.refused_network += 1
            logger.debug("Ignored announce of {} at {}: not in allow_networks",
                         escape_controls(found.uuid), found.host)
            return
        self._queue.put_nowait(found)

    async def _on_unregister(self, msg: Any) -> None:
        self.stats.unregisters += 1
        try:
            self._queue.put_nowait(wire.parse_unregister(msg.data))
        except wire.PayloadError as e:
            self.stats.invalid += 1
            logger.debug("Ignored unregister message: {}", e)


def allowed(ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `ip` is an address inside one of `networks` (a host name never is: the
    allow-list is checked without DNS, so a name could not be held to it)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


async def _call(send: Send, update: Update) -> None:
    result = send(update)
    if result is not None:
        await result
