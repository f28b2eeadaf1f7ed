"""The handler registry: component type → handler, filled at import by `@register`.

Lookup order in `handler_for`: an exact registered type, then the registered patterns (in
registration order, `fnmatch` syntax, case-sensitive), then `generic`. Every handler also adds the
generic `component` fields and the declared metrics (`declared`), so the scrape code calls one
object per varz and gets everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from loguru import logger

from fobs.collector import decode
from fobs.collector.handlers import declared
from fobs.collector.handlers.component import add_component_fields
from fobs.collector.handlers.recorder import Recorder
from fobs.collector.point import Appender

HandlerFn = Callable[[Mapping[str, Any], Recorder], None]

GENERIC = "generic"


class HandlerStats(NamedTuple):
    """What one handler run produced: the scrape code reports these in its `scrape` point."""

    points: int                # points added to the appender
    skipped: int               # varz values dropped: wrong type, out of range, past a bound
    error: str | None = None   # set only when the handler itself failed (a bug, not bad data)


@dataclass(frozen=True, slots=True)
class Handler:
    """A named handler function plus what every component type gets: the generic fields and the
    declared metrics (`declared`: the handler function sees varz without them)."""

    name: str
    fn: HandlerFn
    decode: Callable[[bytes], Any] = decode.loads   # body → varz (`decode.Partial`: the keys
                                                    # this handler reads)

    def __call__(self, varz: Any, out: Appender) -> HandlerStats:
        """Add the points for one varz to `out`; never raises."""
        rec = Recorder(out)
        if not isinstance(varz, Mapping):
            return HandlerStats(0, 1)
        try:
            add_component_fields(varz, rec)
            self.fn(declared.add(varz, rec), rec)
        except Exception as exc:  # noqa: BLE001  a handler bug must not stop the scrape loop
            logger.warning("Handler {} failed: {!r}", self.name, exc)
            return HandlerStats(rec.points, rec.skipped, f"{type(exc).__name__}: {exc}")
        return HandlerStats(rec.points, rec.skipped)


HANDLERS: dict[str, Handler] = {}
_PATTERNS: list[tuple[str, Handler]] = []


def register(*types: str, patterns: tuple[str, ...] = (), name: str | None = None,
             decoder: Callable[[bytes], Any] = decode.loads
             ) -> Callable[[HandlerFn], HandlerFn]:
    """Register a handler function for exact component types and/or type patterns (and how
    its bodies are decoded: `decode.loads`, or a `decode.Partial` of the keys it reads).

    A type or pattern registered twice raises ValueError (at import, so it can't go unnoticed).
    """
    def decorator(fn: HandlerFn) -> HandlerFn:
        handler = Handler(name or fn.__module__.rpartition(".")[2], fn, decoder)
        taken = [t for t in types if t in HANDLERS]
        taken += [p for p in patterns if any(p == known for known, _ in _PATTERNS)]
        if taken:
            raise ValueError(f"Handler already registered for {', '.join(taken)}")
        for component_type in types:
            HANDLERS[component_type] = handler
        _PATTERNS.extend((pattern, handler) for pattern in patterns)
        return fn
    return decorator


def handler_for(component_type: str) -> Handler:
    """The handler for an announced component type (falls back to `generic`)."""
    if not isinstance(component_type, str):
        return HANDLERS[GENERIC]
    handler = HANDLERS.get(component_type)
    if handler is not None:
        return handler
    for pattern, candidate in _PATTERNS:
        if fnmatchcase(component_type, pattern):
            return candidate
    return HANDLERS[GENERIC]


def patterns() -> list[tuple[str, str]]:
    """Registered (pattern, handler name) pairs, in lookup order (for docs and tests)."""
    return [(pattern, handler.name) for pattern, handler in _PATTERNS]
