"""A fleet serving real Cloud Foundry /varz payloads (the benchmark's `cf` mode).

    python -m benchmarks.scrape.cffleet --count N --nats URL --targets-file F [--credentials U:P]

The payloads are the cloudfoundry-attic/collector fixtures in `cf_varz/` (SOURCES.txt says where
each comes from): dea_ng's 20 KB varz with its instance registry, gorouter's with twelve routes
(the per-route fixture under CloudController, uaa and dea-0 … dea-9), cloud_controller_ng's and a
marketplace gateway's, mixed 8:2:1:1 like the default fleet (dea=8, router=2, stager=1). Each
component has its own port, uuid and index, announces itself on NATS and answers
`vcap.component.discover`, as a CF component does; its varz is the fixture with its own identity.

Prometheus and vmagent scrape `/metrics` of the same components: the values the fobs handler
stores from that varz (one sample per field, `<measurement>_<field>{tags}`), so every side
stores the same values and the CPU per stored value compares like with like. Bodies are made
once at start: serving costs the fleet as little as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import signal
import socket
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from aiohttp import web

from fobs.collector.handlers import handler_for
from fobs.collector.point import ListAppender
from fobs.components import wire

FIXTURES = Path(__file__).with_name("cf_varz")
MIX = (("DEA", "dea_ng.json"), ) * 8 + (("Router", "gorouter.json"), ) * 2 + (
    ("CloudController", "cloud_controller.json"), ("MarketplaceGateway",
                                                   "marketplace_gateway.json"))
ROUTES = ("CloudController", "uaa", *(f"dea-{i}" for i in range(10)))


def fixture(name: str) -> dict[str, Any]:
    varz: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    if name == "gorouter.json":
        entry = json.loads((FIXTURES / "gorouter_tag_component_entry.json").read_text())
        varz["tags"]["component"] = {route: copy.deepcopy(entry) for route in ROUTES}
    return varz


def metrics_page(kind: str, varz: dict[str, Any]) -> bytes:
    """Prometheus text of the values fobs' handler stores from `varz` (numbers only)."""
    appender = ListAppender({}, 0)
    handler_for(kind)(varz, appender)
    lines = []
    for point in appender.points:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(point.tags.items()))
        for field, value in point.fields.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                name = f"{point.measurement}_{field}".replace(".", "_").replace("-", "_")
                lines.append(f"{name}{{{labels}}} {float(value)!r}" if labels
                             else f"{name} {float(value)!r}")
    return ("\n".join(lines) + "\n").encode()


class Member:
    """One component: its identity, its pre-made bodies and its HTTP server."""

    def __init__(self, kind: str, index: int, port: int, varz: dict[str, Any],
                 credentials: tuple[str, str]) -> None:
        self.kind, self.index, self.port = kind, index, port
        self.uuid = f"{index}-{uuidlib.uuid4().hex}"
        self.host = f"127.0.0.1:{port}"
        self.credentials = credentials
        self.started = datetime.now(UTC)
        varz = {**varz, **wire.discover_payload(kind, index, self.uuid, self.host, credentials,
                                                self.started)}
        self.bodies = {"/varz": (json.dumps(varz, indent=1).encode(), "application/json"),
                       "/metrics": (metrics_page(kind, varz), "text/plain; version=0.0.4"),
                       "/healthz": (b"ok", "text/plain")}
        self.auth = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Authorization") != self.auth:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="varz"'})
        found = self.bodies.get(request.path)
        if found is None:
            return web.Response(status=404)
        body, content_type = found
        return web.Response(body=body, content_type=content_type.split(";")[0],
                            charset=None)

    def announce(self) -> bytes:
        return wire.encode(wire.discover_payload(self.kind, self.index, self.uuid, self.host,
                                                 self.credentials, self.started))

    def discover_reply(self) -> bytes:
        uptime = (datetime.now(UTC) - self.started).total_seconds()
        return wire.encode(wire.discover_payload(self.kind, self.index, self.uuid, self.host,
                                                 self.credentials, self.started, uptime))


async def run(count: int, nats_url: str, targets_file: Path,
              credentials: tuple[str, str]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    fixtures = {name: fixture(name) for _, name in MIX}
    members: list[Member] = []
    indexes: dict[str, int] = {}
    servers = []
    for i in range(count):
        kind, name = MIX[i % len(MIX)]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        member = Member(kind, indexes.setdefault(kind, 0), sock.getsockname()[1],
                        fixtures[name], credentials)
        indexes[kind] += 1
        servers.append(await loop.create_server(web.Server(member.handle), sock=sock,
                                                backlog=128))
        members.append(member)
    nc = await nats.connect(nats_url, name=f"cffleet/{count}")

    async def on_discover(msg: Any) -> None:
        for member in members:
            await nc.publish(msg.reply, member.discover_reply())

    await nc.subscribe(wire.DISCOVER, cb=on_discover)
    for member in members:
        await nc.publish(wire.ANNOUNCE, member.announce())
    await nc.flush()
    targets_file.write_text(json.dumps([{"targets": [m.host], "labels": {
        "job": m.kind, "index": str(m.index), "uuid": m.uuid}} for m in members]))
    await stop.wait()
    await nc.close()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape.cffleet")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--targets-file", type=Path, required=True)
    parser.add_argument("--credentials", default="u:p")
    args = parser.parse_args()
    user, _, password = args.credentials.partition(":")
    asyncio.run(run(args.count, args.nats, args.targets_file, (user, password)))


if __name__ == "__main__":
    main()
