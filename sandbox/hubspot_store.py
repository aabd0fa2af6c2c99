"""In-memory HubSpot CRM data for the sandbox: records, indexes, validation, associations.

Kept apart from the HTTP layer (``sandbox/hubspot.py``) so the data structures stay
small and fast: 300k records per object type load in seconds and serve pages by
bisecting sorted id and last-modified indexes, never by scanning.

Per record we store the ids and epoch-ms timestamps as ints and the property values
in a list aligned to the object's schema (``connectors/hubspot_schema.py`` HUBSPOT), so the
property names are shared rather than repeated per record. ``hs_object_id``,
``createdate`` and the last-modified property are derived from the record itself.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.hubspot_schema import HUBSPOT
from connectors.schema import FieldSpec
from sandbox.values import (
    INDUSTRIES,
    LEAD_SOURCES,
    LIFECYCLE,
    OPPORTUNITY_TYPES,
    STAGE_PROBABILITY,
    STAGES,
    native_values,
    to_canonical,
)

OBJECT_TYPES = ("contacts", "companies", "deals")
# Object type ids and singular names HubSpot accepts in paths alongside the plural.
TYPE_ALIASES: dict[str, str] = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL"}

# Default properties returned when none are requested.
# https://developers.hubspot.com/docs/api/crm/contacts (list, "properties" parameter)
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
}
MOD_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
# Properties HubSpot always returns: the object id and the create/modify stamps.
ALWAYS = {t: ("createdate", MOD_PROPERTY[t], "hs_object_id") for t in OBJECT_TYPES}
DERIVED = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate",
                     "hs_parent_company_id"})

# Free-text ``query`` in search looks at these (HubSpot's default searchable properties).
# https://developers.hubspot.com/docs/api/crm/search#search-default-searchable-properties
SEARCHABLE: dict[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "companies": ("name", "domain", "website", "phone"),
    "deals": ("dealname", "pipeline", "dealstage"),
}

# Currency codes the sandbox accepts on deals (a subset of ISO 4217).
CURRENCIES = (
    "USD", "EUR", "GBP", "CAD", "AUD", "NZD", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN",
    "CZK", "HUF", "INR", "SGD", "HKD", "CNY", "BRL", "MXN", "ZAR", "ILS", "AED",
)  # fmt: skip
# HubSpot's default hs_lead_status options.
LEAD_STATUSES = (
    "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING",
)  # fmt: skip


def _options(name: str) -> tuple[str, ...]:
    table = {
        "dealstage": STAGES,
        "lifecyclestage": LIFECYCLE,
        "industry": INDUSTRIES,
        "hs_analytics_source": LEAD_SOURCES,
        "dealtype": OPPORTUNITY_TYPES,
    }.get(name)
    if table is not None:
        return tuple(native_values(table, "hubspot"))
    if name == "deal_currency_code":
        return CURRENCIES
    if name == "hs_lead_status":
        return LEAD_STATUSES
    return ()


# Associations v4 type ids: (from, to) → (unlabeled HUBSPOT_DEFINED id, primary id or None).
# https://developers.hubspot.com/docs/api/crm/associations (association type id values)
ASSOC_TYPES: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
}
PRIMARY_LABEL = "Primary"
# Company hierarchies: HubSpot-defined company → company association types.
# https://developers.hubspot.com/changelog/2018-9-11-parent-child-associations
# ("Parent company to child company, ID = 13"; "Child company to parent company, ID = 14")
PARENT_TO_CHILD = 13
CHILD_TO_PARENT = 14
# labels as the v4 read shows them, naming what the target is [verify]
HIERARCHY_LABELS = {PARENT_TO_CHILD: "Child Company", CHILD_TO_PARENT: "Parent Company"}


class StoreError(Exception):
    """A request the store refuses; ``hubspot.py`` renders it as a HubSpot error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: Mapping[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = dict(context or {})
        self.errors = errors or []
        self.sub_category = sub_category


# ---------------------------------------------------------------- time helpers


def iso_ms(ms: int) -> str:
    """Epoch-ms as HubSpot renders instants: ``2026-11-02T10:15:30.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def parse_instant(value: str) -> int:
    """Epoch-ms from an epoch-ms string, an ISO datetime or a ``YYYY-MM-DD`` date."""
    text = value.strip()
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)
    dt = datetime.fromisoformat(text)  # 3.11 reads a trailing "Z"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def now_ms(dt: datetime) -> int:
    """Epoch-ms of an aware datetime."""
    return round(dt.timestamp() * 1000)


# ---------------------------------------------------------------- schema

_SHARED_NAMES = frozenset(
    {"hubspot_owner_id", "pipeline", "jobtitle", "city", "state", "country", "company"}
)


@dataclass(frozen=True)
class TypeSchema:
    """One object type's properties, positions and special names."""

    name: str
    fields: tuple[FieldSpec, ...]
    index: Mapping[str, int]
    mod: str
    unique: tuple[str, ...]
    options: Mapping[str, tuple[str, ...]]
    stored: Mapping[str, int]  # index of the properties kept per record (not derived)
    shared: frozenset[int]  # positions whose values repeat a lot (interned on load)

    @classmethod
    def build(cls, name: str) -> TypeSchema:
        fields = HUBSPOT[name]
        return cls(
            name=name,
            fields=fields,
            index={f.name: i for i, f in enumerate(fields)},
            mod=MOD_PROPERTY[name],
            unique=tuple(f.name for f in fields if f.unique),
            options={f.name: _options(f.name) for f in fields if f.type == "picklist"},
            stored={f.name: i for i, f in enumerate(fields) if f.name not in DERIVED},
            shared=frozenset(
                i
                for i, f in enumerate(fields)
                if f.type in ("picklist", "boolean") or f.name in _SHARED_NAMES
            ),
        )

    def spec(self, prop: str) -> FieldSpec | None:
        i = self.index.get(prop)
        return None if i is None else self.fields[i]


SCHEMAS: dict[str, TypeSchema] = {t: TypeSchema.build(t) for t in OBJECT_TYPES}


def property_definitions(obj: str, schema: TypeSchema | None = None) -> list[dict[str, Any]]:
    """``GET /crm/v3/properties/{type}`` results, built from the sandbox schema (a
    portal's own, with its admin's option edits, when given)."""
    schema = schema or SCHEMAS[obj]
    out = []
    for order, f in enumerate(schema.fields):
        hs_type, field_type = {
            "picklist": ("enumeration", "select"),
            "int": ("number", "number"),
            "double": ("number", "number"),
            "boolean": ("bool", "booleancheckbox"),
            "datetime": ("datetime", "date"),
            "date": ("date", "date"),
            "phone": ("string", "phonenumber"),
        }.get(f.type, ("string", "text"))
        options: list[dict[str, Any]] = [
            {"label": v, "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(schema.options.get(f.name, ()))
        ]
        if f.type == "boolean":
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        read_only = not f.updateable
        out.append(
            {
                "name": f.name,
                "label": f.label,
                "type": hs_type,
                "fieldType": field_type,
                "description": "",
                "groupName": f"{SINGULAR[obj].lower()}information",
                "options": options,
                "displayOrder": order,
                "calculated": False,
                "externalOptions": False,
                "hasUniqueValue": f.unique,
                "hidden": False,
                "hubspotDefined": not f.custom,
                "formField": not read_only,
                "archived": False,
                "modificationMetadata": {
                    "archivable": f.custom,
                    "readOnlyDefinition": not f.custom,
                    "readOnlyValue": read_only,
                },
                "createdAt": "2026-01-01T00:00:00Z",
                "updatedAt": "2026-01-01T00:00:00Z",
            }
        )
    return out


# ---------------------------------------------------------------- records


class Rec:
    """One stored CRM object (mutable; guarded by the emulator's lock)."""

    __slots__ = ("archived_ms", "created_ms", "id", "merged_into", "updated_ms", "vals")

    def __init__(self, rid: int, vals: list[str | None], created_ms: int, updated_ms: int) -> None:
        self.id = rid
        self.vals = vals
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived_ms: int | None = None
        self.merged_into: int | None = None

    @property
    def live(self) -> bool:
        return self.archived_ms is None and self.merged_into is None


@dataclass
class Table:
    """All records of one object type with their indexes."""

    schema: TypeSchema
    recs: dict[int, Rec] = field(default_factory=dict)
    live: list[int] = field(default_factory=list)  # sorted ids of live records
    archived: list[int] = field(default_factory=list)  # sorted ids of archived records
    by_mod: list[tuple[int, int]] = field(default_factory=list)  # sorted (updated_ms, id), live
    uniq: dict[str, dict[str, int]] = field(default_factory=dict)  # prop → folded value → id
    # calculated properties: prop → its value for a record (e.g. a company's parent id)
    derived: dict[str, Callable[[Rec], str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.uniq = {p: {} for p in self.schema.unique}

    # -- reading

    def value(self, rec: Rec, prop: str) -> str | None:
        """A property's wire value (derived ones included)."""
        if prop == "hs_object_id":
            return str(rec.id)
        if prop == "createdate":
            return iso_ms(rec.created_ms)
        if prop == self.schema.mod:
            return iso_ms(rec.updated_ms)
        calc = self.derived.get(prop)
        if calc is not None:
            return calc(rec)
        i = self.schema.index.get(prop)
        return None if i is None else rec.vals[i]

    def resolve(self, rid: int) -> Rec | None:
        """The record with ``rid``, following merges to the survivor."""
        rec = self.recs.get(rid)
        seen = 0
        while rec is not None and rec.merged_into is not None and seen < 64:
            rec = self.recs.get(rec.merged_into)
            seen += 1
        return rec

    def find_unique(self, prop: str, value: str) -> Rec | None:
        """Live record whose unique ``prop`` equals ``value`` (case-insensitive)."""
        if prop == "hs_object_id":
            rid = to_int(value)
            rec = self.resolve(rid) if rid is not None else None
            return rec if rec is not None and rec.live else None
        index = self.uniq.get(prop)
        if index is None:
            return None
        rid = index.get(fold(value))
        rec = self.resolve(rid) if rid is not None else None
        return rec if rec is not None and rec.live else None

    def render(
        self, rec: Rec, props: Iterable[str], *, with_archived: bool = False
    ) -> dict[str, Any]:
        """The SimplePublicObject body of ``rec`` with the given properties."""
        out: dict[str, Any] = {
            "id": str(rec.id),
            "properties": {p: self.value(rec, p) for p in props},
            "createdAt": iso_ms(rec.created_ms),
            "updatedAt": iso_ms(rec.updated_ms),
            "archived": rec.archived_ms is not None,
        }
        if with_archived and rec.archived_ms is not None:
            out["archivedAt"] = iso_ms(rec.archived_ms)
        return out

    # -- writing

    def insert(self, rec: Rec) -> None:
        """Add a new live record (ids need not arrive in order)."""
        self.recs[rec.id] = rec
        if not self.live or rec.id > self.live[-1]:
            self.live.append(rec.id)
        else:
            insort(self.live, rec.id)
        key = (rec.updated_ms, rec.id)
        if not self.by_mod or key > self.by_mod[-1]:
            self.by_mod.append(key)
        else:
            insort(self.by_mod, key)
        self._index_unique(rec)

    def _index_unique(self, rec: Rec) -> None:
        for prop, index in self.uniq.items():
            v = rec.vals[self.schema.index[prop]]
            if v:
                index[fold(v)] = rec.id

    def _unindex_unique(self, rec: Rec) -> None:
        for prop, index in self.uniq.items():
            v = rec.vals[self.schema.index[prop]]
            if v and index.get(fold(v)) == rec.id:
                del index[fold(v)]

    def _drop_mod(self, rec: Rec) -> None:
        key = (rec.updated_ms, rec.id)
        i = bisect_left(self.by_mod, key)
        if i < len(self.by_mod) and self.by_mod[i] == key:
            del self.by_mod[i]

    def _drop_live(self, rid: int) -> None:
        i = bisect_left(self.live, rid)
        if i < len(self.live) and self.live[i] == rid:
            del self.live[i]

    def set_values(self, rec: Rec, values: Mapping[str, str | None], ms: int) -> list[str]:
        """Write property values (already validated) and stamp the record; return changed names."""
        changed = []
        self._unindex_unique(rec)
        for prop, value in values.items():
            i = self.schema.index[prop]
            if rec.vals[i] != value:
                rec.vals[i] = value
                changed.append(prop)
        self._index_unique(rec)
        self.touch(rec, ms)
        return changed

    def touch(self, rec: Rec, ms: int) -> None:
        """Move ``rec`` to a new last-modified instant (kept monotonic per record)."""
        ms = max(ms, rec.updated_ms)
        if rec.live:
            self._drop_mod(rec)
            rec.updated_ms = ms
            insort(self.by_mod, (ms, rec.id))
        else:
            rec.updated_ms = ms

    def archive(self, rec: Rec, ms: int) -> None:
        """Soft-delete: listed only with ``archived=true`` from now on."""
        if not rec.live:
            return
        self._drop_mod(rec)
        self._drop_live(rec.id)
        self._unindex_unique(rec)
        rec.archived_ms = ms
        rec.updated_ms = max(ms, rec.updated_ms)
        insort(self.archived, rec.id)

    def purge(self, rec: Rec) -> None:
        """Delete for good (GDPR): not listed, not archived, not found by id."""
        if rec.live:
            self._drop_mod(rec)
            self._drop_live(rec.id)
            self._unindex_unique(rec)
        elif rec.archived_ms is not None:
            i = bisect_left(self.archived, rec.id)
            if i < len(self.archived) and self.archived[i] == rec.id:
                del self.archived[i]
        self.recs.pop(rec.id, None)

    def merge_away(self, rec: Rec, into: int) -> None:
        """Mark ``rec`` merged into ``into``: never listed again, resolves to the survivor."""
        self._drop_mod(rec)
        self._drop_live(rec.id)
        self._unindex_unique(rec)
        rec.merged_into = into


def deal_stage_properties(dealstage: str | None) -> dict[str, str | None]:
    """The properties HubSpot calculates from a deal's stage: ``hs_deal_stage_probability``
    (the stage's probability in the pipeline's settings, a 0..1 fraction) and
    ``hs_is_closed`` / ``hs_is_closed_won``. A write of ``dealstage`` updates them; the
    sandbox portal's default pipeline carries the probabilities the generator seeds.
    https://knowledge.hubspot.com/properties/hubspots-default-deal-properties"""
    canonical = to_canonical(STAGES, "hubspot", dealstage) if dealstage else None
    if canonical is None:
        return {}
    fraction = f"{STAGE_PROBABILITY[canonical] / 100:.2f}".rstrip("0").rstrip(".") or "0"
    return {
        "hs_deal_stage_probability": fraction,  # as the generator seeds it: "0.4", "1", "0"
        "hs_is_closed": "true" if canonical in ("closed_won", "closed_lost") else "false",
        "hs_is_closed_won": "true" if canonical == "closed_won" else "false",
    }


def fold(value: str) -> str:
    """The unique-index key of a value (trimmed, case-folded; the same object if unchanged)."""
    key = value.strip().casefold()
    return value if key == value else key


def to_int(value: Any) -> int | None:
    """An object id as int, or None when it is not a positive integer."""
    try:
        n = int(str(value).strip())
    except ValueError:
        return None
    return n if n > 0 else None


# ---------------------------------------------------------------- value validation


@dataclass(frozen=True)
class ValueProblem:
    """One invalid property value (rendered as a VALIDATION_ERROR detail)."""

    prop: str
    code: str
    message: str


def normalize_value(
    spec: FieldSpec, options: tuple[str, ...], raw: Any
) -> str | ValueProblem | None:
    """The stored string for a written value, or the problem with it.

    HubSpot takes JSON strings, numbers and booleans and stores strings; ``""`` or
    null clears a property.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, int | float):
        text = repr(raw) if isinstance(raw, float) and not raw.is_integer() else str(int(raw))
    elif isinstance(raw, str):
        text = raw
    else:
        return ValueProblem(spec.name, "INVALID_VALUE", f"{json.dumps(raw)} is not a valid value")
    if text == "":
        return ""
    t = spec.type
    if t in ("int", "double"):
        try:
            num = float(text)
        except ValueError:
            return ValueProblem(spec.name, "INVALID_FLOAT", f"{text} was not a valid number.")
        if not math.isfinite(num):
            return ValueProblem(spec.name, "INVALID_FLOAT", f"{text} was not a valid number.")
        return text
    if t == "boolean":
        if text.lower() not in ("true", "false"):
            return ValueProblem(spec.name, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return text.lower()
    if t in ("datetime", "date"):
        try:
            ms = parse_instant(text)
        except ValueError:
            return ValueProblem(
                spec.name, "INVALID_DATE", f"{text} was not a valid long or ISO 8601 date."
            )
        return iso_ms(ms)
    if t == "email":
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
            return ValueProblem(spec.name, "INVALID_EMAIL", f"Email address {text} is invalid")
        return text
    if t == "picklist" and options and text not in options:
        allowed = ", ".join(options)
        return ValueProblem(
            spec.name,
            "INVALID_OPTION",
            f"{text} was not one of the allowed options: [{allowed}]",
        )
    return text


def validation_error(problems: list[ValueProblem]) -> StoreError:
    """A whole request refused with HubSpot's 400 VALIDATION_ERROR for ``problems``."""
    err = problems_error(problems)
    return StoreError(400, "VALIDATION_ERROR", err["message"], context=err["context"], errors=err["errors"])


def problems_error(problems: list[ValueProblem]) -> dict[str, Any]:
    """HubSpot's VALIDATION_ERROR body for invalid property values."""
    listing = [
        {
            "isValid": False,
            "message": p.message,
            "error": p.code,
            "name": p.prop,
            "localizedErrorMessage": p.message,
        }
        for p in problems
    ]
    return {
        "category": "VALIDATION_ERROR",
        "message": "Property values were not valid: " + json.dumps(listing, separators=(",", ":")),
        "context": {"propertyName": [p.prop for p in problems]},
        "errors": [
            {"message": p.message, "code": p.code, "context": {"propertyName": [p.prop]}}
            for p in problems
        ],
    }


# ---------------------------------------------------------------- associations


class Associations:
    """Associations between two object types, stored both ways.

    Each side maps an id to a tuple of ``to_id * 2 + primary`` ints: compact (one
    small tuple per record) and immutable, so readers never see half an update.
    """

    def __init__(self) -> None:
        self.adj: dict[tuple[str, str], dict[int, tuple[int, ...]]] = {
            pair: {} for pair in ASSOC_TYPES
        }
        # company hierarchy: child company id → parent company id (one parent each)
        self.parents: dict[int, int] = {}

    def children(self, rid: int) -> list[int]:
        """The child companies of ``rid``."""
        return sorted(c for c, p in self.parents.items() if p == rid)

    def hierarchy_entries(self, rid: int) -> list[tuple[int, int]]:
        """(company id, type id) of ``rid``'s parent (type 14) and children (type 13)."""
        out = [(self.parents[rid], CHILD_TO_PARENT)] if rid in self.parents else []
        return out + [(c, PARENT_TO_CHILD) for c in self.children(rid)]

    def targets(self, frm: str, to: str, rid: int) -> list[tuple[int, bool]]:
        """(to_id, primary) pairs for ``rid``."""
        return [(v >> 1, bool(v & 1)) for v in self.adj[(frm, to)].get(rid, ())]

    def _put(self, frm: str, to: str, a: int, b: int, primary: bool) -> None:
        side = self.adj[(frm, to)]
        cur = [v for v in side.get(a, ()) if v >> 1 != b]
        cur.append(b * 2 + int(primary))
        side[a] = tuple(cur)

    def add(self, frm: str, to: str, a: int, b: int, *, primary: bool = False) -> None:
        """Associate ``a`` (type ``frm``) with ``b`` (type ``to``); primary demotes any other."""
        if primary and ASSOC_TYPES[(frm, to)][1] is not None:
            for other, was_primary in self.targets(frm, to, a):
                if was_primary and other != b:
                    self._put(frm, to, a, other, False)
                    self._put(to, frm, other, a, False)
        existing = dict(self.targets(frm, to, a))
        keep_primary = primary or existing.get(b, False)
        self._put(frm, to, a, b, keep_primary)
        self._put(to, frm, b, a, keep_primary)

    def remove(self, frm: str, to: str, a: int, b: int) -> bool:
        """Remove the association; True when there was one."""
        found = False
        for x, y, f, t in ((a, b, frm, to), (b, a, to, frm)):
            side = self.adj[(f, t)]
            cur = side.get(x, ())
            new = tuple(v for v in cur if v >> 1 != y)
            if len(new) != len(cur):
                found = True
                if new:
                    side[x] = new
                else:
                    del side[x]
        return found

    def bulk_load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add the seed file's associations (one direction stored, both served) in one pass."""
        staged: dict[tuple[str, str], dict[int, list[int]]] = {pair: {} for pair in ASSOC_TYPES}
        for pair, current in self.adj.items():  # keep what is already there
            for a, packed in current.items():
                staged[pair][a] = list(packed)
        for row in rows:
            src, dst = TYPE_ALIASES.get(row["fromType"]), TYPE_ALIASES.get(row["toType"])
            if src == dst == "companies":  # a company hierarchy link
                child, parent = int(row["fromId"]), int(row["toId"])
                if int(row.get("typeId", 0)) == PARENT_TO_CHILD:
                    child, parent = parent, child
                self.parents[child] = parent
                continue
            if src is None or dst is None or (src, dst) not in ASSOC_TYPES:
                continue
            flag = 1 if assoc_type_ok(src, dst, int(row.get("typeId", 0))) else 0
            a, b = int(row["fromId"]), int(row["toId"])
            staged[(src, dst)].setdefault(a, []).append(b * 2 + flag)
            staged[(dst, src)].setdefault(b, []).append(a * 2 + flag)
        for pair, by_id in staged.items():
            self.adj[pair] = {a: _pack(packed) for a, packed in by_id.items()}

    def move(self, obj: str, old: int, new: int) -> None:
        """Re-point every association of ``old`` to ``new`` (after a merge)."""
        if obj == "companies":
            if old in self.parents:
                self.parents.setdefault(new, self.parents.pop(old))
            for child in self.children(old):
                self.parents[child] = new
            if self.parents.get(new) == new:
                del self.parents[new]
        for (frm, to), side in self.adj.items():
            if frm != obj or old not in side:
                continue
            for b, primary in self.targets(frm, to, old):
                self.remove(frm, to, old, b)
                self.add(frm, to, new, b, primary=primary)

    def type_entries(self, frm: str, to: str, primary: bool) -> list[dict[str, Any]]:
        """The ``associationTypes`` list of one association."""
        unlabeled, primary_id = ASSOC_TYPES[(frm, to)]
        out: list[dict[str, Any]] = []
        if primary and primary_id is not None:
            out.append(
                {"category": "HUBSPOT_DEFINED", "typeId": primary_id, "label": PRIMARY_LABEL}
            )
        out.append({"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": None})
        return out

    def count(self) -> int:
        return sum(
            len(v) for (frm, to), side in self.adj.items() if frm < to for v in side.values()
        ) + len(self.parents)


def _pack(packed: list[int]) -> tuple[int, ...]:
    """One entry per target; a pair listed both unlabeled and primary stays primary."""
    if len(packed) == 1:
        return (packed[0],)
    merged: dict[int, int] = {}
    for v in packed:
        merged[v >> 1] = merged.get(v >> 1, 0) | (v & 1)
    return tuple(b * 2 + f for b, f in merged.items())


def assoc_type_ok(frm: str, to: str, type_id: int) -> bool | None:
    """None when ``type_id`` is not valid for frm→to, else whether it means primary."""
    unlabeled, primary = ASSOC_TYPES[(frm, to)]
    if type_id == unlabeled:
        return False
    if primary is not None and type_id == primary:
        return True
    return None


# ---------------------------------------------------------------- loading


def read_json_array(path: Path) -> list[dict[str, Any]]:
    """A JSON array file, or [] when it does not exist."""
    return list(iter_json_array(path))


_BETWEEN = re.compile(r"[\s,]*")


def iter_json_array(path: Path) -> Iterator[dict[str, Any]]:
    """The elements of a JSON array file one by one (nothing when it does not exist).

    Decoding element by element lets each parsed dict be dropped as soon as it is
    turned into a record, so loading 300k records neither doubles the peak memory
    nor leaves the heap fragmented by a whole parsed file.
    """
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    i = _BETWEEN.match(text, 0).end()  # type: ignore[union-attr]
    if text[i : i + 1] != "[":
        raise ValueError(f"{path.name}: expected a JSON array")
    i = _BETWEEN.match(text, i + 1).end()  # type: ignore[union-attr]
    while i < len(text) and text[i] != "]":
        item, i = decoder.raw_decode(text, i)
        if not isinstance(item, dict):
            raise ValueError(f"{path.name}: expected an array of objects")
        yield item
        i = _BETWEEN.match(text, i).end()  # type: ignore[union-attr]
    if i >= len(text):
        raise ValueError(f"{path.name}: unterminated JSON array")


def record_from_seed(schema: TypeSchema, doc: Mapping[str, Any]) -> Rec:
    """A stored record from the seed format (``{"id","properties","createdAt",...}``).

    Values of low-cardinality properties (picklists, booleans, owner ids …) are
    interned so 300k records share one string per distinct value.
    """
    props = doc.get("properties") or {}
    vals: list[str | None] = [None] * len(schema.fields)
    index = schema.stored
    shared = schema.shared
    for name, value in props.items():
        i = index.get(name)
        if i is not None and value is not None:
            text = value if type(value) is str else str(value)
            vals[i] = sys.intern(text) if i in shared else text
    created = parse_instant(doc["createdAt"]) if doc.get("createdAt") else 0
    updated = parse_instant(doc["updatedAt"]) if doc.get("updatedAt") else created
    rec = Rec(int(doc["id"]), vals, created, updated)
    if doc.get("archived"):
        rec.archived_ms = parse_instant(doc["archivedAt"]) if doc.get("archivedAt") else updated
    return rec


def iter_page(ids: list[int], start_id: int, limit: int) -> Iterator[int]:
    """Up to ``limit`` ids from a sorted list, starting at the first id >= ``start_id``."""
    i = bisect_left(ids, start_id)
    yield from ids[i : i + limit]


def mod_range(
    by_mod: list[tuple[int, int]], lo_ms: int | None, hi_ms: int | None
) -> tuple[int, int]:
    """Index range of ``by_mod`` whose instants lie in [lo_ms, hi_ms] (None: open)."""
    lo = 0 if lo_ms is None else bisect_left(by_mod, (lo_ms, -1))
    hi = len(by_mod) if hi_ms is None else bisect_right(by_mod, (hi_ms, math.inf))
    return lo, max(lo, hi)
