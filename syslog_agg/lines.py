"""How a message is written: one text or JSON line per message.

text: `<received_at> <peer> <original message>` (LF and CR inside the message escaped as `\\n`,
`\\r`, other control characters as `\\xNN`/`\\uNNNN`: see text.py), close to Cloud Foundry's
`%fromhost% -- %msg%` but keeping the whole original line.

json: one object per line with every field of the message; absent fields are null, `raw` and
`error` are set only for unparsed input. Strings are escaped with the C encoder of the `json`
module directly: `json.dumps` on a dict costs several microseconds a message.
"""

from __future__ import annotations

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


def decode_raw(raw: bytes) -> str:
    """The original bytes as text; invalid UTF-8 shows as `\\xNN`."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


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
        return f"{received} {peer} {raw_text(msg.raw)}\n"

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
