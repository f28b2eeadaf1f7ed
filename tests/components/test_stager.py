"""The simulated stager: queue, concurrency, failures, placement on DEAs; then on real NATS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fobs.components.config import ConfigError, load
from fobs.components.sim.instance import AppSpec
from fobs.components.stager import StagerConfig
from tests.components.conftest import eventually, http_get, varz
from tests.components.reference_helpers import (
    build,
    next_json,
    run_for,
    sent,
    started,
    subscribe,
    varz_now,
)
from tests.components.varz_schema import check_stager

__all__ = ["started"]

NEVER_FAIL: dict[str, Any] = dict(no_app_detected_probability=0.0, compile_failure_probability=0.0,
                  hang_probability=0.0)


def advert(dea_id: str, memory: int = 8192, counts: dict[str, int] | None = None
           ) -> dict[str, Any]:
    return {"id": dea_id, "stacks": ["cflinuxfs2"], "available_memory": memory,
            "available_disk": 32768, "app_id_to_count": counts or {}}


def test_tasks_queue_run_bounded_and_land_on_deas() -> None:
    stager, comp, clock = build("stager", pushes_per_minute=120.0, max_concurrent=3,
                                max_pending=1000, compile_seconds=20.0, **NEVER_FAIL)
    for second in range(300):
        if second % 5 == 0:
            stager.on_advertise(advert("dea-a"), "")
            stager.on_advertise(advert("dea-b"), "")
        stager.step(clock.advance(1.0))
        v = varz_now(stager, comp)
        check_stager(v)
        assert v["tasks_active"] <= 3
    assert v["tasks_pending"] > 0                 # arrivals outpace 3 tasks at a time
    assert v["tasks_succeeded"] > 10 and v["tasks_failed"] == 0
    assert v["deas_known"] == 2 and v["instances_placed"] >= v["tasks_succeeded"]
    assert v["droplet_bytes_total"] > v["tasks_succeeded"] * 5_000_000
    assert 10.0 < v["duration_seconds"]["50"] < 120.0
    assert v["queue_wait_seconds"]["90"] > 10.0
    starts = [(m, p) for d in sent(stager) for m, p in d.items() if m.endswith(".start")]
    assert {m for m, _ in starts} == {"dea.dea-a.start", "dea.dea-b.start"}
    assert len(starts) == v["instances_placed"]
    for _, payload in starts:
        assert AppSpec.from_start_message(payload).app_id == payload["droplet"]


@pytest.mark.parametrize("option, reason", [
    ("no_app_detected_probability", "NoAppDetectedError"),
    ("compile_failure_probability", "BuildpackCompileFailed"),
    ("hang_probability", "StagingTimeExpired"),
])
def test_failures_carry_their_reason(option: str, reason: str) -> None:
    stager, comp, clock = build("stager", pushes_per_minute=30.0, timeout_seconds=60.0,
                                **{**NEVER_FAIL, option: 1.0})
    for _ in range(400):
        stager.on_advertise(advert("dea-a"), "")
        stager.step(clock.advance(1.0))
    v = varz_now(stager, comp)
    check_stager(v)
    assert v["tasks_failed"] > 5 and v["tasks_succeeded"] == 0
    assert v["failures_by_reason"][reason] == v["tasks_failed"]
    assert not [d for d in sent(stager) if next(iter(d)).endswith(".start")]


def test_no_dea_with_room_is_insufficient_resources() -> None:
    stager, comp, clock = build("stager", pushes_per_minute=0.0, compile_seconds=1.0,
                                advertisement_ttl=15.0, **NEVER_FAIL)
    stager.on_advertise(advert("small", memory=64), "")
    stager.submit(AppSpec("a1", "big", "v1", ("big.test",), mem_mb=512), clock())
    run_for(stager, clock, 30)
    stager.on_advertise(advert("roomy", memory=1024), "")
    stager.submit(AppSpec("a2", "ok", "v1", ("ok.test",), mem_mb=512, instances=3), clock())
    run_for(stager, clock, 30)
    v = varz_now(stager, comp)
    assert v["failures_by_reason"]["InsufficientResources"] == 1
    assert v["tasks_succeeded"] == 1 and v["instances_placed"] == 2   # 1024 MB: two of three
    assert v["deas_known"] == 0                                         # adverts went stale


def test_placement_spreads_an_app_across_deas() -> None:
    stager, comp, clock = build("stager", pushes_per_minute=0.0, **NEVER_FAIL)
    for name in ("d1", "d2", "d3"):
        stager.on_advertise(advert(name, counts={"a1": 1} if name == "d1" else {}), "")
    app = AppSpec("a1", "web", "v1", ("web.test",), instances=2)
    # fewest instances of the app first
    assert sorted(stager.pool.place(app, stager.rng, clock())) == ["d2", "d3"]


def test_queue_bound_and_requests_with_replies() -> None:
    stager, comp, clock = build("stager", pushes_per_minute=0.0, max_pending=2,
                                max_concurrent=1, compile_seconds=5.0, **NEVER_FAIL)
    stager.on_advertise(advert("dea-a"), "")
    for i in range(4):
        stager.on_request({"name": f"app{i}", "instances": 1}, f"_INBOX.{i}")
    assert stager.health() == "staging queue full (2 tasks pending)"
    replies = {d_subject: payload for d in sent(stager) for d_subject, payload in d.items()}
    assert replies["_INBOX.2"]["reason"] == replies["_INBOX.3"]["reason"] == "StagingQueueFull"
    run_for(stager, clock, 120)
    replies = {s: p for d in sent(stager) for s, p in d.items() if s.startswith("_INBOX")}
    assert {s: p["result"] for s, p in replies.items()} == {"_INBOX.0": "succeeded",
                                                           "_INBOX.1": "succeeded"}
    assert replies["_INBOX.0"]["deas"] == ["dea-a"] and replies["_INBOX.0"]["name"] == "app0"
    assert stager.health() is None


def test_same_seed_same_tasks() -> None:
    def run(seed: int) -> str:
        stager, comp, clock = build("stager", seed=seed, pushes_per_minute=30.0)
        for _ in range(600):
            stager.on_advertise(advert("dea-a"), "")
            stager.step(clock.advance(1.0))
        v = varz_now(stager, comp)
        return json.dumps({k: v[k] for k in ("tasks_succeeded", "failures_by_reason",
                                             "duration_seconds", "droplet_bytes_total")})

    assert run(1) == run(1) and run(1) != run(2)


async def test_stager_on_nats(started: Any, nc: Any) -> None:
    locates = await subscribe(nc, "dea.locate")
    stager, comp = await started("stager", tick_interval=0.1, pushes_per_minute=600.0,
                                 detect_seconds=0.1, compile_seconds=0.3, **NEVER_FAIL)
    await next_json(locates)        # asks the DEAs to advertise
    first = await varz(comp)
    check_stager(first)
    await nc.publish("dea.advertise", b'{"id": 7}')
    await nc.publish("dea.advertise", json.dumps(advert("fake-dea")).encode())
    starts = await subscribe(nc, "dea.fake-dea.start")
    reply = await nc.request("staging", json.dumps({"name": "hello", "instances": 2}).encode(),
                             timeout=10)
    result = json.loads(reply.data)
    assert result["result"] == "succeeded" and result["deas"] == ["fake-dea", "fake-dea"]
    start = await next_json(starts, lambda m: m["name"] == "hello")
    assert start["uris"] == ["hello.apps.fobs.test"] and start["droplet"] == result["app_id"]

    async def changed() -> bool:
        v = await varz(comp)
        check_stager(v)
        return v["tasks_received"] > 3 and v["deas_known"] == 1 and v["bad_messages"] == 1
    await eventually(changed, what="stager varz to change")
    assert await http_get(comp, "/healthz") == (200, "ok")


def test_config_rejects_mistakes() -> None:
    assert load(StagerConfig, overrides={"max_concurrent": 8}).max_concurrent == 8
    for overrides, message in (({"max_concurrent": 0}, "must be greater than 0"),
                               ({"hang_probability": -0.1}, "between 0 and 1"),
                               ({"pushes_per_minute": "often"}, "expected a number")):
        with pytest.raises(ConfigError, match=message):
            load(StagerConfig, overrides=overrides)
