"""Points → InfluxDB line protocol, fast and escaped the way influxd's parser reads it back.

influxdb-client's `Point.to_line_protocol()` costs ~5 µs a point; the collector's hot path cannot
afford that, so this encoder caches what repeats (a series' escaped `measurement,tags ` prefix,
escaped field keys, the batch's timestamp) and formats only the values per point.

Rules (checked against influxd 1.6.7's parser, see tests/collector/test_lineprotocol.py):
- measurement: `,` and space are escaped; tag keys, tag values and field keys: `,`, `=` and space.
- tags are sorted by key; a tag with an empty value is left out (line protocol has no empty tag).
- string field values are quoted, with `"` and `\\` escaped. One holding a newline is dropped
  and counted (`fields_unencodable`): influxd's scanner honours the quotes, but VictoriaMetrics
  splits the line there and loses the whole point, and line protocol has no escape for it (a
  `\\n` is read back as backslash + n). One line is one point, which the batch splitter needs.
- ints get the `i` suffix and must fit int64; bools are `true`/`false`; floats use `repr`.
- NaN and ±inf are not representable: the field is dropped and counted (`fields_nonfinite`).
- a name (measurement, tag key or value, field key) cannot carry a newline, and a backslash in
  it must not end it or precede `\\ , = "` or space: line protocol has no escape for the
  backslash itself, and influxd 1.x, 2.x and VictoriaMetrics read such names differently. Such
  a name is refused, never rewritten: a bad field key drops the field (`fields_unencodable`), a
  bad measurement or tag drops the point (`points_unencodable`) rather than silently merging
  it into another series. So do an empty tag key, a tag or field key named `time`, a
  measurement starting with `#` or a tab, a series key over 65,000 bytes and a field key over
  500 bytes (influxd refuses `series key + field key` over 65,535 bytes for the whole batch).
- a point left without fields is dropped (`points_empty`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from fobs.collector.point import FieldValue, Point

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
TIME_MIN = -9223372036854775806        # influxd's models.MinNanoTime / MaxNanoTime
TIME_MAX = 9223372036854775806
MAX_SERIES_KEY = 65_000                # bytes of `measurement,tags` as escaped
MAX_FIELD_KEY = 500                    # bytes of an escaped field key
CACHE_LIMIT = 100_000                  # cached series prefixes / field keys before a reset

_BAD_BACKSLASH = re.compile(r'\\(?:[\\,= "]|$)')
_MEASUREMENT_ESC = str.maketrans({",": "\\,", " ": "\\ "})
_NAME_ESC = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})


class Encoded(NamedTuple):
    data: bytes        # newline-terminated lines, UTF-8
    points: int        # lines in `data`


@dataclass
class EncoderStats:
    """Counters since the encoder was made (read by the collector's metrics)."""

    points: int = 0                # lines produced
    points_unencodable: int = 0    # bad measurement, tag, timestamp or series key; not UTF-8
    points_empty: int = 0          # no representable field left
    fields_nonfinite: int = 0      # NaN / ±inf
    fields_unencodable: int = 0    # bad key, int out of range, unsupported type


def _name_ok(name: str) -> bool:
    if "\\" not in name and "\n" not in name:
        return True
    return "\n" not in name and _BAD_BACKSLASH.search(name) is None


def _escape_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Encoder:
    """Encodes batches of `Point`s; one per process is enough, its caches are bounded.

    Usage:
        enc = Encoder()
        data, n = enc.encode(points)     # bytes ready for /write, n lines
        enc.stats.points_unencodable     # counters (fobs.collector.metrics declares them)
    """

    def __init__(self, cache_limit: int = CACHE_LIMIT) -> None:
        self.stats = EncoderStats()
        self._cache_limit = cache_limit
        # tag items → measurement → `measurement,tags ` prefix; field key → `,key=`;
        # "" marks a series or field key that cannot be written (a real one is never empty)
        self._series: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._keys: dict[str, str] = {}
        self._cached = 0

    def encode(self, points: Iterable[Point]) -> Encoded:
        lines = self.lines(points)
        if not lines:
            return Encoded(b"", 0)
        count = len(lines)
        lines.append("")                     # the trailing newline, without another copy
        try:
            data = "\n".join(lines).encode()
        except UnicodeEncodeError:           # lone surrogates: find and drop those lines
            lines.pop()
            good = []
            for line in lines:
                try:
                    good.append(line.encode() + b"\n")
                except UnicodeEncodeError:
                    self.stats.points_unencodable += 1
            self.stats.points -= len(lines) - len(good)
            return Encoded(b"".join(good), len(good))
        return Encoded(data, count)

    def lines(self, points: Iterable[Point]) -> list[str]:
        """One line (without newline) per encodable point; the hot loop, kept flat on purpose."""
        if self._cached > self._cache_limit or len(self._keys) > self._cache_limit:
            self._series.clear()
            self._keys.clear()
            self._cached = 0
        series = self._series
        keys = self._keys
        stats = self.stats
        int_min, int_max, time_min, time_max = INT64_MIN, INT64_MAX, TIME_MIN, TIME_MAX
        out: list[str] = []
        append = out.append
        last_tags: object = None
        by_measurement: dict[str, str] = {}   # prefixes for the current tags
        last_t: object = None
        stamp = ""
        for m, tags, fields, t in points:
            if tags is not last_tags:          # a scrape's points share one tags dict
                last_tags = tags
                tag_items = tuple(tags.items())
                try:
                    by_measurement = series[tag_items]
                except KeyError:
                    by_measurement = series[tag_items] = {}
                except TypeError:              # unhashable junk: _prefix refuses it below
                    by_measurement = {}
            try:
                prefix = by_measurement[m]
            except KeyError:
                prefix = by_measurement[m] = self._prefix(m, tags)
                self._cached += 1
            except TypeError:                  # an unhashable measurement
                prefix = ""
            if not prefix:
                stats.points_unencodable += 1
                continue
            if t is not last_t:
                if type(t) is not int or not time_min <= t <= time_max:
                    if not isinstance(t, int) or not time_min <= t <= time_max:
                        stats.points_unencodable += 1
                        continue
                    t = int(t)
                stamp = f" {t}"
                last_t = t
            body = ""
            values: Iterable[tuple[str, Any]] = fields.items()   # checked by type() below
            for k, v in values:
                try:
                    ek = keys[k]
                except KeyError:
                    ek = keys[k] = self._field_key(k)
                if not ek:
                    stats.fields_unencodable += 1
                    continue
                tp = type(v)
                if tp is float:
                    if v - v == 0.0:
                        body = f"{body}{ek}{v!r}"
                    else:
                        stats.fields_nonfinite += 1
                elif tp is int:
                    if int_min <= v <= int_max:
                        body = f"{body}{ek}{v}i"
                    else:
                        stats.fields_unencodable += 1
                elif tp is bool:
                    body = f"{body}{ek}{'true' if v else 'false'}"
                elif tp is str:
                    if "\n" in v:
                        stats.fields_unencodable += 1
                    else:
                        body = f'{body}{ek}"{_escape_string(v)}"'
                else:
                    text = self._odd_value(v)
                    if text is not None:
                        body = f"{body}{ek}{text}"
            if body:
                append(f"{prefix}{body[1:]}{stamp}")
            else:
                stats.points_empty += 1
        stats.points += len(out)
        return out

    def _prefix(self, measurement: object, tags: Mapping[str, str]) -> str:
        """`measurement,k=v,… ` for a series, or "" when it cannot be written faithfully."""
        if (type(measurement) is not str or not measurement or measurement[0] in "#\t"
                or not _name_ok(measurement)):
            return ""
        parts = [measurement.translate(_MEASUREMENT_ESC)]
        for k, v in sorted(tags.items()):
            if type(k) is not str or type(v) is not str:
                return ""
            if not v:
                continue
            if not k or k == "time" or not _name_ok(k) or not _name_ok(v):
                return ""
            parts.append(f"{k.translate(_NAME_ESC)}={v.translate(_NAME_ESC)}")
        prefix = ",".join(parts)
        if len(prefix.encode(errors="surrogatepass")) > MAX_SERIES_KEY:
            return ""
        return prefix + " "

    def _field_key(self, key: object) -> str:
        """`,key=` escaped (the leading comma is cut from the first field), or ""."""
        if type(key) is not str or not key or key == "time" or not _name_ok(key):
            return ""
        escaped = key.translate(_NAME_ESC)
        if len(escaped.encode(errors="surrogatepass")) > MAX_FIELD_KEY:
            return ""
        return f",{escaped}="

    def _odd_value(self, v: FieldValue | object) -> str | None:
        """Subclasses of the four field types (IntEnum, numpy scalars that subclass float…)."""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            if INT64_MIN <= v <= INT64_MAX:
                return f"{int(v)}i"
        elif isinstance(v, float):
            f = float(v)
            if f - f == 0.0:
                return repr(f)
            self.stats.fields_nonfinite += 1
            return None
        elif isinstance(v, str) and "\n" not in v:
            return f'"{_escape_string(str(v))}"'
        self.stats.fields_unencodable += 1
        return None


def encode(points: Iterable[Point]) -> bytes:
    """Encode with a throwaway encoder (tests, one-off tools); daemons keep an `Encoder`."""
    return Encoder().encode(points).data
