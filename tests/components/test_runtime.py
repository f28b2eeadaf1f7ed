"""The component runtime against a real nats-server: registration, auth, varz, healthz."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from fobs.components import runtime, wire
from fobs.components.bus import NatsConfig
from fobs.components.runtime import Component, ComponentConfig
from tests.components.conftest import eventually, http_get, varz
from tests.components.reference_helpers import subscribe
from tests.services import NatsCluster, NatsServer

GENERIC_FIELDS = {
    "type": str, "index": int, "uuid": str, "host": str, "start": str, "uptime": str,
    "num_cores": int, "cpu": float, "cpu_load_avg": float, "mem_bytes": int,
    "mem_used_bytes": int, "mem_free_bytes": int, "log_counts": dict,
}
UPTIME = re.compile(r"^\d+d:\d+h:\d+m:\d+s$")
START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$")


async def next_message(sub: Any, timeout: float = 5.0) -> dict[str, Any]:
    msg = await sub.next_msg(timeout=timeout)
    return json.loads(msg.data)


async def test_announce_has_the_cloud_foundry_fields(nc: Any, start_component: Any) -> None:
    sub = await subscribe(nc, wire.ANNOUNCE)
    comp = await start_component("DEA", index=3)
    announce = await next_message(sub)
    assert set(announce) == {"type", "index", "uuid", "host", "credentials", "start"}
    assert announce["type"] == "DEA" and announce["index"] == 3
    assert re.fullmatch(r"3-[0-9a-f]{32}", announce["uuid"])
    assert announce["host"] == comp.host and re.fullmatch(r"127\.0\.0\.1:\d+", comp.host)
    assert announce["credentials"] == list(comp.credentials)
    assert START.match(announce["start"])


async def test_discover_is_answered_by_every_live_component(nc: Any, start_component: Any
                                                            ) -> None:
    comps = [await start_component("Router", index=i) for i in range(3)]
    inbox = nc.new_inbox()
    sub = await subscribe(nc, inbox)
    await nc.publish(wire.DISCOVER, b"", reply=inbox)
    replies = [await next_message(sub) for _ in comps]
    assert sorted(r["uuid"] for r in replies) == sorted(c.uuid for c in comps)
    for reply in replies:
        assert UPTIME.match(reply["uptime"])
        assert set(reply) == {"type", "index", "uuid", "host", "credentials", "start", "uptime"}


async def test_basic_auth(start_component: Any) -> None:
    comp = await start_component()
    user, password = comp.credentials
    for path in ("/varz", "/healthz", "/metrics"):
        assert (await http_get(comp, path))[0] == 200
        assert (await http_get(comp, path, auth=(user, password + "x")))[0] == 401
        assert (await http_get(comp, path, auth=("", "")))[0] == 401
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{comp.host}/varz") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic")
        async with s.get(f"http://{comp.host}/varz",
                         headers={"Authorization": "Basic !!!not-base64"}) as r:
            assert r.status == 401


async def test_configured_credentials(start_component: Any) -> None:
    comp = await start_component(user="admin", password="s3cret")
    assert comp.credentials == ("admin", "s3cret")
    assert (await http_get(comp, "/varz", auth=("admin", "s3cret")))[0] == 200


async def test_varz_generic_fields_and_no_credentials(start_component: Any) -> None:
    comp = await start_component("Stager", index=1)
    comp.varz["queue"] = 7
    comp.varz["credentials"] = ["must", "not-leak"]
    data = await varz(comp)
    for name, kind in GENERIC_FIELDS.items():
        assert isinstance(data[name], kind), (name, data[name])
    assert data["type"] == "Stager" and data["index"] == 1 and data["uuid"] == comp.uuid
    assert data["queue"] == 7
    assert "credentials" not in data
    body = json.dumps(data)
    for secret in comp.credentials:
        assert secret not in body
    assert data["mem_bytes"] > 1_000_000 and data["num_cores"] >= 1
    assert set(data["log_counts"]) >= {"fatal", "error", "warn", "info", "debug"}


async def test_varz_refreshes_at_most_once_a_second(start_component: Any) -> None:
    comp = await start_component()
    calls = []
    comp.on_refresh(lambda v: calls.append(1))
    first = await varz(comp)
    second = await varz(comp)
    assert len(calls) == 1 and first == second


async def test_healthz(start_component: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "HEALTH_CHECK_TIMEOUT", 0.2)
    comp = await start_component()
    assert await http_get(comp, "/healthz") == (200, "ok")
    disk_full: dict[str, str | None] = {"value": None}
    comp.add_health_check("disk", lambda: disk_full["value"])
    assert (await http_get(comp, "/healthz"))[0] == 200
    disk_full["value"] = "disk 99% full"
    assert await http_get(comp, "/healthz") == (503, "disk: disk 99% full\n")

    async def hung() -> None:
        await asyncio.Event().wait()

    disk_full["value"] = None
    comp.add_health_check("db", hung)
    status, body = await http_get(comp, "/healthz")
    assert status == 503 and "db: health check timed out" in body


async def test_metrics_exposition(start_component: Any) -> None:
    comp = await start_component("Router", index=2)
    comp.varz["latency"] = {"50": 0.25, "99": 1.5}
    comp.varz["requests"] = 10
    comp.varz["urls_list"] = ["a", "b"]
    comp.varz["instance_registry"] = {"app": {"inst": {"used_memory_in_bytes": 5}}}
    comp.hide_from_metrics("instance_registry")
    status, text = await http_get(comp, "/metrics")
    assert status == 200
    assert 'requests{type="Router",index="2"} 10.0' in text
    assert 'latency_50{type="Router",index="2"} 0.25' in text
    assert "urls_list" not in text and "instance_registry" not in text


async def test_nats_restart_component_answers_discover_again(
        nats_server: NatsServer, start_component: Any) -> None:
    import nats
    comp = await start_component("DEA")
    nats_server.kill()
    nats_server.start()
    observer = await nats.connect(nats_server.url)
    try:
        # Only answered once the component has reconnected and re-subscribed by itself.
        await eventually(lambda: _answers(observer, comp), what="discover after reconnect")
    finally:
        await observer.close()


async def _answers(observer: Any, comp: Component) -> bool:
    import nats
    try:
        reply = await observer.request(wire.DISCOVER, b"", timeout=1)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
    return bool(json.loads(reply.data)["uuid"] == comp.uuid)


async def test_reannounce_after_its_nats_node_dies(nats_cluster: NatsCluster) -> None:
    """The component's server is killed: it fails over to another node and announces again."""
    import nats
    first, second, _ = nats_cluster.nodes
    observer = await nats.connect(second.url)
    comp = Component("DEA", ComponentConfig(nats=NatsConfig(servers=(first.url,),
                                                            reconnect_wait=0.1)))
    try:
        sub = await subscribe(observer, wire.ANNOUNCE)
        await comp.start()
        assert (await next_message(sub))["uuid"] == comp.uuid
        first.kill()
        again = await next_message(sub, timeout=15)
        assert again["uuid"] == comp.uuid and "uptime" not in again
        reply = await observer.request(wire.DISCOVER, b"", timeout=5)
        assert json.loads(reply.data)["uuid"] == comp.uuid
    finally:
        await comp.stop()
        await observer.close()


async def test_goodbye_on_stop(nc: Any, start_component: Any) -> None:
    comp = await start_component("Router")
    sub = await subscribe(nc, wire.UNREGISTER)
    await comp.stop()
    goodbye = await next_message(sub)
    assert goodbye == {"type": "Router", "index": 0, "uuid": comp.uuid, "host": comp.host}


async def test_log_counts_count_levels(start_component: Any) -> None:
    comp = await start_component()
    comp.log.warning("disk is getting full")
    comp.log.error("boom")
    comp.log.error("boom again")
    await eventually(lambda: _log_counts_are(comp, warn=1, error=2), what="log counts")


async def _log_counts_are(comp: Component, **expected: int) -> bool:
    counts = comp.snapshot()["log_counts"]
    comp._snapshot = None  # force a refresh next time
    return all(counts[k] == v for k, v in expected.items())


async def test_nats_tls_and_user_password(tmp_path: Any) -> None:
    """The component's NATS options reach a real nats-server that demands TLS and a login."""
    import nats

    from tests.services import self_signed_certificate
    cert, key = self_signed_certificate(tmp_path / "tls")
    login = ["--user", "fobs", "--pass", "s3cret"]
    with NatsServer(tmp_path / "nats-tls", args=[*login, "--tls", "--tlscert", str(cert),
                                                  "--tlskey", str(key)]) as server:
        url = f"tls://127.0.0.1:{server.port}"
        import ssl
        observer = await nats.connect(url, user="fobs", password="s3cret",
                                      tls=ssl.create_default_context(cafile=str(cert)))
        sub = await subscribe(observer, wire.ANNOUNCE)
        comp = Component("DEA", ComponentConfig(nats=NatsConfig(
            servers=(url,), user="fobs", password="s3cret", tls_ca=str(cert))))
        try:
            await comp.start()
            assert (await next_message(sub))["uuid"] == comp.uuid
        finally:
            await comp.stop()
            await observer.close()
