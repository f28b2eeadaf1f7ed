"""DEA, router and stager together on a real nats-server: their data must tell one story."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from fobs.components.bus import Bus, NatsConfig
from fobs.components.reference import create
from fobs.components.runtime import Component, ComponentConfig
from tests.components.conftest import eventually, http_get, varz
from tests.components.reference_helpers import next_json, started, subscribe
from tests.components.varz_schema import check_dea, check_router, check_stager
from tests.services import NatsServer

__all__ = ["started"]

FAST_DEA = dict(tick_interval=0.1, born_seconds=0.1, start_seconds=0.2, advertise_interval=0.5,
                start_failure_probability=0.0, app_stops_per_hour=0.0, evacuation_seconds=0.0)
FAST_STAGER = dict(tick_interval=0.1, pushes_per_minute=0.0, detect_seconds=0.1,
                   compile_seconds=0.2)
STEADY_ROUTER = dict(tick_interval=0.1, bursts_per_hour=0.0, unknown_host_fraction=0.0)


async def test_a_crash_on_a_dea_leads_to_unregister_and_502s(started: Any, nc: Any) -> None:
    registers = await subscribe(nc, "router.register")
    exits = await subscribe(nc, "droplet.exited")
    unregisters = await subscribe(nc, "router.unregister")
    router, router_comp = await started("router", requests_per_second=400.0, share_5xx=0.0,
                                        **STEADY_ROUTER)
    dea, dea_comp = await started("dea", index=5, initial_apps=1, min_apps=0,
                                  max_instances_per_app=1, crashes_per_hour=1800.0,
                                  unregister_delay=1.5, restart_delay=1.0, **FAST_DEA)
    registered = await next_json(registers)
    assert registered["dea"] == dea_comp.uuid and registered["tags"] == {"component": "dea-5"}
    crash = await next_json(exits, lambda m: m["private_instance_id"] ==
                            registered["private_instance_id"], timeout=30)
    assert crash["reason"] == "CRASHED" and crash["droplet"] == registered["app"]
    gone = await next_json(unregisters, lambda m: m["private_instance_id"] ==
                           crash["private_instance_id"], timeout=10)
    assert gone["uris"] == registered["uris"] and gone["port"] == registered["port"]

    async def saw_502s() -> bool:
        v = await varz(router_comp)
        check_router(v)
        tag = v["tags"]["component"].get("dea-5", {})
        return v["bad_gateways"] > 0 and tag.get("responses_5xx", 0) == v["responses_5xx"] \
            == v["bad_gateways"]
    await eventually(saw_502s, what="502s at the router")

    async def replaced() -> bool:   # the replacement instance is routed again
        _, body = await http_get(router_comp, "/routes")
        routes = json.loads(body)
        return any(uri in routes for uri in registered["uris"]) and \
            (await varz(router_comp))["dead_endpoints"] == 0
    await eventually(replaced, timeout=15, what="the restarted instance to be routed")
    check_dea(await varz(dea_comp))


async def test_a_staged_app_runs_on_a_dea_and_takes_traffic(started: Any, nc: Any) -> None:
    router, router_comp = await started("router", requests_per_second=300.0, **STEADY_ROUTER)
    dea, dea_comp = await started("dea", index=1, initial_apps=0, min_apps=0,
                                  crashes_per_hour=0.0, **FAST_DEA)
    stager, stager_comp = await started("stager", tick_interval=0.1, pushes_per_minute=0.0,
                                        detect_seconds=0.1, compile_seconds=0.3,
                                        no_app_detected_probability=0.0,
                                        compile_failure_probability=0.0, hang_probability=0.0)

    async def knows_the_dea() -> bool:
        return (await varz(stager_comp))["deas_known"] == 1
    await eventually(knows_the_dea, what="the stager to hear the DEA's advertisement")

    reply = await nc.request("staging", json.dumps({"name": "hello-fobs", "instances": 2,
                                                    "memory": 256}).encode(), timeout=15)
    result = json.loads(reply.data)
    assert result["result"] == "succeeded", result
    assert result["deas"] == [dea_comp.uuid, dea_comp.uuid]
    app_id, uri = result["app_id"], "hello-fobs.apps.fobs.test"

    async def running() -> bool:
        registry = (await varz(dea_comp))["instance_registry"].get(app_id, {})
        return sorted((i["instance_index"], i["state"]) for i in registry.values()) == \
            [(0, "RUNNING"), (1, "RUNNING")]
    await eventually(running, what="both instances RUNNING on the DEA")

    async def routed() -> bool:
        _, body = await http_get(router_comp, "/routes")
        return len(json.loads(body).get(uri, [])) == 2
    await eventually(routed, what="the app's two instances in the route table")

    async def taking_traffic() -> bool:
        v = await varz(router_comp)
        return any(t["application_id"] == app_id for t in v["top10_app_requests"]) and \
            v["tags"]["component"].get("dea-1", {}).get("requests", 0) > 0
    await eventually(taking_traffic, what="requests routed to the staged app")

    dea_varz, stager_varz = await varz(dea_comp), await varz(stager_comp)
    check_dea(dea_varz)
    check_stager(stager_varz)
    check_router(await varz(router_comp))
    assert dea_varz["start_requests"] == 2 and dea_varz["available_memory_ratio"] < 1.0
    assert stager_varz["tasks_succeeded"] == 1 and stager_varz["instances_placed"] == 2


def subscriptions(server: NatsServer, name: str) -> list[str]:
    """Subjects the server holds for the named client connection (from its /connz)."""
    url = f"http://127.0.0.1:{server.monitor_port}/connz?subs=1"
    with urllib.request.urlopen(url, timeout=5) as r:
        conns = json.load(r)["connections"]
    return [sub for c in conns if c.get("name") == name for sub in c.get("subscriptions_list", [])]


async def test_a_fleet_on_one_connection_shares_subscriptions(nats_server: NatsServer) -> None:
    """As in the fleet runner: many components, one connection, one subscription per subject."""
    bus = await Bus.connect(NatsConfig(servers=(nats_server.url,), reconnect_wait=0.1), "mini")
    comps: list[Component] = []
    sims: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    for kind, type_, index, options in (
            ("router", "Router", 0, STEADY_ROUTER), ("router", "Router", 1, STEADY_ROUTER),
            ("router", "Router", 2, STEADY_ROUTER),
            ("dea", "DEA", 0, dict(FAST_DEA, initial_apps=3, crashes_per_hour=0.0)),
            ("stager", "Stager", 0, FAST_STAGER), ("stager", "Stager", 1, FAST_STAGER)):
        comp = Component(type_, ComponentConfig(index=index), bus=bus)
        sims.append(create(kind, comp, replace_config(kind, options)))
        comps.append(comp)
    try:
        for comp in comps:
            await comp.start()
        tasks = [asyncio.create_task(sim.run()) for sim in sims]
        routers, dea = comps[:3], comps[3]

        async def all_routed() -> bool:
            registry = (await varz(dea))["instance_registry"]
            uris = {i["application_uris"][0] for a in registry.values() for i in a.values()
                    if i["state"] == "RUNNING"}
            tables = [json.loads((await http_get(r, "/routes"))[1]) for r in routers]
            return len(uris) == 3 and all(set(t) == uris for t in tables)
        await eventually(all_routed, what="every router to route the DEA's apps")
        subjects = subscriptions(nats_server, "mini")
        for subject in ("router.register", "router.unregister", "droplet.exited",
                        "dea.advertise", "router.start", "staging"):
            assert subjects.count(subject) == 1, (subject, subjects)
        assert sims[0].routes is sims[1].routes is sims[2].routes
        assert sims[4].pool is sims[5].pool

        reply = await bus.client.request("staging", b'{"name": "once"}', timeout=10)
        assert json.loads(reply.data)["name"] == "once"
        received = [(await varz(c))["tasks_received"] for c in comps[4:]]
        assert sorted(received) == [0, 1]          # the queue group: one stager took it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sim in sims:
            await sim.shutdown()
        await bus.client.flush()
        await bus.client.flush()   # see reference_helpers.subscribe: UNSUBs trail the first PING
        left = subscriptions(nats_server, "mini")
        for comp in comps:
            await comp.stop()
        await bus.close()
    assert not {"router.register", "dea.advertise", "staging", "router.start"} & set(left)


def replace_config(kind: str, options: dict[str, Any]) -> Any:
    from dataclasses import replace

    from fobs.components.reference import COMPONENTS
    return replace(COMPONENTS[kind][1](), **options)
