"""The disk spool's files: the record format, the scan that recovers segments, the cursor.

Layout of a spool directory: `LOCK` (flock: one process per spool), `cursor` ("SEQ OFFSET": the
first unacknowledged byte) and segment files `<SEQ>.seg`, each a run of records:

    magic u32 | crc32 u32 | length u32 | points u32 | appended_at_ns u64 | payload (line protocol)

(little-endian; the CRC covers everything after itself). A new process appends to a new segment,
so a record torn by a crash can only be the last one of a segment: `scan` stops there and the
bytes after it are never read. A record whose CRC does not match when read means the rest of its
segment cannot be trusted: `read_records` stops there and says where. Nothing here keeps state
beyond one `Segment`; what to drop, count and log is `fobs.collector.spool.DiskSpool`'s business.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

MAGIC = 0x53424F46                                   # b"FOBS" little-endian
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
    corrupt: bool                     # the record at `end` is damaged: the rest is unreadable


def encode(data: bytes, points: int, stamp_ns: int) -> bytes:
    """One record holding `data` (line protocol of `points` points), appended at `stamp_ns`."""
    body = struct.pack("<IIQ", len(data), points, stamp_ns) + data
    return struct.pack("<II", MAGIC, zlib.crc32(body)) + body


def scan(seg: Segment) -> bool:
    """Walk the record headers from `seg.read`, setting `end`, `points` and `first_ns`; stop at a
    torn or garbled tail and return True when there was one."""
    torn = False
    with open(seg.path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = seg.read = min(seg.read, size)
        while offset < size:
            f.seek(offset)
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                torn = True
                break
            magic, _, length, points, stamp = HEADER.unpack(head)
            if magic != MAGIC or offset + HEADER.size + length > size:
                torn = True
                break
            if not seg.points:
                seg.first_ns = stamp
            seg.points += points
            offset += HEADER.size + length
        seg.end = offset
    return torn


def read_records(seg: Segment, max_points: int, max_bytes: int) -> Records:
    """The records from `seg.read`: at least one, then as many as fit the limits; CRC-checked."""
    if seg.fd is None:
        seg.fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
    payloads: list[bytes] = []
    points = total = 0
    offset = seg.read
    while offset < seg.end:
        head = os.pread(seg.fd, HEADER.size, offset)
        if len(head) < HEADER.size:
            return Records(payloads, points, offset, True)
        magic, crc, length, n, _ = HEADER.unpack(head)
        if payloads and (points + n > max_points or total + length > max_bytes):
            break
        payload = os.pread(seg.fd, length, offset + HEADER.size)
        if magic != MAGIC or zlib.crc32(head[8:] + payload) != crc:
            return Records(payloads, points, offset, True)
        payloads.append(payload)
        points += n
        total += length
        offset += HEADER.size + length
    return Records(payloads, points, offset, False)


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


def write_cursor(directory: Path, seq: int, offset: int, fsync: bool) -> None:
    """Persist the cursor by an atomic rename (fsynced first when `fsync`)."""
    tmp = directory / f"{CURSOR}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{seq} {offset}\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, directory / CURSOR)
