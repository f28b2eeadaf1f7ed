"""The parsed syslog message: what the parser produces and the store, metrics and tail consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Format = Literal["rfc5424", "rfc3164", "unparsed"]


@dataclass(slots=True)
class SyslogMessage:
    """One received message. Absent header fields are None; `raw` is always the bytes received.

    `error` is set when the input could not be parsed (format "unparsed") and says why; a
    message that parsed but was cut at the size limit has `truncated` set instead.
    """

    raw: bytes
    format: Format
    facility: int | None = None
    severity: int | None = None
    timestamp: datetime | None = None
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)
    message: str | None = None
    error: str | None = None
    truncated: bool = False
    version: int | None = None
