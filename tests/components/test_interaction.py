"""DEA, router and stager together on a real nats-server: their data must tell one story."""

from __future__ import annotations

import json
from typing import Any

from tests.components.conftest import eventually, http_get, varz
from tests.components.reference_helpers import next_json, started
from tests.components.varz_schema import check_dea, check_router, check_stager

__all__ = ["started"]

FAST_DEA = dict(tick_interval=0.1, born_seconds=0.1, start_seconds=0.2, advertise_interval=0.5,
                start_failure_probability=0.0, app_stops_per_hour=0.0, evacuation_seconds=0.0)
STEADY_ROUTER = dict(tick_interval=0.1, bursts_per_hour=0.0, unknown_host_fraction=0.0)


async def test_a_crash_on_a_dea_leads_to_unregister_and_502s(started: Any, nc: Any) -> None:
    registers = await nc.subscribe("router.register")
    exits = await nc.subscribe("droplet.exited")
    unregisters = await nc.subscribe("router.unregister")
    await nc.flush()
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
