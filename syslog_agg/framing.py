"""RFC 6587 framing of a syslog TCP stream, decided again at the start of every frame.

A frame starting with a digit is octet-counted (`MSG-LEN SP MSG`); anything else runs to the next
LF (non-transparent framing; a CR before the LF is dropped). This is what rsyslog does
(`tcps_sess.c`, state `eAtStrtFram`), and it lets one connection mix both framings.
- Between frames, stray LF, CR, NUL and SP are skipped (Cisco ASA sends a SP after each LF).
- A frame longer than `max_size` is cut at `max_size` and flagged truncated; the rest of it (the
  remaining MSG-LEN octets, or everything up to the next LF) is discarded, so a cut-off tail that
  starts with digits is never read as a new frame.
- Setting `held` (from `emit`, when the consumer has no room) stops framing after that frame;
  the rest stays buffered until the next `feed` (`feed(b"")` resumes without new data).
- A digit run that is not a valid MSG-LEN (no SP within 10 octets, a non-digit before the SP,
  or 0) means the frame is read as LF-terminated instead, and counted as a framing error.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Framer"]

_SKIP = b"\n\r\x00 "
_MAX_LEN_DIGITS = 10

Emit = Callable[[bytes, bool], None]  # (frame, truncated)


class Framer:
    """Feed it stream chunks; it calls `emit(frame, truncated)` for every complete frame."""

    __slots__ = ("emit", "max_size", "_buf", "_discard", "_discard_to_lf", "framing_errors",
                 "held")

    def __init__(self, emit: Emit, max_size: int) -> None:
        self.emit = emit
        self.max_size = max_size
        self._buf = bytearray()
        self._discard = 0             # octets of an over-long counted frame still to skip
        self._discard_to_lf = False   # skipping the rest of an over-long LF frame
        self.framing_errors = 0
        self.held = False             # set by `emit`: stop after this frame, keep the rest

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        max_size = self.max_size
        emit = self.emit
        while pos < end and not self.held:
            if self._discard:
                n = min(self._discard, end - pos)
                self._discard -= n
                pos += n
                continue
            if self._discard_to_lf:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    pos = end
                    break
                self._discard_to_lf = False
                pos = lf + 1
                continue
            first = buf[pos]
            if first in _SKIP:
                pos += 1
                continue
            if 48 <= first <= 57:  # a digit: octet counting, if the length is well formed
                sp = buf.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
                if sp < 0 and end - pos <= _MAX_LEN_DIGITS and buf[pos:end].isdigit():
                    break  # the length is still arriving
                digits = buf[pos:sp] if sp > 0 else b""
                if digits.isdigit() and digits[0] != 48:
                    length = int(digits)
                    start = sp + 1
                    if length <= max_size:
                        if end - start < length:
                            break
                        emit(bytes(buf[start:start + length]), False)
                        pos = start + length
                        continue
                    if end - start < max_size:
                        break
                    emit(bytes(buf[start:start + max_size]), True)
                    self._discard = length - max_size
                    pos = start + max_size
                    continue
                self.framing_errors += 1  # not a MSG-LEN: read this frame up to LF
            lf = buf.find(b"\n", pos, pos + max_size + 1)
            if lf >= 0:
                stop = lf - 1 if lf > pos and buf[lf - 1] == 13 else lf
                emit(bytes(buf[pos:stop]), False)
                pos = lf + 1
                continue
            if end - pos > max_size:
                emit(bytes(buf[pos:pos + max_size]), True)
                pos += max_size
                self._discard_to_lf = True
                continue
            break
        del buf[:pos]

    def close(self) -> None:
        """End of stream: a last LF-less frame is still a message (many senders omit the LF)."""
        if self._buf and not self._discard and not self._discard_to_lf:
            data = bytes(self._buf).strip(_SKIP)
            if data:
                if data[:1].isdigit():
                    sp = data.find(b" ")
                    if 0 < sp <= _MAX_LEN_DIGITS and data[:sp].isdigit():
                        data = data[sp + 1:]  # an octet-counted frame cut short by the peer
                self.emit(data[:self.max_size], len(data) > self.max_size)
        self._buf.clear()
