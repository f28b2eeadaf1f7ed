"""The registry as a pure object: updates, host changes, prune, offline sources, sharding."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from fobs.collector.discovery import Update
from fobs.collector.registry import Registry, rendezvous_owner
from fobs.collector.target import Discovered, Target


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A registry listener that records what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def added(self, target: Target) -> None:
        self.events.append(("added", target.uuid))

    def removed(self, target: Target) -> None:
        self.events.append(("removed", target.uuid))

    def changed(self, target: Target) -> None:
        self.events.append(("changed", target.uuid))

    def taken(self, target: Target, since: float | None) -> None:
        self.events.append((f"taken@{since}", target.uuid))


def found(uuid: str, type: str = "DEA", index: int = 0, host: str = "10.0.0.1:8080",
          source: str = "nats") -> Discovered:
    return Discovered(uuid, type, index, host, ("u", "p"), source=source)


def make(sharding: str = "none", self_uuid: str = "me") -> tuple[Registry, Recorder, Clock]:
    clock = Clock()
    registry = Registry(deployment="prod", prune_interval=300, self_uuid=self_uuid,
                        sharding=sharding, role_for=lambda t: "core" if t == "DEA" else None,
                        clock=clock)
    recorder = Recorder()
    registry.listeners.append(recorder)
    return registry, recorder, clock


def test_add_refresh_and_unregister() -> None:
    registry, rec, _ = make()
    registry.apply(Update("nats", (found("a"), found("b", "Router", 1))))
    registry.apply(Update("nats", (found("a"),)))          # a discover reply: no event
    registry.apply(Update("nats", removals=("b", "unknown")))
    assert rec.events == [("added", "a"), ("added", "b"), ("removed", "b")]
    assert set(registry.targets) == {"a"} and registry.unregistered == 1
    target = registry.targets["a"]
    assert target.tags == {"deployment": "prod", "job": "DEA", "index": "0", "ip": "10.0.0.1",
                           "role": "core"}
    assert target.health == "unknown"


def test_host_change_is_followed_not_duplicated() -> None:
    registry, rec, _ = make()
    registry.apply(Update("nats", (found("a"),)))
    registry.apply(Update("nats", (found("a", host="10.0.0.2:9090"),)))
    assert rec.events == [("added", "a"), ("changed", "a")]
    assert registry.targets["a"].info.host == "10.0.0.2:9090"
    assert registry.targets["a"].tags["ip"] == "10.0.0.2" and registry.host_changes == 1
    registry.apply(Update("nats", (replace(found("a", host="10.0.0.2:9090"),
                                           credentials=("u", "new")),)))
    assert rec.events[-1] == ("changed", "a") and registry.host_changes == 1


def test_prune_after_silence_but_never_a_static_target() -> None:
    registry, rec, clock = make()
    registry.apply(Update("static", (found("s", source="static"),), full=True))
    registry.apply(Update("nats", (found("a"), found("b"))))
    clock.now += 200
    registry.apply(Update("nats", (found("b"),)))
    clock.now += 150                     # a: 350 s silent, b: 150 s
    assert registry.prune() == 1
    assert set(registry.targets) == {"s", "b"} and ("removed", "a") in rec.events
    clock.now += 10_000
    registry.prune()
    assert set(registry.targets) == {"s"} and registry.pruned == 2


def test_no_prune_while_the_source_is_offline() -> None:
    registry, _, clock = make()
    registry.apply(Update("nats", (found("a"),)))
    registry.apply(Update("nats", online=False))
    clock.now += 1000
    assert registry.prune() == 0
    registry.apply(Update("nats", online=True))   # back: everything counts as just seen
    clock.now += 299
    assert registry.prune() == 0
    clock.now += 2
    assert registry.prune() == 1


def test_full_update_replaces_a_source() -> None:
    registry, rec, _ = make()
    registry.apply(Update("static", (found("x", source="static"), found("y", source="static")),
                          full=True))
    registry.apply(Update("nats", (found("n"),)))
    registry.apply(Update("static", (found("y", source="static"),), full=True))
    assert set(registry.targets) == {"y", "n"} and ("removed", "x") in rec.events


def test_a_down_target_is_kept_and_counted() -> None:
    registry, _, _ = make()
    registry.apply(Update("nats", (found("a"), found("b"), found("c", "Router"))))
    registry.targets["a"].report("varz", error="timeout", started=1.0, duration=5.0)
    registry.targets["b"].report("varz", error="", started=1.0, duration=0.1)
    counts = registry.counts()
    states = ("known", "up", "down", "unknown")
    assert tuple(counts.totals[s] for s in states) == (3, 1, 1, 1)
    assert {t: {s: c[s] for s in states} for t, c in counts.by_type.items()} == {
        "DEA": {"known": 2, "up": 1, "down": 1, "unknown": 0},
        "Router": {"known": 1, "up": 0, "down": 0, "unknown": 1}}
    assert registry.targets["a"].endpoints["varz"].last_error == "timeout"


def test_rendezvous_owner_is_stable_and_balanced() -> None:
    collectors = {"c1", "c2", "c3"}
    owners = Counter(rendezvous_owner(collectors, f"t{i}") for i in range(3000))
    assert set(owners) == collectors and all(800 < n < 1200 for n in owners.values())
    # removing a collector moves only its own targets
    before = {f"t{i}": rendezvous_owner(collectors, f"t{i}") for i in range(3000)}
    after = {t: rendezvous_owner({"c1", "c2"}, t) for t in before}
    assert all(after[t] == before[t] for t in before if before[t] != "c3")


def test_sharding_follows_collectors_coming_and_going() -> None:
    registry, rec, clock = make("rendezvous", self_uuid="me")
    targets = tuple(found(f"t{i}", index=i) for i in range(200))
    registry.apply(Update("nats", targets))
    assert len(registry.owned()) == 200       # alone: everything is ours
    assert registry.set_collectors({"me", "other"}, since=500.0) > 0
    mine = {t.uuid for t in registry.owned()}
    expected = {t.uuid for t in targets if rendezvous_owner({"me", "other"}, t.uuid) == "me"}
    assert mine == expected and 60 < len(mine) < 140
    assert registry.counts().totals["other_collectors"] == 200 - len(mine)
    assert registry.owners() == {"me": len(mine), "other": 200 - len(mine)}
    removed = {u for e, u in rec.events if e == "removed"}
    assert removed == {t.uuid for t in targets} - mine
    rec.events.clear()
    registry.set_collectors({"me"}, since=700.0)     # it left or died: we take everything back
    assert len(registry.owned()) == 200
    assert set(rec.events) == {("taken@700.0", u) for u in {t.uuid for t in targets} - mine}
    assert (registry.ownership_changes, registry.handed_over) == (2, 200 - len(mine))
    assert registry.taken_over == 200 - len(mine)
    assert registry.set_collectors({"me"}) == 0       # no change, nothing moves


def test_a_joining_collector_owns_nothing_until_it_is_a_member() -> None:
    rec = Recorder()
    registry = Registry(deployment="d", prune_interval=300, self_uuid="me",
                        sharding="rendezvous", collectors=())
    registry.listeners.append(rec)
    registry.apply(Update("nats", tuple(found(f"t{i}", index=i) for i in range(50))))
    assert registry.owned() == [] and rec.events == []
    registry.set_collectors({"me"}, since=None)
    assert len(registry.owned()) == 50
    assert {e for e, _ in rec.events} == {"taken@None"}
