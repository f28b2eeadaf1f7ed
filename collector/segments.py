"""The disk spool's files: the record format, the scan that recovers segments, the cursor.

Layout of a spool directory: `LOCK` (flock: one process per spool), `cursor` ("SEQ OFFSET": the
first unacknowledged byte) and segment files `<SEQ>.seg`, each a run of records:

    magic u32 | crc32 u32 | length u32 | points u32 | appended_at_ns u64 | payload (line protocol)

(little-endian; the CRC covers everything after itself). A new process appends to a new segment,
so a record torn by a crash can only be the last one of a segment: `scan` stops there and the
bytes after it are never read. A damaged record (a flipped bit on disk: bad magic, a length past
the end, a CRC that does not match) costs only itself: the readers *resynchronise* on the next
whole record (`next_record`: the next magic whose record's CRC matches), so one bad byte no
longer drops the rest of its segment. Nothing here keeps state beyond one `Segment`; what to
drop, count and log is `fobs.collector.spool.DiskSpool`'s business.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

MAGIC = 0x53424F46                                   # b"FOBS" little-endian
MAGIC_BYTES = struct.pack("<I", MAGIC)
HEADER = struct.Struct("<IIIIQ")                     # magic, crc, length, points, appended_at_ns
CURSOR = "cursor"


@dataclass
class Segment:
    seq: int
    path: Path
    end: int = 0                      # bytes of whole records
    read: int = 0                     # first unacknowledged byte
    points: int = 0                   # unacknowledged points
    first_ns: int = 0                 # appended_at of the record at `read` (0: none)
    fd: int | None = field(default=None, repr=False)

    @classmethod
    def new(cls, directory: Path, seq: int) -> Segment:
        return cls(seq, directory / f"{seq:016d}.seg")


class Records(NamedTuple):
    """What `read_records` found: whole records from `Segment.read` up to `end`."""

    payloads: list[bytes]
    points: int
    end: int                          # the offset just after the last record read
    damaged: int = 0                  # damaged stretches skipped on the way
    lost_points: int = 0              # points of the damaged records (per their headers)


def encode(data: bytes, points: int, stamp_ns: int) -> bytes:
    """One record holding `data` (line protocol of `points` points), appended at `stamp_ns`."""
    body = struct.pack("<IIQ", len(data), points, stamp_ns) + data
    return struct.pack("<II", MAGIC, zlib.crc32(body)) + body


def next_record(fd: int, start: int, end: int) -> int:
    """The offset of the first whole record with a matching CRC in [start, end), or `end`.

    Only called after damage, so it simply reads the rest of the segment (a few MiB at most)."""
    data = os.pread(fd, max(0, end - start), start)
    view = memoryview(data)
    pos = data.find(MAGIC_BYTES)
    while pos != -1:
        if pos + HEADER.size <= len(data):
            _, crc, length, _, _ = HEADER.unpack_from(data, pos)
            stop = pos + HEADER.size + length
            if stop <= len(data) and zlib.crc32(view[pos + 8:stop]) == crc:
                return start + pos
        pos = data.find(MAGIC_BYTES, pos + 1)
    return end


def walk(fd: int, start: int, end: int) -> tuple[int, int, int]:
    """(end of the last whole record, points, appended_at_ns of the first) from `start` by the
    record headers alone, stepping over damaged stretches; a torn tail ends the walk."""
    offset, points, first_ns = start, 0, 0
    while offset < end:
        head = os.pread(fd, HEADER.size, offset)
        if len(head) == HEADER.size:
            magic, _, length, n, stamp = HEADER.unpack(head)
            if magic == MAGIC and offset + HEADER.size + length <= end:
                if not points:
                    first_ns = stamp
                points += n
                offset += HEADER.size + length
                continue
        resume = next_record(fd, offset + 1, end)
        if resume >= end:
            break                     # nothing whole after it: a torn tail
        offset = resume
    return offset, points, first_ns


def scan(seg: Segment) -> bool:
    """Walk the record headers from `seg.read`, setting `end`, `points` and `first_ns`; stop at a
    torn tail and return True when there was one (damage before a whole record is stepped over
    here and counted when it is read)."""
    fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        seg.read = min(seg.read, size)
        seg.end, seg.points, seg.first_ns = walk(fd, seg.read, size)
    finally:
        os.close(fd)
    return seg.end < size


def read_records(seg: Segment, max_points: int, max_bytes: int) -> Records:
    """The records from `seg.read`: at least one, then as many as fit the limits; CRC-checked.

    A damaged record is skipped to the next whole one; its points (what `seg.points` counted
    for the stretch) are taken off `seg.points` and reported in `lost_points`."""
    if seg.fd is None:
        seg.fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
    payloads: list[bytes] = []
    points = total = damaged = lost = 0
    offset = seg.read
    while offset < seg.end:
        head = os.pread(seg.fd, HEADER.size, offset)
        whole = len(head) == HEADER.size
        if whole:
            magic, crc, length, n, _ = HEADER.unpack(head)
            whole = magic == MAGIC and offset + HEADER.size + length <= seg.end
        if whole and payloads and (points + n > max_points or total + length > max_bytes):
            break
        payload = os.pread(seg.fd, length, offset + HEADER.size) if whole else b""
        if not whole or zlib.crc32(head[8:] + payload) != crc:
            resume = next_record(seg.fd, offset + 1, seg.end)
            rest = walk(seg.fd, resume, seg.end)[1]
            gone = max(0, seg.points - points - rest)
            seg.points -= gone
            lost += gone
            damaged += 1
            offset = resume
            continue
        payloads.append(payload)
        points += n
        total += length
        offset += HEADER.size + length
    return Records(payloads, points, offset, damaged, lost)


def stamp_at(seg: Segment) -> int:
    """appended_at_ns of the record at `seg.read` (0 when the segment is read to its end)."""
    if seg.read >= seg.end or seg.fd is None:
        return 0
    return int(HEADER.unpack(os.pread(seg.fd, HEADER.size, seg.read))[4])


def read_cursor(directory: Path) -> tuple[int, int]:
    """(segment, offset) of the first unacknowledged byte; (0, 0) when there is no cursor."""
    try:
        seq, offset = (directory / CURSOR).read_text().split()
        return int(seq), int(offset)
    except (OSError, ValueError):
        return 0, 0


def write_cursor(directory: Path, seq: int, offset: int,
                 fsync: Callable[[int], object] | None = None) -> None:
    """Persist the cursor by an atomic rename; with `fsync` (a function of a file descriptor),
    the file before the rename and the directory after it, so the rename survives a power loss.
    """
    tmp = directory / f"{CURSOR}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{seq} {offset}\n")
        if fsync is not None:
            f.flush()
            fsync(f.fileno())
    os.replace(tmp, directory / CURSOR)
    if fsync is not None:
        sync_directory(directory, fsync)


def sync_directory(directory: Path, fsync: Callable[[int], object]) -> None:
    """`fsync` the directory itself: a new file or a rename in it is then on disk too."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)
