"""Schema pre-flight: before a cycle writes, each target's live schema is checked
against what the plan writes.

Per (connection, native object) the connector's ``live_schema`` (Salesforce describe,
HubSpot properties) is read once per cycle. An op that writes a field the target no
longer has, a field that became read-only, a value the field's (changed) type cannot
take, or a picklist value the target lacks is refused with a reason; the governance
gate (``sync.governance.gate_outbox``) holds it with a ledger entry, and the rest of
the plan goes on. A connector without ``live_schema`` (Planhat: no schema API for its
standard fields) is not checked. A schema that cannot be read is a note, never a hold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

log = logging.getLogger(__name__)

NUMERIC = frozenset({"int", "double", "currency", "percent", "number", "long"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: native fields a connector fills or strips itself (never in a live schema as such)
SKIPPED = frozenset({"Id", "attributes"})


def _fits(kind: str, value: Any) -> bool:
    """Can a field of live type ``kind`` take ``value`` (as the plan encodes it)?"""
    if value is None or value == "":
        return True
    if kind in NUMERIC:
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float | Decimal):
            return True
        try:
            Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    if kind == "date":
        return isinstance(value, str) and bool(_DATE.match(value[:10]))
    if kind == "datetime":  # ISO-8601, or epoch milliseconds (HubSpot's date properties)
        if isinstance(value, str):
            return bool(_DATETIME.match(value) or _DATE.match(value)) or value.strip().isdigit()
        return not isinstance(value, bool) and isinstance(value, int)
    return True


class Preflight:
    """One cycle's live schemas, read lazily per (connection, native object)."""

    def __init__(self, connections: Mapping[str, Any]) -> None:
        self.connections = connections
        self._schemas: dict[tuple[str, str], dict[str, dict[str, Any]] | None] = {}
        self.notes: list[str] = []

    def schema(self, system: str, native: str) -> dict[str, dict[str, Any]] | None:
        key = (system, native)
        if key not in self._schemas:
            conn = self.connections.get(system)
            fetch = getattr(getattr(conn, "connector", None), "live_schema", None)
            if fetch is None:
                self._schemas[key] = None
            else:
                try:
                    self._schemas[key] = fetch(native)
                except Exception as e:  # a schema we cannot read is a note, never a hold
                    self._schemas[key] = None
                    self.notes.append(f"{system}: schema pre-flight skipped for {native} ({type(e).__name__}: {e})")
                    log.info("%s", self.notes[-1])
        return self._schemas[key]

    def check(self, system: str, native: str, kind: str, fields: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(field, reason) for each field of the op the live schema refuses."""
        live = self.schema(system, native)
        if not live:
            return
        for name, value in fields.items():
            base = name.split(".")[0]
            if base.startswith("_") or base in SKIPPED:
                continue
            spec = live.get(base)
            if spec is None:
                yield base, f"field deleted: {system} {native} has no field {base}"
                continue
            if not spec.get("updateable" if kind == "update" else "createable", True):
                yield base, f"read-only: {system} {native}.{base} cannot be written"
                continue
            ftype = str(spec.get("type") or "")
            if not _fits(ftype, value):
                yield base, f"type changed: {system} {native}.{base} is {ftype}; {value!r} does not fit"
                continue
            picks = spec.get("picklist")
            if picks and value not in (None, "") and str(value) not in picks:
                yield base, (f"picklist value {value!s} missing: {system} {native}.{base} has no such value"
                             + self._defined_by(system, native, base, str(value)))

    def _defined_by(self, system: str, native: str, field: str, value: str) -> str:
        """`` (definitions.stage 'pilot')`` when the shared definitions write ``value`` there."""
        kind = getattr(self.connections.get(system), "kind", system)
        for name, canonical in _written_by(kind, native, field, value):
            return f" (definitions.{name} value {canonical!r})"
        return ""


def _written_by(kind: str, native: str, field: str, value: str) -> Iterator[tuple[str, str]]:
    """(value set, canonical value) whose definitions write ``value`` to ``native.field``."""
    from mapping.definitions import active
    from mapping.fieldmap import FIELD_MAPS

    fm = FIELD_MAPS.get((kind, native))
    defs = active()
    for rule in fm.write_rules if fm is not None else ():
        vs = defs.get(rule.transform)
        if rule.native == field and vs is not None:
            for canonical in vs.values:
                if vs.to_native(kind, canonical) == value:
                    yield vs.name, canonical


@dataclass(frozen=True)
class DefinitionGap:
    """A value the shared definitions write that the target's live picklist lacks."""

    system: str  # the connection
    value_set: str
    canonical: str
    native_object: str
    field: str
    value: str

    def line(self) -> str:
        return (f"definitions.{self.value_set} value {self.canonical!r} is written as {self.value!r}, which "
                f"{self.system} {self.native_object}.{self.field} lacks: writes of it are held until an admin "
                f"adds it there (or the definition changes)")


def definition_gaps(preflight: Preflight, system: str, kind: str,
                    fieldmaps: Mapping[tuple[str, str], Any] | None = None) -> list[DefinitionGap]:
    """Every value the definitions in force write to ``system`` (a connection of ``kind``)
    that the live picklist of the field lacks (Salesforce describe ``picklistValues``,
    HubSpot property ``options``). A system without ``live_schema`` has no gaps."""
    from mapping.definitions import active
    from mapping.fieldmap import FIELD_MAPS

    defs = active()
    gaps: list[DefinitionGap] = []
    for (k, native), fm in (fieldmaps or FIELD_MAPS).items():
        if k != kind:
            continue
        for rule in fm.write_rules:
            vs = defs.get(rule.transform)
            if vs is None:
                continue
            live = preflight.schema(system, native) or {}
            picks = (live.get(rule.native) or {}).get("picklist")
            if not picks:
                continue
            for canonical in vs.values:
                value = vs.to_native(kind, canonical)
                if value is not None and value not in picks:
                    gaps.append(DefinitionGap(system, vs.name, canonical, native, rule.native, value))
    return gaps
