"""What the hot path's shortcuts must keep: the same answers as the general code.

Invalid UTF-8 is rendered exactly (`\\xNN` for the invalid bytes only) while it has few invalid
sequences, and byte by byte as a bytes literal once it is binary; the Cloud Foundry forwarder's
form parsed by the fast regex gives what the general RFC 3164 path gives; the pipeline hands on a
slice's lines joined per (component, day), in order, and counts what the tail refused; UDP
read with recvmmsg gives what recvfrom gives.
"""

from __future__ import annotations

import codecs
import random
import re
import socket
import time
from collections import deque
from datetime import UTC, datetime

import pytest

from fobs.syslog_agg import parser
from fobs.syslog_agg.config import TailConfig
from fobs.syslog_agg.intake import Intake
from fobs.syslog_agg.lines import BINARY_PREFIX, EXACT_ERRORS, Formatter, decode_raw
from fobs.syslog_agg.mmsg import BatchReceiver
from fobs.syslog_agg.pipeline import Pipeline
from fobs.syslog_agg.router import Router, RoutingConfig
from fobs.syslog_agg.tail import Tail
from fobs.syslog_agg.text import escape_controls
from fobs.syslog_agg.udp import UdpListener

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_few_invalid_bytes_keep_the_valid_characters() -> None:
    raw = b"caf\xc3\xa9 \xff\xfe ok" + b"\x80" * (EXACT_ERRORS - 2)
    assert decode_raw(raw) == raw.decode("utf-8", "backslashreplace")
    assert decode_raw(raw).startswith("café \\xff\\xfe ok")


def test_binary_input_is_written_byte_by_byte_and_reads_back() -> None:
    raw = random.Random(5).randbytes(4096) + "é".encode()
    text = decode_raw(raw)
    assert text.isascii() and text.isprintable()  # one line, no control characters
    assert codecs.escape_decode(text)[0] == raw   # every byte can be read back
    assert decode_raw(raw) == text                # the same answer twice (a one-entry cache)
    assert decode_raw(bytes(raw)) == text


def _whole_count(raw: bytes) -> str:
    """decode_raw without the prefix shortcut: the invalid sequences of all the input counted."""
    if raw.decode("utf-8", "replace").count("\ufffd") <= EXACT_ERRORS:
        return raw.decode("utf-8", "backslashreplace")
    return codecs.escape_encode(raw)[0].decode("ascii")


@pytest.mark.parametrize("raw", [
    b"\x80" * (EXACT_ERRORS + 2) + b"a" * BINARY_PREFIX,          # binary from the prefix
    b"\x80" * EXACT_ERRORS + b"a" * BINARY_PREFIX + b"\x80",     # binary by the whole count
    b"\x80" * EXACT_ERRORS + b"a" * BINARY_PREFIX,                # exact: at the limit
    b"a" * (BINARY_PREFIX - EXACT_ERRORS - 1) + b"\xff" * EXACT_ERRORS + "é".encode(),  # é cut
    b"a" * (BINARY_PREFIX - EXACT_ERRORS - 2) + b"\xff" * (EXACT_ERRORS + 1) + b"\xe2\x82\xac",
    random.Random(7).randbytes(BINARY_PREFIX + 1),
])
def test_binary_seen_in_the_prefix_is_what_the_whole_count_says(raw: bytes) -> None:
    """The prefix may cut a character in two (one invalid sequence more): never a wrong call."""
    text = decode_raw(raw)
    assert text == _whole_count(raw)
    message = parser.parse(raw, now=NOW)
    line = Formatter("text").line(message, "c", "T", "p")
    assert line == f"T p {escape_controls(text.rstrip(chr(13) + chr(10) + chr(0)))}\n"


@pytest.mark.parametrize("line", [
    b"<14>Nov 24 15:56:52 10.0.0.7 vcap.dea_next [job=dea_next index=0]  msg 1",
    b"<14>Nov 24 15:56:52 10.0.0.7 vcap.dea_next [job=dea_next index=0] one SP",
    b"<14>Nov 24 15:56:52 10.0.0.7 vcap.dea_next [job=dea_next index=0]",
    b"<14>Nov 24 15:56:52 10.0.0.7 vcap.dea_next [job=dea_next index=0]   three SPs",
    b"<14>Nov  4 15:56:52 h x [job= index=]  empty values",
    b"<14>Dec 31 23:59:59 h x [job=a index=b]  last year",
    b"<14>Feb 29 10:00:00 h x [job=a index=b]  not in 2026",
    b"<34>Oct 11 22:14:15 mymachine su[231]: 'su root' failed",
])
def test_fast_bsd_shapes_parse_as_the_general_path(line: bytes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parser.parse(line, now=NOW)
    monkeypatch.setattr(parser, "_BSD_FAST", re.compile(r"(?!)"))
    assert fast == parser.parse(line, now=NOW)


def test_a_slice_is_handed_on_joined_in_order_and_refusals_are_counted() -> None:
    appended: list[tuple[str, str, str]] = []
    published: list[str] = []
    tail = Tail(TailConfig(rate=1.0, burst=2))
    pipeline = Pipeline(Router(RoutingConfig()), "text",
                        lambda c, d, s: appended.append((c, d, s)),
                        tail=(tail.admit, lambda c, line: published.append(c), tail.limited))
    when = time.time()
    queue = deque((b"<14>1 - h vcap.c%d - - - n=%d" % (i % 2, i), "10.0.0.1", when, False)
                  for i in range(10))
    pipeline.process(queue, 10)
    assert [c for c, _, _ in appended] == ["c0", "c1"]  # one append per (component, day)
    for component, _, text in appended:
        k = int(component[1])
        assert [ln.rsplit("n=", 1)[1] for ln in text.splitlines()] == [
            str(i) for i in range(k, 10, 2)]
    assert published == ["c0", "c1", "c0", "c1"]  # burst 2 each
    assert tail.stats.rate_limited == 6


@pytest.mark.parametrize("batched", [True, False])
async def test_udp_reads_the_same_with_recvmmsg_and_recvfrom(
        batched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not batched:
        monkeypatch.setattr(BatchReceiver, "open", classmethod(lambda cls, sock, size: None))
    intake = Intake(1000, 480)
    udp = UdpListener(intake, "127.0.0.1", 0)
    assert (udp._receive.__name__ == "receive") == batched
    sent = [b"<14>1 - h app - - - n=%d" % i for i in range(150)] + [b"\x00", b"y" * 600]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        for data in sent:
            s.sendto(data, udp.address)
    udp.drain(lambda: None)  # reads until the socket is empty, several batches
    udp.sock.close()
    assert intake.stats.received == 151 and intake.stats.probes == 1
    assert intake.stats.truncated == 1
    items = list(intake.queue)
    assert [data for data, _, _, _ in items] == sent[:150] + [b"y" * 480]
    assert {peer for _, peer, _, _ in items} == {"127.0.0.2"}
    assert [t for _, _, _, t in items] == [False] * 150 + [True]
