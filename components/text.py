"""Untrusted text made safe for a terminal, a log line or a text file: the one escape function.

A component type, a uuid, an HTTP error, a status document or a syslog message comes from
whoever can reach NATS, a port or a socket. Printed raw, an ESC sequence such as `\\x1b[2J` or
`\\x1b]0;…\\x07` acts on the reader's terminal (clears it, retitles it, recolours or hides text)
and a newline forges a log line. Every C0 control character except tab, DEL and every C1 control
character (U+0080 to U+009F, which some terminals take as 8-bit escapes) is therefore written as
an escape: `\\n` and `\\r` for LF and CR (one message stays one line), `\\xNN` for the other C0 and
DEL, `\\uNNNN` for C1. Used wherever such text meets a terminal or a text file: the collector's
log lines and `fobs status` table, the syslog aggregator's text files and `fobs tail`.
"""

from __future__ import annotations

import re

__all__ = ["escape_controls"]

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
_PLAIN = bytes([0x09, *range(0x20, 0x7F)])  # ASCII that stays as it is: tab and printables


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with control characters (not tab) escaped; `text` itself when there are none."""
    if text.isascii() and not text.encode("ascii").translate(None, _PLAIN):
        return text  # the common case in C: about 0.3 µs for a 200-character syslog line
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) is not None else text
