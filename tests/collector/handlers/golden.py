"""Helpers shared by the handler tests: golden cases, a tiny line-protocol renderer, and the
field/tag tables parsed from docs/schema.md (so the schema document is checked against the code).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fobs.collector.handlers import HandlerStats, handler_for
from fobs.collector.point import ListAppender, Point

ROOT = Path(__file__).resolve().parents[3]
CASES_DIR = Path(__file__).resolve().parent / "cases"
SCHEMA_DOC = ROOT / "docs" / "schema.md"
BASE_TAGS = {"deployment": "golden", "index": "0"}
TIME_NS = 1_700_000_000_000_000_000
TYPES = {"float": float, "int": int, "string": str}


def case_dirs() -> list[Path]:
    return sorted(path.parent for path in CASES_DIR.glob("*/*/varz.json"))


def load_varz(case: Path) -> Any:
    return json.loads((case / "varz.json").read_text())


def run(component_type: str, varz: Any) -> tuple[list[Point], HandlerStats]:
    out = ListAppender({**BASE_TAGS, "job": component_type}, TIME_NS)
    stats = handler_for(component_type)(varz, out)
    return out.points, stats


# -- line protocol -----------------------------------------------------------------------------

def _escape(text: str, special: str) -> str:
    for char in special:
        text = text.replace(char, "\\" + char)
    return text


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_point(point: Point) -> str:
    tags = "".join(f",{_escape(k, ',= ')}={_escape(v, ',= ')}"
                   for k, v in sorted(point.tags.items()))
    fields = ",".join(f"{_escape(k, ',= ')}={_value(v)}" for k, v in sorted(point.fields.items()))
    return f"{_escape(point.measurement, ', ')}{tags} {fields} {point.time_ns}"


def render(points: Iterable[Point], stats: HandlerStats) -> str:
    lines = sorted(render_point(point) for point in points)
    return "\n".join([f"# skipped={stats.skipped}", *lines]) + "\n"


# -- docs/schema.md ----------------------------------------------------------------------------

@dataclass
class Measurement:
    name: str
    tags: set[str] = field(default_factory=set)
    fields: dict[str, type] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], type]] = field(default_factory=list)
    any_tag: bool = False           # a `<placeholder>` tag: the handler passes tags through

    def field_type(self, name: str) -> type | None:
        if name in self.fields:
            return self.fields[name]
        for pattern, kind in self.patterns:
            if pattern.fullmatch(name):
                return kind
        return None


_HEADER = re.compile(r"^### `([a-z_]+)`")
_TAGS = re.compile(r"^Tags: (.*)$")
_ROW = re.compile(r"^\| `([^`]+)` \| (float|int|string) \|")


def schema_from_docs(path: Path = SCHEMA_DOC) -> dict[str, Measurement]:
    """Measurements documented in docs/schema.md.

    Each is a "### `name`" header, a "Tags:" line listing tag names in backticks before any " — "
    (a `<placeholder>` admits any tag), and table rows "| `field` | type | …".
    """
    measurements: dict[str, Measurement] = {}
    current: Measurement | None = None
    for line in path.read_text().splitlines():
        if header := _HEADER.match(line):
            current = measurements.setdefault(header.group(1), Measurement(header.group(1)))
        elif current is not None and (tags := _TAGS.match(line)):
            names = re.findall(r"`([^`]+)`", tags.group(1).split(" — ")[0])
            current.tags = {name for name in names if "<" not in name}
            current.any_tag = len(current.tags) < len(names)
        elif current is not None and (row := _ROW.match(line)):
            name, kind = row.group(1), TYPES[row.group(2)]
            if "<" in name:
                regex = re.sub(r"<[^>]+>", "[A-Za-z0-9_.-]+", re.escape(name))
                current.patterns.append((re.compile(regex), kind))
            else:
                current.fields[name] = kind
    return measurements
