"""The aggregator end to end in-process: files, fields, counts, stop, registration, tail."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats

from fobs.components.auth import basic_auth_header
from fobs.components.wire import ANNOUNCE
from fobs.syslog_agg.server import Aggregator
from tests.services import NatsServer
from tests.syslog_agg.conftest import agg_config, eventually


async def test_json_lines_land_per_component(aggregator) -> None:
    run = await aggregator(store={"format": "json"})
    run.send_udp(
        b'<165>1 2003-10-11T22:14:15.003Z web1 vcap.dea_next 42 ID7 [x@1 a="b"] started',
        b"<11>May  1 10:00:00 10.0.0.1 vcap.router[7]: boom",
        b"<14>2014-05-01T12:00:00Z 10.0.0.2 nginx [job=router_z1 index=2] GET /",
        b"<300>junk")
    await run.received(4)
    await eventually(lambda: len(list(run.root.rglob("*.log"))) == 4)
    [dea] = run.json_lines("dea_next")
    assert dea["format"] == "rfc5424" and dea["facility"] == 20 and dea["severity"] == 5
    assert dea["timestamp"] == "2003-10-11T22:14:15.003000+00:00"
    assert (dea["hostname"], dea["app_name"], dea["procid"], dea["msgid"]) == \
        ("web1", "vcap.dea_next", "42", "ID7")
    assert dea["structured_data"] == {"x@1": {"a": "b"}} and dea["message"] == "started"
    assert dea["raw"] is None and dea["error"] is None and dea["peer"] == "127.0.0.1"
    [router] = run.json_lines("router")
    assert router["format"] == "rfc3164" and router["procid"] == "7"
    [z1] = run.json_lines("router_z1")
    assert z1["structured_data"] == {"cf": {"job": "router_z1", "index": "2"}}
    [bad] = run.json_lines("unparsed")
    assert bad["format"] == "unparsed" and bad["raw"] == "<300>junk" and "PRI" in bad["error"]
    varz = run.agg.varz()
    assert varz["messages"] == 4 and varz["parse_errors"] == 1
    assert varz["components"]["dea_next"]["severity"]["notice"] == 1
    assert varz["components"]["router"]["severity"]["err"] == 1
    assert varz["components"]["unparsed"]["unparsed"] == 1
    assert varz["severity"]["notice"] == 1 and varz["formats"]["rfc3164"] == 2
    assert varz["queue_depth"] == 0 and varz["dropped"] == 0


async def test_stop_writes_everything_accepted(tmp_path: Path) -> None:
    config = agg_config(tmp_path, store={"flush_interval": 60.0})
    agg = Aggregator(config)
    await agg.start()
    _, writer = await asyncio.open_connection(*agg.tcp[0].address)
    writer.write(b"".join(b"<14>1 - h vcap.bulk - - - line %d\n" % i for i in range(20000)))
    await writer.drain()
    writer.close()
    await eventually(lambda: agg.intake.stats.received == 20000)
    await agg.stop()  # nothing was flushed by the (60 s) interval: stop must write it all
    [path] = (tmp_path / "logs/bulk").rglob("bulk.log")
    lines = path.read_text().splitlines()
    assert len(lines) == 20000 and lines[-1].endswith("line 19999")


async def get(url: str, auth: tuple[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"Authorization": basic_auth_header(*auth)}) as r:
            return r.status, await r.text()


async def test_registers_and_publishes_a_live_tail(tmp_path: Path, nats_server: NatsServer
                                                    ) -> None:
    config = agg_config(tmp_path, register=True, tail={"rate": 5, "burst": 3},
                        component={"nats": {"servers": [nats_server.url]}})
    nc = await nats.connect(nats_server.url)
    announced: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    tailed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_announce(msg: Any) -> None:
        await announced.put(json.loads(msg.data))

    async def on_tail(msg: Any) -> None:
        await tailed.put({"subject": msg.subject, **json.loads(msg.data)})

    await nc.subscribe(ANNOUNCE, cb=on_announce)
    await nc.subscribe("logs.>", cb=on_tail)
    agg = Aggregator(config)
    await agg.start()
    try:
        hello = await asyncio.wait_for(announced.get(), 10)
        assert hello["type"] == "SyslogAggregator"
        await eventually(lambda: agg.tail.nc is not None)
        port = agg.udp.address[1]  # type: ignore[union-attr]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(10):
                s.sendto(b"<14>1 - h vcap.dea.next - - - m%d" % i, ("127.0.0.1", port))
        first = await asyncio.wait_for(tailed.get(), 10)
        assert first["subject"] == "logs.dea_next" and first["message"] == "m0"
        await eventually(lambda: agg.tail.stats.published + agg.tail.stats.rate_limited
                         == 10)
        assert 3 <= agg.tail.stats.published < 10  # the burst, then the rate limit
        assert agg.component is not None
        status, body = await get(f"http://{agg.component.host}/varz", agg.component.credentials)
        varz = json.loads(body)
        assert status == 200 and varz["type"] == "SyslogAggregator"
        assert varz["components"]["dea.next"]["messages"] == 10
        assert varz["listeners"]["udp"]["rcvbuf_bytes"] > 0
        status, body = await get(f"http://{agg.component.host}/healthz",
                                 agg.component.credentials)
        assert status == 200
    finally:
        await agg.stop()
        await nc.close()


async def test_fobs_tail_follows_a_component(tmp_path: Path, nats_server: NatsServer) -> None:
    config = agg_config(tmp_path, register=True,
                        component={"nats": {"servers": [nats_server.url]}})
    agg = Aggregator(config)
    await agg.start()
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs", "tail", "dea_next", "-n", "2", "--nats", nats_server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2])
    try:
        assert tail.stderr is not None
        assert b"following logs.dea_next" in await asyncio.wait_for(tail.stderr.readline(), 20)
        await eventually(lambda: agg.tail.nc is not None)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for raw in (b"<14>1 - web1 vcap.router - - - not this one",
                        b"<14>1 2024-05-01T10:00:00Z web1 vcap.dea_next 7 - - first",
                        b"<11>May  1 10:00:01 web2 vcap.dea_next: second"):
                s.sendto(raw, ("127.0.0.1", agg.udp.address[1]))  # type: ignore[union-attr]
        out, _ = await asyncio.wait_for(tail.communicate(), 20)
    finally:
        if tail.returncode is None:
            tail.kill()
        await agg.stop()
    assert tail.returncode == 0
    assert out.decode().splitlines() == [
        "2024-05-01T10:00:00+00:00 web1 vcap.dea_next[7]: first",
        f"{datetime.now().year}-05-01T10:00:01+00:00 web2 vcap.dea_next: second"
        if datetime.now().month >= 5 else
        f"{datetime.now().year - 1}-05-01T10:00:01+00:00 web2 vcap.dea_next: second"]
