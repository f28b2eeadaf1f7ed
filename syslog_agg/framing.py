"""RFC 6587 framing of a syslog TCP stream, decided again at the start of every frame.

A frame starting with a digit is octet-counted (`MSG-LEN SP MSG`); anything else runs to the next
LF (non-transparent framing; a CR before the LF is dropped). This is what rsyslog does
(`tcps_sess.c`, state `eAtStrtFram`), and it lets one connection mix both framings.
- Between frames, stray LF, CR, NUL and SP are skipped (Cisco ASA sends a SP after each LF).
- A frame longer than `max_size` is cut at `max_size` and flagged truncated; the rest of it (the
  remaining MSG-LEN octets, or everything up to the next LF) is discarded, so a cut-off tail that
  starts with digits is never read as a new frame.
- A digit run that is not a valid MSG-LEN (no SP within 10 octets, a non-digit before the SP,
  or 0) means the frame is read as LF-terminated instead, and counted as a framing error.

`feed` frames a whole read at once and returns its frames as a list (the TCP session queues
them in one `deque.extend`): the framer is on the hot path of every TCP message, and a Python
loop per frame cost about as much as receiving a datagram. Two fast paths do most reads:
- LF frames that all start with `<` (every syslog message with a PRI): one `bytes.split` of
  everything up to the read's last LF, checked in C (`count(b"\\n<")`, the longest piece);
- octet-counted frames that follow each other: a tight loop of `find`/`int`/slice.
Anything else (stray bytes, bad lengths, over-long frames) goes frame by frame through the
general loop, and a read that met one such frame is not tried on the LF fast path again, so a
hostile stream costs one split per read at most. What is left after the last whole frame (at
most `max_size` + 11 octets) is kept in `rest` until the next read.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Framer"]

_SKIP = b"\n\r\x00 "
_MAX_LEN_DIGITS = 10


class Framer:
    """Feed it stream chunks; `feed` returns the complete frames, `cut` the indexes of those
    among them that were truncated (nearly always empty)."""

    __slots__ = ("max_size", "rest", "cut", "_discard", "_discard_to_lf", "_counted_rest",
                 "framing_errors")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.rest = b""               # the start of a frame not yet complete
        self.cut: list[int] = []      # indexes of truncated frames in the last `feed`'s list
        self._discard = 0             # octets of an over-long counted frame still to skip
        self._discard_to_lf = False   # skipping the rest of an over-long LF frame
        self._counted_rest = False    # `rest` is a bad length already counted as an error
        self.framing_errors = 0

    @property
    def buffered(self) -> int:
        return len(self.rest)

    def feed(self, data: bytes, *, joined: bool = False) -> list[bytes]:
        """The frames completed by `data`. With `joined`, `data` already starts with `rest`
        (the TCP session reads into a buffer behind a copy of it)."""
        if self.rest and not joined:
            data = self.rest + data
        if self.cut:
            self.cut = []
        out: list[bytes] = []
        pos = self._frame(data, out)
        self.rest = data[pos:] if pos < len(data) else b""
        return out

    def _frame(self, data: bytes, out: list[bytes]) -> int:
        """Append the frames of `data` to `out`; the position after the last one consumed."""
        pos = 0
        end = len(data)
        max_size = self.max_size
        append = out.append
        counted, self._counted_rest = self._counted_rest, False
        fast = True  # the LF fast path, until a frame of this read turns out unusual
        while pos < end:
            if self._discard:
                n = min(self._discard, end - pos)
                self._discard -= n
                pos += n
                continue
            if self._discard_to_lf:
                lf = data.find(b"\n", pos)
                if lf < 0:
                    return end
                self._discard_to_lf = False
                pos = lf + 1
                continue
            first = data[pos]
            if first == 60 and fast:  # '<': every LF frame up to the last LF, in one split
                last = data.rfind(b"\n", pos)
                if last > pos:
                    region = data[pos:last]
                    pieces = region.split(b"\n")
                    if region.count(b"\n<") == len(pieces) - 1 and (
                            last - pos <= max_size or max(map(len, pieces)) <= max_size):
                        if b"\r" in region:  # CR LF: the CR is dropped
                            pieces = [p[:-1] if p[-1:] == b"\r" else p for p in pieces]
                        out.extend(pieces)
                        pos = last + 1
                        continue
                    fast = False
            elif 49 <= first <= 57:  # a digit (not 0): octet-counted frames, one after another
                start = pos
                pos = _octets(data, pos, max_size, append)
                if pos != start:
                    continue
            if first in _SKIP:
                pos += 1
                continue
            if 48 <= first <= 57:  # a digit: octet counting, if the length is well formed
                sp = data.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
                if sp < 0 and end - pos <= _MAX_LEN_DIGITS and data[pos:end].isdigit():
                    break  # the length is still arriving
                digits = data[pos:sp] if sp > 0 else b""
                if digits.isdigit() and digits[0] != 48:
                    length = int(digits)
                    start = sp + 1
                    if length <= max_size:
                        if end - start < length:
                            break
                        append(data[start:start + length])
                        pos = start + length
                        continue
                    if end - start < max_size:
                        break
                    self.cut.append(len(out))
                    append(data[start:start + max_size])
                    self._discard = length - max_size
                    pos = start + max_size
                    continue
                if not (counted and pos == 0):  # not again when it comes back as `rest`
                    self.framing_errors += 1  # not a MSG-LEN: read this frame up to LF
            lf = data.find(b"\n", pos, pos + max_size + 1)
            if lf >= 0:
                stop = lf - 1 if lf > pos and data[lf - 1] == 13 else lf
                append(data[pos:stop])
                pos = lf + 1
                continue
            if end - pos > max_size:
                self.cut.append(len(out))
                append(data[pos:pos + max_size])
                pos += max_size
                self._discard_to_lf = True
                continue
            self._counted_rest = 48 <= first <= 57  # only a bad length gets here
            break
        return pos

    def close(self) -> list[bytes]:
        """End of stream: a last LF-less frame is still a message (many senders omit the LF);
        `cut` says whether it was truncated."""
        rest, self.rest = self.rest, b""
        self.cut = []
        if not rest or self._discard or self._discard_to_lf:
            return []
        data = rest.strip(_SKIP)
        if not data:
            return []
        if data[:1].isdigit():
            sp = data.find(b" ")
            if 0 < sp <= _MAX_LEN_DIGITS and data[:sp].isdigit():
                data = data[sp + 1:]  # an octet-counted frame cut short by the peer
        if len(data) > self.max_size:
            self.cut.append(0)
        return [data[:self.max_size]]


def _octets(data: bytes, pos: int, max_size: int, append: Callable[[bytes], None]) -> int:
    """Octet-counted frames from `pos` while they are whole, well formed and within
    `max_size`; the position after the last one (`pos` if none: the general loop decides)."""
    end = len(data)
    while True:
        sp = data.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
        if sp < 0:
            return pos
        digits = data[pos:sp]
        if not digits.isdigit():
            return pos
        stop = sp + 1 + int(digits)
        if stop - sp - 1 > max_size or stop > end:
            return pos
        append(data[sp + 1:stop])
        pos = stop
        if pos >= end or not 49 <= data[pos] <= 57:
            return pos
