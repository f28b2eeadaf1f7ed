"""kill -9 of a collector-like process holding a full spool: the next start writes every point."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from fobs.collector.config import OutputsConfig
from fobs.collector.fanout import Outputs
from tests.collector.write_helpers import v1
from tests.services import Influxd, free_port

REPO = Path(__file__).resolve().parents[2]

# Adds a scrape of 10 points at a time while InfluxDB is unreachable; after each add it prints
# how many points its output has accepted so far.
WRITER = textwrap.dedent("""
    import asyncio, sys
    from fobs.collector.config import OutputsConfig
    from fobs.collector.fanout import Outputs
    from tests.collector.write_helpers import scrape, v1

    async def main():
        cfg = OutputsConfig(spool_dir=sys.argv[1], influxdb_v1=(v1(sys.argv[2], "db"),))
        outputs = await Outputs.start(cfg)
        i = 0
        while True:
            outputs.add(scrape(i))
            i += 1
            print(outputs.outputs[0].stats.points_added, flush=True)
            await asyncio.sleep(0)

    asyncio.run(main())
""")


async def test_kill_9_with_a_full_spool_then_restart_loses_nothing(
        tmp_path: Path, influxd_shared: Influxd, db: str) -> None:
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{free_port()}"
    with subprocess.Popen([sys.executable, "-c", WRITER, str(spool_dir), dead],
                          stdout=subprocess.PIPE, cwd=REPO) as proc:
        assert proc.stdout is not None
        reported = 0
        for line in proc.stdout:
            reported = int(line)
            if reported >= 20_000:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reported = max([reported] + [int(x) for x in proc.stdout.read().split()])

    cfg = OutputsConfig(spool_dir=str(spool_dir), influxdb_v1=(v1(influxd_shared.url, db),))
    outputs = await Outputs.start(cfg)
    out = outputs.outputs[0]
    spooled = out.buffer.pending()[0]
    assert out.buffer.refresh_stats().torn_records <= 1
    assert await outputs.flush(30)
    await outputs.close()
    written = influxd_shared.count(db, "load", "v")
    # every point the writer reported accepted is there; one more scrape may have been accepted
    # between its last report and the kill
    assert reported <= written <= reported + 10
    assert written == spooled == out.stats.points_written
