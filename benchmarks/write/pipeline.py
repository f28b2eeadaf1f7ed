"""The write path end to end: spool alone, then Outputs → real influxd (Debian 1.6.7).

Prints:
- spool: appends/s and MB/s of scrape-sized records (fsync "interval"), then points/s drained
  through peek + ack in batches of 5,000;
- pipeline: points/s from `Outputs.add` (20-point scrapes) until influxd holds them all,
  and the collector process's CPU seconds per 100,000 points (encoding, spool, HTTP, gzip).

Usage (from the repo root): python -m benchmarks.write.pipeline [--points N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from fobs.collector.buffer import SpoolConfig
from fobs.collector.config import InfluxV1OutputConfig, OutputsConfig
from fobs.collector.fanout import Outputs
from fobs.collector.lineprotocol import Encoder
from fobs.collector.point import Point
from fobs.collector.spool import DiskSpool
from tests.services import Influxd

T0 = 1_700_000_000_000_000_000
PER_SCRAPE = 20


def scrapes(points: int) -> list[list[Point]]:
    out = []
    for s in range(points // PER_SCRAPE):
        tags = {"host": f"10.0.{s % 250}.{s % 7}", "type": "DEA", "index": str(s % 4)}
        out.append([Point(f"m{i}", tags, {"value": s % 1000 / 10 + i, "count": s * 20 + i},
                          T0 + s * 1000 + i) for i in range(PER_SCRAPE)])
    return out


def bench_spool(work: Path, batches: list[list[Point]]) -> None:
    encoder = Encoder()
    records = [encoder.encode(b) for b in batches]
    spool = DiskSpool(work / "spool-bench", SpoolConfig(max_bytes=1 << 30))
    start = time.perf_counter()
    for data, n in records:
        spool.append(data, n)
    elapsed = time.perf_counter() - start
    size = sum(len(d) for d, _ in records)
    print(f"spool append   {len(records) / elapsed:>10,.0f} records/s "
          f"{size / elapsed / 1e6:>7.1f} MB/s  ({size // len(records)} bytes/record)")
    start = time.perf_counter()
    points = 0
    while (batch := spool.peek(5000, 4 << 20)) is not None:
        points += batch.points
        spool.ack(batch)
    elapsed = time.perf_counter() - start
    print(f"spool drain    {points / elapsed:>10,.0f} points/s (peek + ack, batches of 5,000)")
    spool.close()


async def bench_pipeline(work: Path, influxd: Influxd, batches: list[list[Point]]) -> None:
    influxd.create_database("bench")
    config = OutputsConfig(spool_dir=str(work / "spool"), influxdb_v1=(
        InfluxV1OutputConfig(url=influxd.url, database="bench", flush_interval=0.2),))
    outputs = await Outputs.start(config)
    total = sum(len(b) for b in batches)
    cpu, wall = time.process_time(), time.perf_counter()
    for i, batch in enumerate(batches):
        outputs.add(batch)
        if i % 50 == 0:
            await asyncio.sleep(0)              # let the sender run, as scrapes would
    assert await outputs.flush(300)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await outputs.close()
    stored = sum(influxd.count("bench", f"m{i}", "value") for i in range(PER_SCRAPE))
    print(f"pipeline       {total / wall:>10,.0f} points/s into influxd "
          f"({stored:,} of {total:,} stored), "
          f"{cpu / total * 100_000:.2f} CPU s per 100k points in the collector process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    args = parser.parse_args()
    batches = scrapes(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_spool(work, batches)
        with Influxd(work / "influxd") as influxd:
            asyncio.run(bench_pipeline(work, influxd, batches))


if __name__ == "__main__":
    main()
