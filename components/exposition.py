"""Varz → Prometheus text exposition (format 0.0.4), so Prometheus can scrape any component.

Numeric leaves become gauges named after their path (`latency.50` → `latency_50`), with the
component's type and index as labels. Lists and strings are skipped, and so is anything deeper
than MAX_DEPTH or past MAX_SAMPLES: varz holds per-app maps that must not become series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

MAX_DEPTH = 4
MAX_SAMPLES = 2000
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(path: list[str]) -> str:
    name = _INVALID.sub("_", "_".join(path))
    return name if not name[:1].isdigit() else "_" + name


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _leaves(varz: Mapping[str, Any], path: list[str]) -> Iterator[tuple[list[str], float]]:
    for key, value in varz.items():
        here = [*path, str(key)]
        if isinstance(value, bool):
            yield here, float(value)
        elif isinstance(value, (int, float)):
            yield here, float(value)
        elif isinstance(value, Mapping) and len(here) < MAX_DEPTH:
            yield from _leaves(value, here)


def render(varz: Mapping[str, Any], labels: Mapping[str, str],
           hidden: frozenset[str] | set[str] = frozenset()) -> str:
    """The exposition text; top-level keys in `hidden` (per-instance maps) are left out."""
    label_text = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
    lines = []
    seen: set[str] = set()
    shown = {k: v for k, v in varz.items() if k not in hidden} if hidden else varz
    for count, (path, value) in enumerate(_leaves(shown, [])):
        if count >= MAX_SAMPLES:
            break
        name = metric_name(path)
        if name in seen:
            continue
        seen.add(name)
        text = "NaN" if math.isnan(value) else ("+Inf" if value == math.inf else
                                                 "-Inf" if value == -math.inf else repr(value))
        lines.append(f"# TYPE {name} gauge\n{name}{{{label_text}}} {text}\n")
    return "".join(lines)
