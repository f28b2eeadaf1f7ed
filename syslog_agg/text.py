"""Untrusted text made safe for a terminal or a text file.

Syslog messages come from anyone who can reach the port. Written raw into a text log file (read
later with `less -R`, `cat` or `tail -f`) or printed by `fobs tail`, an ESC sequence such as
`\\x1b[2J` or `\\x1b]0;…\\x07` would act on the reader's terminal: clear it, retitle it, recolour
or hide text. Every C0 control character except tab, DEL and every C1 control character (U+0080
to U+009F, which some terminals take as 8-bit escapes) is therefore written as an escape:
`\\n` and `\\r` for LF and CR (one message stays one line), `\\xNN` for the other C0 and DEL,
`\\uNNNN` for C1. JSON lines need no more: the encoder escapes C0 as `\\u00NN` itself.
"""

from __future__ import annotations

import re

__all__ = ["escape_controls"]

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with control characters (not tab) escaped; `text` itself when there are none."""
    if text.isprintable():  # C fast path (every control character is non-printable)
        return text
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) is not None else text
