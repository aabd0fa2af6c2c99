"""Tier-2 matching tables: records for the matcher, the review queue, the merge
ledger (links and their undo), kept match models, opportunity matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.store.tables import (
    ENTITY_TABLES,
    AccountRow,
    ContactRow,
    ExternalRefRow,
    MatchModelRow,
    MatchReviewRow,
    MergeLedgerRow,
    OpportunityContactRow,
    OpportunityRow,
    OutboxRow,
)


def dedupe_records(s: Session, object_type: str, ids: Any = None) -> list[dict[str, Any]]:
    """Live canonical entities as match records (canonical fields + ``id``); contacts
    carry their account's name as ``company``. ``ids`` limits them."""
    t = ENTITY_TABLES[object_type]
    q = select(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
    rows: list[Any] = []
    if ids is not None:
        uniq = sorted(set(ids))
        for i in range(0, len(uniq), 500):
            rows.extend(s.scalars(q.where(t.id.in_(uniq[i : i + 500]))))
    else:
        rows = list(s.scalars(q.order_by(t.id)))
    if object_type == "contact":
        names = dict(s.execute(select(AccountRow.id, AccountRow.name)).all())
        return [{"id": r.id, "first_name": r.first_name, "last_name": r.last_name, "email": r.email,
                 "phone": r.phone, "title": r.title, "city": r.city, "state": r.state, "account_id": r.account_id,
                 "company": names.get(r.account_id) if r.account_id else None} for r in rows]
    if object_type == "account":
        return [{"id": r.id, "name": r.name, "domain": r.domain, "website": r.website, "phone": r.phone,
                 "billing_street": r.billing_street, "billing_postal_code": r.billing_postal_code,
                 "billing_city": r.billing_city, "billing_state": r.billing_state,
                 "industry": r.industry, "country": r.country} for r in rows]
    raise ValueError(f"no match model for {object_type}")


#: the canonical fields tier 2 reads, per object (``dedupe_records``, ``match_training_records``)
MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "last_name", "email", "phone", "title", "city", "state"),
    "account": ("name", "domain", "website", "phone", "billing_street", "billing_postal_code", "billing_city",
                "billing_state", "industry", "country"),
}


def match_training_records(s: Session, object_type: str) -> list[dict[str, Any]]:
    """Every live remote record's last-seen values as match records (``id`` = the ref's
    id): the systems' records *before* tier 1 joined those sharing an email or domain,
    which the match model trains on. Contacts carry their account's name as ``company``
    (from the record's own account association)."""
    wanted = MATCH_FIELDS[object_type]
    q = (select(ExternalRefRow.id, ExternalRefRow.system, ExternalRefRow.canonical_fields,
                ExternalRefRow.associations)
         .where(ExternalRefRow.object_type == object_type, ExternalRefRow.deleted_at.is_(None))
         .order_by(ExternalRefRow.id))
    company: dict[tuple[str, str], str] = {}
    if object_type == "contact":
        names = dict(s.execute(select(AccountRow.id, AccountRow.name)).all())
        for system, rid, cid in s.execute(select(ExternalRefRow.system, ExternalRefRow.remote_id,
                                                 ExternalRefRow.canonical_id)
                                          .where(ExternalRefRow.object_type == "account")):
            if (name := names.get(cid)) is not None:
                company[(system, rid)] = name
    out: list[dict[str, Any]] = []
    for ref_id, system, view, assoc in s.execute(q):
        values = {f: v for f in wanted if isinstance(v := (view or {}).get(f), str)}
        if object_type == "contact":
            accounts = (assoc or {}).get("account") or []
            name = company.get((system, accounts[0])) if accounts else None
            if name is not None:
                values["company"] = name
        out.append({"id": f"ref:{ref_id}", **values})
    return out


def entity_ids_created_since(s: Session, object_type: str, since: datetime) -> list[str]:
    t = ENTITY_TABLES[object_type]
    return list(s.scalars(select(t.id).where(t.created_at >= since, t.deleted_at.is_(None),
                                             t.merged_into.is_(None))))


def decided_pairs(s: Session, object_type: str) -> dict[tuple[str, str], str]:
    """(left, right) → state for every review pair (open, accepted, rejected)."""
    return {(a, b): st for a, b, st in s.execute(
        select(MatchReviewRow.left_id, MatchReviewRow.right_id, MatchReviewRow.state)
        .where(MatchReviewRow.object_type == object_type))}


def add_review_pairs(s: Session, object_type: str, pairs: list[Any], run_id: int | None, now: datetime) -> int:
    known = decided_pairs(s, object_type)
    n = 0
    for p in pairs:
        key = (min(p.left, p.right), max(p.left, p.right))
        if key in known:
            continue
        s.add(MatchReviewRow(object_type=object_type, left_id=key[0], right_id=key[1],
                             probability=float(p.probability), evidence=dict(p.evidence), state="open",
                             run_id=run_id, created_at=now))
        known[key] = "open"
        n += 1
    return n


def review_rows(s: Session, object_type: str | None = None, state: str | None = "open",
                limit: int = 500) -> list[MatchReviewRow]:
    q = select(MatchReviewRow)
    if object_type:
        q = q.where(MatchReviewRow.object_type == object_type)
    if state:
        q = q.where(MatchReviewRow.state == state)
    return list(s.scalars(q.order_by(MatchReviewRow.probability.desc(), MatchReviewRow.id).limit(limit)))


def _image(row: Any) -> dict[str, Any]:
    from mapping.canonical import encode_value

    cols = [c.key for c in row.__table__.columns]
    return {c: encode_value(getattr(row, c)) for c in cols}


def _mark_dependents_dirty(s: Session, object_type: str, ids: list[str]) -> None:
    from sqlalchemy import update

    if object_type == "account":
        # an account's subsidiaries too: their parent is re-decided to the survivor (a
        # parent left on a merged-away id would be asked of systems where it never exists)
        cols: tuple[Any, ...] = (ContactRow.account_id, OpportunityRow.account_id, AccountRow.parent_id)
        for col in cols:
            t = col.class_
            s.execute(update(t).where(col.in_(ids), t.merged_into.is_(None)).values(dirty=True))
    elif object_type == "contact":
        opp_ids = list(s.scalars(select(OpportunityContactRow.opportunity_id)
                                 .where(OpportunityContactRow.contact_id.in_(ids))))
        if opp_ids:
            s.execute(update(OpportunityRow).where(OpportunityRow.id.in_(opp_ids)).values(dirty=True))


def link_entities(
    s: Session, object_type: str, ids: list[str], *, evidence: dict[str, Any], run_id: int | None,
    now: datetime, survivor_id: str | None = None, policy: str = "link",
) -> int | None:
    """Fold the entities ``ids`` into one: ``survivor_id``, else the one whose id its
    records carry (identity lives in the systems: a store rebuilt from them must pick
    the survivor the first store picked), else the oldest survives; the others' remote
    records point at it, and before-images go to the merge ledger.

    ``policy`` is what the ledger entry records: ``link`` (remote records untouched) or
    ``merge`` (the plan will also call the systems' merge APIs for the records that
    now share one entity; see ``remote_merge_candidates``)."""
    t = ENTITY_TABLES[object_type]
    rows: list[Any] = list(s.scalars(select(t).where(t.id.in_(ids), t.merged_into.is_(None))))
    if len(rows) < 2:
        return None
    carried = set(s.scalars(select(ExternalRefRow.canonical_id).where(
        ExternalRefRow.object_type == object_type, ExternalRefRow.canonical_id.in_([r.id for r in rows]),
        ExternalRefRow.revsync_id == ExternalRefRow.canonical_id, ExternalRefRow.deleted_at.is_(None))))
    rows.sort(key=lambda r: (r.id != survivor_id, r.id not in carried, r.created_at, r.id))
    survivor, losers = rows[0], rows[1:]
    loser_ids = [r.id for r in losers]
    refs = list(s.scalars(select(ExternalRefRow).where(ExternalRefRow.object_type == object_type,
                                                       ExternalRefRow.canonical_id.in_(loser_ids))))
    before = {r.id: {"entity": _image(r), "refs": [x.id for x in refs if x.canonical_id == r.id]} for r in losers}
    before[survivor.id] = {"entity": _image(survivor), "refs": []}
    for x in refs:
        x.canonical_id = survivor.id
    for r in losers:
        r.merged_into, r.dirty, r.updated_at = survivor.id, False, now
    survivor.dirty, survivor.updated_at = True, now
    _mark_dependents_dirty(s, object_type, loser_ids)
    entry = MergeLedgerRow(object_type=object_type, survivor_id=survivor.id, merged_ids=loser_ids, policy=policy,
                           evidence=evidence, before_images=before, remote_results={}, run_id=run_id,
                           created_at=now)
    s.add(entry)
    s.flush()
    return entry.id


def undo_link(s: Session, merge_id: int, now: datetime) -> MergeLedgerRow:
    """Restore the entities of a merge-ledger entry (refs back to their entities); the
    pairs it joined are recorded as rejected so they are never linked again."""
    from sqlalchemy import update

    entry = s.get(MergeLedgerRow, merge_id)
    if entry is None:
        raise LookupError(f"no merge {merge_id}")
    if entry.undone_at is not None:
        raise ValueError(f"merge {merge_id} was already undone at {entry.undone_at.isoformat()}")
    t = ENTITY_TABLES[entry.object_type]
    for loser_id in entry.merged_ids:
        image = entry.before_images.get(loser_id, {})
        ref_ids = image.get("refs", [])
        if ref_ids:
            s.execute(update(ExternalRefRow).where(ExternalRefRow.id.in_(ref_ids)).values(canonical_id=loser_id))
        row: Any = s.get(t, loser_id)
        if row is not None:
            row.merged_into, row.dirty, row.updated_at = None, True, now
        key = (min(loser_id, entry.survivor_id), max(loser_id, entry.survivor_id))
        existing = s.scalars(select(MatchReviewRow).where(
            MatchReviewRow.object_type == entry.object_type, MatchReviewRow.left_id == key[0],
            MatchReviewRow.right_id == key[1])).first()
        if existing is None:
            s.add(MatchReviewRow(object_type=entry.object_type, left_id=key[0], right_id=key[1], probability=1.0,
                                 evidence={"undo": str(merge_id)}, state="rejected", created_at=now,
                                 decided_at=now, merge_id=merge_id))
        else:
            existing.state, existing.decided_at = "rejected", now
    survivor: Any = s.get(t, entry.survivor_id)
    if survivor is not None:
        survivor.dirty, survivor.updated_at = True, now
    _mark_dependents_dirty(s, entry.object_type, [entry.survivor_id, *entry.merged_ids])
    # a remote merge this entry planned and that has not gone out yet is withdrawn
    for op in s.scalars(select(OutboxRow).where(
            OutboxRow.object_type == entry.object_type, OutboxRow.canonical_id == entry.survivor_id,
            OutboxRow.kind == "merge", OutboxRow.state != "done")):
        if merge_id in (op.payload or {}).get("merge_ids", []):
            s.delete(op)
    entry.undone_at = now
    return entry


def remote_merge_pairs(s: Session, object_type: str) -> list[dict[str, Any]]:
    """Records a system reports merged into a record of *another* live entity.

    A user merging two records in HubSpot or Salesforce (or Salesforce converting a
    Lead into a Contact) says the two entities are one: each item names the entity
    holding the surviving record (``survivor``), the entity of the merged-away record
    (``merged``) and the records, for ``Deduper.follow_remote_merges`` to link.

    In steps, each an index lookup: the merged-away records (few, often none), the
    records they were merged into, then which of their entities are live. One
    statement joining the four made PostgreSQL pick nested loops over whole tables
    when the rows of a first pull had no statistics yet (152 s at 3,000 accounts).
    """
    t = ENTITY_TABLES[object_type]
    gone_rows = s.execute(
        select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.native_type,
               ExternalRefRow.remote_id, ExternalRefRow.merged_into)
        .where(ExternalRefRow.object_type == object_type, ExternalRefRow.merged_into.is_not(None),
               ExternalRefRow.deleted_at.is_not(None))
        .order_by(ExternalRefRow.system, ExternalRefRow.remote_id)).all()
    if not gone_rows:
        return []
    kept: dict[tuple[str, str], tuple[str, str]] = {}  # (system, remote id) → (entity, native type)
    targets = sorted({str(r.merged_into) for r in gone_rows})
    for i in range(0, len(targets), 500):
        for cid, system, native, rid in s.execute(
                select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.native_type,
                       ExternalRefRow.remote_id)
                .where(ExternalRefRow.remote_id.in_(targets[i:i + 500]), ExternalRefRow.object_type == object_type,
                       ExternalRefRow.deleted_at.is_(None))):
            kept[(system, rid)] = (cid, native)
    pairs = [(r, kept[(r.system, r.merged_into)]) for r in gone_rows if (r.system, r.merged_into) in kept]
    ids = sorted({str(r.canonical_id) for r, _k in pairs} | {k[0] for _r, k in pairs})
    live: set[str] = set()
    for i in range(0, len(ids), 500):
        live.update(s.scalars(select(t.id).where(t.id.in_(ids[i:i + 500]), t.merged_into.is_(None),
                                                 t.deleted_at.is_(None))))
    return [
        {"survivor": into, "merged": r.canonical_id, "system": r.system, "native_type": r.native_type,
         "remote_id": r.remote_id, "into_native_type": native, "into_remote_id": r.merged_into}
        for r, (into, native) in pairs
        if into != r.canonical_id and into in live and r.canonical_id in live
    ]


def merge_entries_for(s: Session, object_type: str, survivor_ids: list[str]) -> dict[str, list[MergeLedgerRow]]:
    """Live (not undone) ``merge``-policy ledger entries per survivor entity."""
    out: dict[str, list[MergeLedgerRow]] = {}
    for i in range(0, len(survivor_ids), 500):
        q = select(MergeLedgerRow).where(
            MergeLedgerRow.object_type == object_type, MergeLedgerRow.policy == "merge",
            MergeLedgerRow.undone_at.is_(None), MergeLedgerRow.survivor_id.in_(survivor_ids[i:i + 500]),
        ).order_by(MergeLedgerRow.id)
        for row in s.scalars(q):
            out.setdefault(row.survivor_id, []).append(row)
    return out


def merges(s: Session, limit: int = 200) -> list[MergeLedgerRow]:
    return list(s.scalars(select(MergeLedgerRow).order_by(MergeLedgerRow.id.desc()).limit(limit)))


def get_match_model(s: Session, object_type: str) -> MatchModelRow | None:
    return s.get(MatchModelRow, object_type)


def save_match_model(s: Session, object_type: str, model_json: str, records: int, now: datetime,
                     matched_until: datetime) -> None:
    row = s.get(MatchModelRow, object_type)
    if row is None:
        s.add(MatchModelRow(object_type=object_type, model_json=model_json, records=records, trained_at=now,
                            matched_until=matched_until))
    else:
        row.model_json, row.records, row.trained_at, row.matched_until = model_json, records, now, matched_until


def set_matched_until(s: Session, object_type: str, when: datetime) -> None:
    row = s.get(MatchModelRow, object_type)
    if row is not None and when > row.matched_until:
        row.matched_until = when


def _account_merges(s: Session) -> dict[str, str]:
    """Folded account id → the account it was folded into."""
    rows = s.execute(select(AccountRow.id, AccountRow.merged_into).where(AccountRow.merged_into.is_not(None)))
    return {a: b for a, b in rows if b is not None}


def _live_account(merged: Mapping[str, str], account_id: str | None) -> str | None:
    """The live account ``account_id`` was folded into (itself when not folded)."""
    seen = 0
    while account_id is not None and account_id in merged and seen < 64:
        account_id, seen = merged[account_id], seen + 1
    return account_id


def opportunity_match_records(s: Session, ids: Any = None, account_ids: Any = None) -> list[dict[str, Any]]:
    """Live opportunities as match records (``sync.dedupe_opportunity``): canonical
    fields + ``id``, ``account_id`` resolved through account links to the live account,
    ``account_name`` and ``systems`` (of the entity's live records). ``ids`` or
    ``account_ids`` (live accounts) limit them."""
    t = OpportunityRow
    merged = _account_merges(s)
    q = select(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
    rows: list[Any] = []
    if ids is not None or account_ids is not None:
        if ids is not None:
            keys = sorted(set(ids))
        else:
            wanted = set(account_ids)
            keys = sorted(wanted | {a for a in merged if _live_account(merged, a) in wanted})
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows.extend(s.scalars(q.where(t.id.in_(chunk) if ids is not None else t.account_id.in_(chunk))))
    else:
        rows = list(s.scalars(q.order_by(t.id)))
    accounts = {r.id: _live_account(merged, r.account_id) for r in rows}
    wanted_accounts = sorted({a for a in accounts.values() if a})
    names: dict[str, str | None] = {}
    for i in range(0, len(wanted_accounts), 500):
        names.update(s.execute(select(AccountRow.id, AccountRow.name)
                               .where(AccountRow.id.in_(wanted_accounts[i : i + 500]))).all())
    systems: dict[str, set[str]] = {}
    entity_ids = [r.id for r in rows]
    ref_q = select(ExternalRefRow.canonical_id, ExternalRefRow.system).where(
        ExternalRefRow.object_type == "opportunity", ExternalRefRow.deleted_at.is_(None))
    if ids is None and account_ids is None:
        for cid, system in s.execute(ref_q):
            systems.setdefault(cid, set()).add(system)
    else:
        for i in range(0, len(entity_ids), 500):
            for cid, system in s.execute(ref_q.where(ExternalRefRow.canonical_id.in_(entity_ids[i : i + 500]))):
                systems.setdefault(cid, set()).add(system)
    return [{"id": r.id, "account_id": accounts[r.id], "account_name": names.get(accounts[r.id] or ""),
             "name": r.name, "amount": r.amount, "currency": r.currency, "stage": r.stage,
             "close_date": r.close_date, "type": r.type, "owner_email": r.owner_email,
             "systems": sorted(systems.get(r.id, ()))} for r in rows]


def opportunity_record_copies(s: Session, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each opportunity's live records as last read: ``system``, ``name``, ``close_date``
    and ``amount`` of each (tier 2 tells a deal copied twice into one system by them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    uniq = sorted(set(ids))
    q = select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.canonical_fields).where(
        ExternalRefRow.object_type == "opportunity", ExternalRefRow.deleted_at.is_(None))
    for i in range(0, len(uniq), 500):
        for cid, system, view in s.execute(q.where(ExternalRefRow.canonical_id.in_(uniq[i : i + 500]))):
            view = view or {}
            out.setdefault(cid, []).append({"system": system, "name": view.get("name"),
                                            "close_date": view.get("close_date"), "amount": view.get("amount")})
    return out


def opportunities_of_accounts_linked_since(s: Session, since: datetime) -> list[str]:
    """Live opportunities of accounts that took another account in since ``since``: their
    deals now share one account and were never compared."""
    merged = _account_merges(s)
    folded = s.execute(select(AccountRow.id).where(AccountRow.merged_into.is_not(None),
                                                   AccountRow.updated_at >= since)).scalars()
    survivors = {_live_account(merged, a) for a in folded}
    if not survivors:
        return []
    raw = sorted(x for x in survivors | {a for a in merged if _live_account(merged, a) in survivors} if x)
    t = OpportunityRow
    out: list[str] = []
    for i in range(0, len(raw), 500):
        out.extend(s.scalars(select(t.id).where(t.account_id.in_(raw[i : i + 500]), t.deleted_at.is_(None),
                                                t.merged_into.is_(None))))
    return sorted(set(out))
