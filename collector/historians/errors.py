"""What a historian write can end in, and the one table that maps HTTP answers onto it.

Each historian translates its transport's exceptions (aiohttp, influxdb-client, OSError) into
these at its boundary, so the running output decides by category and never sees a library type:

    HistorianError
    ├── WriteError          transient: keep the batch, retry it with backoff (`retry_after` if
    │                       the server said when); network errors, timeouts, 5xx, 429, 408
    ├── TooLargeError       413: split the batch in halves and send those
    ├── RejectError         the data is bad (400 and other 4xx): quarantine the batch, move on
    │   └── PartialWriteError  the server stored some points and dropped `rejected` of them
    └── FatalError          retrying cannot help until the config or the server changes
                            (401, 403, unknown database or bucket, wrong URL): keep the batch,
                            retry slowly, report the output unhealthy

The status policy is Telegraf's (`outputs.influxdb` / `outputs.influxdb_v2`), except that a bad
batch is quarantined to a file with the reason instead of being dropped.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Iterator, Mapping

import aiohttp

MAX_REASON = 300                     # characters of a server's error text kept in messages


class HistorianError(Exception):
    """Base of every write outcome other than success."""


class WriteError(HistorianError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLargeError(HistorianError):
    pass


class RejectError(HistorianError):
    pass


class PartialWriteError(RejectError):
    def __init__(self, message: str, rejected: int | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected     # None: the server did not say how many


class FatalError(HistorianError):
    pass


_DROPPED = re.compile(r"dropped=(\d+)")


def reason(body: bytes | str, limit: int = MAX_REASON) -> str:
    """The server's error text: the `error`/`message` of a JSON body, else the body, shortened."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            text = str(doc.get("error") or doc.get("message") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@contextlib.contextmanager
def network_errors(url: str, timeout: float, what: str = "write") -> Iterator[None]:
    """Turn a transport failure (timeout, refused, reset, DNS…) into a WriteError."""
    try:
        yield
    except TimeoutError:
        raise WriteError(f"{what}: no answer from {url} within {timeout:g}s") from None
    except (aiohttp.ClientError, OSError) as e:
        raise WriteError(f"{what}: {url}: {e or type(e).__name__}") from None


def from_status(status: int, body: bytes | str, headers: Mapping[str, str] | None = None,
                what: str = "write") -> HistorianError:
    """The outcome for a non-2xx answer (Telegraf's table; see the module docstring)."""
    full = reason(body, limit=1 << 20)
    text = reason(full) or f"HTTP {status}"
    message = f"{what}: HTTP {status}: {text}"
    if status == 413:
        return TooLargeError(message)
    if status in (408, 429) or status >= 500:
        return WriteError(message, retry_after((headers or {}).get("Retry-After")))
    if status in (401, 403, 404):
        return FatalError(message)
    if 400 <= status < 500:
        if "partial write" in full:
            # influxd counts type conflicts and the like in dropped=N, not unparseable lines
            found = _DROPPED.search(full)
            unparsed = full.count("unable to parse")
            return PartialWriteError(message, int(found.group(1)) + unparsed if found else None)
        return RejectError(message)
    return WriteError(message)
