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
from typing import Any

import msgspec

_decode = msgspec.json.Decoder().decode


def loads(body: bytes) -> Any:
    """`json.loads(body)`, faster; raises what `json.loads` raises (ValueError, RecursionError)."""
    try:
        return _decode(body)
    except (msgspec.DecodeError, RecursionError):   # the standard library decides
        return json.loads(body)
