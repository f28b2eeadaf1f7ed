"""RFC 6587 framing, decided per frame, with truncation and bogus lengths."""

from __future__ import annotations

import pytest

from fobs.syslog_agg.framing import Framer


def frames(chunks: list[bytes], max_size: int = 64, close: bool = False
           ) -> tuple[list[tuple[bytes, bool]], Framer]:
    out: list[tuple[bytes, bool]] = []
    framer = Framer(lambda f, t: out.append((f, t)), max_size)
    for chunk in chunks:
        framer.feed(chunk)
    if close:
        framer.close()
    return out, framer


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def oc(frame: bytes) -> bytes:
    return b"%d %s" % (len(frame), frame)


STREAM = oc(b"<1>1 - - x") + oc(b"<2>a") + b"<2>b\n<3>b\r\n\n " + oc(b"<4>\n") + b"\n<5>c\n"
EXPECTED = [(b"<1>1 - - x", False), (b"<2>a", False), (b"<2>b", False), (b"<3>b", False),
            (b"<4>\n", False), (b"<5>c", False)]


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_mixed_framings(split: str) -> None:
    chunks = [STREAM] if split == "whole" else bytewise(STREAM)
    out, framer = frames(chunks)
    assert out == EXPECTED
    assert framer.buffered == 0


def test_octet_counted_frame_may_contain_lf() -> None:
    out, _ = frames([oc(b"<1>a\nb\nc")])
    assert out == [(b"<1>a\nb\nc", False)]


def test_over_long_counted_frame_is_cut_and_its_tail_skipped() -> None:
    body = b"<1>" + b"x" * 20 + b"123 456"  # the cut-off tail starts with digits
    out, framer = frames([oc(body) + oc(b"<2>y")], max_size=10)
    assert out == [(body[:10], True), (b"<2>y", False)]
    assert framer.framing_errors == 0


def test_over_long_lf_frame_is_cut_and_skipped_to_lf() -> None:
    out, _ = frames(bytewise(b"<1>" + b"y" * 30 + b" 12 <x>\n<2>z\n"), max_size=10)
    assert out == [(b"<1>yyyyyyy", True), (b"<2>z", False)]


def test_bogus_length_falls_back_to_lf() -> None:
    out, framer = frames([b"123456789012345 not a length\n0 zero\n"])
    assert out == [(b"123456789012345 not a length", False), (b"0 zero", False)]
    assert framer.framing_errors == 2


def test_partial_length_waits() -> None:
    out, _ = frames([b"1", b"2", b" <1>45678901", b"2"])
    assert out == [(b"<1>456789012", False)]


def test_close_emits_a_last_frame_without_lf() -> None:
    out, _ = frames([b"<1>a\n<2>no newline"], close=True)
    assert out == [(b"<1>a", False), (b"<2>no newline", False)]
    out, _ = frames([b"20 <1>cut short"], close=True)
    assert out == [(b"<1>cut short", False)]
