"""The line-protocol encoder: exact bytes for the rules, round trips through influxd's parser."""

from __future__ import annotations

import enum
import json
import math
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fobs.collector.lineprotocol import INT64_MAX, INT64_MIN, Encoder, encode
from fobs.collector.point import Point
from tests.collector.write_helpers import new_database
from tests.services import Influxd

T = 1_700_000_000_123_456_789


def lines(*points: Point) -> list[str]:
    return encode(points).decode().splitlines()


# --- exact output -------------------------------------------------------------------------------

def test_types_and_tag_order() -> None:
    p = Point("cpu", {"z": "1", "a": "2"}, {"f": 1.5, "i": -3, "t": True, "n": False, "s": "x"}, T)
    assert lines(p) == [f'cpu,a=2,z=1 f=1.5,i=-3i,t=true,n=false,s="x" {T}']


def test_escaping_of_names() -> None:
    p = Point("a b,c=d", {"k 1,=": "v 1,=\"é"}, {"f k,=": 1.0}, 1)
    assert lines(p) == ['a\\ b\\,c=d,k\\ 1\\,\\==v\\ 1\\,\\="é f\\ k\\,\\==1.0 1']


def test_string_field_escaping() -> None:
    p = Point("m", {}, {"s": 'a"b\\c\td\\'}, 1)
    assert encode([p]) == b'm s="a\\"b\\\\c\td\\\\" 1\n'


def test_string_fields_with_a_newline_are_dropped() -> None:
    enc = Encoder()
    assert enc.encode([Point("m", {}, {"s": "two\nlines", "f": 1.0}, 1)]).data == b"m f=1.0 1\n"
    assert enc.stats.fields_unencodable == 1


def test_empty_tag_values_are_left_out() -> None:
    assert lines(Point("m", {"a": "", "b": "x"}, {"f": 1}, 1)) == ["m,b=x f=1i 1"]


def test_float_repr_is_exact() -> None:
    values = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0, 1e22, 123456789.123]
    for v in values:
        text = lines(Point("m", {}, {"f": v}, 1))[0].split(" ")[1][2:]
        assert float(text) == v and text == repr(v)


def test_nonfinite_fields_are_dropped_and_counted() -> None:
    enc = Encoder()
    out = enc.encode([Point("m", {}, {"a": math.nan, "b": 1.0, "c": math.inf}, 1),
                      Point("m", {}, {"a": -math.inf}, 2)])
    assert out.data == b"m b=1.0 1\n" and out.points == 1
    assert enc.stats.fields_nonfinite == 3 and enc.stats.points_empty == 1


def test_int_range() -> None:
    enc = Encoder()
    fields = {"max": INT64_MAX, "min": INT64_MIN, "big": INT64_MAX + 1}
    out = enc.encode([Point("m", {}, fields, 1)])
    assert out.data == f"m max={INT64_MAX}i,min={INT64_MIN}i 1\n".encode()
    assert enc.stats.fields_unencodable == 1


@pytest.mark.parametrize("measurement, tags", [
    ("", {}), ("#comment", {}), ("\tm", {}), ("m\nx", {}), ("ends\\", {}),
    ("m", {"": "v"}), ("m", {"time": "v"}), ("m", {"t": "a\nb"}), ("m", {"t": "ab\\"}),
    ("m", {"t": "a\\ b"}), ("m", {"t": "a\\,b"}), ("m", {"t": "a\\=b"}), ("m", {"t": 'a\\"b'}),
    ("m", {"t": "a\\\\b"}), ("m", {"t": "x" * 65_001}), ("m", {"t": 3}), ("m", {"t": ["x"]}),
    (["m"], {}),
])
def test_series_that_cannot_be_written_faithfully_drop_the_point(measurement: object,
                                                                 tags: dict[str, object]) -> None:
    enc = Encoder()
    out = enc.encode([Point(measurement, tags, {"f": 1.0}, 1),  # type: ignore[arg-type]
                      Point("ok", {}, {"f": 1.0}, 2)])
    assert out.data == b"ok f=1.0 2\n"
    assert enc.stats.points_unencodable == 1 and enc.stats.points == 1


@pytest.mark.parametrize("key", ["", "time", "a\nb", "ab\\", "a\\,b", "k" * 501])
def test_field_keys_that_cannot_be_written_drop_the_field(key: str) -> None:
    enc = Encoder()
    assert enc.encode([Point("m", {}, {key: 1.0, "ok": 2.0}, 1)]).data == b"m ok=2.0 1\n"
    assert enc.stats.fields_unencodable == 1


def test_backslashes_that_read_back_the_same_are_kept() -> None:
    assert lines(Point("m\\x", {"t": "C:\\temp\\a b"}, {"k\\y": 1.0}, 1)) == [
        "m\\x,t=C:\\temp\\a\\ b k\\y=1.0 1"]


def test_subclasses_of_field_types() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Ratio(float):
        pass

    enc = Encoder()
    out = enc.encode([Point("m", {}, {"l": Level.HIGH, "r": Ratio(0.5), "x": None,  # type: ignore
                                      "y": [1]}, 1)])  # type: ignore[dict-item]
    assert out.data == b"m l=3i,r=0.5 1\n" and enc.stats.fields_unencodable == 2


def test_bad_timestamps_drop_the_point() -> None:
    enc = Encoder()
    out = enc.encode([Point("m", {}, {"f": 1}, 2**63),
                      Point("m", {}, {"f": 1}, "1"),  # type: ignore[arg-type]
                      Point("m", {}, {"f": 1}, -5)])
    assert out.data == b"m f=1i -5\n" and enc.stats.points_unencodable == 2


def test_lone_surrogates_drop_only_their_line() -> None:
    enc = Encoder()
    out = enc.encode([Point("m", {}, {"s": "ok"}, 1), Point("m", {}, {"s": "bad\ud800"}, 2)])
    assert out == (b'm s="ok" 1\n', 1)
    assert enc.stats.points == 1 and enc.stats.points_unencodable == 1


def test_shared_tags_dict_and_changing_measurements() -> None:
    tags = {"host": "h"}
    points = [Point(f"m{i % 3}", tags, {"v": i}, T) for i in range(6)]
    points.append(Point("m0", {"host": "other"}, {"v": 9}, T + 1))
    assert lines(*points) == [f"m{i % 3},host=h v={i}i {T}" for i in range(6)] + [
        f"m0,host=other v=9i {T + 1}"]


def test_caches_are_bounded() -> None:
    enc = Encoder(cache_limit=10)
    for i in range(50):
        enc.encode([Point("m", {"i": str(i)}, {f"f{i}": 1}, 1)])
    assert enc._cached <= 11 and len(enc._series) <= 11 and len(enc._keys) <= 11
    assert enc.stats.points == 50


def test_empty_input() -> None:
    assert Encoder().encode([]) == (b"", 0)


# --- influxd's own parser -----------------------------------------------------------------------

def write(influxd: Influxd, db: str, data: bytes) -> tuple[int, str]:
    req = urllib.request.Request(f"{influxd.url}/write?db={db}&precision=ns", data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def read_back(influxd: Influxd, db: str) -> set[tuple[str, tuple[tuple[str, str], ...],
                                                      tuple[tuple[str, object], ...], int]]:
    """Every stored point as (measurement, tags, fields, time), read through /query."""
    got = set()
    result = influxd.query("SELECT * FROM /.*/ GROUP BY *", db)["results"][0]
    for series in result.get("series", []):
        tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v))
        for row in series["values"]:
            fields = tuple(sorted((k, v) for k, v in zip(series["columns"][1:], row[1:],
                                                         strict=True)
                                  if v is not None))
            got.add((series["name"], tags, fields, row[0]))
    return got


def expected(points: list[Point]) -> set[tuple[str, tuple[tuple[str, str], ...],
                                               tuple[tuple[str, object], ...], int]]:
    return {(p.measurement, tuple(sorted((k, v) for k, v in p.tags.items() if v)),
             tuple(sorted(p.fields.items())), p.time_ns) for p in points}


NASTY = [
    "héllo wörld", "🚀 launch, go=now", 'say "hi"', "C:\\temp\\file", "a=b,c=d", " padded ",
    "日本語のテキスト", "tab\there", "cr\rhere", "trailing space ", "=", ",", " ", '"',
    "emoji 👩‍👩‍👧‍👦 family", "x" * 5_000,
]


def test_nasty_tags_measurements_and_keys_round_trip(influxd_shared: Influxd, db: str) -> None:
    points = [Point(f"m {i}, ={v[:20]}", {"tag key " + str(i): v, "other,=": v[::-1]},
                    {f"field {v[:30]}": float(i)}, T + i) for i, v in enumerate(NASTY)]
    enc = Encoder()
    data = enc.encode(points).data
    assert enc.stats.points == len(points)
    assert write(influxd_shared, db, data) == (204, "")
    assert read_back(influxd_shared, db) == expected(points)


def test_nasty_string_fields_round_trip(influxd_shared: Influxd, db: str) -> None:
    values = NASTY + ["ends with backslash\\", "\\starts", "\\", "\\\\", 'q"',
                      "\\n literal", "y" * 100_000, ""]
    points = [Point("strings", {"i": str(i)}, {"s": v, "n": i, "b": i % 2 == 0}, T + i)
              for i, v in enumerate(values)]
    assert write(influxd_shared, db, encode(points)) == (204, "")
    assert read_back(influxd_shared, db) == expected(points)


def test_numbers_round_trip(influxd_shared: Influxd, db: str) -> None:
    fields = {"max": INT64_MAX, "min": INT64_MIN, "tiny": 5e-324, "huge": 1.7976931348623157e308,
              "third": 1 / 3, "neg": -2.5e-10, "zero": 0.0}
    points = [Point("numbers", {}, fields, T)]
    assert write(influxd_shared, db, encode(points)) == (204, "")
    assert read_back(influxd_shared, db) == expected(points)


def test_what_influxd_cannot_take_is_why_we_refuse_it(influxd_shared: Influxd, db: str) -> None:
    """A tag value ending in a backslash escapes the separator that follows it: influxd refuses
    the whole request; a doubled backslash is stored doubled (1.x has no escape for it)."""
    status, error = write(influxd_shared, db, b"m,t=ab\\ f=1 1\n")
    assert status == 400 and "invalid tag format" in error
    assert write(influxd_shared, db, b"m,t=a\\\\b f=1 1\n") == (204, "")
    tags = influxd_shared.query('SHOW TAG VALUES FROM "m" WITH KEY = "t"', db)
    assert tags["results"][0]["series"][0]["values"] == [["t", "a\\\\b"]]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.text(max_size=60)),
                min_size=1, max_size=20))
def test_random_text_is_refused_or_read_back_identical(influxd_shared: Influxd,
                                                       pairs: list[tuple[str, str]]) -> None:
    db = new_database(influxd_shared)
    try:
        points = [Point("random", {"i": str(i), "tag": tag}, {"s": text, "n": i}, T + i)
                  for i, (tag, text) in enumerate(pairs)]
        enc = Encoder()
        out = enc.encode(points)
        assert out.points + enc.stats.points_unencodable == len(points)
        assert enc.stats.fields_unencodable == sum("\n" in str(p.fields["s"]) for p in points
                                                   if b",tag=" in encode([p]))
        kept = [Point(p.measurement, p.tags, {k: v for k, v in p.fields.items()
                                              if not (k == "s" and "\n" in str(v))}, p.time_ns)
                for p in points if b",tag=" in encode([p])]
        assert len(kept) == out.points
        if out.points:
            assert write(influxd_shared, db, out.data) == (204, "")
        assert read_back(influxd_shared, db) == expected(kept)
    finally:
        influxd_shared.query(f'DROP DATABASE "{db}"')


def test_query_helper_sees_json_exactly(influxd_shared: Influxd, db: str) -> None:
    """Guard for the helpers above: /query returns int64 and float64 values losslessly."""
    write(influxd_shared, db, b"g big=9223372036854775807i,f=0.30000000000000004 1\n")
    q = urllib.parse.urlencode({"q": 'SELECT * FROM "g"', "db": db, "epoch": "ns"})
    with urllib.request.urlopen(f"{influxd_shared.url}/query?{q}", timeout=5) as r:
        row = json.load(r)["results"][0]["series"][0]["values"][0]
    assert row == [1, 9223372036854775807, 0.30000000000000004]
