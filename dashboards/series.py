"""Input series of rule tests: promtool's expanding notation over line-protocol-ish series keys.

A series is `measurement,tag=value,… field` (line protocol's key and one field name; `\\,`,
`\\=` and `\\ ` escape as in line protocol) and its values use promtool's notation:

| notation | samples                                                      |
|----------|--------------------------------------------------------------|
| `1 2 3`  | the values themselves, one per interval                      |
| `a+bxn`  | a, a+b, …, a+n·b (n+1 samples); `a-bxn` steps down          |
| `axn`    | a repeated n+1 times                                         |
| `_`      | one missing sample; `_xn` n missing samples                  |

Sample i sits at i × interval on the test's clock, which starts at the Unix epoch (promtool's
`time()` is 0 at the start of a test too). InfluxDB has no staleness markers, so promtool's
`stale` is refused rather than quietly read as something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fobs.dashboards.errors import SeriesError

FIELD_TYPES = ("float", "int", "bool")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_STEP = r"[-+](?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(
    rf"(?P<blank>_)(?:x(?P<blanks>\d+))?$"
    rf"|(?P<start>{_NUMBER})(?:(?P<step>{_STEP})?x(?P<times>\d+))?$")
MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class SeriesKey:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    field: str


def parse_values(text: str) -> list[float | None]:
    """Expand promtool's notation into one value (or None for missing) per interval."""
    if not isinstance(text, str):
        raise SeriesError(f"values: expected a string, got {text!r}")
    out: list[float | None] = []
    for token in text.split():
        if token == "stale":
            raise SeriesError("values: 'stale' has no InfluxDB equivalent; use '_' for a "
                              "missing sample")
        match = _TOKEN.match(token)
        if match is None:
            raise SeriesError(f"values: cannot read {token!r} (expected a number, a+bxn, "
                              f"axn, _ or _xn)")
        if match.group("blank"):
            out.extend([None] * int(match.group("blanks") or 1))
        else:
            start = _number(match.group("start"))
            times = match.group("times")
            if times is None:
                out.append(start)
            else:
                step = float(match.group("step") or 0)
                out.extend(start + i * step for i in range(int(times) + 1))
        if len(out) > MAX_SAMPLES:
            raise SeriesError(f"values: more than {MAX_SAMPLES} samples")
    return out


def _number(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith("inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    return float(text)


def parse_key(text: str) -> SeriesKey:
    """`measurement,tag=v,… field` → SeriesKey; tags sorted by key, as InfluxDB stores them."""
    if not isinstance(text, str):
        raise SeriesError(f"series: expected a string, got {text!r}")
    parts = _split_unescaped(text.strip(), " ")
    if len(parts) != 2 or not parts[1]:
        raise SeriesError(f"series: expected 'measurement,tag=value,... field', got {text!r}")
    key, field = parts
    items = _split_unescaped(key, ",")
    measurement = _unescape(items[0])
    if not measurement:
        raise SeriesError(f"series: missing measurement in {text!r}")
    tags: dict[str, str] = {}
    for item in items[1:]:
        pair = _split_unescaped(item, "=")
        if len(pair) != 2 or not pair[0] or not pair[1]:
            raise SeriesError(f"series: expected tag=value, got {item!r} in {text!r}")
        tags[_unescape(pair[0])] = _unescape(pair[1])
    return SeriesKey(measurement, tuple(sorted(tags.items())), _unescape(field))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\([ ,=\\])", r"\1", text)


def _escape(text: str, special: str) -> str:
    return "".join("\\" + ch if ch in special else ch for ch in text)


def line_protocol(key: SeriesKey, values: Iterable[float | None], interval_ns: int,
                  field_type: str = "float") -> list[str]:
    """One line per present sample, stamped i × interval ns after the epoch."""
    if field_type not in FIELD_TYPES:
        raise SeriesError(f"type: must be one of {', '.join(FIELD_TYPES)}, got {field_type!r}")
    head = _escape(key.measurement, ", ") + "".join(
        f",{_escape(k, ',= ')}={_escape(v, ',= ')}" for k, v in key.tags)
    field = _escape(key.field, ",= ")
    lines = []
    for i, value in enumerate(values):
        if value is None:
            continue
        lines.append(f"{head} {field}={_field_value(value, field_type)} {i * interval_ns}")
    return lines


def _field_value(value: float, field_type: str) -> str:
    if field_type == "bool":
        return "true" if value else "false"
    if field_type == "int":
        if not math.isfinite(value) or value != int(value):
            raise SeriesError(f"values: {value!r} is not an integer (type = \"int\")")
        return f"{int(value)}i"
    if math.isnan(value) or math.isinf(value):
        raise SeriesError("values: InfluxDB cannot store NaN or Inf")
    return repr(float(value))
