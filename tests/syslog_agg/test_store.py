"""Per-component files: layout, line formats, rotation, gzip, retention, LRU handles."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fobs.syslog_agg.lines import Formatter, format_received
from fobs.syslog_agg.parser import parse
from fobs.syslog_agg.retention import SETTLE
from fobs.syslog_agg.store import Store, StoreConfig, day_of

NOW = datetime(2024, 5, 1, tzinfo=UTC)
FIELDS = {"received_at", "component", "format", "facility", "severity", "timestamp", "hostname",
          "app_name", "procid", "msgid", "structured_data", "message", "raw", "error",
          "truncated", "peer"}


def test_layout_and_flush(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path)))
    store.append("dea_next", "2024/05/01", "a\n")
    store.append("dea_next", "2024/05/02", "b\n")
    store.append("router", "2024/05/01", "c\n")
    assert not (tmp_path / "dea_next").exists()  # buffered until a flush
    store.flush()
    assert (tmp_path / "dea_next/2024/05/01/dea_next.log").read_text() == "a\n"
    assert (tmp_path / "dea_next/2024/05/02/dea_next.log").read_text() == "b\n"
    assert (tmp_path / "router/2024/05/01/router.log").read_text() == "c\n"
    assert store.stats.lines_written == 3
    store.close()


def test_flush_bytes_triggers_a_write(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path), flush_bytes=100))
    for i in range(30):
        store.append("c", "2024/05/01", f"line {i}\n")
    assert store.stats.lines_written >= 10
    store.close()
    assert len((tmp_path / "c/2024/05/01/c.log").read_text().splitlines()) == 30


def test_day_of() -> None:
    assert day_of(datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()) == \
        "2024/02/29"


def test_text_line() -> None:
    fmt = Formatter("text")
    msg = parse(b"<14>1 - h vcap.x - - - two\nlines\n", now=NOW)
    line = fmt.line(msg, "x", "2024-05-01T00:00:00.000001Z", "127.0.0.1")
    assert line == "2024-05-01T00:00:00.000001Z 127.0.0.1 <14>1 - h vcap.x - - - two\\nlines\n"


def test_json_line_has_every_field() -> None:
    fmt = Formatter("json")
    msg = parse(b'<165>1 2003-10-11T22:14:15.003Z h app 12 ID1 [a@1 k="v\\"q"] caf\xc3\xa9',
                now=NOW)
    obj = json.loads(fmt.line(msg, "app", format_received(0.5), "10.0.0.1"))
    assert set(obj) == FIELDS
    assert obj == {
        "received_at": "1970-01-01T00:00:00.500000Z", "component": "app", "format": "rfc5424",
        "facility": 20, "severity": 5, "timestamp": "2003-10-11T22:14:15.003000+00:00",
        "hostname": "h", "app_name": "app", "procid": "12", "msgid": "ID1",
        "structured_data": {"a@1": {"k": 'v"q'}}, "message": "café", "raw": None,
        "error": None, "truncated": False, "peer": "10.0.0.1"}


def test_json_line_unparsed_keeps_raw_and_error() -> None:
    msg = parse(b"<999>\xff bad\n", now=NOW)
    obj = json.loads(Formatter("json").line(msg, "unparsed", format_received(0), "p"))
    assert obj["format"] == "unparsed" and obj["error"] and obj["raw"] == "<999>\\xff bad\n"
    assert obj["facility"] is None and obj["timestamp"] is None and obj["structured_data"] == {}


def test_rotation_by_size_then_gzip(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path), max_file_size=100))
    for _ in range(5):
        store.append("c", "2024/05/01", "x" * 60 + "\n")
        store.flush()
    store.close()
    d = tmp_path / "c/2024/05/01"
    assert sorted(os.listdir(d)) == ["c.log", "c.log.1", "c.log.2"]
    assert store.stats.rotations == 2
    asyncio.run(store.maintain())
    assert sorted(os.listdir(d)) == ["c.log", "c.log.1.gz", "c.log.2.gz"]
    total = (d / "c.log").read_text() + "".join(
        gzip.open(d / f"c.log.{n}.gz", "rt").read() for n in (1, 2))
    assert total.count("\n") == 5


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_past_days_are_gzipped_and_appended_as_members(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path)))
    old = tmp_path / "c/2000/01/01/c.log"
    for text in ("first\n", "second\n"):
        store.append("c", "2000/01/01", text)
        store.close()
        _age(old, SETTLE + 10)
        asyncio.run(store.maintain())
    assert not old.exists()
    assert gzip.open(str(old) + ".gz", "rt").read() == "first\nsecond\n"
    assert store.stats.files_gzipped == 2


def test_today_and_open_files_stay_plain(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path)))
    today = day_of(time.time())
    store.append("c", today, "x\n")
    store.append("d", "2000/01/01", "y\n")
    store.flush()
    _age(tmp_path / "d/2000/01/01/d.log", SETTLE + 10)
    asyncio.run(store.maintain())  # d's file is still open
    assert (tmp_path / f"c/{today}/c.log").exists()
    assert (tmp_path / "d/2000/01/01/d.log").exists()
    store.close()


def test_retention_by_age_and_total_size(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path), gzip=False, max_age_days=1,
                              max_total_bytes=2500))
    for i, day in enumerate(["2000/01/01", "2000/01/02", "2000/01/03", "2000/01/04"]):
        store.append("c", day, "z" * 999 + "\n")
        store.close()
        _age(tmp_path / f"c/{day}/c.log", 3600 * (10 - i))
    _age(tmp_path / "c/2000/01/01/c.log", 2 * 86400)  # past max_age
    asyncio.run(store.maintain())
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.log"))
    assert left == ["c/2000/01/03/c.log", "c/2000/01/04/c.log"]
    assert store.stats.files_removed == 2 and store.stats.bytes_removed == 2000


def test_handles_are_bounded(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path), max_open_files=2))
    for round_ in range(3):
        for c in "abcde":
            store.append(c, "2024/05/01", f"{round_}\n")
        store.flush()
        assert store.open_files <= 2
    store.close()
    assert store.open_files == 0
    for c in "abcde":
        assert (tmp_path / f"{c}/2024/05/01/{c}.log").read_text() == "0\n1\n2\n"


def test_write_error_is_counted_not_raised(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    store = Store(StoreConfig(root=str(tmp_path / "blocker")))
    store.append("c", "2024/05/01", "x\n")
    store.append("c", "2024/05/01", "y\n")
    store.flush()
    assert store.stats.write_errors == 1 and store.stats.lines_lost == 2


async def test_run_flushes_on_interval_and_on_stop(tmp_path: Path) -> None:
    store = Store(StoreConfig(root=str(tmp_path), flush_interval=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(store.run(stop))
    store.append("c", "2024/05/01", "x\n")
    path = tmp_path / "c/2024/05/01/c.log"
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # no event exists for "the interval flushed"
    assert path.read_text() == "x\n"
    store.append("c", "2024/05/01", "y\n")
    stop.set()
    await task
    store.close()
    assert path.read_text() == "x\ny\n"


@pytest.mark.parametrize("data,error", [
    ({"flush_interval": 0}, "flush_interval"),
    ({"max_file_size": -1}, "max_file_size"),
    ({"format": "xml"}, "format"),
])
def test_bad_config(data: dict, error: str) -> None:
    from fobs.components.config import ConfigError, build
    with pytest.raises(ConfigError, match=error):
        build(StoreConfig, data)
