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
import resource
from typing import Any

from loguru import logger

from fobs.components.config import host_port
from fobs.components.metrics import Registry, overlay
from fobs.components.runtime import Component
from fobs.syslog_agg.config import SyslogAggConfig
from fobs.syslog_agg.intake import Intake
from fobs.syslog_agg.metrics import declare
from fobs.syslog_agg.pipeline import Pipeline
from fobs.syslog_agg.router import Router
from fobs.syslog_agg.stats import Batch, Counts
from fobs.syslog_agg.store import Store
from fobs.syslog_agg.tail import Tail
from fobs.syslog_agg.tcp import TcpListener, tls_context
from fobs.syslog_agg.udp import UdpListener
from fobs.syslog_agg.workers import WorkerPool

__all__ = ["Aggregator", "COMPONENT_TYPE"]

COMPONENT_TYPE = "SyslogAggregator"


class Aggregator:
    def __init__(self, config: SyslogAggConfig) -> None:
        self.config = config
        listen = config.listen
        self.intake = Intake(listen.queue_size, listen.max_message_size)
        self.store = Store(config.store)
        self.tail = Tail(config.tail)
        self.pipeline = Pipeline(
            Router(config.routing), config.store.format, self.store.append,
            local_time=config.store.local_time,
            tail=(self.tail.admit, self.tail.publish, self.tail.limited)
            if config.tail.enabled else None)
        self.udp: UdpListener | None = None
        self.workers: WorkerPool | None = None
        self.tcp: list[TcpListener] = []
        self.component: Component | None = None
        self.metrics = Registry()
        declare(self, self.metrics)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._registering: asyncio.Task[None] | None = None

    @property
    def counts(self) -> dict[str, Counts]:
        return self.pipeline.stats.components

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener, start the pipeline; registration continues in the background."""
        listen = self.config.listen
        if listen.udp and listen.udp_workers:
            host, port = host_port(listen.udp, "listen.udp")
            self.workers = WorkerPool(self.config, host, port, self._on_batch)
        elif listen.udp:
            host, port = host_port(listen.udp, "listen.udp")
            self.udp = UdpListener(self.intake, host, port, rcvbuf=listen.udp_rcvbuf,
                                   reuse_port=listen.reuse_port)
        common = dict(idle_timeout=listen.idle_timeout,
                      max_connections=connection_limit(listen.max_connections,
                                                       self.config.store.max_open_files),
                      max_per_source=listen.max_connections_per_source,
                      handshake_timeout=listen.tls_handshake_timeout,
                      reuse_port=listen.reuse_port)
        try:
            if listen.tcp:
                host, port = host_port(listen.tcp, "listen.tcp")
                self.tcp.append(TcpListener(self.intake, host, port,
                                            **common))  # type: ignore[arg-type]
            if listen.tls_enabled:
                host, port = host_port(listen.tls, "listen.tls")
                ctx = tls_context(listen.tls_cert, listen.tls_key, listen.tls_ca,
                                  listen.tls_client_auth)
                self.tcp.append(TcpListener(self.intake, host, port, ssl_context=ctx,
                                            **common))  # type: ignore[arg-type]
            if self.workers is not None:  # before TCP: an open TCP port means "all ready"
                await self.workers.start()
            for listener in self.tcp:
                await listener.start()
        except BaseException:
            await self._close_listeners()
            raise
        if self.udp is not None:
            self.udp.start()
        self._tasks = [asyncio.create_task(self.pipeline.consume(self.intake),
                                           name="syslog-pipeline"),
                       asyncio.create_task(self.store.run(self._stop), name="syslog-store")]
        if self.config.tail.enabled:
            self._tasks.append(asyncio.create_task(self.tail.run(), name="syslog-tail"))
        if self.config.register:
            self.component = Component(COMPONENT_TYPE, self.config.component,
                                       registry=self.metrics)
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
        self._drain_intake()
        self._stop.set()
        for task in self._tasks:
            if task.get_name() == "syslog-store":
                await task
            else:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._drain_intake()
        self.store.close()
        if self._registering is not None:
            if not self._registering.done():
                self._registering.cancel()
            await asyncio.gather(self._registering, return_exceptions=True)
        if self.component is not None and self.config.register:
            await self.component.stop()
        logger.info("Syslog aggregator stopped: {} messages received, {} written",
                    self.intake.stats.received, self.store.stats.lines_written)

    def _process_queue(self) -> None:
        self.pipeline.process(self.intake.queue, len(self.intake.queue))

    def _drain_intake(self) -> None:
        """Process the queue, and the frames TCP sessions held back while it was full."""
        queue = self.intake.queue
        self.pipeline.process(queue, len(queue))
        while self.intake.drained():
            self.pipeline.process(queue, len(queue))

    async def _close_listeners(self) -> None:
        if self.udp is not None:
            self.udp.close(self._process_queue)  # reads what the kernel still holds
        if self.workers is not None:
            await self.workers.stop(self.intake, self._process_queue)  # last batches stored
        for listener in self.tcp:
            await listener.close()

    def _on_batch(self, batch: Batch) -> None:
        """Take in one batch of a UDP worker (see workers.py): its counts add to ours."""
        append = self.store.append
        admit = self.pipeline.router.admit  # each worker caps its names; the sum is capped here
        for (component, day), text in batch.lines.items():
            append(admit(component), day, text)
        counts = batch.pipeline.components
        for name in [n for n in counts if admit(n) != n]:
            overflow = counts.setdefault(admit(name), Counts())
            overflow.merge(counts.pop(name))
        self.intake.stats.merge(batch.intake)
        self.pipeline.stats.merge(batch.pipeline)
        self.tail.stats.merge(batch.tail_stats)
        for component, line in batch.tail:
            self.tail.publish(admit(component), line)

    # -- varz and health ------------------------------------------------------------------

    def _health(self) -> str | None:
        if self._tasks and self._tasks[0].done():
            return "pipeline task has stopped"
        if self.store.stats.write_errors and self.store.open_files == 0:
            return "cannot write to the store"
        return None

    def kernel_udp_drops(self) -> int | None:
        """Datagrams the kernel dropped for our UDP socket(s), or None (no UDP, not Linux)."""
        udp = self.udp or self.workers
        return udp.kernel_drops() if udp is not None else None

    def _refresh_varz(self, varz: dict[str, Any]) -> None:
        varz["listeners"] = self.addresses()

    def addresses(self) -> dict[str, dict[str, str]]:
        """`listeners.<transport>.address`: the free-form part of varz (numbers are declared
        in metrics.py and laid over it)."""
        out = {t.transport_name: {"address": "{}:{}".format(*t.address)} for t in self.tcp}
        udp = self.udp or self.workers
        if udp is not None:
            out["udp"] = {"address": "{}:{}".format(*udp.address)}
        return out

    def varz(self) -> dict[str, Any]:
        """The aggregator's own varz (the component runtime adds the generic fields)."""
        return overlay({"listeners": self.addresses()}, self.metrics.varz())


_FD_RESERVE = 32  # descriptors kept for the listeners, NATS, the varz server and the logs


def connection_limit(max_connections: int, max_open_files: int) -> int:
    """`max_connections`, lowered to what the open-file limit leaves after the store's files
    and a reserve: a connection over the limit is refused at accept, never allowed to take
    the descriptor a log file needs (warned once at start)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    room = max(1, soft - max_open_files - _FD_RESERVE)
    if room < max_connections:
        logger.warning("listen.max_connections lowered from {} to {}: the open-file limit is "
                       "{} and the store keeps up to {} files open", max_connections, room,
                       soft, max_open_files)
        return room
    return max_connections
