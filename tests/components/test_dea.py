"""The simulated DEA: instance lifecycle, routes, capacity, varz schema; then on real NATS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fobs.components.config import ConfigError, load
from fobs.components.dea import DeaConfig
from fobs.components.sim.instance import AppSpec
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
from tests.components.varz_schema import check_dea

__all__ = ["started"]   # the fixture, used by name

QUIET: dict[str, Any] = dict(crashes_per_hour=0.0, app_stops_per_hour=0.0,
                             start_failure_probability=0.0)


def states(dea: Any) -> dict[str, str]:
    return {iid: inst["state"] for insts in varz_now(dea, dea.component)["instance_registry"]
            .values() for iid, inst in insts.items()}


def test_boot_resumes_apps_and_registers_them() -> None:
    dea, comp, clock = build("dea", index=4, initial_apps=3, **QUIET)
    dea.step(clock())
    assert set(states(dea).values()) == {"RESUMING"}
    assert len({i.app.app_id for i in dea.instances.values()}) == 3
    [advert] = sent(dea, "dea.advertise")
    assert advert["id"] == comp.uuid and advert["stacks"] == ["cflinuxfs2"]
    assert sum(advert["app_id_to_count"].values()) == len(dea.instances)
    run_for(dea, clock, 5)
    assert set(states(dea).values()) == {"RUNNING"}
    registers = sent(dea, "router.register")
    assert len(registers) == len(dea.instances)
    for msg in registers:
        inst = next(i for i in dea.instances.values()
                    if i.private_instance_id == msg["private_instance_id"])
        assert msg == {"dea": comp.uuid, "app": inst.app.app_id, "uris": list(inst.app.uris),
                       "host": "127.0.0.1", "port": inst.port, "tags": {"component": "dea-4"},
                       "private_instance_id": inst.private_instance_id}
    now_varz = varz_now(dea, comp)
    check_dea(now_varz)
    inst = next(iter(next(iter(now_varz["instance_registry"].values())).values()))
    assert inst["state_resuming_timestamp"] < inst["state_running_timestamp"]
    assert 0 < inst["used_memory_in_bytes"] and 0 < inst["used_disk_in_bytes"]
    assert now_varz["warden_request_count"] > 0
    assert now_varz["available_memory_ratio"] < 1.0


def test_a_crash_is_reported_then_unregistered_then_restarted() -> None:
    dea, comp, clock = build("dea", initial_apps=1, max_instances_per_app=1, min_apps=0,
                             crashes_per_hour=360.0, start_failure_probability=0.0,
                             app_stops_per_hour=0.0, unregister_delay=3.0, restart_delay=5.0,
                             crashed_retention=20.0, deleted_retention=2.0)
    dea.step(clock())
    [first] = dea.instances.values()
    log: list[tuple[float, str, dict[str, Any]]] = []

    def until(subject: str) -> dict[str, Any]:
        while not any(s == subject for _, s, _ in log):
            dea.step(clock.advance(0.5))
            log.extend((clock(), *next(iter(m.items()))) for m in sent(dea))
        return next(p for _, s, p in log if s == subject)

    registered = until("router.register")
    assert registered["private_instance_id"] == first.private_instance_id
    exited = [until("droplet.exited")]
    crashed_at = next(t for t, s, _ in log if s == "droplet.exited")
    assert exited[0]["reason"] == "CRASHED" and exited[0]["droplet"] == first.app.app_id
    assert exited[0]["private_instance_id"] == first.private_instance_id
    assert first.state == "CRASHED"
    unregisters = [until("router.unregister")]
    assert 2.5 <= next(t for t, s, _ in log if s == "router.unregister") - crashed_at <= 3.5
    assert unregisters[0]["private_instance_id"] == first.private_instance_id
    run_for(dea, clock, 8, tick=0.5)
    replacement = [i for i in dea.instances.values() if i is not first]
    assert len(replacement) == 1 and replacement[0].index == first.index
    assert replacement[0].state in ("RUNNING", "CRASHED")   # it may crash again, at this rate
    run_for(dea, clock, 15)
    assert first.state == "DELETED"
    run_for(dea, clock, 3)
    assert first.instance_id not in dea.instances
    check_dea(varz_now(dea, comp))


def test_start_requests_respect_capacity() -> None:
    dea, comp, clock = build("dea", initial_apps=0, min_apps=0, memory_mb=1024,
                             staging_memory_mb=512, **QUIET)
    dea.step(clock())
    app = AppSpec("app-1", "shop", "v1", ("shop.example",), mem_mb=512)
    for index in range(3):
        dea.on_start(app.start_message(index), "")
    assert dea.start_requests == 3 and dea.start_requests_rejected == 1
    run_for(dea, clock, 10)
    v = varz_now(dea, comp)
    check_dea(v)
    assert v["available_memory_ratio"] == 0.0 and v["can_stage"] == 0
    assert v["reservable_stagers"] == 0
    assert {i["instance_index"] for i in v["instance_registry"]["app-1"].values()} == {0, 1}
    sent(dea)
    dea.advertise()
    [advert] = sent(dea, "dea.advertise")
    assert advert["available_memory"] == 0 and advert["app_id_to_count"] == {"app-1": 2}


def test_router_start_and_locate_are_answered_once_soon() -> None:
    dea, comp, clock = build("dea", initial_apps=2, max_instances_per_app=1, **QUIET)
    run_for(dea, clock, 5)
    sent(dea)
    for _ in range(50):                            # fifty routers starting at once
        dea.on_router_start({"minimumRegisterIntervalInSeconds": 7}, "")
        dea.on_locate({}, "")
    run_for(dea, clock, 1)
    assert len(sent(dea, "router.register")) == 2  # one re-registration answers them all
    run_for(dea, clock, 7)
    assert len(sent(dea, "router.register")) == 2   # re-registered every 7 s now


def test_stop_unregisters_and_removes_instances() -> None:
    dea, comp, clock = build("dea", initial_apps=1, max_instances_per_app=1, min_apps=0,
                             stop_seconds=1.0, stopped_retention=5.0, **QUIET)
    run_for(dea, clock, 5)
    [inst] = dea.instances.values()
    sent(dea)
    dea.on_stop({"droplet": inst.app.app_id}, "")
    assert inst.state == "STOPPING"
    assert sent(dea, "router.unregister")[0]["private_instance_id"] == inst.private_instance_id
    run_for(dea, clock, 3)
    assert inst.state == "STOPPED" and inst.app.app_id not in dea.apps
    run_for(dea, clock, 5)
    assert not dea.instances


def test_random_churn_keeps_the_dea_populated() -> None:
    dea, comp, clock = build("dea", initial_apps=3, min_apps=3, crashes_per_hour=30.0,
                             app_stops_per_hour=20.0, restart_delay=5.0)
    seen: set[str] = set()
    for _ in range(60):
        run_for(dea, clock, 30)
        seen |= set(states(dea).values())
        check_dea(varz_now(dea, comp))
    assert {"RUNNING", "CRASHED", "STOPPED", "DELETED"} <= seen
    assert len(dea.apps) >= 3


def test_same_seed_same_story() -> None:
    def story(seed: int) -> list[str]:
        dea, comp, clock = build("dea", initial_apps=4, crashes_per_hour=60.0,
                                 app_stops_per_hour=6.0, seed=seed)
        run_for(dea, clock, 600)
        return [json.dumps(m).replace(comp.uuid, "UUID") for m in sent(dea)]

    assert story(7) == story(7)
    assert story(7) != story(8)


async def test_dea_on_nats(started: Any, nc: Any) -> None:
    registers = await subscribe(nc, "router.register")
    adverts = await subscribe(nc, "dea.advertise")
    dea, comp = await started("dea", index=2, tick_interval=0.1, born_seconds=0.1,
                              start_seconds=0.2, advertise_interval=30.0, initial_apps=2,
                              evacuation_seconds=0.1, **QUIET)
    first = await varz(comp)
    check_dea(first)
    msg = await next_json(registers)
    assert msg["dea"] == comp.uuid and msg["tags"] == {"component": "dea-2"}
    await next_json(adverts)                       # the one sent at boot
    await nc.publish("dea.locate", b"")
    assert (await next_json(adverts, timeout=5))["id"] == comp.uuid

    async def changed() -> bool:
        now = await varz(comp)
        check_dea(now)
        return (now["warden_request_count"] > first["warden_request_count"]
                and all(i["state"] == "RUNNING" for a in now["instance_registry"].values()
                        for i in a.values()))
    await eventually(changed, what="DEA varz to change")
    assert await http_get(comp, "/healthz") == (200, "ok")

    for junk in (b"not json", b"[1, 2]", b'{"droplet": 5}'):
        await nc.publish(f"dea.{comp.uuid}.start", junk)
    await nc.publish("router.start", b'{"minimumRegisterIntervalInSeconds": "x"}')

    async def counted() -> bool:
        return (await varz(comp))["bad_messages"] == 3
    await eventually(counted, what="bad messages to be counted")

    unregisters = await subscribe(nc, "router.unregister")
    shutdowns = await subscribe(nc, "dea.shutdown")
    running = sum(1 for i in dea.instances.values() if i.state == "RUNNING")
    await dea.shutdown()
    assert (await next_json(shutdowns))["id"] == comp.uuid
    gone = {(await next_json(unregisters))["private_instance_id"] for _ in range(running)}
    assert len(gone) == running
    assert {i.state for i in dea.instances.values()} <= {"STOPPED", "CRASHED", "DELETED"}
    status, body = await http_get(comp, "/healthz")
    assert status == 503 and "evacuating" in body


def test_config_loads_from_toml_and_rejects_mistakes(tmp_path: Any) -> None:
    path = tmp_path / "dea.toml"
    path.write_text('memory_mb = 4096\nstacks = ["cflinuxfs4"]\nseed = 9\n')
    config = load(DeaConfig, path)
    assert config.memory_mb == 4096 and config.stacks == ("cflinuxfs4",) and config.seed == 9
    for overrides, message in (({"memory_mb": 0}, "memory_mb: must be greater than 0"),
                               ({"crash_rate": 1.0}, "unknown key 'crash_rate'"),
                               ({"warden_error_probability": 2.0}, "between 0 and 1")):
        with pytest.raises(ConfigError, match=message):
            load(DeaConfig, overrides=overrides)
