"""The registry of targets, keyed by uuid: applies discovery updates, prunes, shards.

Differences from Cloud Foundry's collector, on purpose: keyed by uuid (not by IP, so two
components on one host are two targets and a moved component is followed, not duplicated); a
target that stops answering HTTP is kept and reported down — only silence on NATS for
`prune_interval` (or an unregister) removes it; pruning pauses while NATS itself is unreachable.

Sharding (`rendezvous`): the membership (`fobs.collector.membership`, heartbeats on NATS) tells
the registry the live collectors (`set_collectors`); every collector has the same set and the
same targets, and scrapes a target only if it has the highest hash(collector uuid, target uuid).
When a collector leaves or falls silent the others pick up its targets with no coordination; a
collector that is not in the set yet (still joining) owns nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from functools import partial
from typing import NamedTuple, Protocol

from loguru import logger

from fobs.collector.discovery import Update
from fobs.collector.target import Discovered, Target
from fobs.collector.throttle import Every
from fobs.components.text import escape_controls


class TargetCounts(NamedTuple):
    """What the collector's metrics report about the registry (`Registry.counts`)."""

    totals: Counter[str]              # known, up, down, unknown, other_collectors
    by_type: dict[str, Counter[str]]  # component type → known, up, down, unknown (owned ones)
    collectors: int                   # live collectors sharing the fleet (this one included)


class Listener(Protocol):
    """Told about the targets this collector owns (the scraper)."""

    def added(self, target: Target) -> None: ...

    def removed(self, target: Target) -> None: ...

    def changed(self, target: Target) -> None: ...

    def taken(self, target: Target, since: float | None) -> None:
        """Ownership moved to us from another collector, which scraped it until `since` (wall
        time; None = unknown, scrape soon)."""


def rendezvous_score(collector_uuid: str, target_uuid: str) -> int:
    digest = hashlib.blake2b(f"{collector_uuid}\0{target_uuid}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def rendezvous_owner(collectors: Collection[str], target_uuid: str) -> str:
    """The collector that scrapes `target_uuid`: highest score, ties broken by uuid."""
    return max(collectors, key=lambda c: (rendezvous_score(c, target_uuid), c))


class Registry:
    """All known targets; tells its listeners which ones this collector should scrape."""

    def __init__(self, *, deployment: str, prune_interval: float, self_uuid: str = "",
                 sharding: str = "none", role_for: Callable[[str], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_targets: int = 0,
                 max_types: int = 0, collectors: Iterable[str] | None = None) -> None:
        """`collectors`: the live collectors at start; None = this one alone, () = joining
        (owns nothing until `set_collectors` includes it)."""
        self.deployment = deployment
        self.prune_interval = prune_interval
        self.self_uuid = self_uuid
        self.sharding = sharding
        self._role_for = role_for or (lambda _: None)
        self._clock = clock
        self.targets: dict[str, Target] = {}
        self.listeners: list[Listener] = []
        self.offline: set[str] = set()
        self.pruned = 0
        self.unregistered = 0
        self.host_changes = 0
        # Caps on what announces can create (0 = none; static targets are not counted).
        self.max_targets = max_targets
        self.max_types = max_types
        self.refused_targets = 0        # a new target past max_targets
        self.refused_types = 0          # a target of a new type past max_types
        self._announced: Counter[str] = Counter()   # announced targets by type
        self._refusals = Every(60.0)
        self._collectors: frozenset[str] = frozenset(
            (self_uuid,) if collectors is None else collectors)
        self.ownership_changes = 0   # times the set of collectors changed
        self.taken_over = 0          # targets that moved to this collector
        self.handed_over = 0         # targets that moved away from it

    # -- updates ----------------------------------------------------------------------------

    def apply(self, update: Update) -> None:
        now = self._clock()
        if update.online is False:
            self.offline.add(update.source)
        elif update.online is True:
            self.offline.discard(update.source)
            for target in self._of_source(update.source):
                target.last_seen = now   # it was unheard, not gone
        if update.full:
            keep = {d.uuid for d in update.upserts}
            for target in self._of_source(update.source):
                if target.uuid not in keep:
                    self._drop(target, "no longer listed")
        fresh = [t for t in (self._upsert(found, now) for found in update.upserts) if t]
        for uuid in update.removals:
            gone = self.targets.get(uuid)
            if gone is not None:
                self.unregistered += 1
                self._drop(gone, "unregistered")
        for target in fresh:
            if target.uuid in self.targets and self._owns(target.uuid):
                target.owned = True
                self._notify([li.added for li in self.listeners], target)

    def prune(self) -> int:
        """Drop targets not heard of (announce/discover reply) for `prune_interval`."""
        cutoff = self._clock() - self.prune_interval
        stale = [t for t in self.targets.values()
                 if t.info.source not in self.offline and t.info.source != "static"
                 and t.last_seen < cutoff]
        for target in stale:
            self.pruned += 1
            self._drop(target, f"silent for {self.prune_interval:g}s")
        return len(stale)

    def _of_source(self, source: str) -> list[Target]:
        return [t for t in self.targets.values() if t.info.source == source]

    def _upsert(self, found: Discovered, now: float) -> Target | None:
        """Create or refresh a target; a new one is returned (not yet owned nor announced)."""
        target = self.targets.get(found.uuid)
        if target is None:
            if not self._room_for(found):
                return None
            self._count(found, 1)
            target = Target(found, self.deployment, role=self._role_for(found.type),
                            last_seen=now, owned=False)
            self.targets[found.uuid] = target
            logger.debug("Target {} {}/{} at {} found", escape_controls(found.uuid), found.type,
                         found.index, found.host)
            return target
        if found.type != target.info.type and not self._room_for(found, target):
            return None
        target.last_seen = now
        if not target.info.same_endpoint(found):
            if found.host != target.info.host:
                self.host_changes += 1
                logger.info("Target {} {}/{} moved from {} to {}", escape_controls(found.uuid),
                            found.type, found.index, target.info.host, found.host)
            self._count(target.info, -1)
            self._count(found, 1)
            target.role = self._role_for(found.type)
            target.update(found)
            if target.owned:
                self._notify([li.changed for li in self.listeners], target)
        elif found.start != target.info.start:
            target.update(found)
        return None

    def _room_for(self, found: Discovered, replacing: Target | None = None) -> bool:
        """Whether the caps leave room for `found` (new, or `replacing`'s new type); a refusal
        is counted, and logged at most once a minute."""
        if found.source == "static":
            return True
        if replacing is None and self.max_targets and sum(
                self._announced.values()) >= self.max_targets:
            self.refused_targets += 1
            cap = f"max_targets ({self.max_targets})"
        elif (self.max_types and found.type not in self._announced
              and len(self._announced) >= self.max_types):
            self.refused_types += 1
            cap = f"max_types ({self.max_types})"
        else:
            return True
        if (skipped := self._refusals.ready()) is not None:
            logger.warning("Refused target {} {}/{} at {}: {} reached ({} more refusals "
                           "not logged)", escape_controls(found.uuid), found.type, found.index,
                           found.host, cap, skipped)
        return False

    def _count(self, found: Discovered, step: int) -> None:
        """Keep `_announced` (targets by type, not static ones) in step with `targets`."""
        if found.source != "static":
            self._announced[found.type] += step
            if self._announced[found.type] <= 0:
                del self._announced[found.type]

    def _drop(self, target: Target, why: str) -> None:
        del self.targets[target.uuid]
        self._count(target.info, -1)
        logger.info("Target {} {}/{} at {} dropped: {}", escape_controls(target.uuid),
                    target.info.type, target.info.index, target.info.host, why)
        if target.owned:
            target.owned = False
            self._notify([li.removed for li in self.listeners], target)

    def _notify(self, callbacks: list[Callable[[Target], None]], target: Target) -> None:
        """Call each listener's callback for `target`; one that fails does not stop the others."""
        for callback in callbacks:
            try:
                callback(target)
            except Exception:
                logger.exception("Registry listener {} failed on target {}",
                                 getattr(callback, "__qualname__", callback), target.uuid)

    # -- sharding ---------------------------------------------------------------------------

    @property
    def collectors(self) -> frozenset[str]:
        """Live collectors sharing the fleet (this one included once it is a member)."""
        return self._collectors

    def _owns(self, uuid: str) -> bool:
        if self.sharding != "rendezvous":
            return True
        if self.self_uuid not in self._collectors:
            return False          # joining: the others still own everything
        if len(self._collectors) == 1:
            return True
        return rendezvous_owner(self._collectors, uuid) == self.self_uuid

    def set_collectors(self, collectors: Iterable[str], since: float | None = None) -> int:
        """The live set changed: recompute ownership of every target; returns how many moved.

        `since`: wall time up to which the previous owners of the targets we gain scraped them
        (the last heartbeat of a dead one, now for one that left or a newcomer taking its share);
        None when nobody did (we were alone)."""
        collectors = frozenset(collectors)
        if collectors == self._collectors:
            return 0
        logger.info("Collectors sharing the fleet: {} (was {})", len(collectors),
                    len(self._collectors))
        self._collectors = collectors
        self.ownership_changes += 1
        moved = 0
        for target in list(self.targets.values()):
            owned = self._owns(target.uuid)
            if owned == target.owned:
                continue
            moved += 1
            target.owned = owned
            if owned:
                self.taken_over += 1
                self._notify([partial(li.taken, since=since) for li in self.listeners], target)
            else:
                self.handed_over += 1
                self._notify([li.removed for li in self.listeners], target)
        return moved

    # -- reporting --------------------------------------------------------------------------

    def owned(self) -> list[Target]:
        return [t for t in self.targets.values() if t.owned]

    def counts(self) -> TargetCounts:
        """Targets by health (`known` is every owned one), in all and by component type."""
        by_type: dict[str, Counter[str]] = {}
        totals: Counter[str] = Counter()
        for target in self.targets.values():
            if not target.owned:
                totals["other_collectors"] += 1
                continue
            counts = by_type.setdefault(target.info.type, Counter())
            for bucket in ("known", target.health):
                counts[bucket] += 1
                totals[bucket] += 1
        return TargetCounts(totals, dict(sorted(by_type.items())), len(self._collectors) or 1)

    def owners(self) -> Counter[str]:
        """How many known targets each live collector owns (rendezvous), for `fobs status`."""
        if self.sharding != "rendezvous" or len(self._collectors) < 2:
            return Counter({c: len(self.targets) for c in self._collectors})
        return Counter(rendezvous_owner(self._collectors, u) for u in self.targets)
