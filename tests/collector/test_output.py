"""Running outputs end to end: real influxd and VictoriaMetrics, outages, rejects, splits, close."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from fobs.collector.config import FileOutputConfig, OutputsConfig
from fobs.collector.fanout import Outputs
from fobs.collector.metrics import CollectorMetrics
from fobs.collector.point import Point
from fobs.collector.spool import DiskSpool
from fobs.components.config import ConfigError
from fobs.components.metrics import Registry, overlay
from tests.collector.write_helpers import FAST_SPOOL, T0, Answer, FakeInflux, scrape, v1, v2
from tests.services import Influxd, VictoriaMetrics, free_port


def varz(outputs: Outputs) -> dict[str, Any]:
    """The outputs' part of the collector's varz: declared metrics over the free text."""
    registry = Registry()
    CollectorMetrics(registry).bind_outputs(outputs)
    return overlay(outputs.varz(), registry.varz()["outputs"])


def config(tmp_path: Path, **outputs: object) -> OutputsConfig:
    return OutputsConfig(spool_dir=str(tmp_path / "spool"), close_timeout=5.0,
                         **outputs)  # type: ignore[arg-type]


async def test_exact_counts_in_influxd_and_victoria_metrics(
        tmp_path: Path, influxd_shared: Influxd, db: str,
        victoria_metrics: VictoriaMetrics) -> None:
    outputs = await Outputs.start(config(tmp_path, influxdb_v1=(v1(influxd_shared.url, db),),
                                         influxdb_v2=(v2(victoria_metrics.url, "fobs"),)))
    for i in range(50):
        outputs.add(scrape(i))
    assert await outputs.flush(10)
    await outputs.close()
    assert influxd_shared.count(db, "load", "v") == 500
    assert sum(len(s["values"]) for s in victoria_metrics.export('{__name__="load_v"}')) == 500
    shown = varz(outputs)
    assert shown["points_received"] == 500
    for name in ("influxdb_v1", "influxdb_v2"):
        out = shown["outputs"][name]
        assert (out["points_added"], out["points_written"], out["write_errors"]) == (500, 500, 0)
        assert out["spool"]["pending_points"] == 0 and out["state"] == "closed"


async def test_influxd_down_for_a_while_loses_no_accepted_point(tmp_path: Path,
                                                                influxd: Influxd) -> None:
    influxd.create_database("outage")
    outputs = await Outputs.start(config(tmp_path, influxdb_v1=(v1(influxd.url, "outage"),)))
    out = outputs.outputs[0]
    stop = asyncio.Event()

    async def produce() -> None:                   # a scrape every 5 ms, through it all
        i = 0
        while not stop.is_set():
            outputs.add(scrape(i))
            i += 1
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(produce())
    assert await out.until(lambda: out.stats.points_written >= 200, 10)
    await asyncio.to_thread(influxd.kill)
    errors = out.stats.write_errors
    assert await out.until(lambda: out.stats.write_errors >= errors + 5, 10)
    assert out.stats.state == "retrying"
    assert await out.until(lambda: out.buffer.pending()[0] >= 2000, 10)  # growing on disk
    await asyncio.to_thread(influxd.start)
    assert await out.until(lambda: out.stats.state == "ok", 10)
    stop.set()
    await producer
    assert await outputs.flush(20)
    await outputs.close()
    accepted = out.stats.points_added
    assert accepted == outputs.points_received and accepted > 700
    assert out.stats.points_written == accepted
    assert influxd.count("outage", "load", "v") == accepted


async def test_bad_batches_are_quarantined_and_others_still_written(
        tmp_path: Path, influxd_shared: Influxd, db: str) -> None:
    cfg = config(tmp_path, influxdb_v1=(v1(influxd_shared.url, db, batch_size=10),))
    outputs = await Outputs.start(cfg)
    out = outputs.outputs[0]
    outputs.add(scrape(0))
    out.add(b"garbage line\n", 1)                  # what a broken encoder would send
    outputs.add(scrape(1))
    outputs.add([Point("load", {"host": "h1"}, {"v": "not a float"}, T0 + 99)])
    outputs.add(scrape(2))
    assert await outputs.flush(10)
    await outputs.close()
    assert influxd_shared.count(db, "load", "v") == 30
    assert (out.stats.points_written, out.stats.points_rejected) == (30, 2)
    assert out.stats.batches_rejected == 2 and out.stats.write_errors == 0
    text = (tmp_path / "spool" / "quarantine" / "influxdb_v1.lp").read_text()
    assert "points=1 reason: write: HTTP 400: unable to parse 'garbage line'" in text
    assert "field type conflict" in text and 'v="not a float"' in text
    assert asdict(out.quarantine.stats) == {"batches": 2, "points": 2, "bytes": len(text.encode()),
                                        "errors": 0}


async def test_missing_database_keeps_points_until_it_exists(
        tmp_path: Path, influxd_shared: Influxd) -> None:
    """With create_database off, "database not found" is fatal: kept, retried, unhealthy."""
    name = "made_later"
    cfg = config(tmp_path, influxdb_v1=(v1(influxd_shared.url, name, create_database=False),))
    outputs = await Outputs.start(cfg)
    out = outputs.outputs[0]
    for i in range(5):
        outputs.add(scrape(i))
    assert await out.until(lambda: out.stats.fatal_errors >= 2, 10)
    assert out.stats.state == "failing" and out.buffer.pending()[0] == 50
    health = outputs.health()
    assert health is not None and 'database not found: "made_later"' in health
    influxd_shared.create_database(name)
    assert await outputs.flush(10)
    assert outputs.health() is None
    await outputs.close()
    assert influxd_shared.count(name, "load", "v") == 50
    influxd_shared.query(f'DROP DATABASE "{name}"')


async def test_413_splits_the_batch(tmp_path: Path, small_body_influxd: Influxd) -> None:
    small_body_influxd.create_database("split")
    cfg = config(tmp_path, influxdb_v1=(v1(small_body_influxd.url, "split", gzip=False,
                                           flush_interval=60.0),))
    outputs = await Outputs.start(cfg)
    out = outputs.outputs[0]
    for i in range(100):
        outputs.add(scrape(i))
    huge = Point("load", {"host": "h1"}, {"v": 1.0, "text": "x" * 5000}, T0 + 12345)
    outputs.add([huge])
    assert await outputs.flush(10)
    await outputs.close()
    assert small_body_influxd.count("split", "load", "v") == 1000
    assert out.stats.splits >= 8 and out.stats.points_written == 1000
    assert out.stats.points_rejected == 1 and out.stats.write_errors == 0
    text = (tmp_path / "spool" / "quarantine" / "influxdb_v1.lp").read_text()
    assert "HTTP 413: Request Entity Too Large (a single line)" in text


async def test_retry_after_is_honoured(tmp_path: Path, fake_influx: FakeInflux) -> None:
    """A fake server: influxd does not throttle, so 429 + Retry-After and 503 come from a script."""
    fake_influx.script = [Answer(429, {"Retry-After": "1"}, "slow down"), Answer(503), Answer()]
    outputs = await Outputs.start(config(tmp_path, influxdb_v1=(v1(fake_influx.url, "db"),)))
    out = outputs.outputs[0]
    outputs.add(scrape(0))
    assert await outputs.flush(10)
    await outputs.close()
    times = [r.at for r in fake_influx.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95            # Retry-After: 1 (the backoff alone: 0.02 s)
    assert times[2] - times[1] < 0.5              # 503 without Retry-After: the short backoff
    assert (out.stats.write_errors, out.stats.retries, out.stats.points_written) == (2, 2, 10)
    assert fake_influx.requests[0].body == fake_influx.requests[2].body


async def test_one_historian_down_never_blocks_another(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    lp = tmp_path / "points.lp"
    cfg = config(tmp_path, influxdb_v1=(v1(dead, "db"),),
                 file=(FileOutputConfig(path=str(lp), flush_interval=0.05),))
    outputs = await Outputs.start(cfg)
    down, up = outputs.outputs
    for i in range(30):
        outputs.add(scrape(i))
    assert await up.until(lambda: up.stats.points_written == 300, 5)
    assert down.stats.state == "retrying" and down.stats.points_written == 0
    assert len(lp.read_bytes().splitlines()) == 300
    started = time.monotonic()
    await outputs.close(timeout=1.0)
    assert time.monotonic() - started < 3
    spool = DiskSpool(tmp_path / "spool" / "influxdb_v1", FAST_SPOOL)
    assert spool.refresh_stats().pending_points == 300    # kept on disk for the next start
    spool.close()


async def test_close_flushes_what_is_pending(tmp_path: Path, influxd_shared: Influxd,
                                             db: str) -> None:
    cfg = config(tmp_path, influxdb_v1=(v1(influxd_shared.url, db, flush_interval=3600.0),))
    outputs = await Outputs.start(cfg)
    for i in range(7):
        outputs.add(scrape(i))
    assert influxd_shared.count(db, "load", "v") == 0
    await outputs.close()
    assert influxd_shared.count(db, "load", "v") == 70
    assert outputs.add(scrape(8)) == 10                       # encoded, but not accepted:
    dropped = varz(outputs)["outputs"]["influxdb_v1"]["points_dropped"]
    assert dropped["closed"] == 10


async def test_close_is_bounded_when_the_server_hangs(tmp_path: Path,
                                                      fake_influx: FakeInflux) -> None:
    """A fake server that never answers: the close timeout bounds the final flush."""
    fake_influx.default = Answer(hang=True)
    outputs = await Outputs.start(config(tmp_path, influxdb_v1=(v1(fake_influx.url, "db",
                                                                   timeout=30.0),)))
    outputs.add(scrape(0))
    await asyncio.wait_for(fake_influx.arrived.wait(), 5)
    started = time.monotonic()
    await outputs.close(timeout=0.3)
    assert time.monotonic() - started < 2
    spool = DiskSpool(tmp_path / "spool" / "influxdb_v1", FAST_SPOOL)
    assert spool.refresh_stats().pending_points == 10
    spool.close()


async def test_restart_sends_what_the_last_run_left(tmp_path: Path, influxd_shared: Influxd,
                                                    db: str) -> None:
    dead = config(tmp_path, influxdb_v1=(v1(f"http://127.0.0.1:{free_port()}", db),))
    outputs = await Outputs.start(dead)
    for i in range(12):
        outputs.add(scrape(i))
    await outputs.close(timeout=0.2)
    live = config(tmp_path, influxdb_v1=(v1(influxd_shared.url, db),))
    outputs = await Outputs.start(live)
    assert await outputs.flush(10)
    await outputs.close()
    assert influxd_shared.count(db, "load", "v") == 120


async def test_a_spool_in_use_is_a_config_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, influxdb_v1=(v1("http://127.0.0.1:1", "db"),))
    first = await Outputs.start(cfg)
    with pytest.raises(ConfigError, match="outputs.spool_dir: spool directory .* is in use"):
        await Outputs.start(cfg)
    await first.close(timeout=0.1)


async def test_points_breaking_the_contract_are_counted_not_raised(tmp_path: Path) -> None:
    file = FileOutputConfig(path=str(tmp_path / "x"))
    outputs = await Outputs.start(config(tmp_path, file=(file,)))
    assert outputs.add([Point("m", {}, ["not", "a", "mapping"], 1)]) == 0  # type: ignore
    assert outputs.add(scrape(0)) == 10
    await outputs.close()
    assert varz(outputs)["points_failed"] == 1
    assert len((tmp_path / "x").read_bytes().splitlines()) == 10


async def test_varz_shape(tmp_path: Path) -> None:
    file = FileOutputConfig(path=str(tmp_path / "x"))
    outputs = await Outputs.start(config(tmp_path, file=(file,)))
    outputs.add([Point("m", {}, {"f": float("nan"), "g": 1.0}, 1)])
    await outputs.close()
    shown = varz(outputs)
    assert shown["encoder"] == {"points": 1, "points_unencodable": 0, "points_empty": 0,
                               "fields_nonfinite": 1, "fields_unencodable": 0}
    out = shown["outputs"]["file"]
    assert set(out) >= {"kind", "points_added", "points_written", "points_rejected",
                        "points_dropped", "write_errors", "retries", "last_write_duration_s",
                        "spool", "quarantine", "state"}
    assert set(out["spool"]) >= {"pending_points", "pending_bytes", "oldest_age_s"}
    assert out["points_written"] == 1
