"""Properties of every handler under hostile input: random JSON, mutated real payloads, and huge
or deeply nested documents. No handler raises, every field keeps its documented type, and no
handler sets an identity tag or an unbounded tag value.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fobs.collector import decode
from fobs.collector.handlers import HANDLERS, handler_for
from fobs.collector.handlers.generic import MAX_FIELDS
from fobs.collector.handlers.values import IDENTITY_TAGS, INT64_MAX, INT64_MIN
from fobs.components.metrics import DECLARATIONS_KEY
from tests.collector.handlers.golden import (
    BASE_TAGS,
    case_dirs,
    load_varz,
    render,
    run,
    schema_from_docs,
)

SCHEMA = schema_from_docs()
# One component type per handler (the Go types all share `contexts`), plus the pattern families.
TYPES = sorted({*{handler.name: t for t, handler in sorted(HANDLERS.items())}.values(),
                "MyaaS-Provisioner", "RaaS-Node", "Widget"})
CASES = [(case.parent.name, load_varz(case)) for case in case_dirs()]
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _keys(child)
    elif isinstance(value, list):
        for child in value:
            yield from _keys(child)


# Keys the real payloads use, so random documents reach the handlers' inner paths.
KNOWN_KEYS = sorted({key for _, varz in CASES for key in _keys(varz)})
leaves = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats() | st.text(max_size=12) | st.sampled_from(["RUNNING", "ok", "dea-3", "5"]))
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
json_values = st.recursive(
    leaves, lambda children: st.lists(children, max_size=4)
    | st.dictionaries(keys, children, max_size=5), max_leaves=30)


def check(component_type: str, varz: Any) -> None:
    points, stats = run(component_type, varz)
    assert stats.error is None, stats.error
    assert stats.points == len(points) and stats.skipped >= 0
    base = {**BASE_TAGS, "job": component_type}
    for point in points:
        doc = SCHEMA[point.measurement]
        for key, value in point.tags.items():
            assert isinstance(key, str) and isinstance(value, str)
            if key in IDENTITY_TAGS:
                assert value == base[key], (point.measurement, key, value)
            else:
                assert doc.any_tag or key in doc.tags, (point.measurement, key)
                assert 0 < len(value) <= 128 and value.isprintable(), (key, value)
        for name, field in point.fields.items():
            assert doc.field_type(name) is type(field), (point.measurement, name, field)
            if isinstance(field, float):
                assert math.isfinite(field)
            else:
                assert isinstance(field, int) and INT64_MIN <= field <= INT64_MAX


@pytest.mark.parametrize("component_type", TYPES)
@SETTINGS
@given(varz=st.dictionaries(keys, json_values, max_size=12))
def test_random_varz(component_type: str, varz: dict[str, Any]) -> None:
    check(component_type, varz)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


# Real payloads and the paths inside them (Widget/huge, which tests the bounds, is left out).
# Published declarations are not mutated: a declaration names its own measurement and fields, so
# a mutated one stores undocumented names by design (test_declared.py covers them).
MUTABLE = [(t, varz, paths) for t, varz in CASES if isinstance(varz, dict)
           for paths in [sorted((p for p in _paths(varz) if p[0] != DECLARATIONS_KEY), key=repr)]
           if len(paths) <= 1_000]


def mutated(data: st.DataObject, original: dict[str, Any], paths: list[tuple[Any, ...]]
            ) -> dict[str, Any]:
    """A copy of a real payload with one to four of its paths set to random JSON."""
    varz = copy.deepcopy(original)
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4)):
        target = varz
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = data.draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue                  # an earlier mutation replaced this path's parent
    return varz


@SETTINGS
@given(data=st.data())
def test_mutated_real_payloads(data: st.DataObject) -> None:
    component_type, original, paths = data.draw(st.sampled_from(MUTABLE))
    check(component_type, mutated(data, original, paths))


# Types whose handler decodes only the keys it reads (`decode.Partial`).
PARTIAL = sorted(t for t, handler in HANDLERS.items() if handler.decode is not decode.loads)


def check_own_decoder(component_type: str, varz: Any) -> None:
    """The handler's own decoder gives it what `json.loads` gives: the same points and skips."""
    body = json.dumps(varz).encode()        # NaN, lone surrogates: the fallback's cases
    expected = render(*run(component_type, json.loads(body)))
    assert render(*run(component_type, handler_for(component_type).decode(body))) == expected


def test_partial_decoders_exist_and_see_the_golden_cases_whole() -> None:
    assert "DEA" in PARTIAL
    for component_type, varz in CASES:
        if component_type in PARTIAL:
            check_own_decoder(component_type, varz)


@SETTINGS
@given(data=st.data())
def test_partial_decoders_see_what_loads_sees(data: st.DataObject) -> None:
    """Random and mutated real payloads of the types with a partial decoder."""
    component_type, original, paths = data.draw(st.sampled_from(
        [m for m in MUTABLE if m[0] in PARTIAL]))
    check_own_decoder(component_type, mutated(data, original, paths))
    check_own_decoder(component_type, data.draw(st.dictionaries(keys, json_values, max_size=12)))


HOSTILE = [None, True, "x", "12", -1.5, math.nan, math.inf, 2**64, -(2**70), 1e300, [], {},
           [1, "a"], {"a": {"b": [None]}}, [{"state": "RUNNING"}], "\n",
           "5a1c9e2b-7d3f-4a6b-9c8d-1e2f3a4b5c6d"]


@pytest.mark.parametrize(("component_type", "original", "paths"), MUTABLE,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(MUTABLE)])
def test_every_path_of_every_payload_survives_every_hostile_value(
        component_type: str, original: dict[str, Any], paths: list[tuple[Any, ...]]) -> None:
    """Deterministic single mutations: each path in turn set to each hostile value."""
    varz = copy.deepcopy(original)
    for path in paths:
        parent = varz
        for key in path[:-1]:
            parent = parent[key]
        kept = parent[path[-1]]
        for hostile in HOSTILE:
            parent[path[-1]] = hostile
            check(component_type, varz)
            if component_type in PARTIAL:
                check_own_decoder(component_type, varz)
        parent[path[-1]] = kept


def _deep(levels: int) -> Any:
    value: Any = 1
    for level in range(levels):
        value = {"d": value, "n": level} if level % 2 else [value, level]
    return value


HUGE = {
    "deep": _deep(20_000),
    "wide": {f"k{i}": i for i in range(50_000)},
    "long": list(range(50_000)),
    "instance_registry": {f"app{i}": {f"i{j}": {"state": "RUNNING", "limits": {"mem": 1}}
                                      for j in range(3)} for i in range(5_000)},
    "tags": {"component": {f"c{i}": {"requests": i} for i in range(5_000)}},
    "contexts": [{"name": f"c{i}", "metrics": [{"name": f"m{j}", "value": j} for j in range(50)]}
                 for i in range(100)],
    "log_counts": {f"level{i}": i for i in range(1_000)},
    "failures_by_reason": {f"r{i}": i for i in range(1_000)},
    "plans": [{"plan": f"p{i}", "score": i} for i in range(1_000)],
    "instances": {f"i{i}": "ok" for i in range(50_000)},
}


@pytest.mark.parametrize("component_type", TYPES)
def test_huge_and_deep_payloads_are_bounded(component_type: str) -> None:
    check(component_type, HUGE)
    points, stats = run(component_type, HUGE)
    assert len(points) <= 600
    assert all(len(point.fields) <= max(MAX_FIELDS, 1_000) for point in points)
    assert stats.skipped > 0


def test_field_types_do_not_depend_on_the_json_number_form() -> None:
    """1 and 1.0 (and "1") in varz give the same field type: the schema's, not the payload's."""
    for component_type, varz in CASES:
        if not isinstance(varz, dict):
            continue
        as_floats = _map_numbers(varz, float)
        as_ints = _map_numbers(varz, lambda n: int(n) if math.isfinite(n) else n)
        a, _ = run(component_type, as_floats)
        b, _ = run(component_type, as_ints)
        types_a = {(p.measurement, tuple(sorted(p.tags.items())), f): type(v)
                   for p in a for f, v in p.fields.items()}
        types_b = {(p.measurement, tuple(sorted(p.tags.items())), f): type(v)
                   for p in b for f, v in p.fields.items()}
        common = types_a.keys() & types_b.keys()
        assert common and all(types_a[k] is types_b[k] for k in common), component_type


def _map_numbers(value: Any, convert: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return convert(value)
    if isinstance(value, dict):
        return {k: _map_numbers(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_numbers(v, convert) for v in value]
    return value
