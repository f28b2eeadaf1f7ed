"""UDP worker processes: one sender spread over several workers, one writer, restarts, stop."""

from __future__ import annotations

import os
import signal
import socket

from tests.syslog_agg.conftest import eventually


async def test_workers_share_one_senders_load_and_survive_a_kill(aggregator) -> None:
    run = await aggregator(listen={"udp_workers": 2}, store={"format": "json"})
    workers = run.agg.workers
    assert workers is not None and run.agg.udp is None
    port = workers.address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(4000):
            s.sendto(b"<14>1 - h vcap.c%d - - - n=%d" % (i % 3, i), ("127.0.0.1", port))
        s.sendto(b"\x00", ("127.0.0.1", port))
    await eventually(lambda: run.agg.intake.stats.received == 4000, 20)
    per_worker = workers.received
    assert all(n > 500 for n in per_worker), per_worker  # spread at random, not by address
    await eventually(lambda: sum(len(run.lines(f"c{k}")) for k in range(3)) == 4000, 20)
    varz = run.agg.varz()
    assert varz["messages"] == 4000 and varz["probes"] == 1
    assert varz["components"]["c0"]["severity"]["info"] == 1334
    assert varz["listeners"]["udp"]["workers"] == 2

    victim = workers._procs[0]
    os.kill(victim.pid, signal.SIGKILL)
    await eventually(lambda: workers.restarts == 1 and workers._procs[0] is not victim, 20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(1000):
            s.sendto(b"<14>1 - h vcap.after - - - n=%d" % i, ("127.0.0.1", port))
    # stop now: the workers must ship what they hold before the aggregator closes the store
    await run.agg.stop()
    run.agg.stop = _noop  # type: ignore[method-assign]  # the fixture stops it again
    assert len(run.lines("after")) == 1000


async def _noop() -> None:
    return None
