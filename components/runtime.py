"""The component runtime: register over NATS the Cloud Foundry way, serve /varz and /healthz.

Wire protocol (Cloud Foundry's `VCAP::Component`, spelled in `fobs.components.wire`): at start a
component publishes its discover payload on `vcap.component.announce`, and answers every
`vcap.component.discover` request with the same plus `uptime`. It serves `/varz` and
`/healthz` behind HTTP basic auth with the credentials in that payload. Where the original was
weak fobs does better without breaking the wire: it re-announces after a NATS reconnect, says
goodbye on `vcap.component.unregister` when it stops, keeps credentials out of varz, time-boxes
health checks, and also serves `/metrics` for Prometheus.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from loguru import logger

from fobs.components import auth, exposition, server, wire
from fobs.components.bus import Bus, NatsConfig
from fobs.components.config import ConfigError, user_and_password
from fobs.components.logs import SyslogConfig, process_logging
from fobs.components.metrics import DECLARATIONS_KEY, Registry, overlay
from fobs.components.process import ProcessStats

VARZ_MAX_AGE = 1.0          # generic fields are recomputed at most once a second
HEALTH_CHECK_TIMEOUT = 2.0

HealthCheck = Callable[[], "str | None | Awaitable[str | None]"]
RefreshHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ComponentConfig:
    """Identity, HTTP endpoint, credentials, NATS and syslog of one component."""

    index: int = 0
    host: str = "127.0.0.1"       # address the /varz server binds
    port: int = 0                 # 0 = an ephemeral port
    announce_host: str = ""       # "host" announced ("" = bind address; local IP for 0.0.0.0)
    user: str = ""                # "" = generated at start
    password: str = ""            # "" = generated at start
    log_level: str = "INFO"
    nats: NatsConfig = field(default_factory=NatsConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)

    def validate(self) -> None:
        if self.index < 0:
            raise ConfigError(f"index: must be 0 or more, got {self.index}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535, got {self.port}")
        user_and_password(self.user, self.password)
        from fobs.components.logs import SEVERITY
        if self.log_level.upper() not in SEVERITY:
            raise ConfigError(f"log_level: must be one of {', '.join(SEVERITY)}, "
                              f"got {self.log_level!r}")


def local_ip() -> str:
    """The address other hosts reach us on: the source of a route to a public address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("1.2.3.4", 1))  # no packet is sent for a UDP connect
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Component:
    """One component: identity, varz, health checks, HTTP server and NATS registration."""

    def __init__(self, type: str, config: ComponentConfig | None = None, *,
                 bus: Bus | None = None, stats: ProcessStats | None = None,
                 registry: Registry | None = None) -> None:
        """`registry` holds the component's declared metrics (a new one by default)."""
        self.type = type
        self.config = config or ComponentConfig()
        self.index = self.config.index
        self.uuid = f"{self.index}-{auth.generate_secret()}"
        self.credentials = (self.config.user or auth.generate_secret(),
                            self.config.password or auth.generate_secret())
        self.varz: dict[str, Any] = {}
        self.metrics = registry if registry is not None else Registry()
        self._free: dict[str, Any] = {}      # varz without the declared metrics (for /metrics)
        self.log = logger.bind(job=type, index=self.index, uuid=self.uuid)
        self.start_time = datetime.now(UTC)
        self._started_mono = time.monotonic()
        self._stats = stats or ProcessStats()
        self._refresh_hooks: list[RefreshHook] = []
        self._health_checks: dict[str, HealthCheck] = {}
        self._hidden_from_metrics: set[str] = set()
        self._routes: list[server.Route] = []
        self._bus = bus
        self._owns_bus = bus is None
        self._server: server.Server | None = None
        self._subscriptions: list[Any] = []
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_json = b""
        self._snapshot_at = float("-inf")
        self.host = ""
        self.discover_requests = 0

    # -- API for the component's own code -------------------------------------------------

    def on_refresh(self, hook: RefreshHook) -> None:
        """Call `hook(varz)` before each varz snapshot, to update computed fields."""
        self._refresh_hooks.append(hook)

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """`check()` returns None when healthy, else the reason (shown by /healthz with 503)."""
        self._health_checks[name] = check

    def hide_from_metrics(self, *keys: str) -> None:
        """Leave these top-level varz keys out of /metrics (maps keyed by app or instance ids,
        which would become one Prometheus series per id)."""
        self._hidden_from_metrics.update(keys)

    def add_route(self, method: str, path: str,
                  handler: Callable[..., Awaitable[web.StreamResponse]]) -> None:
        """An extra route behind the same basic auth (call before start)."""
        self._routes.append((method, path, handler))

    @property
    def nc(self) -> Any:
        if self._bus is None:
            raise RuntimeError("component not started: no NATS connection yet")
        return self._bus.client

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve HTTP, connect to NATS (waiting for it if needed), announce."""
        await self._start_http()
        if self._bus is None:
            self._bus = await Bus.connect(self.config.nats, f"{self.type}/{self.index}")
        self._bus.reconnect_hooks.append(self.announce)
        self._subscriptions.append(await self.nc.subscribe(wire.DISCOVER, cb=self._on_discover))
        await self.announce()
        self.log.info("Component {} registered, serving /varz on {}", self.uuid, self.host)

    async def stop(self) -> None:
        """Say goodbye on NATS, stop serving. Closes NATS only if this component opened it."""
        if self._server is None:
            return  # not started, or already stopped
        if self._bus is not None:
            await self._bus.release(self.announce, self._subscriptions)
            await self._publish(wire.UNREGISTER, self._identity())
            if self._owns_bus:
                await self._bus.close()
        if self._server is not None:
            await self._server.close()
            self._server = None
        self.log.info("Component {} stopped", self.uuid)

    async def announce(self) -> None:
        await self._publish(wire.ANNOUNCE, self.discover_payload(with_uptime=False))

    async def _publish(self, subject: str, payload: dict[str, Any]) -> None:
        if self._bus is None or self.nc.is_closed:
            return
        try:
            await self.nc.publish(subject, wire.encode(payload))
            await self.nc.flush(timeout=2)
        except Exception as e:  # NATS down: the reconnect hook announces again later
            self.log.warning("Could not publish {}: {}", subject, e or type(e).__name__)

    # -- registration payloads ------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return wire.identity(self.type, self.index, self.uuid, self.host)

    def discover_payload(self, with_uptime: bool = True) -> dict[str, Any]:
        return wire.discover_payload(self.type, self.index, self.uuid, self.host,
                                     self.credentials, self.start_time,
                                     self.uptime_seconds if with_uptime else None)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_mono

    async def _on_discover(self, msg: Any) -> None:
        self.discover_requests += 1
        if msg.reply:
            try:
                await self.nc.publish(msg.reply, wire.encode(self.discover_payload()))
            except Exception as e:
                self.log.warning("Could not answer discover: {}", e or type(e).__name__)

    # -- varz -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The full varz (generic fields + component fields + declared metrics and their
        declarations), recomputed at most once a second."""
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot_at >= VARZ_MAX_AGE:
            for hook in self._refresh_hooks:
                try:
                    hook(self.varz)
                except Exception:
                    self.log.exception("Varz refresh hook failed")
            sample = self._stats.sample(VARZ_MAX_AGE)
            generic = {
                **self._identity(),
                "start": wire.format_start(self.start_time),
                "uptime": wire.uptime_string(self.uptime_seconds),
                "num_cores": sample.num_cores,
                "cpu": sample.cpu,
                "cpu_load_avg": sample.cpu_load_avg,
                "mem_bytes": sample.mem_bytes,
                "mem_used_bytes": sample.mem_used_bytes,
                "mem_free_bytes": sample.mem_free_bytes,
                "log_counts": process_logging().counts.for_component(self.uuid),
            }
            own = {k: v for k, v in self.varz.items() if k not in generic and k != "credentials"}
            self._free = {**generic, **own}
            tree, declared = self.metrics.render()
            self._snapshot = overlay(self._free, tree)
            if declared:
                self._snapshot[DECLARATIONS_KEY] = declared
            self._snapshot_json = json.dumps(self._snapshot).encode()
            self._snapshot_at = now
        return self._snapshot

    async def health(self) -> list[str]:
        """Reasons the component is unhealthy (empty when healthy)."""
        reasons = []
        for name, check in self._health_checks.items():
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, HEALTH_CHECK_TIMEOUT)
            except TimeoutError:
                result = f"health check timed out after {HEALTH_CHECK_TIMEOUT:g}s"
            except Exception as e:
                result = f"health check raised {type(e).__name__}: {e}"
            if result:
                reasons.append(f"{name}: {result}")
        return reasons

    # -- HTTP -----------------------------------------------------------------------------

    async def _varz(self, request: web.Request) -> web.Response:
        self.snapshot()
        return web.Response(body=self._snapshot_json, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        labels = {"type": self.type, "index": str(self.index)}
        declared, names = exposition.render_registry(self.metrics, labels)
        self.snapshot()
        text = declared + exposition.render(self._free, labels, self._hidden_from_metrics, names)
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _start_http(self) -> None:
        self._server = await server.serve(
            self.config.host, self.config.port,
            [("GET", "/varz", self._varz), ("GET", "/metrics", self._metrics), *self._routes],
            credentials=self.credentials, realm=f"{self.type}/{self.index}", health=self.health)
        port = self._server.port
        address = self.config.announce_host or self.config.host
        if address in ("0.0.0.0", "::", ""):
            address = local_ip()
        self.host = f"{address}:{port}"
