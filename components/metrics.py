"""Self-metrics declared once: instruments in a `Registry`, rendered into varz and /metrics.

In the spirit of prometheus/client_python: a daemon declares each instrument once — measurement,
field, field type, tag names, help text and where its value sits in varz — and then only calls
`inc`/`set`/`observe`. The component runtime renders varz and /metrics from the registry and
publishes the declarations in varz (`DECLARATIONS_KEY`), so the collector's one `declared`
handler stores any component's metrics with no handler per component type.

Usage:

    registry = Registry()
    requests = Counter("shop", "requests", "HTTP requests served", tags=("method",),
                       varz="http.requests.{method}", registry=registry)
    queue = Gauge("shop", "queue_length", "Orders waiting", registry=registry)
    queue.set_function(lambda: len(orders))        # read at render time, no bookkeeping
    requests.labels("GET").inc()
    registry.varz()  →  {"http": {"requests": {"GET": 1}}, "queue_length": 3.0}

`varz` is a dotted path; a `{tag}` segment takes the child's tag value, a tag that is not in the
path is still stored (the published `series` carry every child's tag values) but must follow
from the tags in the path (two children at one place would overwrite each other). Without
`varz` the path is the field followed by one segment per tag. A reader (`set_function`) or a
collect hook that raises, or a reader that returns something other than a number, is logged and
its value left out: the rest still renders.

Across processes (worker processes that count, a main process that serves varz): each process
builds the same declarations in its own registry; a worker sends `registry.take()` (a picklable
dict of counter deltas since the last take, keyed by `measurement.field` and tag values) and the
main process calls `registry.merge(delta)`. Gauges and summaries are not merged.

Misuse raises ValueError at declaration (a duplicate field or path, a bad name, a `{tag}` that is
not a tag) or at use (wrong tag count, a negative increment)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from loguru import logger

FieldType = Literal["int", "float"]
Number = int | float
Delta = dict[str, dict[tuple[str, ...], Number]]

DECLARATIONS_KEY = "metric_declarations"
QUANTILES = (("50", "p50", 0.5), ("90", "p90", 0.9), ("99", "p99", 0.99))
# Tags the collector sets from the target's identity (and /metrics' `type`): not declarable.
RESERVED_TAGS = frozenset({"deployment", "job", "index", "ip", "role", "name", "endpoint", "type"})
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
C = TypeVar("C", bound="Child")


@dataclass(frozen=True, slots=True)
class Declaration:
    """One stored field: where the collector finds it in varz and how it stores it."""

    measurement: str
    field: str
    type: FieldType
    kind: str                  # counter, gauge, summary
    tags: tuple[str, ...]
    path: tuple[str, ...]      # varz keys; a "{tag}" segment is that tag's value
    help: str

    def wire(self, series: list[tuple[str, ...]]) -> dict[str, Any]:
        """The published form (varz): everything the collector needs, no help text."""
        return {"measurement": self.measurement, "field": self.field, "type": self.type,
                "kind": self.kind, "tags": list(self.tags), "path": list(self.path),
                "series": [list(values) for values in series]}


class Child:
    """One tag-value combination of an instrument: a stored value or a function read later."""

    __slots__ = ("_fn", "_value")

    def __init__(self) -> None:
        self._value: Number = 0
        self._fn: Callable[[], Number | None] | None = None

    def set_function(self, fn: Callable[[], Number | None]) -> None:
        """Read the value from `fn()` at render time (None: no value this time)."""
        self._fn = fn

    def get(self) -> Number | None:
        if self._fn is None:
            return self._value
        try:
            return self._fn()
        except Exception:   # a reader's bug must not take varz and /metrics down with it
            logger.exception("A metric's set_function raised; the value is left out")
            return None


class CounterChild(Child):
    __slots__ = ()

    def inc(self, amount: Number = 1) -> None:
        """Add `amount` (≥ 0)."""
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts")
        self._value += amount


class GaugeChild(Child):
    __slots__ = ()

    def set(self, value: Number) -> None:
        self._value = value

    def inc(self, amount: Number = 1) -> None:
        self._value += amount

    def dec(self, amount: Number = 1) -> None:
        self._value -= amount


class SummaryChild(Child):
    """Recent observations (a bounded window) → p50, p90, p99 and max, plus count and sum."""

    __slots__ = ("count", "sum", "window")

    def __init__(self, window: int = 4096) -> None:
        super().__init__()
        self.window: deque[float] = deque(maxlen=window)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.window.append(value)
        self.count += 1
        self.sum += value

    def quantiles(self) -> dict[str, float]:
        """{"50": …, "90": …, "99": …, "max": …} over the window ({} before any observation)."""
        ordered = sorted(self.window)
        if not ordered:
            return {}
        out = {key: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
               for key, _, q in QUANTILES}
        out["max"] = ordered[-1]
        return out


class Instrument(Generic[C]):
    """A declared instrument: one child per tag-value combination (`labels`)."""

    kind: ClassVar[str] = ""
    default_type: ClassVar[FieldType] = "float"

    def __init__(self, measurement: str, field: str, help: str, *, tags: Sequence[str] = (),
                 varz: str | None = None, type: FieldType | None = None,
                 registry: Registry | None = None) -> None:
        for name in (measurement, field, *tags):
            if not _NAME.fullmatch(name):
                raise ValueError(f"Invalid metric name {name!r}")
        if reserved := RESERVED_TAGS.intersection(tags):
            raise ValueError(f"Tags {sorted(reserved)} are the collector's (target identity)")
        self.measurement, self.field, self.help = measurement, field, help
        self.name = f"{measurement}_{field}"       # in /metrics
        self.tags = tuple(tags)
        self.type: FieldType = type or self.default_type
        self.path = tuple(varz.split(".")) if varz else (field, *(f"{{{t}}}" for t in tags))
        placeholders = [s[1:-1] for s in self.path if s.startswith("{") and s.endswith("}")]
        unknown = set(placeholders) - set(self.tags)
        if unknown or len(placeholders) != len(set(placeholders)):
            raise ValueError(f"{self.key}: varz path {'.'.join(self.path)!r} must name each of "
                             f"its tags {self.tags} at most once")
        self._children: dict[tuple[str, ...], C] = {}
        if not self.tags:
            self._children[()] = self._new_child()
        if registry is not None:
            registry.register(self)

    @property
    def key(self) -> str:
        return f"{self.measurement}.{self.field}"

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        """The child for these tag values (in declaration order), made on first use."""
        if len(values) != len(self.tags):
            raise ValueError(f"{self.key}: incorrect label count, expected {self.tags}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child

    def attach(self, child: C, *values: str) -> None:
        """Use `child` (kept by the code that counts, e.g. a scrape loop's summary) for these
        tag values."""
        if len(values) != len(self.tags):
            raise ValueError(f"{self.key}: incorrect label count, expected {self.tags}")
        self._children[values] = child

    def clear(self) -> None:
        """Forget every child (a labelled family refilled at render time by a collect hook)."""
        if self.tags:
            self._children.clear()

    def children(self) -> Iterator[tuple[tuple[str, ...], C]]:
        return iter(list(self._children.items()))

    def set_function(self, fn: Callable[[], Number | None]) -> None:
        self.labels().set_function(fn)

    def declarations(self) -> list[Declaration]:
        return [Declaration(self.measurement, self.field, self.type, self.kind, self.tags,
                            self.path, self.help)]

    def render(self, child: C) -> Any:
        """The varz value of one child (None: leave it out)."""
        value = child.get()
        if value is None:
            return None
        try:
            return int(value) if self.type == "int" else float(value)
        except (TypeError, ValueError, OverflowError):
            logger.warning("Metric {} read {!r}, not a number; left out", self.key, value)
            return None


class Counter(Instrument[CounterChild]):
    """A monotonic count (int field by default): `Counter(...).labels(...).inc()`."""

    kind = "counter"
    default_type = "int"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: Number = 1) -> None:
        self.labels().inc(amount)


class Gauge(Instrument[GaugeChild]):
    """A value that goes up and down (float field): set, inc, dec or `set_function`."""

    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: Number) -> None:
        self.labels().set(value)

    def inc(self, amount: Number = 1) -> None:
        self.labels().inc(amount)

    def dec(self, amount: Number = 1) -> None:
        self.labels().dec(amount)


class Summary(Instrument[SummaryChild]):
    """Quantiles of recent observations: varz `{"50", "90", "99", "max"}` at its path, stored as
    float fields named by `field` with `{q}` → p50, p90, p99, max (`duration_{q}_seconds`)."""

    kind = "summary"

    def __init__(self, measurement: str, field: str, help: str, *, window: int = 4096,
                 **kwargs: Any) -> None:
        if "{q}" not in field:
            raise ValueError(f"Summary field {field!r} must contain {{q}}")
        self.window = window
        registry = kwargs.pop("registry", None)
        super().__init__(measurement, field.replace("_{q}", "").replace("{q}", ""), help,
                         **kwargs)
        self.field = field                  # the key is `measurement.duration_{q}_seconds`
        if registry is not None:
            registry.register(self)

    def _new_child(self) -> SummaryChild:
        return SummaryChild(self.window)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def declarations(self) -> list[Declaration]:
        keys = [(key, name) for key, name, _ in QUANTILES] + [("max", "max")]
        return [Declaration(self.measurement, self.field.replace("{q}", name), "float",
                            self.kind, self.tags, (*self.path, key), self.help)
                for key, name in keys]

    def render(self, child: SummaryChild) -> Any:
        return child.quantiles()


AnyInstrument = Instrument[Any]


class Registry:
    """The instruments of one process (a fresh one per test; no global default)."""

    def __init__(self) -> None:
        self._instruments: dict[str, AnyInstrument] = {}
        self._paths: dict[tuple[str, ...], str] = {}
        self._hooks: list[Callable[[], None]] = []

    def register(self, instrument: AnyInstrument) -> None:
        """Add an instrument; a second one with the same field or varz path raises ValueError."""
        if instrument.key in self._instruments:
            raise ValueError(f"Duplicated metric: {instrument.key}")
        shape = tuple("{}" if s.startswith("{") else s for s in instrument.path)
        if shape in self._paths:
            raise ValueError(f"{instrument.key}: varz path {'.'.join(instrument.path)!r} is "
                             f"taken by {self._paths[shape]}")
        self._instruments[instrument.key] = instrument
        self._paths[shape] = instrument.key

    def on_collect(self, hook: Callable[[], None]) -> None:
        """Call `hook()` before each render (to refill labelled gauges from live state)."""
        self._hooks.append(hook)

    def instruments(self) -> list[AnyInstrument]:
        return list(self._instruments.values())

    def collect(self) -> list[AnyInstrument]:
        """Run the collect hooks, then return the instruments."""
        for hook in self._hooks:
            try:
                hook()
            except Exception:   # as for readers: the other instruments still render
                logger.exception("A metrics collect hook raised")
        return self.instruments()

    def declarations(self) -> list[Declaration]:
        return [d for i in self._instruments.values() for d in i.declarations()]

    def render(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(varz tree, published declarations) from one collect."""
        tree: dict[str, Any] = {}
        wire: list[dict[str, Any]] = []
        for instrument in self.collect():
            series = []
            for values, child in instrument.children():
                value = instrument.render(child)
                if value is None:
                    continue
                series.append(values)
                tags = dict(zip(instrument.tags, values, strict=True))
                _put(tree, [tags.get(s[1:-1], s) if s.startswith("{") else s
                            for s in instrument.path], value)
            wire.extend(d.wire(series) for d in instrument.declarations())
        return tree, wire

    def varz(self) -> dict[str, Any]:
        return self.render()[0]

    def value(self, measurement: str, field: str, *tags: str) -> Number | None:
        """The current value of one child (tests), or None."""
        instrument = self._instruments.get(f"{measurement}.{field}")
        child = None if instrument is None else instrument._children.get(tags)
        return None if child is None else child.get()

    def take(self) -> Delta:
        """Counter increments since the last take (stored values only), reset to zero."""
        delta: Delta = {}
        for instrument in self._instruments.values():
            if not isinstance(instrument, Counter):
                continue
            for values, child in instrument.children():
                if child._fn is None and child._value:
                    delta.setdefault(instrument.key, {})[values] = child._value
                    child._value = 0
        return delta

    def merge(self, delta: Delta) -> None:
        """Add another process's `take()`; unknown counters raise KeyError (a version skew)."""
        for key, children in delta.items():
            instrument = self._instruments[key]
            if not isinstance(instrument, Counter):
                raise KeyError(f"{key} is not a counter")
            for values, amount in children.items():
                instrument.labels(*values).inc(amount)


def overlay(base: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """`base` with `tree` laid over it, nested objects merged (tree wins); neither is changed."""
    out = dict(base)
    for key, value in tree.items():
        below = out.get(key)
        out[key] = overlay(below, value) if isinstance(value, dict) and isinstance(
            below, dict) else value
    return out


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
