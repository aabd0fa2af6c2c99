"""A remote record's view: its values in canonical form, as the store keeps them.

Pull maps what it reads into a view, push maps what it wrote into one (to recognise
the echo of its own write), reconcile and plan decode views back into entities. The
helpers all of them share live here, so no stage borrows from another.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from connectors.base import RecordError, RemoteRecord
from mapping.canonical import ENTITY_CLASSES, ObjectType, entity_from_json, entity_to_json
from mapping.fieldmap import CompiledReader, compile_reader, content_hash, get_field_map

#: keys of a record's view (``ExternalRefRow.canonical_fields``) that are not fields:
#: canonical field → {"field": native field, "raw": safe text, "reason" / "note"}
UNREADABLE_KEY = "_unreadable"
CLEANED_KEY = "_cleaned"


@dataclass
class Mapped:
    """A record as read, with its view and the view's hash."""

    rec: RemoteRecord
    view: dict[str, Any]
    digest: str
    raw: str | None = None  # the record's raw digest as read (sync.pull.raw_digest)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while one page or batch is mapped and written: it
    allocates tens of thousands of short-lived objects (views, ORM rows) whose full
    collections cost about a seventh of a sync. Restored on exit, so what the batch
    left behind is collected as usual afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def view_hash(view: Mapping[str, Any], assoc: Mapping[str, Sequence[str]]) -> str:
    """Content hash of a view and its associations (equal hashes: nothing changed)."""
    payload = dict(view)
    # an empty ``parent`` (a removed parent, sync.hierarchy) reads back as none at all
    payload["__assoc__"] = {k: sorted(v) for k, v in sorted(assoc.items()) if v or k != "parent"}
    return content_hash(payload, payload.keys())


def map_record(
    kind: str, rec: RemoteRecord, fieldmaps: Mapping[tuple[str, str], Any] | None = None, *,
    reader: CompiledReader | None = None,
) -> dict[str, Any]:
    """The record's values in canonical form (JSON-compatible), each field read on its own.

    A value that cannot be read leaves its field empty and is listed under
    ``view["_unreadable"]`` (reconcile takes it as no claim from this record, plan never
    writes that field to this record); a value read after removing control characters
    is listed under ``view["_cleaned"]``. Both keys are absent when there is nothing to say.
    ``fieldmaps``: the field maps in force (defaults with revsync.toml's overrides);
    ``reader``: their compiled reader for the record's native type (a page passes it).
    Mapping goes through ``mapping.fieldmap.compile_reader``: the map is compiled once."""
    if reader is None:
        fm = fieldmaps.get((kind, rec.native_type)) if fieldmaps else None
        reader = compile_reader(kind, rec.native_type, fieldmap=fm)
    result = reader(rec.fields)
    ent = result.entity
    view = entity_to_json(ent)
    view.pop("account_id", None)
    view.pop("contact_ids", None)
    view.pop("parent_id", None)
    if ent.extras:
        view["extras"] = ent.extras
    if result.unreadable:
        view[UNREADABLE_KEY] = {u.canonical: {"field": u.native, "raw": u.raw, "reason": u.reason}
                                for u in result.unreadable}
    if result.cleaned:
        view[CLEANED_KEY] = {c.canonical: {"field": c.native, "raw": c.raw, "note": c.note}
                             for c in result.cleaned}
    return view


def unreadable_fields(view: Mapping[str, Any] | None) -> dict[str, Any]:
    """canonical field → {"field", "raw", "reason"} for the values of a view that could not be read."""
    return dict((view or {}).get(UNREADABLE_KEY) or {})


def written_view(kind: str, native: str, fields: Mapping[str, Any], *, partial: bool = True,
                 fieldmaps: Mapping[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    """The canonical values a write set. For an update, only fields whose native
    field was sent (it says nothing about the others, even where a transform reads
    an absent field as a value, e.g. an opt-out flag as false). For a create, the
    absent fields are what the system starts with, which the mapping reads the
    same way (an unset flag is false)."""
    try:
        view = map_record(kind, RemoteRecord(kind, ObjectType.ACCOUNT, "", None, fields, native_type=native),
                          fieldmaps)
    except RecordError:
        return {}
    if not partial:
        return view
    sent = {k.split(".")[0] for k in fields}
    fm = (fieldmaps or {}).get((kind, native)) or get_field_map(kind, native)
    written = {r.canonical for r in fm.read_rules
               if r.extras_key is None and r.native.split(".")[0] in sent}
    return {k: v for k, v in view.items() if k in written}


def after_update(view: Mapping[str, Any], written: Mapping[str, Any]) -> dict[str, Any]:
    """A record's view once an update wrote ``written`` (``written_view``): the written
    values replace the view's, and a phone written takes its extension with it (the
    mapping keeps an extension in ``extras["<field>_extension"]``, read from the same
    native field; the E.164 value written carries none). Without that, the record read
    back no longer matched the view: it looked edited after our own write, its modstamp
    became the latest, and its other values won ``latest`` fields (issue #19)."""
    out = dict(view)
    out.update({k: v for k, v in written.items() if v is not None and k != "extras"})
    extras = out.get("extras")
    if isinstance(extras, dict):
        gone = {f"{k}_extension" for k, v in written.items() if v is not None and k != "extras"}
        if gone & extras.keys():
            kept = {k: v for k, v in extras.items() if k not in gone}
            if kept:
                out["extras"] = kept
            else:
                del out["extras"]  # as map_record leaves it: no extras, no key
    return out


def decoded(object_type: str, view: Mapping[str, Any] | None) -> Any:
    """The entity a view describes (no id: a record's values, not an entity)."""
    return entity_from_json(object_type, dict(view or {}), id="")


def row_entity(object_type: str, row: Any, contact_ids: Sequence[str] = ()) -> Any:
    """The canonical entity a store row holds."""
    cls = ENTITY_CLASSES[ObjectType(object_type)]
    values = {f: getattr(row, f) for f in cls.business_fields() if hasattr(row, f)}
    if object_type == "opportunity":
        values["contact_ids"] = tuple(contact_ids)
    return cls(id=row.id, created_at=row.created_at, updated_at=row.updated_at,
               deleted_at=row.deleted_at, extras=dict(row.extras or {}), **values)
