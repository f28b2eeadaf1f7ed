"""Coercion of untrusted varz values into fixed field types, and the checks that keep tags bounded.

Varz is user data: a number may arrive as a string, a bool, a float where an int was meant, an
integer too large for InfluxDB, or NaN. Every function here answers None for a value it cannot
use, and never raises, so a handler can count the value as skipped and move on.
"""

from __future__ import annotations

import math
import re

from fobs.components import wire

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_NUMERIC_TEXT = 40          # longer strings are not numbers we accept
MAX_TAG_VALUE = 64

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_INTEGER = re.compile(r"[+-]?\d{1,19}")
# Tag values: short printable words. Anything else (control characters, quotes, long text) is
# refused rather than escaped, because a tag that needs escaping is rarely a bounded category.
_TAG_VALUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .:/+@-]{0,63}")
# Text that names one of an unbounded set of things: a UUID, a long hex id, an IPv4 address
# (also with "_" for ".", as it appears in keys). Such a value is no tag, such a key no field.
UNBOUNDED = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-|[0-9a-fA-F]{16}|\d{1,3}[._]\d{1,3}[._]\d{1,3}[._]\d{1,3}")


def to_float(raw: object) -> float | None:
    """A finite float from a JSON number, a bool (0/1) or a numeric string; else None."""
    if type(raw) is float:           # exact types first: this runs for every value scraped
        return raw if raw - raw == 0.0 else None     # finite
    if type(raw) is int:
        try:
            return float(raw)
        except OverflowError:
            return None
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int):
        try:
            return float(raw)
        except OverflowError:
            return None
    if isinstance(raw, str) and len(raw) <= MAX_NUMERIC_TEXT:
        text = raw.strip()
        if _NUMBER.fullmatch(text):
            value = float(text)
            return value if math.isfinite(value) else None
    return None


def to_int(raw: object) -> int | None:
    """An int64 from a JSON number (floats truncated), a bool or a numeric string; else None."""
    if type(raw) is int:
        return raw if INT64_MIN <= raw <= INT64_MAX else None
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw if INT64_MIN <= raw <= INT64_MAX else None
    if isinstance(raw, str) and len(raw) <= MAX_NUMERIC_TEXT and _INTEGER.fullmatch(raw.strip()):
        value = int(raw.strip())
        return value if INT64_MIN <= value <= INT64_MAX else None
    number = to_float(raw)
    if number is None or not INT64_MIN <= number < 2.0**63:
        return None
    return int(number)


def parse_uptime(raw: object) -> int | None:
    """Seconds from the CF uptime string `Nd:Nh:Nm:Ns` (Ruby and Go components), or a number."""
    if isinstance(raw, str):
        return wire.parse_uptime(raw)
    return to_int(raw)


def tag_value(raw: object) -> str | None:
    """`raw` as a tag value if it is a short word that does not name an unbounded thing."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int) and 0 <= raw < 10**6:
        return str(raw)
    if not isinstance(raw, str) or len(raw) > MAX_TAG_VALUE:
        return None
    if not _TAG_VALUE.fullmatch(raw) or UNBOUNDED.search(raw):
        return None
    return raw


# Tags the scrape code owns (target identity): a handler never sets them.
IDENTITY_TAGS = frozenset({"deployment", "job", "index", "ip", "role", "name", "endpoint"})
_FIELD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def field_name(raw: object) -> str | None:
    """`raw` as a field key if it is a short identifier-like string (dots and dashes allowed)."""
    if isinstance(raw, str) and _FIELD_NAME.fullmatch(raw):
        return raw
    return None


def tag_key(raw: object) -> str | None:
    """`raw` as a handler-set tag key: an identifier that is not one of the identity tags."""
    if isinstance(raw, str) and _TAG_KEY.fullmatch(raw) and raw not in IDENTITY_TAGS:
        return raw
    return None
