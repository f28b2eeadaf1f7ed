"""The disk spool and the memory buffer: order, acknowledgement, bounds, crashes and corruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fobs.collector.buffer import MemorySpool, SpoolConfig
from fobs.collector.errors import SpoolError
from fobs.collector.segments import HEADER
from fobs.collector.spool import DiskSpool
from fobs.components.config import ConfigError, build

SMALL = SpoolConfig(max_bytes=8192, segment_bytes=1024, fsync="never")


def record(i: int, size: int = 0) -> bytes:
    return f"m,pad={'x' * size} id={i}i {i}\n".encode() if size else f"m id={i}i {i}\n".encode()


def ids(data: bytes) -> list[int]:
    return [int(line.split(b"id=")[1].split(b"i")[0]) for line in data.splitlines()]


def drain(spool: DiskSpool | MemorySpool, max_points: int = 1000) -> list[int]:
    got = []
    while (batch := spool.peek(max_points, 1 << 20)) is not None:
        got += ids(batch.data)
        spool.ack(batch)
    return got


def segments(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("*.seg"))


def test_order_batching_and_peek_until_ack(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(10):
        assert spool.append(record(i), 1)
    batch = spool.peek(4, 1 << 20)
    assert batch is not None and ids(batch.data) == [0, 1, 2, 3] and batch.points == 4
    assert spool.peek(4, 1 << 20) is batch                      # same batch until acked
    spool.ack(batch)
    small = spool.peek(100, 1)                                  # at least one record
    assert small is not None and ids(small.data) == [4]
    spool.ack(small)
    assert drain(spool) == list(range(5, 10))
    assert spool.peek(10, 1 << 20) is None
    assert spool.refresh_stats().pending_points == 0
    spool.close()


def test_multi_point_records_are_never_split(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    spool.append(record(0) + record(1) + record(2), 3)
    spool.append(record(3), 1)
    batch = spool.peek(2, 1 << 20)
    assert batch is not None and batch.points == 3 and ids(batch.data) == [0, 1, 2]
    spool.close()


def test_restart_reads_what_is_there_and_resumes_after_the_cursor(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(40):
        spool.append(record(i), 1)
    batch = spool.peek(15, 1 << 20)
    assert batch is not None
    spool.ack(batch)
    spool.close()
    spool = DiskSpool(tmp_path, SMALL)
    assert spool.refresh_stats().pending_points == 25
    for i in range(40, 45):
        spool.append(record(i), 1)
    assert drain(spool) == list(range(15, 45))
    spool.close()
    assert segments(tmp_path) == []                             # all read: all deleted


def test_crash_between_send_and_ack_resends_exactly_that_batch(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(6):
        spool.append(record(i), 1)
    first = spool.peek(3, 1 << 20)
    assert first is not None
    spool.ack(first)
    sent = spool.peek(3, 1 << 20)                               # "written", then the crash
    assert sent is not None and ids(sent.data) == [3, 4, 5]
    spool.close()
    spool = DiskSpool(tmp_path, SMALL)
    again = spool.peek(3, 1 << 20)
    assert again is not None and ids(again.data) == [3, 4, 5]
    spool.close()


def test_segments_roll_and_are_deleted_without_rewriting(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(60):
        spool.append(record(i, 20), 1)
    names = segments(tmp_path)
    assert len(names) >= 4
    last = tmp_path / names[-1]
    before = (last.stat().st_ino, last.stat().st_size)
    batch = spool.peek(1000, 1 << 20)                           # one batch = one segment at most
    assert batch is not None
    spool.ack(batch)
    assert segments(tmp_path) == names[1:]
    assert (last.stat().st_ino, last.stat().st_size) == before
    assert drain(spool) == list(range(batch.points, 60))
    spool.close()


def test_max_bytes_drops_oldest_first_and_counts(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(400):
        assert spool.append(record(i, 20), 1)
    stats = spool.refresh_stats()
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    assert on_disk <= SMALL.max_bytes
    assert stats.dropped_points > 0 and stats.dropped_bytes > 0
    got = drain(spool)
    assert got == list(range(400 - len(got), 400))              # the newest survive, in order
    assert spool.stats.dropped_points + len(got) == 400
    spool.close()


def test_batch_in_flight_when_its_segment_is_dropped(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(10):
        spool.append(record(i, 20), 1)
    written = spool.peek(3, 1 << 20)
    failed = None
    assert written is not None
    for i in range(10, 400):
        spool.append(record(i, 20), 1)
    assert written.lost
    spool.ack(written)                                          # its write succeeded after all
    dropped = spool.stats.dropped_points
    rest = drain(spool)
    assert dropped + 3 + len(rest) == 400 and spool.stats.dropped_points == dropped

    for i in range(400, 800):                                   # now one that failed
        spool.append(record(i, 20), 1)
    failed = spool.peek(3, 1 << 20)
    assert failed is not None
    for i in range(800, 1200):
        spool.append(record(i, 20), 1)
    before = spool.stats.dropped_points
    retry = spool.peek(3, 1 << 20)                              # the sender tries again
    assert retry is not failed and spool.stats.dropped_points == before + 3
    spool.close()


def test_torn_last_record_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(5):
        spool.append(record(i), 1)
    spool.close()
    seg = tmp_path / segments(tmp_path)[-1]
    size = seg.stat().st_size
    os.truncate(seg, size - 3)                                  # the last record, cut short
    spool = DiskSpool(tmp_path, SMALL)
    assert spool.stats.torn_records == 1
    spool.append(record(5), 1)
    assert drain(spool) == [0, 1, 2, 3, 5]
    spool.close()


def test_torn_header_and_garbage_tail(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    spool.append(record(0), 1)
    spool.close()
    seg = tmp_path / segments(tmp_path)[-1]
    with open(seg, "ab") as f:
        f.write(b"\x46\x4f\x42")                                # three bytes of a header
    spool = DiskSpool(tmp_path, SMALL)
    assert spool.stats.torn_records == 1 and drain(spool) == [0]
    spool.close()


def test_corrupt_record_costs_only_itself(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(30):
        spool.append(record(i, 10), 1)
    spool.close()
    first = tmp_path / segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    second = HEADER.size + len(record(0, 10))                   # flip a byte of record 1
    data[second + HEADER.size + 3] ^= 0xFF
    first.write_bytes(bytes(data))
    spool = DiskSpool(tmp_path, SMALL)
    got = drain(spool)
    assert got == [0] + list(range(2, 30))                      # resynchronised on record 2
    assert spool.stats.corrupt_points == 1 and spool.stats.corrupt_records == 1
    spool.close()


def test_a_failed_write_is_refused_and_leaves_no_torn_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    spool.append(record(0), 1)
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fobs.collector.spool.os.write", half_then_full)
    assert not spool.append(record(1), 1)
    monkeypatch.setattr("fobs.collector.spool.os.write", real_write)
    assert spool.append(record(2), 1)
    assert spool.stats.refused_points == 1
    assert drain(spool) == [0, 2]
    spool.close()
    spool = DiskSpool(tmp_path, SMALL)
    assert spool.stats.torn_records == 0
    spool.close()


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    with pytest.raises(SpoolError, match="in use by another process"):
        DiskSpool(tmp_path, SMALL)
    spool.close()
    DiskSpool(tmp_path, SMALL).close()


def test_record_larger_than_the_spool_is_refused(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    assert not spool.append(b"x" * 8000, 7)
    assert spool.stats.refused_points == 7 and spool.peek(10, 1 << 20) is None
    spool.close()


def test_age_and_pending_stats(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    assert spool.refresh_stats().oldest_age_s == 0.0
    spool.append(record(1) + record(2), 2)
    stats = spool.refresh_stats()
    assert stats.pending_points == 2 and stats.pending_bytes == HEADER.size + 2 * len(record(1))
    assert 0.0 <= stats.oldest_age_s < 5
    spool.close()


@pytest.mark.parametrize("policy, expected", [("always", 6), ("never", 0), ("interval", 1)])
def test_fsync_policy(tmp_path: Path, policy: str, expected: int) -> None:
    spool = DiskSpool(tmp_path, SpoolConfig(fsync=policy, fsync_interval=3600))  # type: ignore
    for i in range(5):
        spool.append(record(i), 1)
    spool.sync()                                                # the sender's timer: too soon
    assert spool.stats.fsyncs == (expected if policy != "interval" else 0)
    spool.close()                                               # close always syncs (not never)
    assert spool.stats.fsyncs == expected       # "always": 5 appends + the directory once


WRITER = textwrap.dedent("""
    import sys
    from fobs.collector.buffer import SpoolConfig
    from fobs.collector.spool import DiskSpool
    spool = DiskSpool(sys.argv[1], SpoolConfig(max_bytes=64 << 20, segment_bytes=64 << 10,
                                                fsync="never"))
    i = 0
    while True:
        lines = b"".join(b"m id=%di %d\\n" % (i + k, i + k) for k in range(3))
        assert spool.append(lines, 3)
        sys.stdout.write(f"{i + 2}\\n")
        sys.stdout.flush()
        i += 3
""")


def test_kill_9_while_appending_loses_no_accepted_point(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                          cwd=Path(__file__).resolve().parents[2]) as proc:
        assert proc.stdout is not None
        accepted = -1
        for line in proc.stdout:                                # wait until well under way
            accepted = int(line)
            if accepted > 20_000:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        accepted = max([accepted] + [int(x) for x in proc.stdout.read().split()])
    spool = DiskSpool(tmp_path, SMALL)
    got = drain(spool)
    assert spool.stats.torn_records <= 1
    assert got[:accepted + 1] == list(range(accepted + 1))     # every accepted point, in order
    spool.close()


def test_memory_buffer_contract() -> None:
    buf = MemorySpool(SpoolConfig(max_bytes=200))
    for i in range(30):
        buf.append(record(i), 1)
    assert buf.stats.dropped_points > 0
    inflight = buf.peek(2, 1 << 20)
    assert inflight is not None and buf.peek(2, 1 << 20) is inflight
    for i in range(30, 40):
        buf.append(record(i), 1)
    assert inflight.lost
    dropped = buf.stats.dropped_points
    assert buf.peek(2, 1 << 20) is not inflight and buf.stats.dropped_points == dropped + 2
    rest = drain(buf)
    assert rest[-1] == 39 and rest == sorted(rest)
    assert buf.refresh_stats().pending_points == 0


@pytest.mark.parametrize("data, message", [
    ({"segment_bytes": 1024, "max_bytes": 2048}, "spool.segment_bytes: must be at most a quarter"),
    ({"segment_bytes": 128 << 20},
     r"spool.segment_bytes: must be at most a quarter of max_bytes \(67108864\)"),
    ({"fsync": "sometimes"}, "spool.fsync: must be one of"),
    ({"max_bytes": -1}, "spool.max_bytes: must be 0 \\(the default\\) or more"),
    ({"segment": 1}, "unknown key 'spool.segment'"),
])
def test_config_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(SpoolConfig, data, "spool")
