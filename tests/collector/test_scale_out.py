"""Scale-out, measured in InfluxDB: 3 collector processes on a 3-node NATS cluster share a fleet
of 600 components (two fleet processes); every `scrape` point names its collector.

One run, scenario after scenario (the windows are measurement windows, not synchronisation):
steady state, a fourth collector joins, kill -9 of one, SIGTERM of another, a partition of one
(its NATS node frozen with SIGSTOP for longer than the collector's NATS round-trip probe waits,
then SIGCONT: the late PONG once left nats-py's read loop dead, the collector deaf to the others
while they heard it — components/bus.py), kill -9 of the NATS node a collector is on.
Each scenario is then read back from the `scrape` points (benchmarks/scaleout/cluster.py): a
duplicate is two scrapes of a target less than half an interval apart, a miss a gap above 1.5
intervals.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scaleout.cluster import (
    DB,
    Rig,
    Settings,
    moved,
    read_scrapes,
    settled,
    takeover,
    wait_for,
    window,
)
from fobs.ports import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FLEET = 600
# The round-trip probe every interval (a flush with a 1 s timeout): the 3-interval freeze
# always outlasts one, so the partition always brings a late PONG.
SETTINGS = Settings(interval=2.0, heartbeat=0.2, misses=3, discover_interval=2.0,
                    first_scrape_window=0.2, nats_rtt_interval=2.0)
I = SETTINGS.interval  # noqa: E741 (the interval, as in the docs)
# "Within one interval": a target taken on its phase is scraped one interval after its last
# scrape, give or take the scheduler's lateness, which the collector itself calls late only
# past 10 % of the interval (scrape.LATE_FRACTION).
ON_TIME = I * 1.1


def logged_between(log: str, text: str, start: float, end: float) -> list[str]:
    """The lines of a collector's log holding `text`, stamped between `start` and `end`."""
    found = []
    for line in log.splitlines():
        if text in line and line[:4].isdigit():
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if start <= stamp <= end:
                found.append(line)
    return found


def test_collectors_share_take_over_and_heal_within_one_interval(
        nats_cluster: Any, influxd: Any, tmp_path: Path) -> None:
    influxd.create_database(DB)
    urls = nats_cluster.urls
    nodes = nats_cluster.nodes
    rig = Rig(tmp_path, urls, influxd.url, SETTINGS)
    ports = free_ports(4)
    marks: dict[str, float] = {}
    try:
        rig.start_fleet(FLEET // 2, [urls[1]])
        rig.start_fleet(FLEET // 2, [urls[2]])
        for i in (1, 2, 3):     # collector i on node i-1 (and whatever node it learns of)
            rig.start_collector(i, [urls[i - 1]], ports[i - 1])
        wait_for(settled(rig, [1, 2, 3], FLEET + 3), "3 collectors sharing", timeout=120)
        marks["steady"] = time.time()
        time.sleep(5 * I)

        marks["join"] = time.time()
        rig.start_collector(4, [urls[0]], ports[3])
        wait_for(settled(rig, [1, 2, 3, 4], FLEET + 4), "a fourth collector", timeout=30)
        marks["joined"] = time.time()
        time.sleep(3 * I)

        marks["kill"] = rig.signal_collector(1, signal.SIGKILL)
        wait_for(settled(rig, [2, 3, 4], FLEET + 4), "takeover after kill -9", timeout=30)
        time.sleep(3 * I)

        marks["term"] = rig.signal_collector(2, signal.SIGTERM)
        wait_for(settled(rig, [3, 4], FLEET + 3), "takeover after SIGTERM", timeout=30)
        time.sleep(3 * I)

        # a partition: collector 4's node (node 0, no one else's since collector 1 died) freezes
        assert nodes[0].proc is not None
        marks["partition"] = time.time()
        nodes[0].freeze()
        time.sleep(3 * I)
        marks["return"] = time.time()
        nodes[0].thaw()
        # both hear each other again (settled: every member heard within the miss window)
        wait_for(settled(rig, [3, 4], FLEET + 3), "collector 4 back", timeout=30)
        marks["agreed"] = time.time()
        time.sleep(3 * I)
        # and still do: a collector deaf to NATS keeps its last view, which can look agreed
        wait_for(settled(rig, [3, 4], FLEET + 3), "collector 4 still hearing", timeout=5)

        marks["node"] = time.time()
        nodes[2].kill()          # collector 3's node, and fleet 1's
        time.sleep(4 * I)
        marks["end"] = time.time()
    finally:
        if nodes[0].proc is not None:
            nodes[0].thaw()
        rig.close()
    # what collector 1 scraped and had not written when it was killed is in its spool
    print("drain of collector 1:", rig.drain(1))

    scrapes = read_scrapes(influxd.url, marks["steady"] - 2 * I, marks["end"])
    m = marks
    report: dict[str, Any] = {}
    report["steady"] = steady = window(scrapes, m["steady"] + I, m["join"], I, expect=FLEET)
    report["join"] = join = window(scrapes, m["join"], m["kill"] - I, I, expect=FLEET)
    changed, seen = moved(scrapes, (m["join"] - 2 * I, m["join"]),
                          (m["joined"] + I, m["kill"]))
    report["moved"] = (changed, seen)
    report["kill"] = kill = window(scrapes, m["kill"] - I, m["term"] - I, I, expect=FLEET)
    report["kill_takeover"] = killed = takeover(scrapes, "1", m["kill"], I, m["term"])
    report["term"] = term = window(scrapes, m["term"] - I, m["partition"] - I, I, expect=FLEET)
    report["term_takeover"] = termed = takeover(scrapes, "2", m["term"], I, m["partition"])
    report["partition"] = part = window(scrapes, m["partition"] - I, m["node"] - I, I,
                                        expect=FLEET)
    report["after_return"] = back = window(scrapes, m["return"] + I, m["node"] - I, I)
    report["agreed_after_return"] = round(m["agreed"] - m["return"], 3)
    report["node"] = node = window(scrapes, m["node"] - I, m["end"] - 2 * I, I, expect=FLEET)
    for name, figures in report.items():
        print(f"scale-out {name}: {figures}")
    for key in kill.worst:
        print("scale-out around the kill:", key, [(round(t - m["kill"], 3), c)
                                                  for t, c in scrapes[key]
                                                  if -3 * I < t - m["kill"] < 3 * I])

    assert steady.targets == FLEET and (steady.duplicates, steady.missed) == (0, 0), steady
    assert 0.15 * seen < changed < 0.35 * seen and seen == FLEET, report["moved"]
    assert join.missed == 0, join
    assert killed.never == 0 and killed.worst_wait <= ON_TIME and killed.targets > 0, killed
    assert kill.missed == 0, kill
    assert termed.never == 0 and termed.worst_wait <= ON_TIME and termed.targets > 0, termed
    assert term.missed == 0, term
    assert part.missed == 0, part                         # nothing left unowned
    assert back.duplicates == 0 and back.missed == 0, back  # no double scrape past one interval
    assert node.missed == 0, node
    assert "Reconnected to NATS" in (tmp_path / "collector3.log").read_text()  # it moved
    log4 = (tmp_path / "collector4.log").read_text()
    assert "Hearing the other collectors again" in log4   # it was fenced, and came back
    # fenced, it declared nobody dead: collector 3 was alive throughout
    assert not logged_between(log4, "silent for", m["partition"], m["node"]), log4
    assert "nats: encountered error" not in log4, "nats-py's read loop died after the thaw"
