"""Components → NATS → collector → spool → real influxd; outages, SIGTERM and kill -9 lose
nothing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fobs.collector.config import InfluxV1OutputConfig, OutputsConfig
from fobs.collector.daemon import Collector
from fobs.collector.output import RetryConfig
from tests.collector.collector_helpers import HttpTarget, collector_config
from tests.services import Influxd
from tests.waiting import until as _until

REPO = Path(__file__).parents[2]


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """For what only another process can tell (influxd's counts): poll in a thread."""
    await _until(check, what, timeout, interval=0.2, in_thread=True)


FAST_RETRY = RetryConfig(initial_delay=0.2, max_delay=1.0)


def influx_outputs(influxd: Influxd, db: str, spool: Path) -> OutputsConfig:
    return OutputsConfig(spool_dir=str(spool), influxdb_v1=(InfluxV1OutputConfig(
        url=influxd.url, database=db, flush_interval=0.2, retry=FAST_RETRY),))


def scrapes_done(collector: Collector) -> int:
    stats = collector.scraper.stats
    return sum(stats.ok.values()) + sum(sum(c.values()) for c in stats.failed.values())


def series_tags(influxd: Influxd, db: str, measurement: str) -> list[dict[str, str]]:
    result = influxd.query(f'SHOW SERIES FROM "{measurement}"', db)["results"][0]
    rows = [r[0] for s in result.get("series", []) for r in s["values"]]
    return [dict(kv.split("=", 1) for kv in row.split(",")[1:]) for row in rows]


async def test_reference_components_land_in_influxdb_with_their_tags(
        nats_server: Any, influxd_shared: Influxd, started: Any, make_collector: Any,
        tmp_path: Path) -> None:
    db = "e2e_reference"
    for kind, index in (("dea", 0), ("router", 1), ("stager", 2)):
        await started(kind, index)
    config = replace(collector_config([nats_server.url], deployment="e2e"),
                     outputs=influx_outputs(influxd_shared, db, tmp_path / "spool"))
    collector = await make_collector(config, real_outputs=True)

    def arrived() -> bool:   # the Collector's healthz can land before its varz: wait for both
        jobs = {"DEA", "Router", "Stager", "Collector"}
        return all({t.get("job") for t in series_tags(influxd_shared, db, m)} >= jobs
                   for m in ("scrape", "component")) and all(
            series_tags(influxd_shared, db, m) for m in ("dea", "router", "stager"))

    await until(arrived, "points of every component in influxd", timeout=20)
    for tags in series_tags(influxd_shared, db, "scrape"):
        assert tags["deployment"] == "e2e" and tags["ip"] == "127.0.0.1"
        assert tags["endpoint"] in ("varz", "healthz")
        assert tags.get("role") == ("core" if tags["job"] != "Collector" else None)
    assert {(t["job"], t["index"]) for t in series_tags(influxd_shared, db, "dea")} == {
        ("DEA", "0")}
    assert {t["job"] for t in series_tags(influxd_shared, db, "component")} >= {
        "DEA", "Router", "Stager", "Collector"}
    up = influxd_shared.query('SELECT last("up") FROM "scrape" GROUP BY "job", "endpoint"',
                              db)["results"][0]["series"]
    assert all(s["values"][0][1] == 1 for s in up)
    assert collector.outputs.health() is None


async def test_influxd_outage_loses_no_accepted_point(
        nats_server: Any, influxd: Influxd, started: Any, make_collector: Any,
        tmp_path: Path) -> None:
    db = "outage"
    await asyncio.to_thread(influxd.create_database, db)
    for kind, index in (("dea", 0), ("router", 0)):
        await started(kind, index)
    config = replace(collector_config([nats_server.url], scrape={"varz_interval": 0.5,
                                                                "healthz_interval": 0.5}),
                     outputs=influx_outputs(influxd, db, tmp_path / "spool"))
    collector = await make_collector(config, real_outputs=True)
    output = collector.outputs.outputs[0]  # type: ignore[attr-defined]
    await output.until(lambda: output.stats.points_written > 0, 20)
    await asyncio.to_thread(influxd.kill)
    during = scrapes_done(collector)
    await output.until(lambda: output.stats.write_errors >= 3
                       and scrapes_done(collector) >= during + 20, 30)
    assert output.buffer.pending()[0] > 0          # the spool holds what influxd missed
    await asyncio.to_thread(influxd.start)
    await output.until(lambda: output.buffer.pending()[0] == 0, 30)
    await collector.scraper.stop(5.0)              # no more scrapes: the counts are final
    assert await collector.outputs.flush(20)       # type: ignore[attr-defined]
    expected = scrapes_done(collector)
    assert influxd.count(db, "scrape", "duration_seconds") == expected
    stats = output.stats
    assert stats.points_added == collector.outputs.points_received  # type: ignore[attr-defined]
    assert stats.points_written >= stats.points_added and stats.points_rejected == 0


def collector_toml(influxd: Influxd, db: str, spool: Path, static: list[HttpTarget]) -> str:
    targets = "".join(f'[[discovery.static]]\ntype = "Edge"\nindex = {i}\n'
                      f'url = "http://{t.host}"\n' for i, t in enumerate(static))
    return f"""
stop_timeout = 3.0
[component]
log_level = "WARNING"
[discovery]
nats = false
{targets}
[scrape]
varz_interval = 0.2
healthz_interval = 0.2
[status]
address = "127.0.0.1:0"
[outputs]
spool_dir = "{spool}"
close_timeout = 10.0
[[outputs.influxdb_v1]]
url = "{influxd.url}"
database = "{db}"
flush_interval = 0.2
[outputs.influxdb_v1.retry]
initial_delay = 0.2
max_delay = 1.0
"""


async def start_collector(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs.collector", "--config", str(config), cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


def spooled_scrape_points(spool: Path) -> int:
    """Scrape points in the spool's segment files (line protocol after a binary header)."""
    return sum(len(re.findall(rb"(?<![\w.-])scrape,", p.read_bytes()))
               for p in spool.rglob("*.seg"))


async def test_sigterm_flushes_everything_and_kill_9_loses_nothing(
        influxd: Influxd, tmp_path: Path) -> None:
    targets = [await HttpTarget().start() for _ in range(3)]
    try:
        # 1. SIGTERM: stop scraping, flush, exit 0; every request answered is a point in influxd
        await asyncio.to_thread(influxd.create_database, "sigterm")
        config = tmp_path / "sigterm.toml"
        config.write_text(collector_toml(influxd, "sigterm", tmp_path / "spool1", targets))
        proc = await start_collector(config)
        await until(lambda: sum(t.requests for t in targets) >= 30, "30 scrapes")
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        served = sum(t.requests + t.healthz_requests for t in targets)
        assert influxd.count("sigterm", "scrape", "duration_seconds") == served

        # 2. kill -9 with influxd down (a spool full of points), then restart both
        await asyncio.to_thread(influxd.kill)
        config = tmp_path / "kill.toml"
        spool = tmp_path / "spool2"
        config.write_text(collector_toml(influxd, "kill9", spool, targets))
        proc = await start_collector(config)
        marks = sum(t.requests for t in targets)
        await until(lambda: sum(t.requests for t in targets) >= marks + 60, "60 more scrapes")
        proc.kill()
        await proc.wait()
        spooled = spooled_scrape_points(spool)
        assert spooled >= 100
        await asyncio.to_thread(influxd.start)
        drain = tmp_path / "drain.toml"      # the same spool, no targets: it only drains
        drain.write_text(collector_toml(influxd, "kill9", spool, []))
        proc = await start_collector(drain)
        try:
            await until(lambda: influxd.count("kill9", "scrape", "duration_seconds") >= spooled,
                        "the spool drained into influxd", timeout=30)
            assert influxd.count("kill9", "scrape", "duration_seconds") == spooled
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
    finally:
        for t in targets:
            await t.stop()


async def test_influxdb_v2_api_into_victoria_metrics(
        nats_server: Any, victoria_metrics: Any, start_component: Any, make_collector: Any,
        tmp_path: Path) -> None:
    from fobs.cli import build_parser
    from fobs.collector.cli import load_config
    await start_component("DEA", index=6)
    args = build_parser().parse_args([   # the 2.x flags, as a user would give them
        "collector", "--nats", nats_server.url, "--influx-url", victoria_metrics.url,
        "--influx-org", "ops", "--influx-bucket", "fobs", "--influx-token", "t",
        "--spool-dir", str(tmp_path / "spool"), "--varz-interval", "0.5",
        "--healthz-interval", "0.5", "--status", "127.0.0.1:0"])
    await make_collector(load_config(args), real_outputs=True)

    def landed() -> bool:   # the varz series itself: healthz may land first
        series = victoria_metrics.export('scrape_up{job="DEA",endpoint="varz"}')
        return any(s["metric"].get("index") == "6" and s["values"] for s in series)

    await until(landed, "scrape_up of DEA/6's varz in VictoriaMetrics")
    [series] = [s for s in victoria_metrics.export('scrape_up{job="DEA",endpoint="varz"}')]
    assert series["metric"]["deployment"] == "untitled_dev" and set(series["values"]) == {1}
    assert victoria_metrics.export('component_uptime_seconds{job="DEA",index="6"}')
