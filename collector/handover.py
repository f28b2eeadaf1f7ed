"""A dead collector's spool, written by someone else: `fobs collector --drain DIR`.

Each output of a collector spools in `<spool_dir>/<output name>` and writes from there; what a
collector accepted and had not written when it died stays on its disk. Started again with the
same spool directory, a collector writes it first (the spool reads on from its cursor). When it
will not come back (a lost machine whose disk is reachable, a collector taken out of a sharing
group), an operator runs, next to a survivor:

    fobs collector --config SURVIVOR.toml --drain /path/to/dead/spool

which starts only the outputs of SURVIVOR.toml on the dead collector's spool directory, waits
until every spooled point is written (or `--wait` seconds pass), and exits: 0 when the spool is
empty, 1 when points are left (run it again). The running survivor is not involved. A spool
directory belongs to one process (its lock): the drain refuses a directory a live collector
still holds, and a dead one holds nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from loguru import logger

from fobs.collector.config import OutputsConfig
from fobs.collector.fanout import Outputs

POLL = 0.2      # seconds between looks at the spools' pending counts (our own state)


@dataclass
class Drained:
    written: int      # points the historians acknowledged
    left: int         # points still spooled when the wait ran out


async def drain(config: OutputsConfig, spool_dir: str, wait: float) -> Drained:
    """Write what is spooled under `spool_dir` to `config`'s outputs, for at most `wait` s."""
    outputs = await Outputs.start(replace(config, spool_dir=spool_dir))
    deadline = time.monotonic() + wait
    try:
        while (left := _pending(outputs)) and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
    finally:
        await outputs.close()
    written = sum(o.stats.points_written for o in outputs.outputs)
    logger.info("Drained {}: {} points written, {} left", spool_dir, written, left)
    return Drained(written, left)


def _pending(outputs: Outputs) -> int:
    return sum(o.buffer.refresh_stats().pending_points for o in outputs.outputs)
