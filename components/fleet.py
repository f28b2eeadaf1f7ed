"""`fobs component fleet` — many simulated components in one process, for load tests.

Every component keeps its own HTTP port, uuid and NATS registration, exactly as if it ran alone,
but they share one NATS connection, one /proc sampler and one logging setup, which is what lets
one process hold thousands of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger

from fobs.components import daemon
from fobs.components.bus import Bus
from fobs.components.config import ConfigError
from fobs.components.logs import process_logging
from fobs.components.process import ProcessStats
from fobs.components.runtime import Component

START_BATCH = 100   # components started concurrently


def add_command(kinds: argparse._SubParsersAction, common_flags: Callable[..., None]) -> None:  # type: ignore[type-arg]
    p = kinds.add_parser(
        "fleet", help="many simulated components in one process (load tests)",
        description="Host many reference components in one process; each has its own port, "
                    "uuid and NATS registration.")
    p.add_argument("--count", type=int, default=100, help="number of components (default 100)")
    p.add_argument("--mix", default="dea=8,router=2,stager=1",
                   help="relative share of each kind, e.g. dea=2,router=1 "
                        "(default dea=8,router=2,stager=1)")
    p.add_argument("--targets-file", type=Path, metavar="FILE",
                   help="write the fleet's /metrics targets as Prometheus file_sd JSON")
    p.add_argument("--no-simulation", action="store_true",
                   help="serve the runtime's generic varz only (no workload), for scrape "
                        "benchmarks")
    common_flags(p)
    p.set_defaults(handler=run_fleet)


def parse_mix(text: str) -> dict[str, int]:
    from fobs.components.cli import KINDS
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, sep, weight = part.strip().partition("=")
        if kind not in KINDS or not sep or not weight.isdigit():
            raise ConfigError(f"--mix: expected KIND=WEIGHT with KIND in "
                              f"{', '.join(KINDS)}, got {part!r}")
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


def run_fleet(args: argparse.Namespace) -> int:
    from fobs.components.cli import _reference, file_config
    from fobs.components.reference import TYPES, create
    if args.count < 1:
        raise ConfigError("--count: must be at least 1")
    kinds = plan(args.count, parse_mix(args.mix))
    reference = {} if args.no_simulation else _reference()
    base_config, sim_configs = file_config({k: v[1] for k, v in reference.items()}, args)
    if base_config.port:
        raise ConfigError("--port: a fleet uses ephemeral ports; leave port unset")
    process_logging().configure(base_config.log_level, base_config.syslog)

    async def main(stop: asyncio.Event) -> int:
        bus = await Bus.connect(base_config.nats, f"fleet/{args.count}")
        stats = ProcessStats()
        comps: list[Component] = []
        sims: list[Any] = []
        indexes = dict.fromkeys(TYPES, 0)
        began = time.monotonic()
        for kind in kinds:
            sim_config = sim_configs.get(kind)
            comp = Component(TYPES[kind], replace(base_config, index=indexes[kind]),
                             bus=bus, stats=stats)
            indexes[kind] += 1
            if not args.no_simulation:
                sims.append(create(kind, comp, sim_config))
            comps.append(comp)
        for start in range(0, len(comps), START_BATCH):
            if stop.is_set():
                break
            await asyncio.gather(*(c.start() for c in comps[start:start + START_BATCH]))
            logger.info("Fleet: {}/{} components started", min(start + START_BATCH,
                                                               len(comps)), len(comps))
        logger.info("Fleet of {} components up in {:.1f}s ({})", len(comps),
                    time.monotonic() - began,
                    ", ".join(f"{n} {TYPES[k]}" for k, n in indexes.items() if n))
        if args.targets_file:
            args.targets_file.write_text(json.dumps(file_sd(comps), indent=1))
            logger.info("Wrote Prometheus file_sd targets to {}", args.targets_file)
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

    return daemon.run(main)
