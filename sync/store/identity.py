"""Identity: entities, the identity map (remote record → canonical id), the keys
tier-1 linking looks up, the dirty flags, opportunity contact roles, entity search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.store.tables import (
    ENTITY_TABLES,
    AccountRow,
    ContactRow,
    ErrorLedgerRow,
    ExternalRefRow,
    FieldProvenanceRow,
    OpportunityContactRow,
    OpportunityRow,
    OutboxRow,
    metadata,
)


def refs_by_remote_id(
    s: Session, system: str, native_type: str, remote_ids: list[str]
) -> dict[str, ExternalRefRow]:
    out: dict[str, ExternalRefRow] = {}
    for i in range(0, len(remote_ids), 500):
        chunk = remote_ids[i : i + 500]
        for r in s.scalars(
            select(ExternalRefRow).where(
                ExternalRefRow.system == system,
                ExternalRefRow.native_type == native_type,
                ExternalRefRow.remote_id.in_(chunk),
            )
        ):
            out[r.remote_id] = r
    return out


def ref_rows_by_remote_id(s: Session, system: str, native_type: str, remote_ids: Sequence[str]) -> dict[str, Any]:
    """``refs_by_remote_id`` as plain read-only rows (Core): remote id → its row."""
    t = ExternalRefRow.__table__
    out: dict[str, Any] = {}
    for i in range(0, len(remote_ids), 500):
        for r in s.execute(select(t).where(t.c.system == system, t.c.native_type == native_type,
                                           t.c.remote_id.in_(list(remote_ids[i : i + 500])))):
            out[r.remote_id] = r
    return out


def write_ref_rows(s: Session, inserts: Sequence[Mapping[str, Any]], updates: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``external_ref`` rows (column → value dicts) in one executemany, and
    update rows by ``id`` (each dict: ``id`` plus the columns to set), one
    executemany per set of columns: the set-based write of a page or push batch."""
    from sqlalchemy import bindparam, insert, update

    t = metadata.tables[ExternalRefRow.__tablename__]
    if inserts:
        s.execute(insert(t), list(inserts))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for u in updates:
        cols = tuple(sorted(k for k in u if k != "id"))
        if cols:
            groups.setdefault(cols, []).append({"_id": u["id"], **{k: u[k] for k in cols}})
    for cols, rows in groups.items():
        stmt = update(t).where(t.c.id == bindparam("_id")).values({c: bindparam(c) for c in cols})
        s.connection().execute(stmt, rows)


def refs_for_remote_ids_any_system(
    s: Session, object_type: str, remote_ids: list[str]
) -> dict[tuple[str, str], str]:
    """(system, remote_id) → canonical id, for refs of ``object_type`` in any system."""
    out: dict[tuple[str, str], str] = {}
    ids = sorted(set(remote_ids))
    for i in range(0, len(ids), 500):
        for r in s.execute(
            select(ExternalRefRow.system, ExternalRefRow.remote_id, ExternalRefRow.canonical_id).where(
                ExternalRefRow.object_type == object_type, ExternalRefRow.remote_id.in_(ids[i : i + 500])
            )
        ):
            out[(r.system, r.remote_id)] = r.canonical_id
    return out


def live_entity_ids(s: Session, object_type: str, ids: list[str]) -> set[str]:
    t = ENTITY_TABLES[object_type]
    found: set[str] = set()
    uniq = sorted(set(ids))
    for i in range(0, len(uniq), 500):
        found.update(s.scalars(select(t.id).where(t.id.in_(uniq[i : i + 500]), t.merged_into.is_(None))))
    return found


def resolve_entity_ids(s: Session, object_type: str, ids: list[str]) -> dict[str, str]:
    """id → the entity holding it now: itself, or the survivor it was merged into
    (followed to the end of the chain). Ids the store does not know are left out."""
    t = ENTITY_TABLES[object_type]
    merged: dict[str, str | None] = {}
    todo = sorted(set(ids))
    for _ in range(16):  # merge chains are short; a cycle would be a bug, not data
        todo = [i for i in todo if i not in merged]
        if not todo:
            break
        for i in range(0, len(todo), 500):
            merged.update((eid, into) for eid, into in s.execute(
                select(t.id, t.merged_into).where(t.id.in_(todo[i : i + 500]))))
        todo = [into for into in merged.values() if into]
    out: dict[str, str] = {}
    for eid in set(ids):
        cur: str | None = eid
        seen: set[str] = set()
        while cur is not None and cur in merged and merged[cur] and cur not in seen:
            seen.add(cur)
            cur = merged[cur]
        if cur is not None and cur in merged:
            out[eid] = cur
    return out


def entity_is_unanchored_since(s: Session, object_type: str, entity_id: str, since: datetime) -> bool:
    """True if the entity was made at or after ``since`` and none of its records
    carries its id (so renaming it to an id a record carries loses nothing)."""
    t: Any = ENTITY_TABLES[object_type]
    row = s.get(t, entity_id)
    if row is None or row.created_at < since or row.merged_into:
        return False
    anchored = s.scalar(select(func.count()).select_from(ExternalRefRow).where(
        ExternalRefRow.object_type == object_type, ExternalRefRow.canonical_id == entity_id,
        ExternalRefRow.revsync_id == entity_id))
    return not anchored


def rename_entity(s: Session, object_type: str, old: str, new: str) -> None:
    """Give entity ``old`` the id ``new`` (which no entity has), with everything that
    points at it: its records, associations, provenance, outbox and ledger rows."""
    from sqlalchemy import update

    t = ENTITY_TABLES[object_type]
    s.flush()
    row = s.get(t, old)
    if row is None:
        return
    values = {c.key: getattr(row, c.key) for c in t.__mapper__.column_attrs}
    values["id"] = new
    s.add(t(**values))  # the new row first: the opportunity's contacts reference it
    s.flush()
    s.execute(update(ExternalRefRow).where(ExternalRefRow.object_type == object_type,
                                           ExternalRefRow.canonical_id == old).values(canonical_id=new)
              .execution_options(synchronize_session="fetch"))
    s.execute(update(FieldProvenanceRow).where(FieldProvenanceRow.object_type == object_type,
                                               FieldProvenanceRow.entity_id == old).values(entity_id=new))
    for tbl in (OutboxRow, ErrorLedgerRow):
        s.execute(update(tbl).where(tbl.object_type == object_type, tbl.canonical_id == old)
                  .values(canonical_id=new))
    s.execute(update(t).where(t.merged_into == old).values(merged_into=new))
    if object_type == "account":
        for child in (ContactRow, OpportunityRow):
            s.execute(update(child).where(child.account_id == old).values(account_id=new))
    elif object_type == "contact":
        s.execute(update(OpportunityContactRow).where(OpportunityContactRow.contact_id == old)
                  .values(contact_id=new))
    else:
        s.execute(update(OpportunityContactRow).where(OpportunityContactRow.opportunity_id == old)
                  .values(opportunity_id=new))
    s.delete(row)
    s.flush()


def _oldest_live_by(s: Session, table: Any, column: Any, values: list[str]) -> dict[str, str]:
    """value of ``column`` → the id of the oldest live entity of ``table`` holding it."""
    out: dict[str, str] = {}
    uniq = sorted(set(values))
    for i in range(0, len(uniq), 500):
        for value, cid in s.execute(
            select(column, table.id)
            .where(column.in_(uniq[i : i + 500]), table.merged_into.is_(None))
            .order_by(table.created_at, table.id)
        ):
            if value:
                out.setdefault(value, cid)
    return out


def contacts_by_email_key(s: Session, keys: list[str]) -> dict[str, str]:
    return _oldest_live_by(s, ContactRow, ContactRow.email_key, keys)


def accounts_by_domain(s: Session, domains: list[str]) -> dict[str, str]:
    return _oldest_live_by(s, AccountRow, AccountRow.domain, domains)


def account_candidates_by_domain(s: Session, domains: list[str]) -> dict[str, list[dict[str, Any]]]:
    """domain → the live accounts holding it, oldest first, as {id, name, sub}: ``sub``
    when the account is in a hierarchy under a parent (a decided parent, or a record
    naming one), so the domain key can keep a parent and its subsidiaries apart."""
    out: dict[str, list[dict[str, Any]]] = {}
    uniq = sorted(set(domains))
    by_id: dict[str, dict[str, Any]] = {}
    for i in range(0, len(uniq), 500):
        for dom, cid, name, parent in s.execute(
            select(AccountRow.domain, AccountRow.id, AccountRow.name, AccountRow.parent_id)
            .where(AccountRow.domain.in_(uniq[i : i + 500]), AccountRow.merged_into.is_(None))
            .order_by(AccountRow.created_at, AccountRow.id)
        ):
            if dom:
                cand = {"id": cid, "name": name, "sub": parent is not None}
                out.setdefault(dom, []).append(cand)
                by_id[cid] = cand
    # records naming a parent mark their entity too (its parent is not decided yet)
    open_ids = sorted(c for c, cand in by_id.items() if not cand["sub"])
    for i in range(0, len(open_ids), 500):
        for cid, assoc in s.execute(
            select(ExternalRefRow.canonical_id, ExternalRefRow.associations).where(
                ExternalRefRow.object_type == "account", ExternalRefRow.canonical_id.in_(open_ids[i : i + 500]),
                ExternalRefRow.deleted_at.is_(None))
        ):
            if (assoc or {}).get("parent"):
                by_id[cid]["sub"] = True
    return out


def opportunities_by_account(s: Session, account_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """account id → its opportunities as {id, name, close_date, amount, systems}
    (for the account+name deterministic key; ``systems``: where it has live records)."""
    out: dict[str, list[dict[str, Any]]] = {}
    uniq = sorted(set(account_ids))
    by_id: dict[str, dict[str, Any]] = {}
    for i in range(0, len(uniq), 500):
        for aid, oid, name, close, amount in s.execute(
            select(OpportunityRow.account_id, OpportunityRow.id, OpportunityRow.name, OpportunityRow.close_date,
                   OpportunityRow.amount).where(
                OpportunityRow.account_id.in_(uniq[i : i + 500]), OpportunityRow.merged_into.is_(None)
            )
        ):
            if aid:
                item: dict[str, Any] = {"id": oid, "name": name, "close_date": close, "amount": amount, "systems": set()}
                out.setdefault(aid, []).append(item)
                by_id[oid] = item
    ids = sorted(by_id)
    for i in range(0, len(ids), 500):
        for cid, system in s.execute(
            select(ExternalRefRow.canonical_id, ExternalRefRow.system).where(
                ExternalRefRow.object_type == "opportunity", ExternalRefRow.canonical_id.in_(ids[i : i + 500]),
                ExternalRefRow.deleted_at.is_(None),
            )
        ):
            by_id[cid]["systems"].add(system)
    return out


def add_entity(s: Session, object_type: str, entity_id: str, now: datetime, **values: Any) -> None:
    t = ENTITY_TABLES[object_type]
    s.add(t(id=entity_id, created_at=now, updated_at=now, extras={}, dirty=True, **values))


def mark_dirty(s: Session, object_type: str, ids: list[str]) -> None:
    from sqlalchemy import update

    t = ENTITY_TABLES[object_type]
    uniq = sorted(set(ids))
    for i in range(0, len(uniq), 500):
        s.execute(update(t).where(t.id.in_(uniq[i : i + 500])).values(dirty=True))


class EntityValues:
    """One entity table row read as plain values (Core, not an ORM object): its columns
    are attributes that reconcile may set; ``changes()`` names those that differ from
    what was read. ``write_entity_values`` writes a batch of them set-based."""

    __slots__ = ("__dict__", "_read")

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)
        self._read = dict(values)

    def __getattr__(self, name: str) -> Any:  # only for names that are not columns
        raise AttributeError(name)

    def changes(self) -> dict[str, Any]:
        """column → new value, for every column set to something other than was read."""
        return {k: v for k, v in self.__dict__.items() if k not in self._read or self._read[k] != v}

    def __repr__(self) -> str:
        return f"EntityValues(id={self.__dict__.get('id')!r})"


def entity_values(s: Session, query: Any) -> list[EntityValues]:
    """The entity rows ``query`` (a Core select of one entity table) returns, as
    ``EntityValues``: what a resolve batch reads, changes and writes back in bulk."""
    return [EntityValues(dict(r)) for r in s.execute(query).mappings()]


def dirty_entities(s: Session, object_type: str, limit: int, after: str = "") -> list[EntityValues]:
    """The next ``limit`` dirty entities with an id after ``after``, as ``EntityValues``."""
    t = ENTITY_TABLES[object_type].__table__
    return entity_values(s, select(t).where(t.c.dirty.is_(True), t.c.id > after).order_by(t.c.id).limit(limit))


#: per entity table, the columns ``write_entity_values`` writes together when any of
#: them changed (what reconcile decides): one statement shape for every changed row
_DECIDED_SKIP = frozenset({"id", "created_at", "merged_into", "dirty", "deleted_at"})


def write_entity_values(s: Session, object_type: str, rows: Sequence[EntityValues]) -> int:
    """Write what changed in ``rows`` (``EntityValues`` of ``object_type``), set-based, in
    the caller's transaction: rows whose decided columns (the business fields, extras,
    updated_at...) changed in one executemany that sets all of them, each other set of
    changed columns (the dirty flag, deleted_at) in one executemany per set. Returns the
    rows written. ``merged_into`` and ``created_at`` are never written here: reconcile
    does not decide them (the matcher does, in its own statements)."""
    from sqlalchemy import bindparam, update

    t = metadata.tables[ENTITY_TABLES[object_type].__tablename__]
    decided = tuple(c.name for c in t.columns if c.name not in _DECIDED_SKIP)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        ch = row.changes()
        ch.pop("id", None)
        ch.pop("merged_into", None)
        ch.pop("created_at", None)
        if not ch:
            continue
        if any(c in ch for c in decided):
            ch.update({c: getattr(row, c) for c in decided})
        cols = tuple(sorted(ch))
        groups.setdefault(cols, []).append({"_id": row.id, **ch})
    conn = s.connection()
    for cols, values in groups.items():
        stmt = update(t).where(t.c.id == bindparam("_id")).values({c: bindparam(c) for c in cols})
        conn.execute(stmt, values)
    return sum(len(v) for v in groups.values())


def count_dirty(s: Session, object_type: str) -> int:
    t = ENTITY_TABLES[object_type]
    return s.scalar(select(func.count()).select_from(t).where(t.dirty.is_(True))) or 0


def refs_for_entities(s: Session, object_type: str, ids: list[str]) -> dict[str, list[ExternalRefRow]]:
    out: dict[str, list[ExternalRefRow]] = {}
    for i in range(0, len(ids), 500):
        for r in s.scalars(
            select(ExternalRefRow)
            .where(ExternalRefRow.object_type == object_type, ExternalRefRow.canonical_id.in_(ids[i : i + 500]))
            .order_by(ExternalRefRow.id)
        ):
            out.setdefault(r.canonical_id, []).append(r)
    return out


def ref_rows_for_entities(s: Session, object_type: str, ids: Sequence[str]) -> dict[str, list[Any]]:
    """``refs_for_entities`` as plain read-only rows (Core, no ORM objects: a resolve
    batch reads thousands and writes none of them). Each row has the columns of
    ``external_ref`` as attributes (``r.system``, ``r.canonical_fields``, ...)."""
    t = ExternalRefRow.__table__
    out: dict[str, list[Any]] = {}
    for i in range(0, len(ids), 500):
        for r in s.execute(
            select(t).where(t.c.object_type == object_type, t.c.canonical_id.in_(list(ids[i : i + 500])))
            .order_by(t.c.id)
        ):
            out.setdefault(r.canonical_id, []).append(r)
    return out


def remote_ids_for(
    s: Session, object_type: str, canonical_ids: list[str], exclude_natives: Any = (),
) -> dict[tuple[str, str], list[str]]:
    """(canonical id, system) → live remote ids of that entity in that system
    (leaving out records whose native type is in ``exclude_natives``)."""
    out: dict[tuple[str, str], list[str]] = {}
    uniq = sorted(set(canonical_ids))
    for i in range(0, len(uniq), 500):
        for cid, system, rid, native in s.execute(
            select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.remote_id,
                   ExternalRefRow.native_type)
            .where(
                ExternalRefRow.object_type == object_type,
                ExternalRefRow.canonical_id.in_(uniq[i : i + 500]),
                ExternalRefRow.deleted_at.is_(None),
            )
            .order_by(ExternalRefRow.id)
        ):
            if native not in exclude_natives:
                out.setdefault((cid, system), []).append(rid)
    return out


def entity_row(s: Session, object_type: str, entity_id: str) -> Any:
    return s.get(ENTITY_TABLES[object_type], entity_id)


def _follow_merges(s: Session, object_type: str, row: Any) -> Any:
    """The row an entity was (transitively) folded into, or the row itself."""
    t: Any = ENTITY_TABLES[object_type]
    seen: set[str] = set()
    while row is not None and row.merged_into and row.id not in seen:
        seen.add(row.id)
        row = s.get(t, row.merged_into)
    return row


def current_entity(s: Session, object_type: str, entity_id: str) -> str | None:
    """The live entity ``entity_id`` now belongs to (following links made since), or None
    when it is gone or deleted."""
    row = _follow_merges(s, object_type, s.get(ENTITY_TABLES[object_type], entity_id))
    if row is None or row.deleted_at is not None:
        return None
    return str(row.id)


def set_opportunity_contacts(s: Session, opportunity_id: str, contact_ids: list[str]) -> None:
    from sqlalchemy import delete

    s.execute(delete(OpportunityContactRow).where(OpportunityContactRow.opportunity_id == opportunity_id))
    for cid in sorted(set(contact_ids)):
        s.add(OpportunityContactRow(opportunity_id=opportunity_id, contact_id=cid))


def replace_opportunity_contacts(s: Session, links: Mapping[str, list[str]]) -> None:
    """``set_opportunity_contacts`` for many opportunities: one DELETE per 500, one
    executemany INSERT."""
    from sqlalchemy import delete

    ids = sorted(links)
    for i in range(0, len(ids), 500):
        s.execute(delete(OpportunityContactRow).where(OpportunityContactRow.opportunity_id.in_(ids[i : i + 500])))
    rows = [{"opportunity_id": oid, "contact_id": cid} for oid in ids for cid in sorted(set(links[oid]))]
    if rows:
        from sqlalchemy import insert

        s.connection().execute(insert(metadata.tables[OpportunityContactRow.__tablename__]), rows)


def opportunity_contacts(s: Session, ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        for oid, cid in s.execute(
            select(OpportunityContactRow.opportunity_id, OpportunityContactRow.contact_id)
            .where(OpportunityContactRow.opportunity_id.in_(ids[i : i + 500]))
            .order_by(OpportunityContactRow.contact_id)
        ):
            out.setdefault(oid, []).append(cid)
    return out


def entity_counts(s: Session) -> dict[str, int]:
    """Live canonical entities per object type (not deleted, not merged away)."""
    return {
        name: s.scalar(
            select(func.count()).select_from(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
        )
        or 0
        for name, t in ENTITY_TABLES.items()
    }


class AmbiguousEntity(LookupError):
    """A short id that is the prefix of more than one canonical id."""

    def __init__(self, ref: str, matches: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{o} {i}" for o, i in matches[:5])
        super().__init__(f"{ref!r} is the start of {len(matches)} ids ({shown}{', …' if len(matches) > 5 else ''}):"
                         " give more characters")
        self.matches = matches


#: the shortest id prefix accepted (``revsync plan`` prints 8 characters)
MIN_ID_PREFIX = 4


def find_entity(s: Session, ref: str) -> tuple[str, str] | None:
    """(object type, canonical id) for a canonical id, a unique prefix of one (at least
    ``MIN_ID_PREFIX`` characters, as ``revsync plan`` prints them) or ``SYSTEM:REMOTE_ID``.
    Raises ``AmbiguousEntity`` when a prefix names several entities."""
    if ":" in ref:
        system, rid = ref.split(":", 1)
        row = s.scalars(
            select(ExternalRefRow).where(ExternalRefRow.system == system, ExternalRefRow.remote_id == rid).limit(1)
        ).first()
        return (row.object_type, row.canonical_id) if row else None
    for name, t in ENTITY_TABLES.items():
        if s.get(t, ref) is not None:
            return name, ref
    ref = ref.strip().lower()
    if len(ref) < MIN_ID_PREFIX or not all(c in "0123456789abcdef-" for c in ref):
        return None
    matches: list[tuple[str, str]] = []
    for name, t in ENTITY_TABLES.items():
        matches.extend((name, i) for i in s.scalars(select(t.id).where(t.id.startswith(ref)).limit(6)))
    if len(matches) > 1:
        raise AmbiguousEntity(ref, matches)
    return matches[0] if matches else None


#: the columns ``search_entities`` looks in, per object
SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "account": ("name", "domain", "website"),
    "contact": ("email", "first_name", "last_name"),
    "opportunity": ("name",),
}


def search_entities(
    s: Session, text: str, *, object_types: Sequence[str] | None = None, limit: int = 50,
) -> list[tuple[str, Any]]:
    """Live entities whose name, email, domain or a remote record id matches ``text``
    (case-insensitive substring; a contact's full name "First Last" too), as
    ``(object type, row)``, remote-id matches first."""
    from sqlalchemy import func, or_

    needle = text.strip().lower()
    if not needle:
        return []
    objects = list(object_types or ENTITY_TABLES)
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    by_ref = s.execute(
        select(ExternalRefRow.object_type, ExternalRefRow.canonical_id)
        .where(func.lower(ExternalRefRow.remote_id) == needle, ExternalRefRow.object_type.in_(objects)).limit(limit)
    ).all()
    for ot, cid in by_ref:
        row = _follow_merges(s, ot, s.get(ENTITY_TABLES[ot], cid))
        if row is not None and row.id not in seen:
            seen.add(row.id)
            out.append((ot, row))
    pattern = f"%{needle}%"
    for ot in objects:
        t: Any = ENTITY_TABLES[ot]
        conds = [func.lower(getattr(t, c)).like(pattern) for c in SEARCH_COLUMNS[ot]]
        if ot == "contact":
            conds.append(func.lower(func.coalesce(t.first_name, "") + " " + func.coalesce(t.last_name, "")).like(pattern))
        q = (select(t).where(t.merged_into.is_(None), t.deleted_at.is_(None), or_(*conds))
             .order_by(t.id).limit(max(limit - len(out), 0)))
        for row in s.scalars(q):
            if row.id not in seen:
                seen.add(row.id)
                out.append((ot, row))
        if len(out) >= limit:
            break
    return out[:limit]
