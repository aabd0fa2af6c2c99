"""Field provenance: which record, rule and run decided each canonical field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from sync.store.tables import FieldProvenanceRow, metadata

_PROVENANCE_KEY = (FieldProvenanceRow.id, FieldProvenanceRow.entity_id, FieldProvenanceRow.field,
                   FieldProvenanceRow.value, FieldProvenanceRow.system, FieldProvenanceRow.remote_id,
                   FieldProvenanceRow.rule)


def provenance_for(s: Session, object_type: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """entity id → field → the provenance row's (id, entity_id, field, value, system,
    remote_id, rule), read as plain rows (not ORM objects: a batch has thousands)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        for p in s.execute(
            select(*_PROVENANCE_KEY).where(
                FieldProvenanceRow.object_type == object_type, FieldProvenanceRow.entity_id.in_(ids[i : i + 500])
            )
        ):
            out.setdefault(p.entity_id, {})[p.field] = p
    return out


def upsert_provenance(
    s: Session, object_type: str, entity_id: str, rows: list[dict[str, Any]],
    existing: Any = None, new_rows: list[dict[str, Any]] | None = None,
    changed_rows: list[dict[str, Any]] | None = None,
) -> None:
    """Record each row's decision (``existing``: this entity's ``provenance_for``).

    Given ``new_rows`` and ``changed_rows``, the inserts and updates are appended there
    as plain dicts for one bulk ``insert_provenance`` later (far cheaper than ORM
    objects, one per field); otherwise they are written now."""
    if existing is None:
        existing = provenance_for(s, object_type, [entity_id]).get(entity_id, {})
    inserts = [] if new_rows is None else new_rows
    updates = [] if changed_rows is None else changed_rows
    for r in rows:
        p = existing.get(r["field"])
        if p is None:
            inserts.append({"object_type": object_type, "entity_id": entity_id, **r})
        elif (p.value, p.system, p.remote_id, p.rule) != (r["value"], r["system"], r["remote_id"], r["rule"]):
            updates.append({"id": p.id, **r})
    if new_rows is None or changed_rows is None:
        insert_provenance(s, inserts if new_rows is None else [], updates if changed_rows is None else [])


def insert_provenance(s: Session, rows: list[dict[str, Any]], changed: Sequence[dict[str, Any]] = ()) -> None:
    """Insert new provenance rows and update changed ones (by id), each in one
    executemany (the dicts ``upsert_provenance`` collects)."""
    from sqlalchemy import update

    table = metadata.tables[FieldProvenanceRow.__tablename__]
    if rows:
        s.execute(insert(table), rows)
    if changed:
        s.execute(update(FieldProvenanceRow), list(changed))


def provenance(s: Session, object_type: str, entity_id: str) -> list[FieldProvenanceRow]:
    return list(
        s.scalars(
            select(FieldProvenanceRow)
            .where(FieldProvenanceRow.object_type == object_type, FieldProvenanceRow.entity_id == entity_id)
            .order_by(FieldProvenanceRow.field)
        )
    )
