"""docs/varz.md lists exactly the fields the schema checks (and so the components) have."""

from __future__ import annotations

import re
from pathlib import Path

from tests.components import varz_schema as schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "varz.md"


def tables(section: str) -> list[set[str]]:
    """The backticked names in the first column of each table of a `## ` section."""
    text = DOC.read_text().split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    found: list[set[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table:
            found.append(set())
            in_table = True
        first = line.split("|")[1]
        found[-1] |= set(re.findall(r"`([^`]+)`", first))
    return found


def test_generic_fields_are_documented() -> None:
    assert tables("Generic fields")[0] == schema.GENERIC


def test_component_fields_are_documented() -> None:
    assert tables("DEA")[0] == schema.DEA - schema.GENERIC
    instance = tables("DEA")[1]
    assert instance - {"state_<state>_timestamp"} == schema.INSTANCE
    assert tables("Router")[0] == schema.ROUTER - schema.GENERIC
    assert tables("Router")[1] == {'"50"', '"75"', '"90"', '"95"', '"99"', "samples", "value"}
    assert tables("Stager")[0] == schema.STAGER - schema.GENERIC
