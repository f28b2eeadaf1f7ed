"""The fan-out: every configured output behind one object; each scrape's points go to `add`.

Points are encoded once (one `Encoder` per process) and the bytes go to every output's spool; each
output drains its own spool in its own task, so a historian that is down or slow never delays
another one nor the scrapes.

Usage (inside the collector daemon's coroutine):

    outputs = await Outputs.start(config.outputs)     # spools opened, historians connected
    outputs.add(appender.points)                      # after each scrape; never blocks
    CollectorMetrics(comp.metrics).bind_outputs(outputs)  # its counters in varz, /metrics
    comp.varz["outputs"] = outputs.varz()             # the free text (state, last error)
    comp.add_health_check("outputs", outputs.health)
    await outputs.close()                             # on SIGTERM: bounded final flush
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from loguru import logger

from fobs.collector.buffer import Buffer
from fobs.collector.config import OutputsConfig
from fobs.collector.errors import SpoolError
from fobs.collector.historians import FileConfig, create
from fobs.collector.lineprotocol import Encoder
from fobs.collector.output import Output
from fobs.collector.point import Point
from fobs.collector.quarantine import Quarantine
from fobs.collector.spool import open_spool
from fobs.collector.throttle import Every
from fobs.components.config import ConfigError


class Outputs:
    def __init__(self, outputs: list[Output], config: OutputsConfig,
                 encoder: Encoder | None = None) -> None:
        self.outputs = outputs
        self.config = config
        self.encoder = encoder or Encoder()
        self.points_received = 0
        self.points_failed = 0                 # whole add() calls the encoder raised on
        self._log = Every(60.0)

    @classmethod
    async def start(cls, config: OutputsConfig) -> Outputs:
        """Open every output's spool (ConfigError if one cannot be used) and start its task."""
        outputs: list[Output] = []
        buffers: list[Buffer] = []
        try:
            for kind, name, cfg in config.outputs():
                try:
                    buffer = open_spool(Path(config.spool_dir) / name, cfg.spool, name,
                                        default="memory" if kind == "file" else "disk")
                except SpoolError as e:
                    raise ConfigError(f"outputs.spool_dir: {e}") from None
                buffers.append(buffer)
                quarantine = Quarantine(Path(config.quarantine_path()) / f"{name}.lp",
                                        config.quarantine_max_bytes, name)
                outputs.append(Output(name, kind, create(kind, cfg, name), buffer, cfg,
                                      quarantine))
            for output, (_, _, cfg) in zip(outputs, config.outputs(), strict=True):
                await output.start()
                target = cfg.path if isinstance(cfg, FileConfig) else cfg.url
                logger.info("Output {} ({}) writes to {}; {} points waiting in its spool",
                            output.name, output.kind, target, output.buffer.pending()[0])
        except BaseException:
            for output in outputs:                   # closes its historian and spool
                await output.close(0)
            for buffer in buffers[len(outputs):]:
                buffer.close()
            raise
        return cls(outputs, config)

    def add(self, points: Iterable[Point]) -> int:
        """Encode and spool points for every output; returns how many were encodable."""
        points = points if isinstance(points, list) else list(points)
        self.points_received += len(points)
        try:
            data, n = self.encoder.encode(points)
        except Exception as e:                 # a Point that breaks its contract: not a crash
            self.points_failed += len(points)
            if self._log.ready() is not None:
                logger.opt(exception=e).error("Cannot encode {} points", len(points))
            return 0
        if n:
            for output in self.outputs:
                output.add(data, n)
        return n

    async def flush(self, timeout: float) -> bool:
        """Send everything pending now; True when every spool is empty within `timeout`."""
        for output in self.outputs:
            output.flush()
        results = await asyncio.gather(*(o.until(o.drained, timeout) for o in self.outputs))
        return all(results)

    async def close(self, timeout: float | None = None) -> None:
        """Final flush of every output at once, bounded by `timeout` (default close_timeout)."""
        limit = self.config.close_timeout if timeout is None else timeout
        await asyncio.gather(*(output.close(limit) for output in self.outputs))

    def health(self) -> str | None:
        reasons = [r for r in (o.health() for o in self.outputs) if r]
        return "; ".join(reasons) or None

    def varz(self) -> dict[str, object]:
        """The free text for varz; the counters are declared in `fobs.collector.metrics`."""
        return {"outputs": {o.name: o.varz() for o in self.outputs}}
