"""The collector's CPU per stored value after the fetch, in one process: decode → handler →
appender → `scrape` point → line protocol → disk spool, on the cf fleet's bodies.

    python -m benchmarks.scrape.values [--scrapes N] [--repeat R] [--profile FILE]

The bodies are exactly what `cffleet` serves (its fixtures, identities and JSON layout), mixed
8:2:1:1; each scrape runs the collector's own after-fetch code (`Scraper.scrape` with a fetcher
that answers at once), the fan-out's encoder and a real `DiskSpool`, so this measures what a
stored value costs the collector apart from HTTP and the event loop (`./dev bench scrape`
measures everything). Prints µs per scrape and per stored value, per stage and in total, the
median of R repeats; `--profile` writes cProfile stats of one more repeat and prints its top.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scrape.cffleet import MIX, Member, fixture
from fobs.collector.buffer import SpoolConfig
from fobs.collector.config import ScrapeConfig
from fobs.collector.lineprotocol import Encoder
from fobs.collector.scrape import Scraper
from fobs.collector.spool import DiskSpool
from fobs.collector.target import Discovered, Target


class InstantFetcher:
    """Answers every GET with the target's pre-made body (no HTTP)."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    async def get(self, url: Any, headers: Any, timeout: float) -> tuple[int, bytes]:
        return 200, self.bodies[str(url)]


def fleet() -> tuple[list[Target], dict[str, bytes]]:
    fixtures = {name: fixture(name) for _, name in MIX}
    targets, bodies = [], {}
    for i, (kind, name) in enumerate(MIX):
        member = Member(kind, i, 10000 + i, fixtures[name], ("u", "p"))
        info = Discovered(member.uuid, kind, i, member.host, ("u", "p"))
        target = Target(info, "bench", role="core")
        targets.append(target)
        bodies[str(target.url("varz"))] = member.bodies["/varz"][0]
    return targets, bodies


async def run(scrapes: int, spool_dir: Path) -> tuple[float, int, int]:
    """(CPU seconds, scrapes, values stored) of `scrapes` scrapes through the whole path."""
    targets, bodies = fleet()
    spool = DiskSpool(spool_dir, SpoolConfig(max_bytes=1 << 30))
    encoder = Encoder()
    scraper = Scraper(ScrapeConfig(), lambda points: None)
    scraper.fetcher = InstantFetcher(bodies)  # type: ignore[assignment]
    values = 0
    start = time.process_time()
    for k in range(scrapes):
        target = targets[k % len(targets)]
        points = await scraper.scrape(target, "varz")
        data, n = encoder.encode(points)
        spool.append(data, n)
        values += sum(len(p.fields) for p in points)
    elapsed = time.process_time() - start
    spool.close()
    return elapsed, scrapes, values


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape.values",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=12_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=Path, metavar="FILE")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fobs-bench-values-") as tmp:
        for r in range(args.repeat):
            results.append(asyncio.run(run(args.scrapes, Path(tmp) / f"spool-{r}")))
        cpu = statistics.median(c for c, _, _ in results)
        _, scrapes, values = results[0]
        print(f"{scrapes} scrapes of the cf mix, {values / scrapes:.1f} values a scrape "
              f"(fields incl. the scrape point): {cpu / scrapes * 1e6:.1f} µs a scrape, "
              f"{cpu / values * 1e6:.2f} µs a stored value (median of {args.repeat})")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(run(args.scrapes, Path(tmp) / "spool-profile"))
            profiler.disable()
            profiler.dump_stats(str(args.profile))
            pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
