"""The errors the collector raises itself, by the stage that raises them.

    CollectorError
    ├── SpoolError          a spool directory cannot be used (locked by another process, not
    │                       writable) or a record cannot be stored; at start-up the fan-out turns
    │                       it into a ConfigError naming `outputs.spool_dir`
    ├── ResponseTooLarge    a scrape's body went past `scrape.max_response_bytes` (or the bodies
    │                       in flight together past their budget); the scrape reports it as
    │                       error class `too_large` and never raises it further
    └── BadResponse         a scrape's response broke HTTP/1.1 as `collector/http.py` reads it
        │                   (status line, headers, framing) or came in a Content-Encoding the
        │                   collector does not inflate, or a broken one; error class `other`
        └── ServerDisconnected  the connection closed before the response was complete

Two other trees sit beside this one: what a historian write ends in (`HistorianError`, in
`fobs.collector.historians.errors`), and a user's config mistake (`ConfigError`, in
`fobs.components.config`), which every daemon shares.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of the collector's own errors."""


class SpoolError(CollectorError):
    """The spool directory cannot be used (in use by another process, not writable…)."""


class ResponseTooLarge(CollectorError):
    """The response body went past `max_response_bytes` (or all bodies in flight past theirs)."""

    def __init__(self, limit: int, what: str = "response") -> None:
        super().__init__(f"{what} larger than {limit} bytes")
        self.limit = limit


class BadResponse(CollectorError):
    """A response the scrape client refuses (malformed HTTP, an encoding it cannot read)."""


class ServerDisconnected(BadResponse):
    """The connection closed before the response ended; `answered`: some of it had come."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered
