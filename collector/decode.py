"""Decoding a scraped JSON body: msgspec first, the standard library as the judge of the rest.

A realistic /varz is 5–20 KB and the collector decodes a thousand a second, so the decoder is a
large share of its CPU: `json.loads` takes ~30 µs for a 5.7 KB DEA varz and ~120 µs for the
gorouter one with its routes, msgspec 2.5–4× less (numbers in docs/collector.md, Performance).

The result must be exactly what `json.loads` gives, because handlers (and their golden cases)
see it: msgspec returns the same objects for every document it accepts (integers of any size
stay ints, unlike orjson, which turns those past 64 bits into floats), and whatever it refuses —
`NaN`/`Infinity`, lone surrogate escapes, a byte order mark, UTF-16, numbers past a double's
range, nesting past its limit, plain garbage — is handed to `json.loads`, which then accepts it
as before or raises the same error as before. Garbage is rare, so the second pass costs nothing
in steady state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

_decode = msgspec.json.Decoder().decode


def loads(body: bytes) -> Any:
    """`json.loads(body)`, faster; raises what `json.loads` raises (ValueError, RecursionError)."""
    try:
        return _decode(body)
    except (msgspec.DecodeError, RecursionError):   # the standard library decides
        return json.loads(body)


class Partial:
    """Decodes only the keys one handler reads, for bodies whose bulk it never looks at.

    dea_ng's 20 KB varz is mostly its instance registry, of whose ~30 attributes per instance
    the DEA handler reads five: a typed msgspec decoder skips the rest without building them
    (25 → 17 µs a body, the dict included). `struct` declares the keys read (a `keys_struct`,
    nested ones for the objects below); the handler gets a dict of the keys the body had,
    equal to what `loads` builds for them. A body that has one of `whole_if` (declared
    metrics, whose paths may name any key) is decoded whole; one the typed decoder refuses (a
    value of another shape, invalid JSON) goes through `loads`, which decides as it always did:
    the same dict for every key the handler reads, or the same error.
    """

    def __init__(self, struct: type[msgspec.Struct], whole_if: Iterable[str] = ()) -> None:
        self._decode = msgspec.json.Decoder(struct).decode
        self._whole_if = tuple(whole_if)

    def __call__(self, body: bytes) -> Any:
        try:
            obj = self._decode(body)
        except (msgspec.DecodeError, RecursionError):   # ValidationError is a DecodeError
            return loads(body)
        if any(getattr(obj, key) is not msgspec.UNSET for key in self._whole_if):
            return loads(body)
        return msgspec.to_builtins(obj)     # Structs → dicts without their UNSET fields


def keys_struct(name: str, keys: Iterable[str], types: Mapping[str, Any] | None = None
                ) -> type[msgspec.Struct]:
    """A Struct of `keys`, each any JSON value (or `types[key]`), UNSET when absent."""
    types = types or {}
    return msgspec.defstruct(name, [(key, types.get(key, Any), msgspec.UNSET) for key in keys])


def objects_of(struct: type[msgspec.Struct], depth: int = 1) -> Any:
    """`dict[str, … dict[str, struct]]` (`depth` levels of JSON objects), or null, for a key of
    a `keys_struct`."""
    kind: Any = struct
    for _ in range(depth):
        kind = dict[str, kind]
    return kind | None | msgspec.UnsetType
