"""Data-quality and revenue metrics computed from the store (``revsync quality``, the web console).

Everything here reads; nothing writes. The per-system figures come from each remote
record's last-seen values in canonical form (``external_ref.canonical_fields``), so
"what Salesforce alone would report" is comparable with the canonical answer. Remote
records are read once, in canonical-id order, in pages (``yield_per``): memory stays
flat whatever the store's size.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync import store as st

#: required fields per object when revsync.toml has no ``[quality] required`` table
DEFAULT_REQUIRED: dict[str, tuple[str, ...]] = {
    "account": ("name", "domain", "industry", "country", "owner_email"),
    "contact": ("email", "first_name", "last_name", "account_id", "owner_email"),
    "opportunity": ("name", "account_id", "amount", "stage", "close_date", "owner_email"),
}
DEFAULT_STALE_DAYS = 90
DEFAULT_RENEWAL_DAYS = 90
#: error-ledger categories counted as "unreadable value" / "unmapped picklist value"
UNREADABLE_CATEGORIES = ("bad_value", "unreadable")
UNMAPPED_CATEGORIES = ("unmapped_value", "unmapped_picklist", "picklist")
#: the reason the mapping layer gives for a native value its value maps do not know
UNKNOWN_VALUE = re.compile(r"\bunknown\b.*\b(value|status|code)\b", re.IGNORECASE)
#: canonical deal stages in funnel order (closed_lost is outside the funnel)
FUNNEL = ("prospecting", "qualification", "proposal", "negotiation", "contract", "closed_won")


def funnel() -> tuple[str, ...]:
    """The funnel of the shared definitions in force: the deal stages in their order
    (added ones after the built-in ones, renamed ones in place, retired ones out),
    closed_won last, closed_lost outside (``FUNNEL`` with the defaults)."""
    from mapping.definitions import active

    stages = [s for s in active()["stage"].values if s not in (CLOSED_WON, CLOSED_LOST)]
    return (*stages, CLOSED_WON)
CLOSED_WON, CLOSED_LOST = "closed_won", "closed_lost"
#: fields that describe links or bookkeeping, never compared between systems
_NOT_COMPARED = frozenset({"id", "account_id", "email_key", "extras", "is_closed", "is_won", "probability"})


#: at most this many unmapped values are listed one by one (the counts cover them all)
UNMAPPED_LISTED = 500


def _unquoted(raw: Any) -> Any:
    """The ledger's safe text of a raw value (``'Pilot'``) without its quotes."""
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or v == [] or v == {}


def _norm(v: Any) -> Any:
    """A value in a form where two systems' equal values compare equal."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float | Decimal):
        return round(float(v), 2)
    if isinstance(v, str):
        s = v.strip().casefold()
        try:
            return round(float(s), 2) if s and s[0] in "-0123456789" and not s.count("-") > 1 else s
        except ValueError:
            return s
    return v


def _money(v: Any) -> Decimal:
    if v is None or v == "":
        return Decimal(0)
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return Decimal(0)


def _day(v: Any) -> date | None:
    if isinstance(v, date):
        return v
    if isinstance(v, str) and len(v) >= 10:
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            return None
    return None


def period_of(d: date) -> str:
    """The calendar quarter a date falls in, e.g. ``2026-Q3``."""
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


# --------------------------------------------------------------------------- revenue


class _Revenue:
    """Accumulates the revenue view for one source (the canonical store or one system)."""

    def __init__(self, today: date, renewal_days: int) -> None:
        self.today, self.renewal_until = today, today + timedelta(days=renewal_days)
        self.open: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
        self.won: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
        self.lost: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
        self.stage_counts: dict[str, int] = defaultdict(int)
        self.arr = Decimal(0)
        self.accounts_with_arr = 0
        self.renewals: list[Any] = [0, Decimal(0)]

    def opportunity(self, stage: Any, amount: Any, close: Any, is_closed: Any, is_won: Any) -> None:
        stage = str(stage) if stage else None
        won = bool(is_won) or stage == CLOSED_WON
        closed = bool(is_closed) or won or stage == CLOSED_LOST
        amt, d = _money(amount), _day(close)
        if stage:
            self.stage_counts[stage] += 1
        slot: list[Any]
        if not closed:
            slot = self.open[stage or "(none)"]
        else:
            slot = (self.won if won else self.lost)[period_of(d) if d else "(no close date)"]
        slot[0] += 1
        slot[1] += amt

    def account(self, arr: Any, renewal: Any) -> None:
        a = _money(arr)
        if a:
            self.arr += a
            self.accounts_with_arr += 1
        d = _day(renewal)
        if d is not None and self.today <= d <= self.renewal_until:
            self.renewals[0] += 1
            self.renewals[1] += a

    def result(self) -> dict[str, Any]:
        def table(d: Mapping[str, list[Any]]) -> dict[str, dict[str, Any]]:
            return {k: {"count": v[0], "amount": float(v[1])} for k, v in sorted(d.items())}

        won = sum(v[0] for v in self.won.values())
        lost = sum(v[0] for v in self.lost.values())
        # reached[k]: opportunities whose current stage is at or past funnel stage k
        # (no stage history is kept, so a lost deal counts as having entered the funnel only)
        stages = funnel()
        order = {s: i for i, s in enumerate(stages)}
        reached = [0] * len(stages)
        for stage, n in self.stage_counts.items():
            top = order.get(stage, 0)
            for i in range(top + 1):
                reached[i] += n
        conversion = [
            {"from": stages[i], "to": stages[i + 1], "reached_from": reached[i], "reached_to": reached[i + 1],
             "rate": round(reached[i + 1] / reached[i], 4) if reached[i] else None}
            for i in range(len(stages) - 1)
        ]
        return {
            "open_pipeline": {"by_stage": table(self.open),
                              "count": sum(v[0] for v in self.open.values()),
                              "amount": float(sum((Decimal(v[1]) for v in self.open.values()), Decimal(0)))},
            "closed_won": table(self.won),
            "closed_lost": table(self.lost),
            "win_rate": round(won / (won + lost), 4) if won + lost else None,
            "stage_conversion": conversion,
            "arr": float(self.arr),
            "accounts_with_arr": self.accounts_with_arr,
            "renewals_due": {"days": (self.renewal_until - self.today).days, "count": self.renewals[0],
                             "arr": float(self.renewals[1])},
        }


# --------------------------------------------------------------------------- report


def _compare_group(refs: list[tuple[str, dict[str, Any]]], cid: str | None, compared: dict[str, int],
                   conflict_ids: dict[str, list[str]]) -> int:
    """Compare one entity's records across systems; 1 if it has records in several systems."""
    if cid is None or len({sy for sy, _ in refs}) < 2:
        return 0
    by_field: dict[str, set[Any]] = defaultdict(set)
    seen_in: dict[str, set[str]] = defaultdict(set)
    for sy, cf in refs:
        for k, v in cf.items():
            if k in _NOT_COMPARED or _blank(v) or isinstance(v, dict | list):
                continue
            by_field[k].add(_norm(v))
            seen_in[k].add(sy)
    for k, vals in by_field.items():
        if len(seen_in[k]) < 2:
            continue
        compared[k] += 1
        if len(vals) > 1:
            conflict_ids[k].append(cid)
    return 1


def _required(config: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    req = dict(DEFAULT_REQUIRED)
    for obj, fields in ((config or {}).get("required") or {}).items():
        req[obj] = tuple(fields)
    return req


def _live(t: Any) -> Sequence[Any]:
    return (t.deleted_at.is_(None), t.merged_into.is_(None))


def quality_report(
    s: Session, *, now: datetime, config: Mapping[str, Any] | None = None, stale_days: int | None = None,
    renewal_days: int | None = None, objects: Iterable[str] = tuple(st.ENTITY_TABLES),
    governance: Any = None,
) -> dict[str, Any]:
    """The data-quality and revenue report as plain data (JSON-ready)."""
    cfg = dict(config or {})
    stale_days = stale_days if stale_days is not None else int(cfg.get("stale_days", DEFAULT_STALE_DAYS))
    renewal_days = renewal_days if renewal_days is not None else int(cfg.get("renewal_days", DEFAULT_RENEWAL_DAYS))
    required = _required(cfg)
    stale_before = now - timedelta(days=stale_days)
    today = now.date()
    objects = [o for o in objects if o in st.ENTITY_TABLES]

    canonical_rev = _Revenue(today, renewal_days)
    system_rev: dict[str, _Revenue] = {}
    out_objects: dict[str, Any] = {}
    for obj in objects:
        t: Any = st.ENTITY_TABLES[obj]
        fields = required.get(obj, ())
        live = _live(t)
        total = s.scalar(select(func.count()).select_from(t).where(*live)) or 0
        merged = s.scalar(select(func.count()).select_from(t).where(t.merged_into.is_not(None))) or 0
        cols = [func.count(getattr(t, f)) for f in fields if hasattr(t, f)]
        filled = s.execute(select(*cols).where(*live)).one() if cols else ()
        canon_complete = {f: {"filled": int(n), "rate": round(n / total, 4) if total else None}
                          for f, n in zip([f for f in fields if hasattr(t, f)], filled, strict=True)}
        stale_canon = s.scalar(select(func.count()).select_from(t).where(*live, t.updated_at < stale_before)) or 0

        per_sys: dict[str, dict[str, Any]] = {}
        conflicts: dict[str, dict[str, Any]] = {}
        conflict_ids: dict[str, list[str]] = defaultdict(list)
        compared: dict[str, int] = defaultdict(int)
        multi = 0

        ref = st.ExternalRefRow
        q = (select(ref.system, ref.canonical_id, ref.canonical_fields, ref.remote_modstamp)
             .where(ref.object_type == obj, ref.deleted_at.is_(None))
             .order_by(ref.canonical_id).execution_options(yield_per=5000))
        group: list[tuple[str, dict[str, Any]]] = []
        current: str | None = None
        for system, cid, cf, modstamp in s.execute(q):
            cf = cf or {}
            if cid != current:
                multi += _compare_group(group, current, compared, conflict_ids)
                group, current = [], cid
            group.append((system, cf))
            ps = per_sys.setdefault(system, {"records": 0, "stale": 0, "filled": defaultdict(int),
                                             "mapped": set(), "remote_per_entity": defaultdict(int)})
            ps["records"] += 1
            if modstamp is not None and modstamp < stale_before:
                ps["stale"] += 1
            for f in fields:
                if f in cf:
                    ps["mapped"].add(f)
                    if not _blank(cf[f]):
                        ps["filled"][f] += 1
            if obj == "opportunity":
                system_rev.setdefault(system, _Revenue(today, renewal_days)).opportunity(
                    cf.get("stage"), cf.get("amount"), cf.get("close_date"), cf.get("is_closed"), cf.get("is_won"))
            elif obj == "account":
                system_rev.setdefault(system, _Revenue(today, renewal_days)).account(
                    cf.get("arr"), cf.get("renewal_date"))
        multi += _compare_group(group, current, compared, conflict_ids)

        # which rule decided the conflicting fields (from field provenance)
        prov = st.FieldProvenanceRow
        for field_name, ids in sorted(conflict_ids.items()):
            rules: dict[str, int] = defaultdict(int)
            for i in range(0, len(ids), 500):
                for rule, n in s.execute(
                    select(prov.rule, func.count()).where(
                        prov.object_type == obj, prov.field == field_name, prov.entity_id.in_(ids[i:i + 500])
                    ).group_by(prov.rule)
                ):
                    rules[rule] += n
            conflicts[field_name] = {"entities": len(ids), "compared": compared[field_name],
                                     "rate": round(len(ids) / compared[field_name], 4),
                                     "decided_by": dict(sorted(rules.items()))}

        # records of one system folded into one entity: duplicates linked inside that system
        dup_q = (select(ref.system, ref.canonical_id).where(ref.object_type == obj, ref.deleted_at.is_(None))
                 .group_by(ref.system, ref.canonical_id).having(func.count() > 1).subquery())
        dup_by_sys: dict[str, int] = dict(s.execute(select(dup_q.c.system, func.count()).group_by(dup_q.c.system)).all())
        review_open = s.scalar(select(func.count()).select_from(st.MatchReviewRow).where(
            st.MatchReviewRow.object_type == obj, st.MatchReviewRow.state == "open")) or 0
        links = s.scalar(select(func.count()).select_from(st.MergeLedgerRow).where(
            st.MergeLedgerRow.object_type == obj, st.MergeLedgerRow.undone_at.is_(None))) or 0

        systems_out = {}
        for system, ps in sorted(per_sys.items()):
            n = ps["records"]
            systems_out[system] = {
                "records": n,
                "stale": ps["stale"],
                "linked_duplicates": int(dup_by_sys.get(system, 0)),
                "completeness": {
                    f: ({"filled": ps["filled"][f], "rate": round(ps["filled"][f] / n, 4) if n else None}
                        if f in ps["mapped"] else {"filled": None, "rate": None, "note": "not mapped"})
                    for f in fields
                },
            }
        out_objects[obj] = {
            "canonical": {"records": total, "stale": stale_canon, "completeness": canon_complete},
            "systems": systems_out,
            "duplicates": {"merged_entities": merged, "links": links, "review_open": review_open,
                           "rate": round(merged / (total + merged), 4) if total + merged else None},
            "conflicts": {"entities_in_several_systems": multi, "by_field": conflicts,
                          "entities_with_conflict": len({c for ids in conflict_ids.values() for c in ids})},
        }
        if obj == "opportunity":
            for o in s.execute(select(t.stage, t.amount, t.close_date, t.is_closed, t.is_won).where(*live)):
                canonical_rev.opportunity(*o)
        elif obj == "account":
            for a in s.execute(select(t.arr, t.renewal_date).where(*live)):
                canonical_rev.account(*a)

    err = st.ErrorLedgerRow
    by_cat: dict[str, int] = {}
    by_sys_cat: dict[str, dict[str, int]] = defaultdict(dict)
    for system, obj, cat, n in s.execute(
        select(err.system, err.object_type, err.category, func.count()).where(err.state == "open")
        .group_by(err.system, err.object_type, err.category)
    ):
        by_cat[cat] = by_cat.get(cat, 0) + n
        by_sys_cat[f"{system}/{obj}"][cat] = n
    unreadable = {c: by_cat[c] for c in UNREADABLE_CATEGORIES if c in by_cat}
    unmapped = {c: by_cat[c] for c in UNMAPPED_CATEGORIES if c in by_cat}
    # per field; an unreadable value whose reason is "unknown ... value" is a picklist
    # value the definitions do not map (how the mapping layer reports one)
    unreadable_fields: dict[str, int] = defaultdict(int)
    unmapped_fields: dict[str, int] = defaultdict(int)
    # each value the shared definitions do not map: (system, record, field, value), never
    # written raw to another system (the field stays unread)
    unmapped_values: list[dict[str, Any]] = []
    for system, obj, fname, msg, native, rid, cid, payload in s.execute(
        select(err.system, err.object_type, err.field, err.message, err.native_type, err.remote_id,
               err.canonical_id, err.payload).where(
            err.state == "open", err.category.in_(UNREADABLE_CATEGORIES + UNMAPPED_CATEGORIES))
        .order_by(err.system, err.native_type, err.field, err.remote_id)
        .execution_options(yield_per=5000)
    ):
        key = f"{system}/{obj}.{fname or '?'}"
        if UNKNOWN_VALUE.search(msg or ""):
            unmapped_fields[key] += 1
            if len(unmapped_values) < UNMAPPED_LISTED:
                raw = (payload or {}).get("raw") if isinstance(payload, dict) else None
                unmapped_values.append({"system": system, "object": obj, "native_object": native,
                                        "record": rid, "entity": cid, "field": fname,
                                        "value": _unquoted(raw), "reason": (payload or {}).get("reason")
                                        if isinstance(payload, dict) else msg})
        else:
            unreadable_fields[key] += 1
    return {
        "generated_at": now.isoformat(),
        "stale_days": stale_days,
        "required_fields": {o: list(required.get(o, ())) for o in objects},
        "objects": out_objects,
        "errors": {"open_by_category": dict(sorted(by_cat.items())),
                   "open_by_scope": {k: dict(sorted(v.items())) for k, v in sorted(by_sys_cat.items())}},
        "unreadable_values": {"open": sum(unreadable.values()), "by_category": unreadable,
                              "by_field": dict(sorted(unreadable_fields.items()))},
        "unmapped_picklist_values": {"open": sum(unmapped.values()) + sum(unmapped_fields.values()),
                                     "by_category": unmapped, "by_field": dict(sorted(unmapped_fields.items())),
                                     "values": unmapped_values},
        **_governance(s, governance),
        "revenue": {"canonical": canonical_rev.result(),
                    "systems": {sy: r.result() for sy, r in sorted(system_rev.items())}},
    }


def _governance(s: Session, governance: Any) -> dict[str, Any]:
    """Required-field rules (gaps per rule on the canonical entities), the writes they
    or the schema pre-flight hold, and the closed-won handoffs (issue 15)."""
    from sync.governance import HELD, Governance, required_gaps
    from sync.handoff import handoff_summary

    gov = governance if governance is not None else Governance()
    held: dict[str, int] = {}
    for system, cat, n in s.execute(
        select(st.ErrorLedgerRow.system, st.ErrorLedgerRow.category, func.count()).where(
            st.ErrorLedgerRow.state == "open", st.ErrorLedgerRow.category.in_(("required_field", "schema_preflight")))
        .group_by(st.ErrorLedgerRow.system, st.ErrorLedgerRow.category)
    ):
        held[f"{system}/{cat}"] = n
    ops = s.scalar(select(func.count()).select_from(st.OutboxRow).where(st.OutboxRow.state == HELD)) or 0
    return {"required_rules": required_gaps(s, gov),
            "held_writes": {"ops": ops, "by_reason": dict(sorted(held.items()))},
            "handoff_completeness": handoff_summary(s)}


def print_quality(console: Any, data: Mapping[str, Any]) -> None:
    """The report as Rich tables (the CLI's human output)."""
    from rich.table import Table

    def pct(r: Any) -> str:
        return "-" if r is None else f"{100 * r:.1f}%"

    for obj, o in data["objects"].items():
        t = Table(title=f"{obj}: records, completeness, stale (> {data['stale_days']} days)")
        fields = data["required_fields"][obj]
        for col in ("source", "records", "stale", *fields):
            t.add_column(col)
        c = o["canonical"]
        t.add_row("canonical", str(c["records"]), str(c["stale"]),
                  *(pct(c["completeness"].get(f, {}).get("rate")) for f in fields))
        for sy, so in o["systems"].items():
            t.add_row(sy, str(so["records"]), str(so["stale"]),
                      *(so["completeness"][f].get("note") or pct(so["completeness"][f]["rate"]) for f in fields))
        console.print(t)
        d, cf = o["duplicates"], o["conflicts"]
        console.print(f"  duplicates: {d['merged_entities']} merged entities ({pct(d['rate'])}), {d['links']} links, "
                      f"{d['review_open']} pair(s) to review; conflicts: {cf['entities_with_conflict']} of "
                      f"{cf['entities_in_several_systems']} entities seen in several systems", highlight=False)
        for f, x in cf["by_field"].items():
            rules = ", ".join(f"{r} {n}" for r, n in x["decided_by"].items()) or "-"
            console.print(f"    {f}: {x['entities']} disagree ({pct(x['rate'])}); decided by {rules}", highlight=False)
    e = data["errors"]["open_by_category"]
    console.print("open errors: " + (", ".join(f"{k} {v}" for k, v in e.items()) or "none"), highlight=False)
    h = data["handoff_completeness"]
    console.print(f"unreadable values: {data['unreadable_values']['open']}; unmapped picklist values: "
                  f"{data['unmapped_picklist_values']['open']}; handoffs: {h['completed']} complete, "
                  f"{h['waiting']} waiting (completeness {pct(h['rate'])}); held writes: "
                  f"{data['held_writes']['ops']}", highlight=False)
    listed = data["unmapped_picklist_values"].get("values", [])
    for v in listed[:20]:
        console.print(f"  unmapped: {v['system']} {v['native_object']} {v['record']} {v['field']} = {v['value']!r} "
                      "(not in the shared definitions; not copied to the other systems)", highlight=False)
    if len(listed) > 20:
        console.print(f"  … {len(listed) - 20} more unmapped values (`revsync quality --json` lists them)",
                      highlight=False)
    for rule in data["required_rules"]:
        gaps = ", ".join(f"{f} {n}" for f, n in rule["missing_by_field"].items() if n) or "none"
        label = rule["object"] + (f" at {rule['stage']}" if rule["stage"] else "")
        console.print(f"  required ({label}{', blocks writes' if rule['block'] else ''}): "
                      f"{rule['incomplete']} of {rule['checked']} incomplete; missing: {gaps}", highlight=False)
    rev = data["revenue"]
    t = Table(title="revenue: the canonical store beside each system alone")
    sources = {"canonical": rev["canonical"], **rev["systems"]}
    t.add_column("metric")
    for name in sources:
        t.add_column(name)
    rows = [
        ("open pipeline", lambda r: f"{r['open_pipeline']['count']} / {r['open_pipeline']['amount']:,.0f}"),
        ("win rate", lambda r: pct(r["win_rate"])),
        ("closed won", lambda r: f"{sum(v['count'] for v in r['closed_won'].values())} / "
                                 f"{sum(v['amount'] for v in r['closed_won'].values()):,.0f}"),
        ("closed lost", lambda r: str(sum(v["count"] for v in r["closed_lost"].values()))),
        ("ARR", lambda r: f"{r['arr']:,.0f}"),
        ("renewals due", lambda r: f"{r['renewals_due']['count']} / {r['renewals_due']['arr']:,.0f}"),
    ]
    for label, fn in rows:
        t.add_row(label, *(fn(r) for r in sources.values()))
    console.print(t)
