"""Which collectors share the fleet: a heartbeat on core NATS, a member out after N misses.

Every collector with `sharding = "rendezvous"` publishes a small JSON heartbeat on
`fobs.collector.heartbeat` every `heartbeat_interval` seconds and listens to everyone's (its own
included). A member not heard of for its own `interval × misses` (both carried in the heartbeat,
so every member applies the same rule to it) is out; one that says `leaving` (SIGTERM) is out at
once. Times are the receiver's monotonic clock at arrival: clocks are never compared between
machines, so skew does not matter here (it does for the scrape phases: docs/collector.md).

Why not a JetStream KV bucket with a TTL: nats-server 2.9 removes an expired key silently (no
delete marker, so no watcher hears of a death; markers came with 2.11, nats-server#4640,
#3268), the expiry is the bucket's max_age swept on the server's timer, and JetStream in a
cluster adds a raft leader whose election after a node loss takes longer than the heartbeat.
A plain subject needs no server feature and the NATS cluster routes it to every node.

Fencing: a member that has not heard its own heartbeat for `interval × misses` is cut off from
NATS (partition, a frozen node, a paused process). It then declares nobody dead and keeps its
last view — it goes on scraping its share, never everything — until it hears itself again.
During a full NATS outage every member does the same, so the fleet keeps being scraped once.
A member is declared dead only when our own heartbeat came back after its deadline: a clock
alone cannot tell its silence from ours, and when our node froze, whichever of the last
heartbeats before the freeze was older decided whether we fenced first or declared the others
dead (2 freezes in 10 in a reproduction). That costs at most one heartbeat interval.

Joining: a new member listens for one heartbeat interval (plus a margin) before it takes part,
so it has heard every live member before it claims anything; meanwhile it owns nothing and the
others do not count it. Its first `active` heartbeat is the handover.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from fobs.components.bus import Bus

SUBJECT = "fobs.collector.heartbeat"
JOIN_MARGIN = 0.25            # listen this share of an interval longer than one interval
CHECKS_PER_INTERVAL = 4       # expiry checks per heartbeat interval

OnChange = Callable[[frozenset[str], "float | None"], object]


@dataclass
class Member:
    """A collector as last heard: its heartbeat and when it arrived (our clocks)."""

    uuid: str
    name: str
    state: str                # joining | active | leaving
    interval: float
    misses: int
    owned: int                # targets it said it scrapes
    status: str               # its status API address ("" = none)
    heard: float              # our monotonic clock at arrival
    heard_wall: float         # our wall clock at arrival

    @property
    def deadline(self) -> float:
        return self.heard + self.interval * self.misses


class Membership:
    """The live set of collectors, told to `on_change(live, since)` when it changes.

    `since` is the wall time up to which the previous owners of the targets that move scraped
    them: a dead member's last heartbeat, now for a clean leave or a newcomer, None when this
    member was alone (nobody scraped what it takes)."""

    def __init__(self, bus: Bus, uuid: str, name: str, *, interval: float, misses: int,
                 on_change: OnChange, owned: Callable[[], int] = lambda: 0,
                 status: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.bus = bus
        self.uuid = uuid
        self.name = name
        self.interval = interval
        self.misses = misses
        self.on_change = on_change
        self._owned = owned
        self.status = status
        self._clock = clock
        self.state = "joining"
        self.members: dict[str, Member] = {}
        self.live: frozenset[str] = frozenset()
        self.changes = 0          # times the live set changed
        self.expired = 0          # members declared dead for silence
        self.sent = 0
        self.received = 0
        self._self_heard = clock()
        self._sub: Any = None
        self.joined = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Join, then heartbeat and check for silent members until cancelled."""
        self._sub = await self.bus.client.subscribe(SUBJECT, cb=self._on_heartbeat)
        self.bus.reconnect_hooks.append(self._publish)
        try:
            await self._publish()
            await asyncio.sleep(self.interval * (1 + JOIN_MARGIN))
            self.state = "active"
            self._self_heard = self._clock()
            # Alone: nobody scraped anything, a first scrape soon (None). With others heard,
            # even only joining ones (all started at once), on phase: they take their shares
            # within a second, and a fleet's first scrapes are not all crowded into one.
            self._recompute(None if not self.members else time.time())
            self.joined.set()
            await self._publish()
            beat = asyncio.create_task(self._every(self.interval, self._publish))
            try:
                await self._every(self.interval / CHECKS_PER_INTERVAL, self._check)
            finally:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)
        finally:
            subs = [self._sub] if self._sub is not None else []
            await self.bus.release(self._publish, subs)

    async def leave(self) -> None:
        """Say goodbye (SIGTERM): the others take our targets now, not after the misses."""
        if self.state == "leaving":
            return
        self.state = "leaving"
        try:
            await self._publish()
            await self.bus.client.flush(timeout=1)
        except Exception as e:
            logger.warning("Could not say goodbye to the other collectors: {}",
                           e or type(e).__name__)

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                logger.exception("Membership job {} failed", getattr(job, "__name__", job))

    # -- heartbeats ---------------------------------------------------------------------------

    def heartbeat(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "state": self.state,
                "interval": self.interval, "misses": self.misses, "owned": self._owned(),
                "status": self.status}

    async def _publish(self) -> None:
        if self.bus.client.is_closed:
            return
        try:
            await self.bus.client.publish(SUBJECT, json.dumps(self.heartbeat()).encode())
            self.sent += 1
        except Exception as e:   # reconnecting with a full buffer: the next beat will do
            logger.debug("Heartbeat not sent: {}", e or type(e).__name__)

    async def _on_heartbeat(self, msg: Any) -> None:
        try:
            beat = json.loads(msg.data)
            member = Member(uuid=str(beat["uuid"]), name=str(beat.get("name", "")),
                            state=str(beat["state"]), interval=float(beat["interval"]),
                            misses=int(beat["misses"]), owned=int(beat.get("owned", 0)),
                            status=str(beat.get("status", "")), heard=self._clock(),
                            heard_wall=time.time())
        except (ValueError, KeyError, TypeError) as e:
            logger.debug("Ignored heartbeat: {}", e)
            return
        self.received += 1
        if member.uuid == self.uuid:
            if self.fenced(member.heard):   # back on NATS: the others get a full deadline
                logger.info("Hearing the other collectors again")
                for m in self.members.values():
                    m.heard = member.heard
            self._self_heard = member.heard
            self._check()           # the proof of hearing that a deadline waits for
            return
        if member.state == "leaving":
            if self.members.pop(member.uuid, None) is not None:
                logger.info("Collector {} ({}) left", member.name, member.uuid)
                self._recompute(time.time())
            return
        known = self.members.get(member.uuid)
        self.members[member.uuid] = member
        if known is None:
            logger.info("Collector {} ({}) is {}", member.name, member.uuid, member.state)
        if known is None or known.state != member.state:
            self._recompute(time.time())

    def _check(self) -> None:
        """Drop the members silent past their deadline while we could hear: our own heartbeat
        arrived after it. Cut off, we do not hear ourselves either, and fence (below) rather
        than declare them dead."""
        now = self._clock()
        if self.fenced(now):
            return
        dead = [m for m in self.members.values() if self._self_heard > m.deadline]
        if not dead:
            return
        for m in dead:
            del self.members[m.uuid]
            self.expired += 1
            logger.warning("Collector {} ({}) silent for {:.1f}s: its targets move", m.name,
                           m.uuid, now - m.heard)
        # It scraped until about its last heartbeat; a scrape due a little before that may
        # still have been waiting or in flight (a busy loop), so one interval of margin: a
        # target due then is scraped again (a duplicate) rather than perhaps not at all.
        self._recompute(min(m.heard_wall - m.interval for m in dead))

    def fenced(self, now: float | None = None) -> bool:
        """Cut off from NATS: our own heartbeat has not come back for interval × misses."""
        now = self._clock() if now is None else now
        return self.state == "active" and now - self._self_heard > self.interval * self.misses

    # -- the live set -------------------------------------------------------------------------

    def live_others(self) -> list[Member]:
        return [m for m in self.members.values() if m.state == "active"]

    def _recompute(self, since: float | None) -> None:
        live = {m.uuid for m in self.live_others()}
        if self.state == "active":
            live.add(self.uuid)
        new = frozenset(live)
        if new == self.live:
            return
        self.live = new
        self.changes += 1
        self.on_change(new, since)

    def table(self) -> list[dict[str, Any]]:
        """The members as `fobs status` shows them (this one first)."""
        rows = [{"uuid": self.uuid, "name": self.name, "state": self.state,
                 "owned": self._owned(), "status": self.status, "self": True,
                 "heard_ago": 0.0}]
        now = self._clock()
        for m in sorted(self.members.values(), key=lambda m: m.name):
            rows.append({"uuid": m.uuid, "name": m.name, "state": m.state, "owned": m.owned,
                         "status": m.status, "self": False,
                         "heard_ago": round(now - m.heard, 3)})
        return rows
