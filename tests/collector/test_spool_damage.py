"""The disk spool under damage (issue 9, finding 12): flipped bytes in real segment files, a full
filesystem (a real 1 MiB tmpfs), the directory fsync of `fsync = "always"`, failed fsyncs."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from fobs.collector.buffer import SpoolConfig
from fobs.collector.metrics import SPOOL_COUNTERS
from fobs.collector.segments import HEADER
from fobs.collector.spool import DiskSpool
from tests.collector.test_spool import drain, record, segments

SMALL = SpoolConfig(max_bytes=8192, segment_bytes=1024, fsync="never")


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def offset_of(i: int, size: int = 10) -> int:
    """Where record `i` starts in a segment of `record(_, size)` records."""
    return i * (HEADER.size + len(record(0, size)))


@pytest.mark.parametrize("where,what", [
    (HEADER.size + 3, "payload"), (8, "length"), (12, "points"), (0, "magic"), (4, "crc")])
def test_a_flipped_byte_costs_one_record_after_a_restart(
        tmp_path: Path, where: int, what: str) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    for i in range(30):
        spool.append(record(i, 10), 1)
    spool.close()
    first = tmp_path / segments(tmp_path)[0]
    per_segment = first.read_bytes().count(b"m,pad=")
    flip(first, offset_of(3) + where)                           # the 4th record, in the middle
    spool = DiskSpool(tmp_path, SMALL)
    assert drain(spool) == [i for i in range(30) if i != 3], what
    assert spool.stats.corrupt_records == 1 and spool.stats.torn_records == 0
    if what in ("payload", "crc"):       # a damaged header's point count cannot be trusted
        assert spool.stats.corrupt_points == 1
    assert per_segment > 4
    spool.close()


def test_damage_in_the_segment_being_written_while_running(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SpoolConfig(max_bytes=1 << 20, segment_bytes=64 << 10,
                                            fsync="never"))
    for i in range(10):
        spool.append(record(i, 10), 1)
    [head] = segments(tmp_path)
    with open(tmp_path / head, "r+b") as f:                    # a bit rots under the process
        f.seek(offset_of(5) + HEADER.size + 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    for i in range(10, 15):
        assert spool.append(record(i, 10), 1)
    assert drain(spool) == [i for i in range(15) if i != 5]
    assert spool.stats.corrupt_points == 1 and segments(tmp_path) == [head], (
        "the head segment goes on; nothing is rolled or dropped for the damage")
    spool.close()


def test_two_damaged_stretches_and_a_damaged_last_record(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, SpoolConfig(max_bytes=1 << 20, segment_bytes=64 << 10,
                                            fsync="never"))
    for i in range(20):
        spool.append(record(i, 10), 1)
    spool.close()
    [seg] = segments(tmp_path)
    for i in (2, 11, 19):
        flip(tmp_path / seg, offset_of(i) + HEADER.size + 1)
    spool = DiskSpool(tmp_path, SpoolConfig(max_bytes=1 << 20, segment_bytes=64 << 10,
                                            fsync="never"))
    assert drain(spool, max_points=4) == [i for i in range(20) if i not in (2, 11, 19)]
    assert spool.stats.corrupt_points == 3 and spool.stats.corrupt_records == 3
    spool.close()


def test_a_full_filesystem_reuses_the_head_segment(tiny_fs: Path) -> None:
    config = SpoolConfig(max_bytes=16 << 20, segment_bytes=256 << 10, fsync="never")
    spool = DiskSpool(tiny_fs / "spool", config)
    accepted = 0
    while spool.append(record(accepted, 4000), 1):
        accepted += 1
    files = segments(tiny_fs / "spool")
    for i in range(200):                                        # the disk stays full
        assert not spool.append(record(10_000 + i, 4000), 1)
    assert segments(tiny_fs / "spool") == files, "no new segment per refused append"
    assert len(files) <= 5 and spool.stats.refused_points == 201
    assert drain(spool) == list(range(accepted))                # nothing torn, in order
    assert spool.append(record(20_000, 4000), 1), "space freed by the drain is used again"
    spool.close()


def test_a_refused_append_without_a_filesystem_reuses_the_head(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = DiskSpool(tmp_path, SMALL)
    spool.append(record(0), 1)

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fobs.collector.spool.os.write", full)
    for i in range(50):
        assert not spool.append(record(i), 1)
    monkeypatch.undo()
    assert len(segments(tmp_path)) == 1 and spool.stats.refused_points == 50
    spool.close()


class FsyncSpy:
    """Records what each fsync was called on ("dir" or "file"); optionally fails them."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        if self.fail:
            raise OSError(errno.EIO, "Input/output error")
        self.real(fd)


def test_fsync_always_syncs_the_directory_after_a_new_segment_and_a_cursor_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = FsyncSpy()
    monkeypatch.setattr(os, "fsync", spy)
    spool = DiskSpool(tmp_path, SpoolConfig(max_bytes=8192, segment_bytes=1024,
                                            fsync="always"))
    assert spy.calls == ["dir"], "the first segment's name is on disk"
    spool.append(record(0), 1)
    assert spy.calls[-1] == "file"
    batch = spool.peek(10, 1 << 20)
    assert batch is not None
    spy.calls.clear()
    spool.ack(batch)
    assert spy.calls == ["file", "dir"], "the cursor file, then its rename"
    spy.calls.clear()
    for i in range(1, 40):                                      # rolls to new segments
        spool.append(record(i, 20), 1)
    assert spy.calls.count("dir") == len(segments(tmp_path)) - 1
    spool.close()
    spy.calls.clear()
    spool = DiskSpool(tmp_path, SpoolConfig(max_bytes=8192, segment_bytes=1024,
                                            fsync="interval"))
    spool.append(record(99), 1)
    assert "dir" not in spy.calls
    spool.close()


def test_a_failed_fsync_is_counted_and_never_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = DiskSpool(tmp_path, SpoolConfig(fsync="always"))
    monkeypatch.setattr(os, "fsync", FsyncSpy(fail=True))
    assert spool.append(record(0), 1)
    batch = spool.peek(10, 1 << 20)
    assert batch is not None
    spool.ack(batch)                                            # file and directory: 2 more
    assert spool.stats.fsync_errors == 3 and spool.stats.fsyncs == 1
    monkeypatch.undo()
    spool.close()
    assert SPOOL_COUNTERS["fsync_errors"][0] == "spool_fsync_errors"
    assert SPOOL_COUNTERS["corrupt_records"][0] == "spool_corrupt_records"
