"""Several collectors share one fleet on a real 3-node NATS cluster (rendezvous sharding)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fobs.collector.daemon import Collector
from fobs.collector.registry import Registry
from fobs.components.bus import NatsConfig
from fobs.components.runtime import Component, ComponentConfig
from tests.collector.collector_helpers import MemoryOutputs, collector_config
from tests.waiting import until

FLEET = 30           # with 12, a collector owned none of them in ~2 % of runs (3 × (2/3)^12)
PRUNE = 30.0         # far longer than the test: a takeover must come from the heartbeats
HEARTBEAT = 0.2
MISSES = 3
REPO = Path(__file__).resolve().parents[2]


def collector_process(nats_url: str, workdir: Path) -> subprocess.Popen[bytes]:
    """A collector sharing the fleet from its own process, for the test to kill -9."""
    config = workdir / "collector.toml"
    config.write_text(
        f'[component]\nindex = 9\n[component.nats]\nservers = ["{nats_url}"]\n'
        f'reconnect_wait = 0.1\n[discovery]\nsharding = "rendezvous"\ndiscover_interval = 0.3\n'
        f'prune_interval = {PRUNE}\nheartbeat_interval = {HEARTBEAT}\n'
        f'heartbeat_misses = {MISSES}\n[scrape]\nvarz_interval = 0.5\nhealthz = false\n'
        f'[status]\naddress = ""\n[outputs]\nspool_dir = "{workdir / "spool"}"\n')
    with open(workdir / "collector.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fobs.collector", "--config", str(config)], cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)


def owners(collectors: list[Collector], uuids: set[str]) -> dict[str, list[str]]:
    """For each component uuid, the collectors that scrape it."""
    result: dict[str, list[str]] = {u: [] for u in uuids}
    for c in collectors:
        assert c.registry is not None
        for target in c.registry.owned():
            if target.uuid in result:
                result[target.uuid].append(c.uuid)
    return result


def registry(collector: Collector) -> Registry:
    assert collector.registry is not None, "collector not started"
    return collector.registry


def each_owned_once(collectors: list[Collector], uuids: set[str]) -> bool:
    return all(len(o) == 1 for o in owners(collectors, uuids).values())


async def test_every_target_is_scraped_by_exactly_one_collector(nats_cluster: Any,
                                                                 tmp_path: Path) -> None:
    urls = nats_cluster.urls
    comps = [Component("DEA", ComponentConfig(index=i, nats=NatsConfig(
        servers=(urls[i % 3],), reconnect_wait=0.1))) for i in range(FLEET)]
    for comp in comps:
        await comp.start()
    uuids = {c.uuid for c in comps}
    collectors: list[Collector] = []
    victim: subprocess.Popen[bytes] | None = None
    try:
        for i in range(3):
            config = collector_config(
                [urls[i]], discovery={"sharding": "rendezvous", "discover_interval": 0.3,
                                      "prune_interval": PRUNE,
                                      "heartbeat_interval": HEARTBEAT,
                                      "heartbeat_misses": MISSES},
                scrape={"varz_interval": 0.5, "healthz": False})
            collector = Collector(config, MemoryOutputs())
            await collector.start()
            collectors.append(collector)
        await until(lambda: all(len(registry(c).collectors) == 3 for c in collectors)
                    and each_owned_once(collectors, uuids), "three collectors sharing")
        shares = [len([t for t in registry(c).owned() if t.uuid in uuids]) for c in collectors]
        assert sum(shares) == FLEET and all(s > 0 for s in shares), shares

        # what they scrape is what they own: each component's points come from one collector
        marks = [len(c.outputs.points) for c in collectors]  # type: ignore[attr-defined]
        await until(lambda: all(len(c.outputs.points) > m + FLEET  # type: ignore[attr-defined]
                                for c, m in zip(collectors, marks, strict=True)), "fresh scrapes")
        scraped_by: dict[str, set[int]] = {}
        for n, c in enumerate(collectors):
            for p in c.outputs.points[marks[n]:]:  # type: ignore[attr-defined]
                if p.measurement == "scrape" and p.tags["job"] == "DEA":
                    scraped_by.setdefault(p.tags["index"], set()).add(n)
        assert all(len(who) == 1 for who in scraped_by.values()), scraped_by

        # a clean stop says goodbye: the others take its targets over at once
        leaving = collectors.pop(0)
        began = asyncio.get_running_loop().time()
        await leaving.stop()
        await until(lambda: all(len(registry(c).collectors) == 2 for c in collectors)
                    and each_owned_once(collectors, uuids), "takeover after unregister")
        assert asyncio.get_running_loop().time() - began < HEARTBEAT * MISSES  # not by silence

        # a crash says nothing: a collector killed with -9 is out once its heartbeat has been
        # missed MISSES times, and its targets move
        victim = collector_process(urls[1], tmp_path)
        await until(lambda: all(len(registry(c).collectors) == 3 for c in collectors),
                    "a third collector, in its own process", timeout=30)
        victim.kill()
        victim.wait()
        began = asyncio.get_running_loop().time()
        await until(lambda: all(len(registry(c).collectors) == 2 for c in collectors)
                    and each_owned_once(collectors, uuids), "takeover after kill -9")
        took = asyncio.get_running_loop().time() - began
        assert HEARTBEAT * (MISSES - 1) <= took <= HEARTBEAT * (MISSES + 2), took
        assert sum(len([t for t in registry(c).owned() if t.uuid in uuids])
                   for c in collectors) == FLEET
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
            victim.wait()
        for c in collectors:
            await c.stop()
        for comp in comps:
            await comp.stop()
