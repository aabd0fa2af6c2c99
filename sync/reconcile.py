"""Reconcile: field policies decide each canonical field from what the systems say.

The decision functions (``decide``, ``decide_all``) are pure. ``Reconciler`` applies
them to a batch of dirty entities inside the resolve transaction: it gathers every
linked record's claims, writes the decided values and their provenance, and hands
the desired entities to the plan (``sync.plan``).

Every remote record linked to an entity makes a ``Claim`` per field (its value in
canonical form, its system, remote id and modstamp). ``decide`` applies the field's
rule and returns the value with its provenance:

- ``source_priority``: systems in the configured order; within one system the most
  recently modified record speaks for it; the first non-blank value wins.
- ``latest``: the most recent modstamp wins (ties broken by source priority).
- ``prefer:<system>``: that system's value unless blank, else ``source_priority``.
- ``always:<system>``: that system's value even when blank (if it has a record),
  else ``source_priority``.
- ``never_blank`` (default on): a blank never overwrites a filled value: blank claims
  are passed over, and when every claim is blank the current value is kept.

``derive`` then fills a value the others imply (rule ``derived:<field>``): an account's
domain that no system gives is its website's registrable domain, as Salesforce (which
has only ``Website``) reads it; a deal's probability that no system gives is its
stage's default, which HubSpot calculates (read only) once the stage is written.
Without that, writing the website to Salesforce, or the stage to HubSpot, in one cycle
would bring that value back as new information the next, and the other systems would
be written again (issue #19: cycle 2 must write nothing).

Per-field ``direction`` per system: claims from a system whose direction for the
field is ``write`` or ``none`` are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.base import RecordError
from mapping.canonical import ENTITY_CLASSES, ObjectType, encode_value
from mapping.defaults import default_source_priority
from mapping.normalize import domain_from_url
from mapping.values import STAGE_PROBABILITY
from sync import store as st
from sync.link import email_key
from sync.views import decoded, row_entity, unreadable_fields

_MIN = datetime.min.replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Claim:
    """One system's value for one field of one entity."""

    system: str
    remote_id: str
    modstamp: datetime | None
    value: Any


@dataclass(frozen=True, slots=True)
class Decision:
    """The decided value of one field and why."""

    field: str
    value: Any
    rule: str
    system: str | None = None
    remote_id: str | None = None
    modstamp: datetime | None = None
    conflict: bool = False  # two or more distinct non-blank values were offered


@dataclass(frozen=True)
class FieldPolicy:
    """The policy of one object type (parsed from config)."""

    default: str = "source_priority"
    # the registered connectors' default order (``Connector.default_rank``)
    source_priority: tuple[str, ...] = field(default_factory=default_source_priority)
    never_blank: bool = True
    fields: Mapping[str, str] | None = None
    direction: Mapping[str, Mapping[str, str]] | None = None  # system → field → direction
    deletes: str = "flag"
    merges: str = "link"
    create_in: tuple[str, ...] | None = None
    # merges = "merge": the connections whose merge API is called (None: those whose
    # connector declares ``merges_by_default``)
    merge_in: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> FieldPolicy:
        create_in = table.get("create_in")
        merge_in = table.get("merge_in")
        return cls(
            default=table.get("default", "source_priority"),
            source_priority=tuple(table.get("source_priority", default_source_priority())),
            never_blank=bool(table.get("never_blank", True)),
            fields=dict(table.get("fields", {})),
            direction={k: dict(v) for k, v in table.get("direction", {}).items()},
            deletes=table.get("deletes", "flag"),
            merges=table.get("merges", "link"),
            create_in=tuple(create_in) if create_in is not None else None,
            merge_in=tuple(merge_in) if merge_in is not None else None,
        )

    def rule_for(self, field: str) -> str:
        return (self.fields or {}).get(field, self.default)

    def direction_of(self, system: str, field: str) -> str:
        per = (self.direction or {}).get(system, {})
        return per.get(field, per.get("*", "both"))

    def reads_from(self, system: str, field: str) -> bool:
        return self.direction_of(system, field) in ("read", "both")

    def writes_to(self, system: str, field: str) -> bool:
        return self.direction_of(system, field) in ("write", "both")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == ()


def _ts(c: Claim) -> datetime:
    return c.modstamp.replace(tzinfo=None) if c.modstamp else _MIN


def _priority_order(claims: Sequence[Claim], priority: Sequence[str]) -> list[Claim]:
    rank = {s: i for i, s in enumerate(priority)}
    # system rank first; within a system the newest record speaks for it
    return sorted(
        claims,
        key=lambda c: (rank.get(c.system, len(rank)), c.system, -_ts(c).timestamp() if c.modstamp else 0.0, c.remote_id),
    )


def _latest_order(claims: Sequence[Claim], priority: Sequence[str]) -> list[Claim]:
    rank = {s: i for i, s in enumerate(priority)}
    return sorted(
        claims,
        key=lambda c: (-(_ts(c).timestamp()) if c.modstamp else float("inf"), rank.get(c.system, len(rank)), c.remote_id),
    )


def _first(ordered: Sequence[Claim], never_blank: bool) -> Claim | None:
    for c in ordered:
        if not never_blank or not is_blank(c.value):
            return c
    return None


def decide(
    field: str,
    claims: Sequence[Claim],
    policy: FieldPolicy,
    *,
    current: Any = None,
) -> Decision:
    """Decide ``field`` from ``claims`` under ``policy`` (``current``: the stored value)."""
    usable = [c for c in claims if policy.reads_from(c.system, field)]
    distinct = {repr(c.value) for c in usable if not is_blank(c.value)}
    conflict = len(distinct) > 1
    rule = policy.rule_for(field)
    nb = policy.never_blank
    winner: Claim | None = None
    label = rule

    if rule.startswith(("prefer:", "always:")):
        target = rule.split(":", 1)[1]
        own = sorted((c for c in usable if c.system == target), key=lambda c: -_ts(c).timestamp() if c.modstamp else 0.0)
        if rule.startswith("always:") and own:
            winner = own[0]
        else:
            winner = _first(own, never_blank=True)
        if winner is None:
            winner = _first(_priority_order(usable, policy.source_priority), nb)
            label = f"{rule}>source_priority"
    elif rule == "latest":
        winner = _first(_latest_order(usable, policy.source_priority), nb)
    else:
        winner = _first(_priority_order(usable, policy.source_priority), nb)
        label = "source_priority"

    if winner is None or (nb and is_blank(winner.value) and not rule.startswith("always:")):
        if nb and not is_blank(current):
            return Decision(field, current, "never_blank:kept", conflict=conflict)
        return Decision(field, None, label, conflict=conflict)
    return Decision(
        field,
        winner.value,
        label,
        system=winner.system,
        remote_id=winner.remote_id,
        modstamp=winner.modstamp,
        conflict=conflict,
    )


def decide_all(
    fields: Sequence[str],
    claims_by_field: Mapping[str, Sequence[Claim]],
    policy: FieldPolicy,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Decision]:
    """``decide`` for every field in ``fields``."""
    cur = current or {}
    return {f: decide(f, claims_by_field.get(f, ()), policy, current=cur.get(f)) for f in fields}


def stage_probability(stage: Any) -> Decimal | None:
    """A stage's default probability (percent), as Salesforce and HubSpot set it from the
    stage; None for a stage without one."""
    percent = STAGE_PROBABILITY.get(str(stage))
    return Decimal(percent) if percent is not None else None


#: derived fields: object → field → (the field it derives from, the derivation)
DERIVED: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "account": {"domain": ("website", domain_from_url)},
    "opportunity": {"probability": ("stage", stage_probability)},
}


def derive(ot: str, decisions: Mapping[str, Decision]) -> dict[str, Decision]:
    """``decisions`` with each derived field (``DERIVED``) that no system gives filled
    from its source field's decided value, with that value's provenance and rule
    ``derived:<source>``."""
    out = dict(decisions)
    for fld, (source, fn) in DERIVED.get(ot, {}).items():
        have, src = out.get(fld), out.get(source)
        # no system gives the field (a value only kept from before counts as none: it
        # was derived, and follows its source)
        given = have is not None and not is_blank(have.value) and have.rule != "never_blank:kept"
        if have is None or given or src is None or is_blank(src.value):
            continue
        try:
            value = fn(src.value)
        except RecordError:  # the source names nothing to derive from
            continue
        if not is_blank(value):
            out[fld] = Decision(fld, value, f"derived:{source}", system=src.system, remote_id=src.remote_id,
                                modstamp=src.modstamp, conflict=have.conflict)
    return out


# ---------------------------------------------------------------------- the stage

#: canonical fields that are associations (decided from linked records' remote ids):
#: field → association key (``RemoteRecord.associations``)
ASSOC_FIELDS = {"account_id": "account", "contact_ids": "contact", "parent_id": "parent"}
#: association key → the canonical object its remote ids name (an account's parent is an account)
ASSOC_OBJECTS = {"account": "account", "contact": "contact", "parent": "account"}


@dataclass
class ResolveStats:
    entities: int = 0
    changed: int = 0
    conflicts: int = 0
    deleted: int = 0
    planned: dict[str, dict[str, int]] = field(default_factory=dict)  # system → kind → n
    errors: int = 0


@dataclass
class ReconciledBatch:
    """What reconcile hands the plan for one batch of entities."""

    ids: list[str]
    #: entities deleted by policy "propagate": (canonical id, its live records)
    deleted: list[tuple[str, list[Any]]]
    #: (desired entity, its records, decisions, merge-ledger entries), in batch order
    to_plan: list[tuple[Any, list[Any], dict[str, Decision], list[Any]]]
    #: object → (system, remote id) → canonical id, for every association in the batch
    translate: dict[str, dict[tuple[str, str], str]]
    #: id(ref) → its decoded view, which the plan reads again
    views: dict[int, Any]


class Reconciler:
    """Decide every field of a batch of dirty entities; record provenance."""

    def __init__(self, policy: Callable[[str], FieldPolicy], *, now: Callable[[], datetime],
                 run_id: int | None = None) -> None:
        self.policy, self.now, self.run_id = policy, now, run_id

    def reconcile_batch(self, s: Any, ot: str, rows: list[Any], stats: ResolveStats) -> ReconciledBatch:
        """Decide ``rows`` (dirty entities of ``ot``: ``st.EntityValues`` from
        ``st.dirty_entities``) in session ``s``; their changes are written in bulk at the
        end of the batch (``st.write_entity_values``)."""
        now = self.now()
        policy = self.policy(ot)
        ids = [r.id for r in rows]
        # read-only rows, not ORM objects: reconcile and plan never change a record
        refs = st.ref_rows_for_entities(s, ot, ids)
        # translate associations (remote ids) to canonical ids in one query per object
        assoc_rids: dict[str, list[str]] = {key: [] for key in ASSOC_OBJECTS}
        for rlist in refs.values():
            for r in rlist:
                for obj, rids in (r.associations or {}).items():
                    if obj in assoc_rids:
                        assoc_rids[obj].extend(rids)
        translate = {key: st.refs_for_remote_ids_any_system(s, ASSOC_OBJECTS[key], rids)
                     for key, rids in assoc_rids.items() if rids}
        hier = _HierarchyCheck(s, ids, translate.get("parent", {}).values()) if ot == "account" else None
        opp_contacts = st.opportunity_contacts(s, ids) if ot == "opportunity" else {}
        provenance = st.provenance_for(s, ot, ids)
        merge_entries = st.merge_entries_for(s, ot, ids) if policy.merges == "merge" else {}
        cls = ENTITY_CLASSES[ObjectType(ot)]
        fields = list(cls.business_fields())
        to_plan: list[tuple[Any, list[Any], dict[str, Decision], list[Any]]] = []
        new_prov: list[dict[str, Any]] = []  # provenance rows to insert, in one go
        changed_prov: list[dict[str, Any]] = []  # … and to update
        views: dict[int, Any] = {}  # id(ref) → its decoded view, which the plan reads again
        opp_links: dict[str, list[str]] = {}  # opportunity id → its new contact ids
        deleted: list[tuple[str, list[Any]]] = []  # policy "propagate": deletes to plan
        for row in rows:
            stats.entities += 1
            row.dirty = False
            entity_refs = refs.get(row.id, [])
            live = [r for r in entity_refs if r.deleted_at is None]
            if not live:
                # every record deleted → the entity is; every record merged away (into a
                # record of another entity, kept apart by an undo) → it lives on here
                if entity_refs and row.deleted_at is None and not all(r.merged_into for r in entity_refs):
                    row.deleted_at = now
                    stats.deleted += 1
                continue
            if policy.deletes == "propagate" and any(r.deleted_at and not r.merged_into for r in entity_refs):
                row.deleted_at = now
                stats.deleted += 1
                deleted.append((row.id, live))
                continue
            claims: dict[str, list[Claim]] = {f: [] for f in fields}
            removals: list[Claim] = []  # records whose parent was removed (sync.hierarchy)
            for r in live:
                view = views[id(r)] = decoded(ot, r.canonical_fields)
                unreadable = unreadable_fields(r.canonical_fields)  # no claim, never a blank one
                for f in fields:
                    if f in ASSOC_FIELDS or (f in unreadable and is_blank(getattr(view, f))):
                        continue
                    claims[f].append(Claim(r.system, r.remote_id, r.remote_modstamp, getattr(view, f)))
                for f, obj in ASSOC_FIELDS.items():
                    if f not in claims:
                        continue
                    rids = (r.associations or {}).get(obj, [])
                    cids = tuple(sorted({c for rid in rids if (c := translate.get(obj, {}).get((r.system, rid)))}))
                    if not cids:
                        if rids and hier is not None and f == "parent_id":
                            hier.missing(row.id, r.system, r.remote_id, rids[0])
                        claims[f].append(Claim(r.system, r.remote_id, r.remote_modstamp, None))
                        if f == "parent_id" and not rids and hier is not None \
                                and hier.h.removed_parent(r.associations):
                            removals.append(claims[f][-1])
                    else:
                        claims[f].append(Claim(r.system, r.remote_id, r.remote_modstamp,
                                               cids if f == "contact_ids" else cids[0]))
            current = row_entity(ot, row, opp_contacts.get(row.id, ()))
            decisions = derive(ot, decide_all(fields, claims, policy, {f: getattr(current, f) for f in fields}))
            if "contact_ids" in decisions:
                decisions["contact_ids"] = _union(claims["contact_ids"])
            if hier is not None:
                if removals:
                    decisions["parent_id"] = _with_removals(claims["parent_id"], removals, policy,
                                                            decisions["parent_id"])
                decisions["parent_id"] = hier.check(row.id, decisions["parent_id"], row.parent_id)
            extras = self._merge_extras(live, policy)
            changed = self._apply(s, ot, row, decisions, extras, now, provenance.get(row.id, {}),
                                  opp_contacts.get(row.id, ()), new_prov, opp_links, changed_prov)
            if changed:
                stats.changed += 1
            stats.conflicts += sum(1 for d in decisions.values() if d.conflict)
            desired = row_entity(ot, row, decisions["contact_ids"].value or () if "contact_ids" in decisions else ())
            to_plan.append((desired, entity_refs, decisions, merge_entries.get(row.id, [])))
        # the batch's writes, set-based: entities (one executemany per set of columns),
        # provenance, contact roles; in the caller's transaction with the plan's outbox
        st.write_entity_values(s, ot, rows)
        st.insert_provenance(s, new_prov, changed_prov)
        st.replace_opportunity_contacts(s, opp_links)
        if hier is not None:
            hier.finish(now, self.run_id)
        return ReconciledBatch(ids, deleted, to_plan, translate, views)

    def _merge_extras(self, live: list[Any], policy: FieldPolicy) -> dict[str, Any]:
        rank = {sname: i for i, sname in enumerate(policy.source_priority)}
        out: dict[str, Any] = {}
        # records of one system: in remote-id order, so a store rebuilt from the
        # systems (which reads them in another order) decides the same
        for r in sorted(live, key=lambda r: (-rank.get(r.system, len(rank)), r.remote_id)):
            out.update((r.canonical_fields or {}).get("extras") or {})
        return out

    def _apply(self, s: Any, ot: str, row: Any, decisions: Mapping[str, Decision],
               extras: dict[str, Any], now: datetime, existing: Mapping[str, Any],
               current_contacts: Sequence[str] = (), new_prov: list[dict[str, Any]] | None = None,
               opp_links: dict[str, list[str]] | None = None,
               changed_prov: list[dict[str, Any]] | None = None) -> bool:
        changed = False
        prov = []
        for f, d in decisions.items():
            if f == "contact_ids":
                if tuple(sorted(d.value or ())) != tuple(sorted(current_contacts)):
                    if opp_links is not None:
                        opp_links[row.id] = list(d.value or ())
                    else:
                        st.set_opportunity_contacts(s, row.id, list(d.value or ()))
            elif getattr(row, f) != d.value:
                setattr(row, f, d.value)
                changed = True
            # a removed parent is recorded too: which record took it away, and when
            if (d.value is not None and not is_blank(d.value)) or d.rule.endswith(":removed"):
                prov.append({
                    "field": f, "value": encode_value(d.value), "system": d.system, "remote_id": d.remote_id,
                    "remote_modstamp": d.modstamp, "rule": d.rule, "run_id": self.run_id, "decided_at": now,
                })
        if extras != (row.extras or {}):
            row.extras = extras
            changed = True
        if ot == "contact":
            row.email_key = email_key({"email": row.email})
        if changed:
            row.updated_at = now
        st.upsert_provenance(s, ot, row.id, prov, existing, new_prov, changed_prov)
        return changed


def _with_removals(claims: Sequence[Claim], removals: Sequence[Claim], policy: FieldPolicy,
                   decided: Decision) -> Decision:
    """An account's parent when some records say theirs was removed: a removal is a
    value, not a blank, so it takes part in the field's rule as the parent would (under
    ``latest``, a removal newer than every other record's parent wins). Records that
    merely have no parent still claim nothing."""
    counted = {id(c) for c in removals}
    usable = [c for c in claims if c.value is not None or id(c) in counted]
    d = decide("parent_id", usable, replace(policy, never_blank=False), current=None)
    if d.value is not None or d.system is None:
        return d if d.value is not None else decided
    return Decision("parent_id", None, f"{d.rule}:removed", system=d.system, remote_id=d.remote_id,
                    modstamp=d.modstamp, conflict=d.conflict or decided.conflict)


def _union(claims: Sequence[Claim]) -> Decision:
    """An opportunity's contacts: every contact any linked record names (links are
    only ever added, never removed, so the union is the stable answer)."""
    ids = sorted({cid for c in claims for cid in (c.value or ())})
    systems = sorted({c.system for c in claims if c.value})
    distinct = {tuple(sorted(c.value)) for c in claims if c.value}
    return Decision("contact_ids", tuple(ids) or None, "union", system=",".join(systems) or None,
                    conflict=len(distinct) > 1)


class _HierarchyCheck:
    """The hierarchy checks of one batch of accounts (``sync.hierarchy``): a decided
    parent that would be the account itself, close a cycle, or does not exist is
    refused (the current parent stays) with an error-ledger entry."""

    def __init__(self, s: Any, ids: Sequence[str], parent_ids: Any) -> None:
        from sync import hierarchy

        self.s, self.h, self.ids = s, hierarchy, list(ids)
        self.parents, self.live = hierarchy.load_parents(s, [*ids, *parent_ids])
        self.refused: dict[str, tuple[str | None, str | None, Any]] = {}

    def missing(self, cid: str, system: str, remote_id: str, parent_rid: str) -> None:
        why = self.h.Refusal("missing", f"parent {system}:{parent_rid} of {system}:{remote_id} is not a known account")
        self.refused.setdefault(cid, (system, remote_id, why))

    def check(self, cid: str, d: Decision, current: str | None) -> Decision:
        why = self.h.refusal(cid, d.value, self.parents, self.live.__contains__)
        if why is None:
            self.parents[cid] = d.value if d.value is not None else self.parents.get(cid)
            return d
        self.refused[cid] = (d.system, d.remote_id, why)
        keep = current if current and self.h.refusal(cid, current, self.parents, self.live.__contains__) is None \
            else None
        self.parents[cid] = keep
        return Decision("parent_id", keep, f"refused:{why.kind}", conflict=d.conflict)

    def finish(self, now: datetime, run_id: int | None) -> None:
        for cid, (system, remote_id, why) in sorted(self.refused.items()):
            self.h.ledger_refusal(self.s, system, remote_id, cid, why, now, run_id)
        passed = sorted(c for c in self.ids if c not in self.refused)
        self.h.resolve_refusals(self.s, passed)
