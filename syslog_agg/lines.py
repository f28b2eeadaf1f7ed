"""How a message is written: one text or JSON line per message.

text: `<received_at> <peer> <original message>` (LF and CR inside the message escaped as `\\n`,
`\\r`, other control characters as `\\xNN`/`\\uNNNN`: see text.py), close to Cloud Foundry's
`%fromhost% -- %msg%` but keeping the whole original line.

json: one object per line with every field of the message; absent fields are null, `raw` and
`error` are set only for unparsed input. Strings are escaped with the C encoder of the `json`
module directly: `json.dumps` on a dict costs several microseconds a message.
"""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from typing import Literal

from fobs.syslog_agg.message import SyslogMessage
from fobs.syslog_agg.text import escape_controls

__all__ = ["Formatter", "format_received", "LineFormat"]

LineFormat = Literal["text", "json"]

_enc = json.encoder.encode_basestring  # C accelerated
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def format_received(when: float) -> str:
    """RFC 3339 UTC with microseconds: the `received_at` of every line of one receive batch."""
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def _i(value: int | None) -> str:
    return "null" if value is None else str(value)


_TRAILING = frozenset(("", "\r", "\n", "\x00"))
_PLAIN = bytes([0x09, *range(0x20, 0x7F)])  # bytes written as they are in a text line
EXACT_ERRORS = 16  # invalid sequences up to which invalid UTF-8 keeps its valid characters
BINARY_PREFIX = 256  # bytes decoded first to tell binary input (a clean line is ~200 B)
# the last invalid input, its text, and whether that text is printable ASCII (binary input's)
_last_invalid: tuple[bytes | None, str, bool] = (None, "", False)


def decode_raw(raw: bytes) -> str:
    """The original bytes as text; invalid UTF-8 shows as `\\xNN`.

    Valid UTF-8 (nearly every message) costs one C decode. Invalid input must not cost much
    more (hostile senders): `backslashreplace` calls its handler once per invalid byte (about
    0.3 µs each, half a millisecond for 8 KiB of random bytes), so it is used only while the
    input has at most EXACT_ERRORS invalid sequences: then valid characters stay as they are and
    only invalid bytes become `\\xNN`. Past that the input is binary and is written as a
    Python bytes literal shows it, in one C pass (`codecs.escape_encode`): `\\xNN` for every
    byte outside printable ASCII, `\\t`, `\\n`, `\\r`, and `\\\\`, `\\'` for a backslash and a
    quote; about 20 µs for 8 KiB of random bytes instead of 500. Whether input is binary is
    seen in its first BINARY_PREFIX bytes when they hold enough invalid sequences, so a long
    binary datagram is not decoded a second time to count them.
    """
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return decode_invalid(raw)


def decode_invalid(raw: bytes) -> str:
    """`decode_raw` of input that `raw.decode()` has just refused."""
    global _last_invalid
    last, text, _ = _last_invalid
    if raw is last:  # the parser decoded it, now the formatter: once is enough
        return text
    # Cutting a prefix can add one invalid sequence (a character cut in two), hence the + 1.
    binary = (len(raw) > BINARY_PREFIX and raw[:BINARY_PREFIX].decode("utf-8", "replace")
              .count("\ufffd") > EXACT_ERRORS + 1)
    if not binary and raw.decode("utf-8", "replace").count("\ufffd") <= EXACT_ERRORS:
        text = raw.decode("utf-8", "backslashreplace")  # (`replace`: a fast path in C)
    else:
        binary = True
        text = codecs.escape_encode(raw)[0].decode("ascii")
    _last_invalid = (raw, text, binary)
    return text


def raw_text(raw: bytes) -> str:
    """The original message as one line of text."""
    return escape_controls(decode_raw(raw).rstrip("\r\n\x00"))


class Formatter:
    """Builds lines in one format; `line()` is called once per stored message."""

    def __init__(self, fmt: LineFormat) -> None:
        self.format = fmt
        self.line = self._json if fmt == "json" else self._text

    @staticmethod
    def _text(msg: SyslogMessage, component: str, received: str, peer: str) -> str:
        raw = msg.raw  # raw_text, inlined: this runs once per message
        if not raw.translate(None, _PLAIN):  # printable ASCII and tabs only (nearly always)
            return f"{received} {peer} {raw.decode('ascii')}\n"
        last, text, binary = _last_invalid
        if raw is not last:  # else the parser has just decoded it: no second failed decode
            try:
                text = raw.decode()
                binary = False
            except UnicodeDecodeError:
                text = decode_invalid(raw)
                binary = _last_invalid[2]
        if binary:  # printable ASCII already: its CR, LF and NUL are escapes
            return f"{received} {peer} {text}\n"
        if text[-1:] in _TRAILING:
            text = text.rstrip("\r\n\x00")
        return f"{received} {peer} {escape_controls(text)}\n"

    @staticmethod
    def _json(msg: SyslogMessage, component: str, received: str, peer: str) -> str:
        ts = msg.timestamp
        sd = msg.structured_data
        unparsed = msg.error is not None
        return (
            f'{{"received_at":"{received}","component":{_enc(component)},'
            f'"format":"{msg.format}","facility":{_i(msg.facility)},'
            f'"severity":{_i(msg.severity)},'
            f'"timestamp":{"null" if ts is None else _enc(ts.isoformat())},'
            f'"hostname":{_s(msg.hostname)},"app_name":{_s(msg.app_name)},'
            f'"procid":{_s(msg.procid)},"msgid":{_s(msg.msgid)},'
            f'"structured_data":{_dumps(sd) if sd else "{}"},'
            f'"message":{_s(msg.message)},'
            f'"raw":{_enc(decode_raw(msg.raw)) if unparsed else "null"},'
            f'"error":{_s(msg.error)},"truncated":{"true" if msg.truncated else "false"},'
            f'"peer":{_enc(peer)}}}\n')
