"""RFC 6587 framing, decided per frame, with truncation and bogus lengths; the fast paths
(a whole read of LF frames in one split, octet-counted frames in a tight loop) frame exactly
as the general loop does, however the stream is cut into reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fobs.syslog_agg.framing import Framer


def frames(chunks: list[bytes], max_size: int = 64, close: bool = False
           ) -> tuple[list[tuple[bytes, bool]], Framer]:
    out: list[tuple[bytes, bool]] = []
    framer = Framer(max_size)

    def take(got: list[bytes]) -> None:
        cut = set(framer.cut)
        out.extend((f, i in cut) for i, f in enumerate(got))

    for chunk in chunks:
        take(framer.feed(chunk))
    if close:
        take(framer.close())
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


def test_lf_fast_path_drops_cr_and_keeps_the_rest() -> None:
    out, framer = frames([b"<1>a\r\n<2>b\n<3>c\r\n<4>unfinished"])
    assert out == [(b"<1>a", False), (b"<2>b", False), (b"<3>c", False)]
    assert framer.rest == b"<4>unfinished"


def test_lf_fast_path_falls_back_for_an_unusual_frame() -> None:
    # an over-long frame and a frame not starting with '<' among ordinary ones
    out, framer = frames([b"<1>a\n<2>" + b"x" * 20 + b"\nplain\n<3>c\n"], max_size=10)
    assert out == [(b"<1>a", False), (b"<2>xxxxxxx", True), (b"plain", False),
                   (b"<3>c", False)]
    assert framer.framing_errors == 0


def test_octet_fast_path_then_general_frames() -> None:
    body = b"<9>" + b"z" * 20
    stream = oc(b"<1>a") + oc(b"<2>b") + oc(body) + oc(b"<3>c") + b"0 x\n" + oc(b"<4>d")
    out, framer = frames([stream], max_size=10)
    assert out == [(b"<1>a", False), (b"<2>b", False), (body[:10], True), (b"<3>c", False),
                   (b"0 x", False), (b"<4>d", False)]
    assert framer.framing_errors == 1


_FRAME = st.one_of(
    st.binary(max_size=80).map(lambda b: b"<1>" + b.replace(b"\n", b"")),  # LF, maybe long
    st.binary(max_size=80).map(oc),                                         # octet counted
    st.sampled_from([b"\n", b"\r\n", b" ", b"\x00", b"0 zero", b"12x", b"999999999999 ",
                     b"<2>cr\r", b"plain", b"7 <1>"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAME, max_size=30), st.lists(st.integers(1, 200), max_size=10))
def test_any_cut_into_reads_frames_alike(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(p if p[:1] != b"<" else p + b"\n" for p in parts)
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(stream[pos:pos + n])
        pos += n
    chunks.append(stream[pos:])
    expected = frames(bytewise(stream), max_size=40, close=True)
    got = frames(chunks, max_size=40, close=True)
    whole = frames([stream], max_size=40, close=True)
    assert got[0] == expected[0] == whole[0]
    assert got[1].framing_errors == expected[1].framing_errors == whole[1].framing_errors
