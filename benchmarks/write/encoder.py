"""Line-protocol encoding speed: collector.lineprotocol.Encoder vs influxdb-client's Point.

Prints points/s, median of 5 runs, in CPU time (the machine is shared, and CPU time is what the
collector pays) and in wall-clock time, for inputs of 2 tags + 3 fields (a one-decimal float gauge,
an int gauge, an int counter: the shape of varz values):
- scrape-shaped: what a scrape hands the writer, 20 points per scrape sharing the scrape's
  tags dict and timestamp (collector.point.ListAppender does exactly this);
- distinct: every point has its own tags dict and timestamp (the encoder's worst case);
- long floats: as distinct, with the gauge a 17-digit float (`i / 7`); `repr` of such a float
  alone costs ~0.3 µs in CPython, for both encoders.
The Encoder is warmed up once and kept, as the daemon keeps one: a series' escaped prefix is
computed on its first point only (the series repeat every scrape).

Usage (from the repo root): python -m benchmarks.write.encoder [--points N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from influxdb_client import Point as ClientPoint
from influxdb_client import WritePrecision

from fobs.collector.lineprotocol import Encoder
from fobs.collector.point import Point

T0 = 1_700_000_000_000_000_000


def scrape_shaped(n: int) -> list[Point]:
    points = []
    for scrape in range(n // 20):
        tags = {"host": f"10.0.{scrape % 250}.1", "type": "DEA"}
        t = T0 + scrape * 10**9
        for i in range(20):
            points.append(Point(f"m{i}", tags, {"value": scrape % 1000 / 10 + i,
                                                "mem": 1_048_576 + i * 4096,
                                                "count": scrape * 20 + i}, t))
    return points


def distinct(n: int) -> list[Point]:
    return [Point("cpu", {"host": f"h{i % 1000}", "type": "DEA"},
                  {"value": i % 1000 / 10, "mem": 1_048_576 + i * 4096, "count": i}, T0 + i)
            for i in range(n)]


def long_floats(n: int) -> list[Point]:
    return [Point("cpu", {"host": f"h{i % 1000}", "type": "DEA"},
                  {"value": i / 7, "mem": 1_048_576 + i * 4096, "count": i}, T0 + i)
            for i in range(n)]


def with_client(points: Sequence[Point]) -> int:
    lines = []
    for m, tags, fields, t in points:
        p = ClientPoint(m)
        for k, v in tags.items():
            p.tag(k, v)
        for k, v in fields.items():
            p.field(k, v)
        lines.append(p.time(t, WritePrecision.NS).to_line_protocol())
    return len("\n".join(lines).encode())


class WithEncoder:
    def __init__(self) -> None:
        self.encoder = Encoder()

    def __call__(self, points: Sequence[Point]) -> int:
        return len(self.encoder.encode(points).data)


def rate(fn: Callable[[Sequence[Point]], int], points: Sequence[Point]) -> tuple[float, float]:
    """Median points/s over 5 runs, in CPU time and in wall time."""
    cpu, wall = [], []
    for _ in range(5):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn(points)
        cpu.append(len(points) / (time.process_time() - start_cpu))
        wall.append(len(points) / (time.perf_counter() - start_wall))
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    args = parser.parse_args()
    for name, make in (("scrape-shaped", scrape_shaped), ("distinct", distinct),
                       ("long floats", long_floats)):
        points = make(args.points)
        with_encoder = WithEncoder()
        with_encoder(points)                       # warm-up: fills the prefix cache
        (ours, ours_wall), (theirs, theirs_wall) = rate(with_encoder, points), rate(with_client,
                                                                                     points)
        print(f"{name:14} Encoder {ours:>10,.0f} points/s   influxdb-client Point "
              f"{theirs:>8,.0f} points/s   ratio {ours / theirs:4.1f}x   "
              f"(wall clock: {ours_wall:,.0f} vs {theirs_wall:,.0f}, "
              f"{ours_wall / theirs_wall:.1f}x)")


if __name__ == "__main__":
    main()
