"""Many simulated components in one process, for load tests (`fobs component fleet`).

Every component keeps its own HTTP port, uuid and NATS registration, exactly as if it ran alone,
but they share one NATS connection, one /proc sampler and one logging setup, which is what lets
one process hold thousands of them. The command line (flags, config file) is `cli.py`'s; this
module only plans and runs the fleet, so the two import one way.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger

from fobs.components import reference
from fobs.components.bus import Bus
from fobs.components.config import ConfigError
from fobs.components.logs import process_logging
from fobs.components.process import ProcessStats
from fobs.components.runtime import Component, ComponentConfig

START_BATCH = 100   # components started concurrently


def parse_mix(text: str) -> dict[str, int]:
    """`dea=8,router=2` → {"dea": 8, "router": 2}; every kind must be a reference component."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, sep, weight = part.strip().partition("=")
        if kind not in reference.COMPONENTS or not sep or not weight.isdigit():
            raise ConfigError(f"--mix: expected KIND=WEIGHT with KIND in "
                              f"{', '.join(reference.COMPONENTS)}, got {part!r}")
        mix[kind] = int(weight)
    if not any(mix.values()):
        raise ConfigError("--mix: at least one weight must be above 0")
    return mix


def plan(count: int, mix: dict[str, int]) -> list[str]:
    """Kinds in proportion to the mix, interleaved so any prefix has the same proportions."""
    total = sum(mix.values())
    kinds: list[str] = []
    made = dict.fromkeys(mix, 0)
    for i in range(count):
        kind = max(mix, key=lambda k: mix[k] * (i + 1) / total - made[k])
        made[kind] += 1
        kinds.append(kind)
    return kinds


def file_sd(components: list[Component]) -> list[dict[str, Any]]:
    return [{"targets": [c.host], "labels": {"job": c.type, "index": str(c.index),
                                             "uuid": c.uuid}} for c in components]


async def run(kinds: list[str], base_config: ComponentConfig, sim_configs: dict[str, Any],
              stop: asyncio.Event, *, simulate: bool = True,
              targets_file: Path | None = None) -> int:
    """Start one component per entry of `kinds`, run until `stop`. Indexes are counted per
    kind from the config's `index` (so several fleet processes can have distinct identities)."""
    bus = await Bus.connect(base_config.nats, f"fleet/{len(kinds)}")
    stats = ProcessStats()
    comps: list[Component] = []
    sims: list[Any] = []
    indexes = dict.fromkeys(reference.TYPES, 0)
    began = time.monotonic()
    for kind in kinds:
        comp = Component(reference.TYPES[kind],
                         replace(base_config, index=base_config.index + indexes[kind]),
                         bus=bus, stats=stats)
        indexes[kind] += 1
        if simulate:
            sims.append(reference.create(kind, comp, sim_configs.get(kind)))
        comps.append(comp)
    for start in range(0, len(comps), START_BATCH):
        if stop.is_set():
            break
        await asyncio.gather(*(c.start() for c in comps[start:start + START_BATCH]))
        logger.info("Fleet: {}/{} components started", min(start + START_BATCH,
                                                           len(comps)), len(comps))
    logger.info("Fleet of {} components up in {:.1f}s ({})", len(comps),
                time.monotonic() - began,
                ", ".join(f"{n} {reference.TYPES[k]}" for k, n in indexes.items() if n))
    if targets_file:
        targets_file.write_text(json.dumps(file_sd(comps), indent=1))
        logger.info("Wrote Prometheus file_sd targets to {}", targets_file)
    tasks = [asyncio.create_task(sim.run()) for sim in sims]
    await stop.wait()
    logger.info("Stopping fleet")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(sim.shutdown() for sim in sims), return_exceptions=True)
    await asyncio.gather(*(c.stop() for c in comps), return_exceptions=True)
    await bus.close()
    await process_logging().close()
    return 0
