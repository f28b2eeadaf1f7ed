"""docs/schema.md's tables of fobs' own measurements are generated from the daemons' declarations.

A daemon's metrics live in a module with a `declare(...)` function (`fobs.collector.metrics`,
`fobs.syslog_agg.metrics`, …): every such module in the fobs packages is found by its source, so
a daemon moved onto the registry is covered as soon as it lands. Its declarations are built into
a fresh `Registry`; the other arguments are stand-ins (`declare` keeps references and reads them
only at render time). For each declared measurement docs/schema.md must hold the generated table
between `<!-- declared: <measurement> -->` and `<!-- /declared -->`, and its `Tags:` line must
name the declared tags. `UPDATE_DOCS=1` rewrites the tables (review the diff before committing).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

import fobs.collector
import fobs.components
import fobs.dashboards
import fobs.syslog_agg
from fobs.components.metrics import Declaration, Registry
from tests.collector.handlers.golden import SCHEMA_DOC, schema_from_docs

PACKAGES = (fobs.collector, fobs.syslog_agg, fobs.dashboards, fobs.components)
_DECLARE = re.compile(r"^def declare\(", re.MULTILINE)
HEADER = "| field | type | kind | varz | meaning |\n|---|---|---|---|---|\n"


def daemon_modules() -> Iterator[ModuleType]:
    """Every module of the fobs packages that defines a top-level `declare` function."""
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            spec = importlib.util.find_spec(info.name)
            origin = spec.origin if spec else None
            if origin and origin.endswith(".py") and _DECLARE.search(Path(origin).read_text()):
                yield importlib.import_module(info.name)


def declarations(module: ModuleType) -> list[Declaration]:
    registry = Registry()
    params = inspect.signature(module.declare).parameters
    module.declare(**{name: registry if "Registry" in str(p.annotation) else mock.MagicMock()
                      for name, p in params.items()})
    return registry.declarations()


def by_measurement() -> dict[str, list[Declaration]]:
    out: dict[str, list[Declaration]] = {}
    for module in daemon_modules():
        for declaration in declarations(module):
            out.setdefault(declaration.measurement, []).append(declaration)
    return out


def table(declared: list[Declaration]) -> str:
    rows = []
    for d in declared:
        path = ".".join(f"<{key[1:-1]}>" if key.startswith("{") else key for key in d.path)
        rows.append(f"| `{d.field}` | {d.type} | {d.kind} | `{path}` | {d.help} |\n")
    return HEADER + "".join(rows)


def _block(measurement: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- declared: {measurement} -->\n(.*?)<!-- /declared -->\n", re.S)


def _section(text: str, measurement: str) -> tuple[int, int]:
    """Where the measurement's section starts and ends (the next heading, or the end)."""
    start = text.index(f"### `{measurement}`\n")
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i >= 0]
    return start, min(ends, default=len(text))


def update(text: str, measurement: str, generated: str) -> str:
    """The doc with the measurement's table replaced by the generated block."""
    start, end = _section(text, measurement)
    section = text[start:end]
    block = f"<!-- declared: {measurement} -->\n{generated}<!-- /declared -->\n"
    if _block(measurement).search(section):
        section = _block(measurement).sub(lambda _: block, section)
    else:
        rows = re.search(r"^\|.*\n(?:\|.*\n)*", section, re.M)
        assert rows is not None, f"### `{measurement}` has no table to replace"
        section = section[:rows.start()] + block + section[rows.end():]
    return text[:start] + section + text[end:]


def test_every_daemon_is_found() -> None:
    """The four daemons of fobs: the collector, the syslog aggregator, the supervisor and the
    alert evaluator (a daemon that moves its `declare` elsewhere is still found)."""
    assert {"collector", "syslog", "supervisor", "alert_evaluator"} <= set(by_measurement())


def test_schema_tables_are_the_declarations() -> None:
    declared = by_measurement()
    text = SCHEMA_DOC.read_text()
    if os.environ.get("UPDATE_DOCS"):
        for measurement, fields in declared.items():
            text = update(text, measurement, table(fields))
        SCHEMA_DOC.write_text(text)
    documented = schema_from_docs()
    for measurement, fields in declared.items():
        assert measurement in documented, (
            f"{measurement} is declared but docs/schema.md has no ### `{measurement}` section: "
            "write its prose and Tags line, then run with UPDATE_DOCS=1")
        found = _block(measurement).search(text)
        assert found is not None and found.group(1) == table(fields), (
            f"docs/schema.md's {measurement} table is not the declarations': run "
            "UPDATE_DOCS=1 .venv/bin/pytest tests/collector/test_schema_declared.py")
        assert documented[measurement].tags == set(fields[0].tags), measurement
    stale = set(re.findall(r"<!-- declared: (\w+) -->", text)) - set(declared)
    assert not stale, f"docs/schema.md has generated tables nothing declares: {stale}"


@pytest.mark.parametrize("measurement", ["a", "b"])
def test_update_replaces_the_first_table_then_the_block(measurement: str) -> None:
    doc = ("## Measurements\n\n### `a`\nProse.\n\nTags: none.\n\n| f | t |\n|---|---|\n"
           "| `x` | int |\n\nAfter.\n\n### `b`\n| `y` | int |\n")
    once = update(doc, measurement, "NEW\n")
    twice = update(once, measurement, "NEWER\n")
    assert f"<!-- declared: {measurement} -->\nNEWER\n<!-- /declared -->\n" in twice
    assert twice.count("<!-- declared") == 1 and "After." in twice and "Prose." in twice
