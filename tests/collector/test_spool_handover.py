"""What a killed collector had spooled reaches InfluxDB: when it comes back with the same spool
directory, and when an operator hands the spool to a survivor (`fobs collector --drain`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fobs.collector.spool import DiskSpool
from tests.services import free_port, wait_until

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
DB = "handover"
FLEET = 5


def write_config(path: Path, index: int, nats_url: str, influx_url: str, spool: Path) -> Path:
    path.write_text(
        f"[component]\nindex = {index}\n[component.nats]\nservers = [\"{nats_url}\"]\n"
        f'reconnect_wait = 0.1\n[discovery]\nsharding = "rendezvous"\ndiscover_interval = 0.5\n'
        f"heartbeat_interval = 0.2\n[scrape]\nvarz_interval = 0.5\nhealthz = false\n"
        f'[status]\naddress = ""\n[outputs]\nspool_dir = "{spool}"\n'
        f'[[outputs.influxdb_v1]]\nurl = "{influx_url}"\ndatabase = "{DB}"\n'
        f"flush_interval = 0.2\n[outputs.influxdb_v1.retry]\ninitial_delay = 0.2\n"
        f"max_delay = 0.5\n")
    return path


def collector(config: Path, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "fobs.collector", "--config", str(config),
                                 *flags], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO)})


def spooled_bytes(spool: Path) -> int:
    return sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())


def spooled_scrapes(spool: Path, copy: Path) -> tuple[int, int]:
    """(`scrape` points waiting in a dead collector's spool, the time of the last one in ns),
    read from a copy of it."""
    shutil.copytree(spool / "influxdb_v1", copy)
    reader = DiskSpool(copy)
    times = []
    while (batch := reader.peek(10_000, 1 << 24)) is not None:
        times += [int(line.rsplit(b" ", 1)[1]) for line in batch.data.splitlines()
                  if line.startswith(b"scrape,")]
        reader.ack(batch)
    reader.close()
    return len(times), max(times, default=0)


def stored_scrapes(influxd: Any, collector_index: int, before_ns: int) -> int:
    return int(influxd.count(DB, "scrape", "up", f"\"collector\" = '{collector_index}' AND "
                                                f"time <= {before_ns}"))


def test_a_killed_collectors_spool_is_written_on_return_or_by_a_drain(
        nats_server: Any, influxd: Any, tmp_path: Path) -> None:
    influxd.create_database(DB)
    dead_influx = f"http://127.0.0.1:{free_port()}"          # nothing listens: all is spooled
    with open(tmp_path / "fleet.log", "wb") as log:
        fleet = subprocess.Popen(
            [sys.executable, "-m", "fobs", "component", "fleet", "--no-simulation", "--count",
             str(FLEET), "--mix", "dea=1", "--nats", nats_server.url], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
    procs: list[subprocess.Popen[bytes]] = [fleet]
    try:
        for index in (1, 2):
            spool = tmp_path / f"spool{index}"
            config = write_config(tmp_path / f"c{index}-down.toml", index, nats_server.url,
                                  dead_influx, spool)
            procs.append(victim := collector(config, tmp_path / f"c{index}.log"))
            wait_until(lambda s=spool: spooled_bytes(s) > 40_000,  # type: ignore[misc]
                       f"collector {index} spooling")
            victim.kill()
            victim.wait()
            waiting, died = spooled_scrapes(spool, tmp_path / f"copy{index}")
            assert waiting >= 2 * FLEET and stored_scrapes(influxd, index, died + 10**9) == 0
            good = write_config(tmp_path / f"c{index}.toml", index, nats_server.url,
                                influxd.url, spool)
            if index == 1:     # it comes back with the same spool directory
                procs.append(collector(good, tmp_path / "c1.log"))
            else:              # it does not: its spool is handed to the survivor's outputs
                survivor = write_config(tmp_path / "survivor.toml", 1, nats_server.url,
                                        influxd.url, tmp_path / "spool1")
                drained = subprocess.run(
                    [sys.executable, "-m", "fobs.collector", "--config", str(survivor),
                     "--drain", str(spool), "--wait", "30"], cwd=REPO, capture_output=True,
                    env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
                assert drained.returncode == 0, drained.stdout + drained.stderr
                assert b" 0 left in " in drained.stdout, drained.stdout
            wait_until(lambda i=index, d=died, w=waiting: stored_scrapes(  # type: ignore[misc]
                influxd, i, d) >= w, f"collector {index}'s spool in InfluxDB")
            # exactly what was spooled before the kill: nothing lost, nothing twice
            assert stored_scrapes(influxd, index, died) == waiting
            if index == 1:     # collector 2 then has the fleet to itself
                procs[-1].terminate()
                procs[-1].wait(timeout=20)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
