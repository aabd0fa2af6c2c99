"""Closed-won → customer-success handoff (issue 15, point 4).

When an account has a won opportunity, its handoff to customer success carries the
data CS needs before onboarding: the owner and the CSM, ARR, contract start and
renewal date, the products (written as **licenses**) and the key contacts (the deal's
contact roles, synced by the normal cycle). The CS system is the connection whose
connector declares the ``customer_success`` role (e.g. Planhat), or the one
``[governance.handoff] system`` names; its connector reads and writes licenses with
``licenses(external_ids)`` and ``write_licenses(items)``. One handoff per account,
kept in the ``handoff`` table:

- data missing → ``waiting``, with each missing item and who owns it (the account
  owner for deal data, RevOps for the CSM assignment, revsync for the CS company);
  ``revsync handoffs`` lists them;
- data complete and the account in the CS system → its licenses are upserted there
  (keyed by ``externalId``), read back, and the handoff is ``complete``, with the time
  it took and the completeness it had when first seen. The handoffs of a cycle are
  batched: one read of the licenses there, one bulk write, one read back.

It runs after each cycle's push, so a handoff completes by itself in the cycle after
its data arrives. Only accounts without a complete handoff are looked at, and the CS
system is called only to complete one: a quiet cycle costs no API call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select

from connectors.base import CUSTOMER_SUCCESS
from mapping.canonical import ObjectType
from sync import store as st
from sync.governance import HandoffSettings, value_of

log = logging.getLogger(__name__)

WAITING, COMPLETE = "waiting", "complete"
COMPANY = "cs_company"  # a missing item: the account has no record in the CS system yet


def handoff_connection(connections: Mapping[str, Any], hs: HandoffSettings) -> Any | None:
    """The connection handoffs write to: ``[governance.handoff] system`` when set, else
    the first configured connection whose connector declares the customer-success role."""
    if hs.system:
        return connections.get(hs.system)
    for conn in connections.values():
        if CUSTOMER_SUCCESS in getattr(conn.connector, "roles", ()):
            return conn
    return None


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or v in ((), [], {})


def _day(v: Any) -> str | None:
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, str) and len(v) >= 10:
        try:
            return date.fromisoformat(v[:10]).isoformat()
        except ValueError:
            return None
    return None


def _products(v: Any, default: str | None) -> list[str]:
    if isinstance(v, str):
        names = [p.strip() for p in v.replace(",", ";").split(";")]
    elif isinstance(v, list | tuple):
        names = [str(p).strip() for p in v]
    else:
        names = []
    names = list(dict.fromkeys(n for n in names if n))
    return names or ([default] if default else [])


def handoff_data(account: Any, opp: Any, contacts: Sequence[Any], company_id: str | None,
                 hs: HandoffSettings, *, system: str = "the customer-success system",
                 ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """(data, missing items, owner of each missing item) for one account; ``system``
    names the CS connection in the owner of a missing company. Pure."""
    owner = (account.owner_email or opp.owner_email or None)
    csm = value_of(account, "csm_email") or (hs.csm_by_owner.get(owner.lower()) if owner else None) \
        or hs.default_csm
    # the deal's annual value; an account's ARR (the CS system's, from earlier licenses) only without one
    arr = opp.amount if opp.amount is not None else account.arr
    data: dict[str, Any] = {
        "opportunity": opp.id, "opportunity_name": opp.name,
        "owner": owner, "csm": csm,
        "arr": str(Decimal(str(arr))) if arr is not None else None,
        "currency": opp.currency or hs.currency,
        "contract_start": _day(value_of(opp, "contract_start")),
        "renewal_date": _day(value_of(opp, "renewal_date")) or _day(account.renewal_date),
        "products": _products(value_of(opp, "products"), hs.default_product),
        "key_contacts": sorted(c.email for c in contacts if c.email),
        "company_id": company_id,
    }
    missing = [item for item in hs.required if _blank(data.get(item))]
    if company_id is None:
        missing.append(COMPANY)
    who = owner or "unassigned (no account owner)"
    owners = {m: ("revops (assign a CSM)" if m == "csm" else f"revsync (account not in {system} yet)"
                  if m == COMPANY else who) for m in missing}
    return data, missing, owners


def completeness(hs: HandoffSettings, missing: Sequence[str]) -> float:
    items = len(hs.required) or 1
    return round(1 - len([m for m in missing if m != COMPANY]) / items, 4)


def license_items(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Licenses for a complete handoff (Planhat's shape): one per product, fixed period from the
    contract start to the renewal date, the ARR split evenly as MRR."""
    products = list(data["products"])
    mrr = Decimal(str(data["arr"])) / 12 / len(products)
    return [{"externalId": f"revsync-{data['opportunity']}-{i}", "companyId": data["company_id"],
             "product": name, "_currency": data["currency"], "fromDate": data["contract_start"],
             "toDate": data["renewal_date"], "fixedPeriod": True, "mrr": float(round(mrr, 2))}
            for i, name in enumerate(products)]


def _won_opportunities(s: Any) -> dict[str, Any]:
    """Account id → its latest won opportunity, for accounts without a complete handoff."""
    o = st.OpportunityRow
    done = select(st.HandoffRow.account_id).where(st.HandoffRow.state == COMPLETE)
    q = (select(o).where(o.deleted_at.is_(None), o.merged_into.is_(None), o.account_id.is_not(None),
                         or_(o.is_won.is_(True), o.stage == "closed_won"), o.account_id.not_in(done))
         .order_by(o.close_date, o.id))
    out: dict[str, Any] = {}
    for opp in s.scalars(q.execution_options(yield_per=2000)):
        out[opp.account_id] = opp  # later close dates win
    return out


def queue_company_creates(store: st.Store, conn: Any, hs: HandoffSettings, *, now: datetime,
                          run_id: int | None, fieldmaps: Mapping[tuple[str, str], Any] | None = None) -> list[str]:
    """The account of a won deal is handed to the CS system once its handoff data is
    complete: where it has no record there yet (and no create is queued), queue its
    create, planned like any other (the gate may hold it; the push writes it before the
    handoffs run, so the handoff completes in the same cycle). Returns the ids of the
    accounts whose create was queued (``replan_dependents`` plans their records again)."""
    from mapping.fieldmap import from_entity
    from sync.plan import _json
    from sync.views import row_entity as _row_entity

    natives = conn.connector.objects.get(ObjectType.ACCOUNT, ())
    if not natives:
        return []
    native = natives[0]
    fm = (fieldmaps or {}).get((conn.kind, native))
    rows: list[dict[str, Any]] = []
    with store.session() as s:
        won = _won_opportunities(s)
        if not won:
            return []
        ids = sorted(won)
        ref = st.ExternalRefRow
        present = set(s.scalars(select(ref.canonical_id).where(
            ref.system == conn.name, ref.object_type == "account", ref.canonical_id.in_(ids))))
        queued = set(s.scalars(select(st.OutboxRow.canonical_id).where(
            st.OutboxRow.system == conn.name, st.OutboxRow.object_type == "account",
            st.OutboxRow.kind == "create", st.OutboxRow.canonical_id.in_(ids))))
        missing = [i for i in ids if i not in present and i not in queued]
        if not missing:
            return []
        a = st.AccountRow
        opp_contacts = st.opportunity_contacts(s, [won[i].id for i in missing])
        cids = sorted({c for v in opp_contacts.values() for c in v})
        contacts = {c.id: c for c in s.scalars(select(st.ContactRow).where(st.ContactRow.id.in_(cids)))}
        for row in s.scalars(select(a).where(a.id.in_(missing), a.deleted_at.is_(None), a.merged_into.is_(None))):
            opp = won[row.id]
            _, gaps, _ = handoff_data(row, opp, [contacts[c] for c in opp_contacts.get(opp.id, []) if c in contacts],
                                      None, hs, system=conn.name)
            if gaps != [COMPANY]:
                continue  # the handoff waits for its data; the account is handed over with it
            entity = _row_entity("account", row)
            fields = from_entity(conn.kind, native, entity, fieldmap=fm)
            rows.append({"run_id": run_id, "system": conn.name, "object_type": "account", "native_type": native,
                         "kind": "create", "canonical_id": row.id, "remote_id": None,
                         "payload": {"fields": _json(fields), "associations": {},
                                     "changes": [["(handoff)", None, "closed-won account handed to "
                                                  f"{conn.name}", "handoff"]]},
                         "state": "pending", "attempts": 0, "created_at": now, "updated_at": now})
        st.insert_outbox(s, rows)
    return [r["canonical_id"] for r in rows]


def replan_dependents(store: st.Store, engine: Any, conn: Any, account_ids: Sequence[str]) -> int:
    """Plan again, for the CS connection only, the contacts (and any other object the CS
    system holds that links to an account) of accounts whose handoff create was just
    queued. They were planned before the create existed, when the account could not be
    reached there: without this their link to the new company would be written only in
    the next cycle (a no-change cycle that writes). Entities still dirty (their pull did
    not finish) are left for the cycle that reconciles them. Returns the entities planned."""
    if not account_ids:
        return 0
    done = 0
    for ot in (ObjectType.CONTACT, ObjectType.OPPORTUNITY):
        if not conn.connector.objects.get(ot):
            continue
        t: Any = st.ENTITY_TABLES[ot.value].__table__
        stats = None
        with store.session() as s:
            # read as plain values (``EntityValues``), as every resolve batch is: reconcile
            # writes its changes back set-based
            rows: list[Any] = []
            for i in range(0, len(account_ids), 500):
                chunk = list(account_ids[i:i + 500])
                rows.extend(st.entity_values(s, select(t).where(
                    t.c.account_id.in_(chunk), t.c.dirty.is_(False), t.c.merged_into.is_(None),
                    t.c.deleted_at.is_(None))))
            if rows:
                from sync.reconcile import ResolveStats

                stats = ResolveStats()
                rows.sort(key=lambda r: r.id)
                engine.resolve_batch(s, ot.value, rows, [conn.name], stats)
        done += stats.entities if stats else 0
    return done


def run_handoffs(store: st.Store, conn: Any, hs: HandoffSettings, *, now: datetime,
                 run_id: int | None) -> dict[str, int]:
    """Check every open handoff; complete those whose data is there. Returns counts
    (``completed`` now, ``waiting``, ``failed`` license writes)."""
    counts = {"completed": 0, "waiting": 0, "failed": 0}
    ready: list[tuple[str, dict[str, Any]]] = []
    with store.session() as s:
        won = _won_opportunities(s)
        if not won:
            return counts
        ids = sorted(won)
        accounts = {a.id: a for a in s.scalars(select(st.AccountRow).where(st.AccountRow.id.in_(ids)))}
        rows = {h.account_id: h for h in s.scalars(select(st.HandoffRow).where(st.HandoffRow.account_id.in_(ids)))}
        refs = {r.canonical_id: r.remote_id for r in s.scalars(select(st.ExternalRefRow).where(
            st.ExternalRefRow.system == conn.name, st.ExternalRefRow.object_type == "account",
            st.ExternalRefRow.deleted_at.is_(None), st.ExternalRefRow.canonical_id.in_(ids)))}
        opp_contacts = st.opportunity_contacts(s, [o.id for o in won.values()])
        cids = sorted({c for v in opp_contacts.values() for c in v})
        contacts = {c.id: c for c in s.scalars(select(st.ContactRow).where(st.ContactRow.id.in_(cids)))}
        for account_id, opp in won.items():
            account = accounts.get(account_id)
            if account is None or account.deleted_at is not None:
                continue
            data, missing, owners = handoff_data(
                account, opp, [contacts[c] for c in opp_contacts.get(opp.id, []) if c in contacts],
                refs.get(account_id), hs, system=conn.name)
            row = rows.get(account_id)
            score = completeness(hs, missing)
            if row is None:
                row = st.HandoffRow(account_id=account_id, opportunity_id=opp.id, system=conn.name,
                                    state=WAITING, missing=missing, owners=owners, data=data,
                                    completeness=score, first_completeness=score, detected_at=now,
                                    updated_at=now, run_id=run_id)
                s.add(row)
            else:
                row.opportunity_id, row.missing, row.owners, row.data = opp.id, missing, owners, data
                row.completeness, row.updated_at, row.run_id = score, now, run_id
            if missing:
                counts["waiting"] += 1
            else:
                ready.append((account_id, data))
    if ready:
        _complete(store, conn, ready, now, counts)
    return counts


def _complete(store: st.Store, conn: Any, ready: Sequence[tuple[str, dict[str, Any]]], now: datetime,
              counts: dict[str, int]) -> None:
    """Write the licenses of every ready handoff, read them back, mark each handoff
    complete (or say why not). Batched: one listing walk reads the licenses already
    there, one bulk upsert (chunked by the connector) writes the missing ones, one more
    walk reads them back, whatever the number of handoffs."""
    wanted = {account_id: license_items(data) for account_id, data in ready}
    problems: dict[str, str] = {}
    found: dict[str, list[str]] = {}
    try:
        # read first: a license already there as wanted (a store rebuilt from the systems,
        # a handoff completed by hand) is not written again
        have = conn.connector.licenses([i["externalId"] for items in wanted.values() for i in items])
        todo = [(a, i) for a, items in wanted.items() for i in items
                if not _same_license(i, have.get(i["externalId"]))]
        back: Mapping[str, Any] = {}
        if todo:
            errors = conn.connector.write_licenses([i for _, i in todo])
            for (a, _), why in zip(todo, errors, strict=True):
                if why and a not in problems:
                    problems[a] = why
            back = conn.connector.licenses([i["externalId"] for a, i in todo if a not in problems])
        for a, items in wanted.items():
            if a in problems:
                continue
            written = [have.get(i["externalId"]) if _same_license(i, have.get(i["externalId"]))
                       else back.get(i["externalId"]) for i in items]
            if any(w is None for w in written):
                problems[a] = "a license written is not there when read back"
            else:
                found[a] = [str(w["_id"]) for w in written if w]
    except Exception as e:  # the batch is retried next cycle; the store still records why
        failure = f"{type(e).__name__}: {e}"
        problems = {a: problems.get(a, failure) for a in wanted}
        found.clear()
    data_of = dict(ready)
    with store.session() as s:
        for account_id in wanted:
            row = s.get(st.HandoffRow, account_id)
            if row is None:
                continue
            why = problems.get(account_id)
            if why:
                counts["failed"] += 1
                counts["waiting"] += 1
                row.missing, row.owners = ["licenses"], {"licenses": f"revsync ({why})"}
                log.info("handoff of account %s: licenses not written: %s", account_id, why)
                continue
            counts["completed"] += 1
            row.state, row.completed_at, row.completeness = COMPLETE, now, 1.0
            row.data = {**data_of[account_id], "licenses": found[account_id]}
            row.missing, row.owners, row.updated_at = [], {}, now


def _same_license(want: Mapping[str, Any], have: Mapping[str, Any] | None) -> bool:
    if not have:
        return False
    for k, v in want.items():
        got = have.get(k)
        if isinstance(v, float):
            try:
                if abs(float(got) - v) > 0.005:  # type: ignore[arg-type]
                    return False
            except (TypeError, ValueError):
                return False
        elif k in ("fromDate", "toDate"):
            if str(got or "")[:10] != str(v or "")[:10]:
                return False
        elif got != v:
            return False
    return True


def list_handoffs(s: Any, state: str | None = None) -> list[dict[str, Any]]:
    """Handoffs as plain data (``revsync handoffs``), waiting ones first."""
    q = select(st.HandoffRow, st.AccountRow.name).join(
        st.AccountRow, st.AccountRow.id == st.HandoffRow.account_id, isouter=True)
    if state:
        q = q.where(st.HandoffRow.state == state)
    out = []
    for h, name in s.execute(q.order_by(st.HandoffRow.state.desc(), st.HandoffRow.detected_at)):
        hours = ((h.completed_at - h.detected_at).total_seconds() / 3600) if h.completed_at else None
        out.append({"account": h.account_id, "account_name": name, "opportunity": h.opportunity_id,
                    "system": h.system, "state": h.state, "missing": list(h.missing or []),
                    "owners": dict(h.owners or {}), "completeness": h.completeness,
                    "first_completeness": h.first_completeness, "detected_at": h.detected_at.isoformat(),
                    "completed_at": h.completed_at.isoformat() if h.completed_at else None,
                    "hours_to_complete": round(hours, 2) if hours is not None else None,
                    "data": dict(h.data or {})})
    return out


def handoff_summary(s: Any) -> dict[str, Any]:
    """Counts and completeness for ``revsync quality`` and the demo summary."""
    rows = list_handoffs(s)
    done = [r for r in rows if r["state"] == COMPLETE]
    waiting = [r for r in rows if r["state"] == WAITING]
    hours = sorted(r["hours_to_complete"] for r in done if r["hours_to_complete"] is not None)
    missing: dict[str, int] = {}
    for r in waiting:
        for m in r["missing"]:
            missing[m] = missing.get(m, 0) + 1
    return {"status": "configured", "handoffs": len(rows), "completed": len(done), "waiting": len(waiting),
            "rate": round(len(done) / len(rows), 4) if rows else None,
            "complete_at_first_sight": sum(1 for r in done if r["first_completeness"] >= 1.0),
            "median_hours_to_complete": hours[len(hours) // 2] if hours else None,
            "waiting_missing": dict(sorted(missing.items()))}
