"""The syslog aggregator daemon: listeners → intake queue → parse/route/count → store and tail.

One event loop does everything. The listeners only frame and queue; the pipeline task takes
the queue in slices, parses, routes, counts, formats and hands lines to the store, yielding to
the loop between slices so receiving never starves. A clean stop closes the listeners, drains
the queue, flushes the store and only then says goodbye on NATS: nothing accepted is lost.

Usage:
    agg = Aggregator(config)
    await agg.start()           # listening; registers as component `SyslogAggregator`
    ...
    await agg.stop()
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

from loguru import logger

from components.config import host_port
from components.runtime import Component
from syslog_agg.config import SyslogAggConfig
from syslog_agg.lines import Formatter, format_received
from syslog_agg.listeners import Intake, TcpListener, UdpListener, tls_context
from syslog_agg.parser import parse
from syslog_agg.router import Router
from syslog_agg.store import Store, day_of
from syslog_agg.tail import Tail

__all__ = ["Aggregator", "COMPONENT_TYPE", "SEVERITIES"]

COMPONENT_TYPE = "SyslogAggregator"
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_SLICE = 2048  # messages processed before yielding to the loop


class _Counts:
    """Messages and bytes per component and severity (index 8 = no severity: unparsed)."""

    __slots__ = ("messages", "bytes", "severity")

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.severity = [0] * 9

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "bytes": self.bytes,
                "severity": dict(zip(SEVERITIES, self.severity)),
                "unparsed": self.severity[8]}


class Aggregator:
    def __init__(self, config: SyslogAggConfig, *, component: Component | None = None) -> None:
        self.config = config
        listen = config.listen
        self.intake = Intake(listen.queue_size, listen.max_message_size)
        self.router = Router(config.routing)
        self.store = Store(config.store)
        self.formatter = Formatter(config.store.format)
        self.tail = Tail(config.tail)
        self._json = Formatter("json")
        self.udp: UdpListener | None = None
        self.tcp: list[TcpListener] = []
        self.counts: dict[str, _Counts] = {}
        self.formats = {"rfc5424": 0, "rfc3164": 0, "unparsed": 0}
        self.discarded = 0
        self.component = component
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._registering: asyncio.Task[None] | None = None
        self._last_when = -1.0
        self._received = ""
        self._day = ""
        self._now = datetime.now(timezone.utc)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener, start the pipeline; registration continues in the background."""
        listen = self.config.listen
        if listen.udp:
            host, port = host_port(listen.udp, "listen.udp")
            self.udp = UdpListener(self.intake, host, port, rcvbuf=listen.udp_rcvbuf,
                                   reuse_port=listen.reuse_port)
        common = dict(idle_timeout=listen.idle_timeout, max_connections=listen.max_connections,
                      reuse_port=listen.reuse_port)
        try:
            if listen.tcp:
                host, port = host_port(listen.tcp, "listen.tcp")
                self.tcp.append(TcpListener(self.intake, host, port, **common))  # type: ignore[arg-type]
            if listen.tls_enabled:
                host, port = host_port(listen.tls, "listen.tls")
                ctx = tls_context(listen.tls_cert, listen.tls_key, listen.tls_ca,
                                  listen.tls_client_auth)
                self.tcp.append(TcpListener(self.intake, host, port, ssl_context=ctx,
                                            **common))  # type: ignore[arg-type]
            for listener in self.tcp:
                await listener.start()
        except BaseException:
            await self._close_listeners()
            raise
        if self.udp is not None:
            self.udp.start()
        self._tasks = [asyncio.create_task(self._consume(), name="syslog-pipeline"),
                       asyncio.create_task(self.store.run(self._stop), name="syslog-store")]
        if self.config.tail.enabled:
            self._tasks.append(asyncio.create_task(self.tail.run(), name="syslog-tail"))
        if self.config.register:
            if self.component is None:
                self.component = Component(COMPONENT_TYPE, self.config.component)
            self.component.on_refresh(self._refresh_varz)
            self.component.add_health_check("pipeline", self._health)
            self._registering = asyncio.create_task(self._register())

    async def _register(self) -> None:
        assert self.component is not None
        await self.component.start()  # waits for NATS; the listeners work meanwhile
        self.tail.nc = self.component.nc

    async def stop(self) -> None:
        """Stop receiving, write everything queued, flush, deregister."""
        await self._close_listeners()
        self._process(len(self.intake.queue))
        self._stop.set()
        for task in self._tasks:
            if task.get_name() == "syslog-store":
                await task
            else:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._process(len(self.intake.queue))
        self.store.close()
        if self._registering is not None:
            if not self._registering.done():
                self._registering.cancel()
            await asyncio.gather(self._registering, return_exceptions=True)
        if self.component is not None and self.config.register:
            await self.component.stop()
        logger.info("Syslog aggregator stopped: {} messages received, {} written",
                    self.intake.stats["received"], self.store.stats["lines_written"])

    async def _close_listeners(self) -> None:
        if self.udp is not None:
            self.udp.close()
            # datagrams already read by the last callback are in the queue
        for listener in self.tcp:
            await listener.close()

    # -- pipeline -------------------------------------------------------------------------

    async def _consume(self) -> None:
        intake = self.intake
        queue = intake.queue
        while True:
            if not queue:
                intake.ready.clear()
                await intake.ready.wait()
            self._process(min(len(queue), _SLICE))
            intake.drained()
            await asyncio.sleep(0)

    def _process(self, n: int) -> None:
        """Parse, route, count and store the next `n` queued messages."""
        popleft = self.intake.queue.popleft
        route = self.router.route
        line = self.formatter.line
        append = self.store.append
        counts = self.counts
        formats = self.formats
        tail = self.tail if self.config.tail.enabled else None
        mono = time.monotonic()
        for _ in range(n):
            data, peer, when, truncated = popleft()
            if when != self._last_when:
                self._set_time(when)
            msg = parse(data, now=self._now)
            if truncated:
                msg.truncated = True
            component = route(msg)
            formats[msg.format] += 1
            if component is None:
                self.discarded += 1
                continue
            c = counts.get(component)
            if c is None:
                c = counts[component] = _Counts()
            c.messages += 1
            c.bytes += len(data)
            sev = msg.severity
            c.severity[8 if sev is None else sev] += 1
            append(component, self._day, line(msg, component, self._received, peer))
            if tail is not None and tail.admit(component, mono):
                tail.publish(component, self._json.line(msg, component, self._received, peer))

    def _set_time(self, when: float) -> None:
        self._last_when = when
        self._now = datetime.fromtimestamp(when, timezone.utc)
        if self.config.store.local_time:
            self._now = self._now.astimezone()
        self._received = format_received(when)
        self._day = day_of(when, self.config.store.local_time)

    # -- varz and health ------------------------------------------------------------------

    def _health(self) -> str | None:
        if self._tasks and self._tasks[0].done():
            return "pipeline task has stopped"
        if self.store.stats["write_errors"] and self.store.open_files == 0:
            return "cannot write to the store"
        return None

    def _refresh_varz(self, varz: dict[str, Any]) -> None:
        varz.update(self.varz())

    def varz(self) -> dict[str, Any]:
        """The aggregator's own varz fields (the component runtime adds the generic ones)."""
        intake = self.intake.stats
        severity = [0] * 9
        for c in self.counts.values():
            for i, n in enumerate(c.severity):
                severity[i] += n
        listeners: dict[str, Any] = {}
        if self.udp is not None:
            listeners["udp"] = {"address": "%s:%d" % self.udp.address,
                                "rcvbuf_bytes": self.udp.rcvbuf_granted,
                                "kernel_drops": self.udp.kernel_drops()}
        for listener in self.tcp:
            listeners[listener.transport_name] = {
                "address": "%s:%d" % listener.address,
                "open_connections": len(listener.sessions), **listener.stats}
        return {
            "messages": sum(c.messages for c in self.counts.values()),
            "bytes": sum(c.bytes for c in self.counts.values()),
            "severity": dict(zip(SEVERITIES, severity)),
            "components": {name: c.as_dict() for name, c in sorted(self.counts.items())},
            "formats": dict(self.formats),
            "parse_errors": self.formats["unparsed"],
            "received": intake["received"],
            "received_bytes": intake["received_bytes"],
            "truncated": intake["truncated"],
            "dropped": intake["dropped"],
            "probes": intake["probes"],
            "framing_errors": intake["framing_errors"],
            "discarded": self.discarded,
            "queue_depth": len(self.intake.queue),
            "queue_capacity": self.intake.capacity,
            "open_connections": sum(len(t.sessions) for t in self.tcp),
            "kernel_udp_drops": self.udp.kernel_drops() if self.udp is not None else None,
            "udp_rcvbuf_errors": udp_rcvbuf_errors(),
            "listeners": listeners,
            "store": {**self.store.stats, "open_files": self.store.open_files,
                      "pending_lines": self.store.pending_lines},
            "tail": dict(self.tail.stats),
        }


def udp_rcvbuf_errors() -> int | None:
    """The host's UDP RcvbufErrors (/proc/net/snmp): loss in every socket's kernel buffer."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None
