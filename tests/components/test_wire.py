"""The CF wire protocol: what the runtime builds, the collector's discovery parses back.

The payload tests against real Cloud Foundry messages (Ruby and Go forms, lenient fields, the
payloads refused) are in tests/collector/test_discovery.py; the runtime's messages on a real
nats-server in test_runtime.py. These pin the formats and that both sides agree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fobs.components import wire


def test_uptime_string() -> None:
    assert wire.uptime_string(0) == "0d:0h:0m:0s"
    assert wire.uptime_string(90061.9) == "1d:1h:1m:1s"


@pytest.mark.parametrize("seconds", [0, 59, 3600, 86399, 90061, 40 * 86400 + 7])
def test_uptime_round_trip(seconds: int) -> None:
    assert wire.parse_uptime(wire.uptime_string(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5m", "1d:2h:3m", "1d 2h 3m 4s", "xd:0h:0m:0s"])
def test_not_an_uptime(text: str) -> None:
    assert wire.parse_uptime(text) is None


def test_start_as_cloud_foundry_wrote_it() -> None:
    start = datetime(2013, 7, 2, 17, 28, 3, tzinfo=UTC)
    assert wire.format_start(start) == "2013-07-02 17:28:03 +0000"
    assert wire.parse_start("2013-07-02 17:28:03 +0000") == start
    assert wire.parse_start("2014-05-05 10:11:12 -0700") == datetime(
        2014, 5, 5, 10, 11, 12, tzinfo=timezone(-timedelta(hours=7)))
    assert wire.parse_start("yesterday") is None and wire.parse_start(5) is None


def test_what_a_component_announces_discovery_reads_back() -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    payload = wire.discover_payload("DEA", 3, "3-abc", "10.0.0.7:4567", ("u", "p"), start)
    assert set(payload) == {"type", "index", "uuid", "host", "credentials", "start"}
    found = wire.parse_announcement(wire.encode(payload))
    assert found == wire.Announcement(type="DEA", index=3, uuid="3-abc", host="10.0.0.7:4567",
                                      credentials=("u", "p"), start=start)


def test_the_discover_reply_adds_uptime() -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    payload = wire.discover_payload("Router", 0, "0-x", "h:1", ("u", "p"), start, uptime=61.5)
    assert payload["uptime"] == "0d:0h:1m:1s"
    assert wire.parse_uptime(payload["uptime"]) == 61


def test_goodbye_names_the_uuid() -> None:
    goodbye = wire.identity("Router", 1, "1-y", "h:2")
    assert goodbye == {"type": "Router", "index": 1, "uuid": "1-y", "host": "h:2"}
    assert wire.parse_unregister(wire.encode(goodbye)) == "1-y"
    with pytest.raises(wire.PayloadError, match="without uuid"):
        wire.parse_unregister(b"{}")
