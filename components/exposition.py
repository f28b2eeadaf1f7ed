"""Varz and declared metrics → Prometheus text exposition (format 0.0.4), so Prometheus can scrape
any component.

`render_registry` writes the declared instruments (`fobs.components.metrics`) with their HELP
and TYPE (counter, gauge, summary) and their tags as labels, named `<measurement>_<field>`.
`render` covers the rest of varz: numeric leaves become gauges named after their path
(`latency.50` → `latency_50`), with the component's type and index as labels. Lists and
strings are skipped, and so is anything deeper than MAX_DEPTH or past MAX_SAMPLES: varz holds
per-app maps that must not become series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fobs.components.metrics import QUANTILES, Registry, Summary

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


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items()) + "}"


def render_registry(registry: Registry, labels: Mapping[str, str]) -> tuple[str, set[str]]:
    """The declared instruments' exposition text, and the metric names it used."""
    lines: list[str] = []
    names: set[str] = set()
    for instrument in registry.collect():
        name = metric_name([instrument.name])
        if name in names:
            continue
        names.add(name)
        help_text = instrument.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {instrument.kind}\n")
        for values, child in instrument.children():
            tags = {**labels, **dict(zip(instrument.tags, values, strict=True))}
            if isinstance(instrument, Summary):
                quantiles = child.quantiles()
                for key, _, q in QUANTILES:
                    if key in quantiles:
                        lines.append(f"{name}{_labels({**tags, 'quantile': str(q)})} "
                                     f"{_number(quantiles[key])}\n")
                lines.append(f"{name}_sum{_labels(tags)} {_number(child.sum)}\n"
                             f"{name}_count{_labels(tags)} {_number(child.count)}\n")
                continue
            value = child.get()
            if value is not None:
                lines.append(f"{name}{_labels(tags)} {_number(value)}\n")
    return "".join(lines), names


def render(varz: Mapping[str, Any], labels: Mapping[str, str],
           hidden: frozenset[str] | set[str] = frozenset(),
           taken: frozenset[str] | set[str] = frozenset()) -> str:
    """The exposition text; top-level keys in `hidden` (per-instance maps) and metric names in
    `taken` (already declared) are left out."""
    label_text = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
    lines = []
    seen: set[str] = set(taken)
    shown = {k: v for k, v in varz.items() if k not in hidden} if hidden else varz
    for count, (path, value) in enumerate(_leaves(shown, [])):
        if count >= MAX_SAMPLES:
            break
        name = metric_name(path)
        if name in seen:
            continue
        seen.add(name)
        lines.append(f"# TYPE {name} gauge\n{name}{{{label_text}}} {_number(value)}\n")
    return "".join(lines)
