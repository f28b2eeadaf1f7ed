"""Where targets come from: NATS announce/discover/unregister, and static targets from config.

Both sources implement one shape, Prometheus' discoverer: `run(send)` sends the full set of its
targets first, then only changes, as `Update`s; the registry applies them. Discovery never
scrapes and never decides what to drop on a timer — pruning is the registry's.

Cloud Foundry payloads are accepted unchanged: Ruby and Go forms, `start` as
"YYYY-MM-DD HH:MM:SS +0000" (or any "±HHMM" offset), `index` as an integer or a numeric string,
`credentials` as a two-element list. A message without `index` is ignored, as the original
collector did.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from loguru import logger

from fobs.collector.config import StaticTarget
from fobs.collector.target import Discovered
from fobs.components.bus import Bus

ANNOUNCE = "vcap.component.announce"
DISCOVER = "vcap.component.discover"
UNREGISTER = "vcap.component.unregister"
START_FORMAT = "%Y-%m-%d %H:%M:%S %z"
MAX_PAYLOAD = 64 * 1024


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


class PayloadError(ValueError):
    """A discovery message we cannot use; the text says why (counted, logged at debug)."""


@dataclass
class DiscoveryStats:
    announces: int = 0
    discover_replies: int = 0
    unregisters: int = 0
    discover_requests: int = 0
    ignored_no_index: int = 0
    invalid: int = 0

    def varz(self) -> dict[str, int]:
        return dict(self.__dict__)


def parse_index(value: Any) -> int:
    if isinstance(value, bool):
        raise PayloadError("index is a boolean")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        index = int(value.strip())
    else:
        raise PayloadError(f"index {value!r} is not an integer")
    if index < 0:
        raise PayloadError(f"index {index} is negative")
    return index


def parse_start(value: Any) -> datetime | None:
    """Cloud Foundry's "2013-07-02 17:28:03 +0000" (Ruby) / "-0700" (Go); None if unusable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), START_FORMAT)
    except ValueError:
        return None


def parse_credentials(value: Any) -> tuple[str, str] | None:
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, str) for v in value)):
        return (value[0], value[1])
    return None


def parse_host(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 300:
        raise PayloadError(f"host {value!r} is not HOST:PORT")
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PayloadError(f"host {value!r} is not HOST:PORT")
    return value.strip()


def decode(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(data)} bytes is too large")
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise PayloadError(f"not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise PayloadError("not a JSON object")
    return payload


def parse_announcement(data: bytes) -> Discovered | None:
    """A discover payload → Discovered; None when it has no index (ignored, as CF did)."""
    payload = decode(data)
    if payload.get("index") is None:
        return None
    ctype = payload.get("type")
    if not isinstance(ctype, str) or not ctype or len(ctype) > 100:
        raise PayloadError(f"type {ctype!r} is not a component type")
    index = parse_index(payload["index"])
    host = parse_host(payload.get("host"))
    uuid = payload.get("uuid")
    if not isinstance(uuid, str) or not uuid or len(uuid) > 200:
        uuid = f"{ctype}/{index}"     # CF components always send one; be lenient otherwise
    return Discovered(uuid=uuid, type=ctype, index=index, host=host,
                      credentials=parse_credentials(payload.get("credentials")),
                      source="nats", start=parse_start(payload.get("start")))


def parse_unregister(data: bytes) -> str:
    """The uuid of a `vcap.component.unregister` message."""
    uuid = decode(data).get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise PayloadError("unregister without uuid")
    return uuid


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
    source: str = "nats"
    _queue: asyncio.Queue[Discovered | str | bool] = field(default_factory=asyncio.Queue)
    _inbox: str = ""
    _subs: list[Any] = field(default_factory=list)

    async def run(self, send: Send) -> None:
        nc = self.bus.client
        self._inbox = nc.new_inbox()
        self._subs = [await nc.subscribe(ANNOUNCE, cb=self._on_announce),
                      await nc.subscribe(self._inbox, cb=self._on_reply),
                      await nc.subscribe(UNREGISTER, cb=self._on_unregister)]
        self.bus.reconnect_hooks.append(self._on_reconnect)
        await _call(send, Update(self.source, full=True))   # nothing known yet
        ticker = asyncio.create_task(self._discover_every())
        try:
            while True:
                await self._send_batch(send, await self._queue.get())
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            if self._on_reconnect in self.bus.reconnect_hooks:
                self.bus.reconnect_hooks.remove(self._on_reconnect)
            for sub in self._subs:
                try:
                    await sub.unsubscribe()
                except Exception:
                    pass

    async def discover(self) -> None:
        """Ask every component to reply on our inbox (answers arrive as they come)."""
        if not self._inbox or self.bus.client.is_closed:
            return
        try:
            await self.bus.client.publish(DISCOVER, b"", reply=self._inbox)
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
        except PayloadError as e:
            self.stats.invalid += 1
            logger.debug("Ignored discovery message: {}", e)
            return
        if found is None:
            self.stats.ignored_no_index += 1
            return
        self._queue.put_nowait(found)

    async def _on_unregister(self, msg: Any) -> None:
        self.stats.unregisters += 1
        try:
            self._queue.put_nowait(parse_unregister(msg.data))
        except PayloadError as e:
            self.stats.invalid += 1
            logger.debug("Ignored unregister message: {}", e)


async def _call(send: Send, update: Update) -> None:
    result = send(update)
    if result is not None:
        await result
