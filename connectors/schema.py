"""Native field specs: how a connector declares its vendor's schema.

A connector's schema module lists, per native object, the fields the vendor's API has
(``FieldSpec``: name, type, length, external id, updateable…). The mapping layer reads
it to skip read-only fields and check lengths on write; the sandbox serves the same
schemas from its emulators. Types: ``id``, ``reference`` (an id of another record),
``string``, ``email``, ``phone``, ``url``, ``picklist``, ``textarea``, ``int``,
``double``, ``currency``, ``percent``, ``boolean``, ``date`` (YYYY-MM-DD), ``datetime``
(ISO-8601), ``object`` (a nested JSON object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: native object name → its fields
NativeSchema = Mapping[str, tuple["FieldSpec", ...]]


@dataclass(frozen=True)
class FieldSpec:
    """One native field as the vendor's API describes it."""

    name: str
    type: str
    label: str = ""
    length: int = 0  # max length for strings (0: type default)
    unique: bool = False
    external_id: bool = False
    updateable: bool = True
    nillable: bool = True
    custom: bool = False


def spec(name: str, type_: str, **kw: object) -> FieldSpec:
    """A ``FieldSpec`` whose label defaults to its name."""
    return FieldSpec(name=name, type=type_, label=kw.pop("label", name), **kw)  # type: ignore[arg-type]
