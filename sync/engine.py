"""Reconcile and plan the dirty entities; push the outbox.

``resolve`` takes entities a pull marked dirty, decides every field by policy
(``sync.reconcile``), records provenance, and writes the resulting ops for every
connection to the outbox — all in one transaction per batch, and clears the dirty
flag in the same transaction, so a crash at any point leaves work to redo, never
work lost. ``push`` drains the outbox in the largest batches each connector allows;
results update the identity map (remote ids of created records, last written
state) and failures go to the error ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.base import (
    AuthError,
    Connector,
    FatalError,
    OpKind,
    QuotaExhausted,
    RecordError,
    RetriableError,
    WriteOp,
    WriteResult,
)
from mapping.canonical import (
    ENTITY_CLASSES,
    ObjectType,
    encode_value,
    entity_from_json,
)
from mapping.fieldmap import from_entity, get_field_map, to_entity
from sync import store as st
from sync.plan import FieldChange, PlannedWrite, changed_fields, native_diff
from sync.pull import STAMP_FIELDS, _view_hash, gc_paused, unreadable_fields
from sync.reconcile import Claim, Decision, FieldPolicy, decide_all, is_blank

log = logging.getLogger(__name__)

RESOLVE_BATCH = 500
PUSH_CHUNK = 2000
ASSOC_FIELDS = {"account_id": "account", "contact_ids": "contact"}
#: canonical fields whose native property must be unique within the system: with
#: several records of one entity in that system (duplicates kept under policy
#: "link"), only the record that already holds the value keeps it
UNIQUE_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("hubspot", "contacts"): frozenset({"email"}),
}
#: native objects that can never be the target of an association (a Salesforce
#: Lead cannot be an opportunity's contact role, nor anyone's account)
NOT_ASSOCIABLE: frozenset[str] = frozenset({"Lead"})
#: native fields sent along with a changed field even when unchanged themselves:
#: Salesforce resets Probability to the stage's default when StageName changes alone
#: and a national-format phone is read with the record's country as its region, so a
#: country change is written with the phone in E.164 (else the phone's meaning moves)
WRITE_WITH: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("salesforce", "Opportunity"): {"StageName": ("Probability",)},
    ("salesforce", "Account"): {"BillingCountry": ("Phone",)},
    ("hubspot", "companies"): {"country": ("phone",)},
    ("planhat", "companies"): {"country": ("phone",)},
}
#: associations each connector writes, per (kind, native object); unknown pairs: all
WRITABLE_ASSOCIATIONS: dict[tuple[str, str], frozenset[str]] = {
    ("salesforce", "Contact"): frozenset({"account"}),
    ("salesforce", "Lead"): frozenset(),  # a Lead has no account until it is converted
    ("salesforce", "Opportunity"): frozenset({"account", "contact"}),  # contacts as contact roles
    ("salesforce", "Account"): frozenset(),
    ("hubspot", "contacts"): frozenset({"account"}),
    ("hubspot", "deals"): frozenset({"account", "contact"}),
    ("hubspot", "companies"): frozenset(),
    ("planhat", "endusers"): frozenset({"account"}),
    ("planhat", "companies"): frozenset(),
}


@dataclass(frozen=True)
class Connection:
    """A configured connection the engine talks to."""

    name: str
    kind: str
    connector: Connector


@dataclass
class ResolveStats:
    entities: int = 0
    changed: int = 0
    conflicts: int = 0
    deleted: int = 0
    planned: dict[str, dict[str, int]] = field(default_factory=dict)  # system → kind → n
    errors: int = 0


@dataclass
class PushStats:
    written: dict[str, int] = field(default_factory=dict)  # system → ops succeeded
    failed: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # system → why it stopped
    stopped_by: dict[str, Exception] = field(default_factory=dict)  # system → the error itself


def _decoded(object_type: str, view: Mapping[str, Any] | None) -> Any:
    return entity_from_json(object_type, dict(view or {}), id="")


def _row_entity(object_type: str, row: Any, contact_ids: Sequence[str] = ()) -> Any:
    cls = ENTITY_CLASSES[ObjectType(object_type)]
    values = {f: getattr(row, f) for f in cls.business_fields() if hasattr(row, f)}
    if object_type == "opportunity":
        values["contact_ids"] = tuple(contact_ids)
    return cls(id=row.id, created_at=row.created_at, updated_at=row.updated_at,
               deleted_at=row.deleted_at, extras=dict(row.extras or {}), **values)


class Engine:
    """Reconcile, plan and push for a set of connections."""

    def __init__(
        self,
        store: st.Store,
        connections: Mapping[str, Connection],
        policies: Mapping[str, Mapping[str, Any]],
        *,
        now: Callable[[], datetime],
        run_id: int | None = None,
        fieldmaps: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self.store, self.connections, self.now, self.run_id = store, connections, now, run_id
        self.fieldmaps = fieldmaps
        # while a resolve batch runs: the outbox rows it plans, inserted together at its end
        self._outbox: list[dict[str, Any]] | None = None
        self.policies = {ot: FieldPolicy.from_config(p) for ot, p in policies.items()}

    def _fm(self, kind: str, native: str) -> Any:
        return self.fieldmaps.get((kind, native)) if self.fieldmaps else None

    def policy(self, object_type: str) -> FieldPolicy:
        return self.policies.get(object_type) or FieldPolicy()

    def create_in(self, object_type: str) -> tuple[str, ...]:
        p = self.policy(object_type)
        if p.create_in is not None:
            return p.create_in
        return tuple(n for n, c in self.connections.items() if c.kind in ("salesforce", "hubspot"))

    def merge_in(self, object_type: str) -> tuple[str, ...]:
        """Connections whose merge API policy ``merge`` calls: ``merge_in``, else the
        HubSpot ones (a Salesforce merge cannot be undone: it is opt-in)."""
        p = self.policy(object_type)
        if p.merge_in is not None:
            return p.merge_in
        return tuple(n for n, c in self.connections.items() if c.kind == "hubspot")

    # ------------------------------------------------------------------ resolve

    def resolve(
        self, object_type: ObjectType, *, write_to: Sequence[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ResolveStats:
        """Reconcile and plan every dirty entity of ``object_type``."""
        stats = ResolveStats()
        ot = object_type.value
        targets = [n for n in self.connections if write_to is None or n in write_to]
        after = ""
        while True:
            with gc_paused(), self.store.session() as s:
                rows = st.dirty_entities(s, ot, RESOLVE_BATCH, after)
                if not rows:
                    break
                after = rows[-1].id
                with s.no_autoflush:  # one flush per batch: inserts go out in bulk
                    self._outbox = []
                    try:
                        self._resolve_batch(s, ot, rows, targets, stats)
                        st.insert_outbox(s, self._outbox)
                    finally:
                        self._outbox = None
            if on_batch:
                on_batch(len(rows))
        return stats

    def _resolve_batch(self, s: Any, ot: str, rows: list[Any], targets: list[str], stats: ResolveStats) -> None:
        now = self.now()
        policy = self.policy(ot)
        ids = [r.id for r in rows]
        refs = st.refs_for_entities(s, ot, ids)
        # translate associations (remote ids) to canonical ids in one query per object
        assoc_rids: dict[str, list[str]] = {"account": [], "contact": []}
        for rlist in refs.values():
            for r in rlist:
                for obj, rids in (r.associations or {}).items():
                    if obj in assoc_rids:
                        assoc_rids[obj].extend(rids)
        translate = {obj: st.refs_for_remote_ids_any_system(s, obj, rids) for obj, rids in assoc_rids.items() if rids}
        opp_contacts = st.opportunity_contacts(s, ids) if ot == "opportunity" else {}
        st.delete_pending_ops(s, ot, ids, targets)  # this batch's plan replaces any older one
        provenance = st.provenance_for(s, ot, ids)
        merge_entries = st.merge_entries_for(s, ot, ids) if policy.merges == "merge" else {}
        cls = ENTITY_CLASSES[ObjectType(ot)]
        fields = list(cls.business_fields())
        to_plan: list[tuple[Any, list[Any], dict[str, Decision], list[Any]]] = []
        new_prov: list[dict[str, Any]] = []  # provenance rows to insert, in one go
        changed_prov: list[dict[str, Any]] = []  # … and to update
        views: dict[int, Any] = {}  # id(ref) → its decoded view, which the plan reads again
        opp_links: dict[str, list[str]] = {}  # opportunity id → its new contact ids
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
                for r in live:
                    if r.system in targets:
                        self._queue(s, PlannedWrite(r.system, ot, r.native_type, "delete", row.id, r.remote_id, {}), stats)
                continue
            claims: dict[str, list[Claim]] = {f: [] for f in fields}
            for r in live:
                view = views[id(r)] = _decoded(ot, r.canonical_fields)
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
                        claims[f].append(Claim(r.system, r.remote_id, r.remote_modstamp, None))
                    else:
                        claims[f].append(Claim(r.system, r.remote_id, r.remote_modstamp,
                                               cids if f == "contact_ids" else cids[0]))
            current = _row_entity(ot, row, opp_contacts.get(row.id, ()))
            decisions = decide_all(fields, claims, policy, {f: getattr(current, f) for f in fields})
            if "contact_ids" in decisions:
                decisions["contact_ids"] = _union(claims["contact_ids"])
            extras = self._merge_extras(live, policy)
            changed = self._apply(s, ot, row, decisions, extras, now, provenance.get(row.id, {}),
                                  opp_contacts.get(row.id, ()), new_prov, opp_links, changed_prov)
            if changed:
                stats.changed += 1
            stats.conflicts += sum(1 for d in decisions.values() if d.conflict)
            desired = _row_entity(ot, row, decisions["contact_ids"].value or () if "contact_ids" in decisions else ())
            to_plan.append((desired, entity_refs, decisions, merge_entries.get(row.id, [])))
        st.insert_provenance(s, new_prov, changed_prov)
        st.replace_opportunity_contacts(s, opp_links)
        reach = self._reach_map(s, [self._desired_associations(ot, d) for d, _, _, _ in to_plan], targets)
        for desired, entity_refs, decisions, entries in to_plan:
            self._plan_entity(s, ot, desired, entity_refs, targets, decisions, stats, translate, reach, entries,
                              views)

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
            if d.value is not None and not is_blank(d.value):
                prov.append({
                    "field": f, "value": encode_value(d.value), "system": d.system, "remote_id": d.remote_id,
                    "remote_modstamp": d.modstamp, "rule": d.rule, "run_id": self.run_id, "decided_at": now,
                })
        if extras != (row.extras or {}):
            row.extras = extras
            changed = True
        if ot == "contact":
            from sync.pull import _email_key

            row.email_key = _email_key({"email": row.email})
        if changed:
            row.updated_at = now
        st.upsert_provenance(s, ot, row.id, prov, existing, new_prov, changed_prov)
        return changed

    # ------------------------------------------------------------------ plan

    def _plan_entity(self, s: Any, ot: str, desired: Any, entity_refs: list[Any], targets: list[str],
                     decisions: Mapping[str, Decision], stats: ResolveStats,
                     translate: Mapping[str, Mapping[tuple[str, str], str]],
                     reach: Mapping[tuple[str, str], set[str]], merge_entries: Sequence[Any] = (),
                     views: Mapping[int, Any] | None = None) -> None:
        policy = self.policy(ot)
        want_assoc = self._desired_associations(ot, desired)
        live = [r for r in entity_refs if r.deleted_at is None]
        for name in targets:
            conn = self.connections[name]
            natives = conn.connector.objects.get(ObjectType(ot), ())
            if not natives:
                continue
            in_system = [r for r in live if r.system == name]
            # a record of this entity merged away in this system (by a user, or by us and
            # then undone, which the system cannot do): never re-create it there
            merged_away = any(r.system == name and r.merged_into for r in entity_refs)
            reachable = {obj: kept for obj, cids in want_assoc.items()
                         if (kept := [c for c in cids if c in reach.get((name, obj), set())])}
            try:
                merge = (self._plan_merge(ot, conn, desired, in_system, merge_entries)
                         if merge_entries and name in self.merge_in(ot) else None)
                if merge is not None:
                    # the merged record gets a new id: its updates are planned next cycle
                    self._queue(s, merge, stats)
                    continue
                if in_system:
                    stamp_field = self._stamp_field(conn)
                    stamp = self._stamp_targets(in_system, desired.id) if stamp_field else set()
                    for ref in in_system:
                        assoc_here = self._writable_assoc(conn.kind, ref.native_type, reachable)
                        skip = self._unique_skip(conn.kind, ref, in_system, desired)
                        op = self._plan_update(ot, conn, ref, desired, assoc_here, translate, policy, decisions,
                                               skip, (views or {}).get(id(ref)),
                                               stamp_field if id(ref) in stamp else None)
                        if op is not None:
                            self._queue(s, op, stats)
                elif name in self.create_in(ot) and desired.deleted_at is None and not merged_away:
                    native = natives[0]
                    fields = from_entity(conn.kind, native, desired, fieldmap=self._fm(conn.kind, native))
                    changes = tuple(
                        FieldChange(f, None, getattr(desired, f), decisions[f].rule)
                        for f in decisions if f not in ASSOC_FIELDS and not is_blank(getattr(desired, f))
                    )
                    self._queue(s, PlannedWrite(name, ot, native, "create", desired.id, None, fields, changes,
                                                self._writable_assoc(conn.kind, native, reachable)), stats)
            except RecordError as e:
                stats.errors += 1
                err = st.record_error(s, system=name, object_type=ot, native_type=natives[0], remote_id=None,
                                      canonical_id=desired.id, direction="write", category=e.category.value,
                                      message=f"{ot} {desired.id}: {e}", field=e.field, payload=None,
                                      now=self.now(), run_id=self.run_id)
                st.schedule_write_retry(err, self.now())

    @staticmethod
    def _plan_merge(ot: str, conn: Connection, desired: Any, in_system: list[Any],
                    entries: Sequence[Any]) -> PlannedWrite | None:
        """Policy ``merge``: one merge op for the records of this entity in ``conn`` that
        a merge-policy ledger entry joined (plus the entity's own record), if the
        connector can merge that object. The primary is the record holding the value
        of a unique field (HubSpot keeps the primary's email), else the entity's own
        record, else the oldest."""
        moved = {ref_id: e.id for e in entries for img in (e.before_images or {}).values()
                 for ref_id in img.get("refs", [])}
        for native in conn.connector.objects.get(ObjectType(ot), ()):
            if native not in conn.connector.mergeable:
                continue
            refs = [r for r in in_system if r.native_type == native]
            joined = [r for r in refs if r.id in moved]
            if not joined or len(refs) < 2:
                continue
            own = sorted((r for r in refs if r.id not in moved), key=lambda r: (r.first_seen_at, r.id))
            fuse = joined + own[:1]
            if len(fuse) < 2:
                continue
            unique = UNIQUE_FIELDS.get((conn.kind, native), frozenset())

            def rank(r: Any, unique: frozenset[str] = unique) -> tuple[bool, bool, Any, int]:
                holds = any(not is_blank(getattr(desired, f, None))
                            and (r.canonical_fields or {}).get(f) == encode_value(getattr(desired, f))
                            for f in unique)
                return (not holds, r.id in moved, r.first_seen_at, r.id)

            fuse.sort(key=rank)
            primary, others = fuse[0], fuse[1:]
            before = {r.remote_id: {"native_type": r.native_type, "fields": r.canonical_fields,
                                    "associations": r.associations, "link_rule": r.link_rule,
                                    "modstamp": encode_value(r.remote_modstamp)} for r in fuse}
            return PlannedWrite(
                conn.name, ot, native, "merge", desired.id, primary.remote_id, {},
                merge_from=tuple(r.remote_id for r in others),
                merge_ids=tuple(sorted({moved[r.id] for r in fuse if r.id in moved})), before=before,
            )
        return None

    @staticmethod
    def _stamp_field(conn: Connection) -> str | None:
        """The native field ``conn``'s records carry the revsync id in (None: the
        connector has none we know of)."""
        if conn.kind == "salesforce":
            return str(getattr(conn.connector, "external_id_field", None) or STAMP_FIELDS["salesforce"])
        return STAMP_FIELDS.get(conn.kind)

    @staticmethod
    def _stamp_targets(in_system: list[Any], cid: str) -> set[int]:
        """The records (``id()`` of their refs) to write the entity's id into: per
        native object, the first record, unless one already carries it (the field is
        unique in every system: duplicates kept under policy "link" cannot all hold it).
        So identity lives in the systems and survives the store."""
        by_native: dict[str, list[Any]] = {}
        for r in in_system:
            by_native.setdefault(r.native_type, []).append(r)
        out: set[int] = set()
        for refs in by_native.values():
            if not any(r.revsync_id == cid for r in refs):
                out.add(id(refs[0]))
        return out

    @staticmethod
    def _unique_skip(kind: str, ref: Any, in_system: list[Any], desired: Any) -> frozenset[str]:
        unique = UNIQUE_FIELDS.get((kind, ref.native_type), frozenset())
        if not unique or len(in_system) < 2:
            return frozenset()
        skip = set()
        for f in unique:
            want = getattr(desired, f, None)
            holders = [r for r in in_system if (r.canonical_fields or {}).get(f) == want]
            primary = holders[0] if holders else in_system[0]
            if ref is not primary:
                skip.add(f)
        return frozenset(skip)

    @staticmethod
    def _writable_assoc(kind: str, native: str, assoc: dict[str, list[str]]) -> dict[str, list[str]]:
        allowed = WRITABLE_ASSOCIATIONS.get((kind, native))
        return {k: v for k, v in assoc.items() if v and (allowed is None or k in allowed)}

    @staticmethod
    def _reach_map(s: Any, wants: list[dict[str, list[str]]], systems: list[str]) -> dict[tuple[str, str], set[str]]:
        """(system, object) → the wanted canonical ids that exist in that system (or are
        being created there): associations can only point at those."""
        by_obj: dict[str, set[str]] = {}
        for want in wants:
            for obj, cids in want.items():
                by_obj.setdefault(obj, set()).update(cids)
        out: dict[tuple[str, str], set[str]] = {}
        for obj, wanted in by_obj.items():
            for (cid, sys_name) in st.remote_ids_for(s, obj, sorted(wanted), NOT_ASSOCIABLE):
                out.setdefault((sys_name, obj), set()).add(cid)
            for system in systems:
                out.setdefault((system, obj), set()).update(st.pending_create_ids(s, system, obj, sorted(wanted)))
        return out

    @staticmethod
    def _desired_associations(ot: str, desired: Any) -> dict[str, list[str]]:
        """{"account": [canonical id], "contact": [...]}: resolved to remote ids at push time."""
        out: dict[str, list[str]] = {}
        if ot in ("contact", "opportunity") and desired.account_id:
            out["account"] = [desired.account_id]
        if ot == "opportunity" and desired.contact_ids:
            out["contact"] = sorted(desired.contact_ids)
        return out

    def _plan_update(self, ot: str, conn: Connection, ref: Any, desired: Any, want_assoc: dict[str, list[str]],
                     translate: Mapping[str, Mapping[tuple[str, str], str]], policy: FieldPolicy,
                     decisions: Mapping[str, Decision], skip: frozenset[str] = frozenset(),
                     current: Any = None, stamp: str | None = None) -> PlannedWrite | None:
        fm = self._fm(conn.kind, ref.native_type) or get_field_map(conn.kind, ref.native_type)
        # a value this record holds but we could not read stays as it is there
        skip = skip | frozenset(unreadable_fields(ref.canonical_fields))
        candidates = {r.canonical for r in fm.write_rules if r.extras_key is None} - skip
        if current is None:  # the resolve pass decoded it already, usually
            current = _decoded(ot, ref.canonical_fields)
        diff = changed_fields(desired, current, sorted(candidates - set(ASSOC_FIELDS)), policy, conn.name)
        if "owner_email" in diff and conn.connector.owner_known(str(desired.owner_email)) is False:
            # no user there has that email: the write would leave the owner as it is, and
            # the record read back would ask for it again every cycle (a flapping write)
            diff.remove("owner_email")
        fields: dict[str, Any] = {}
        if diff:
            modified = current.replace(**{f: getattr(desired, f) for f in diff})
            new_native = from_entity(conn.kind, ref.native_type, modified, fieldmap=fm)
            fields = native_diff(new_native, from_entity(conn.kind, ref.native_type, current, fieldmap=fm))
            for trigger, companions in WRITE_WITH.get((conn.kind, ref.native_type), {}).items():
                if trigger in fields:
                    for companion in companions:
                        if companion in new_native:
                            fields.setdefault(companion, new_native[companion])
        have = {
            obj: {c for rid in rids if (c := translate.get(obj, {}).get((conn.name, rid)))}
            for obj, rids in (ref.associations or {}).items()
        }
        assoc = {obj: cids for obj, cids in want_assoc.items() if cids and not set(cids) <= have.get(obj, set())}
        if ot == "opportunity" and not policy.writes_to(conn.name, "contact_ids"):
            assoc.pop("contact", None)
        if not policy.writes_to(conn.name, "account_id"):
            assoc.pop("account", None)
        if stamp:
            fields[stamp] = desired.id
        if not fields and not assoc:
            return None
        changes = tuple(FieldChange(f, getattr(current, f), getattr(desired, f), decisions[f].rule) for f in diff)
        return PlannedWrite(conn.name, ot, ref.native_type, "update", desired.id, ref.remote_id, fields, changes, assoc)

    def _queue(self, s: Any, op: PlannedWrite, stats: ResolveStats) -> None:
        now = self.now()
        row = {
            "run_id": self.run_id, "system": op.system, "object_type": op.object_type,
            "native_type": op.native_type, "kind": op.kind, "canonical_id": op.canonical_id,
            "remote_id": op.remote_id,
            "payload": {"fields": _json(op.fields), "associations": op.associations,
                        "changes": [c.as_json() for c in op.changes],
                        **({"merge_from": list(op.merge_from), "merge_ids": list(op.merge_ids),
                            "before": dict(op.before)} if op.kind == "merge" else {})},
            "state": "pending", "attempts": 0, "created_at": now, "updated_at": now,
        }
        if self._outbox is not None:
            self._outbox.append(row)
        else:
            s.add(st.OutboxRow(**row))
        per = stats.planned.setdefault(op.system, {})
        per[op.kind] = per.get(op.kind, 0) + 1

    # ------------------------------------------------------------------ push

    def push(self, object_type: ObjectType, *, systems: Sequence[str] | None = None,
             on_batch: Callable[[int], None] | None = None) -> PushStats:
        """Drain the outbox for ``object_type`` (all connections, or ``systems``)."""
        stats = PushStats()
        ot = object_type.value
        for name, conn in self.connections.items():
            if systems is not None and name not in systems:
                continue
            while True:
                with self.store.session() as s:
                    rows = st.pending_ops(s, name, ot, PUSH_CHUNK, self.now())
                    batch = [(r.id, r.kind, r.native_type, r.canonical_id, r.remote_id, r.payload) for r in rows]
                if not batch:
                    break
                # merges go in calls of their own, after the rest: one that keeps failing
                # defers only the merges
                by_native: dict[tuple[bool, str], list[Any]] = {}
                for item in batch:
                    by_native.setdefault((item[1] == "merge", item[2]), []).append(item)
                remote = self._remote_associations(name, batch)
                stop = False
                for (_merges, native), items in sorted(by_native.items()):
                    # associations whose target has no record here yet wait: the op is
                    # written without them, and they stay in the outbox (see _record_results)
                    missing: list[dict[str, list[str]]] = []
                    ops = [self._write_op(object_type, native, it, remote, missing) for it in items]
                    idle = [i for i, op in enumerate(ops)
                            if op.kind is OpKind.UPDATE and not op.fields and not op.associations]
                    if idle:  # only waiting associations, none of whose targets exists yet
                        self._still_waiting(conn, ot, native, [items[i] for i in idle], [missing[i] for i in idle])
                        keep = [i for i in range(len(ops)) if i not in set(idle)]
                        items, ops, missing = [items[i] for i in keep], [ops[i] for i in keep], \
                            [missing[i] for i in keep]
                        if not ops:
                            continue
                    try:
                        results = conn.connector.write(object_type, ops)
                    except (RetriableError, QuotaExhausted, AuthError, FatalError) as e:
                        self._defer(items, e)
                        stats.deferred[name] = f"{type(e).__name__}: {e}"
                        stats.stopped_by[name] = e
                        stop = True
                        break
                    self._record_results(conn, ot, native, items, results, stats,
                                         [dict(op.associations) for op in ops], missing)
                    if on_batch:
                        on_batch(len(items))
                if stop:
                    break
        return stats

    def _remote_associations(self, system: str, batch: list[Any]) -> dict[tuple[str, str], str]:
        """(object, canonical id) → remote id in ``system`` for every association in ``batch``."""
        wanted: dict[str, set[str]] = {}
        for it in batch:
            for obj, cids in (it[5].get("associations") or {}).items():
                wanted.setdefault(obj, set()).update(cids)
        out: dict[tuple[str, str], str] = {}
        with self.store.session() as s:
            for obj, cids in wanted.items():
                for (cid, sys_name), rids in st.remote_ids_for(s, obj, sorted(cids), NOT_ASSOCIABLE).items():
                    if sys_name == system:
                        out[(obj, cid)] = rids[0]
        return out

    @staticmethod
    def _write_op(object_type: ObjectType, native: str, item: Any, remote: Mapping[tuple[str, str], str],
                  missing: list[dict[str, list[str]]] | None = None) -> WriteOp:
        """The connector op for an outbox row. Association targets without a record in
        the system yet are left out of it and appended to ``missing`` (one dict per op)."""
        _oid, kind, _native, cid, remote_id, payload = item
        op_kind = {"create": OpKind.UPSERT, "update": OpKind.UPDATE, "delete": OpKind.DELETE,
                   "merge": OpKind.MERGE}[kind]
        assoc: dict[str, tuple[str, ...]] = {}
        waiting: dict[str, list[str]] = {}
        for obj, cids in (payload.get("associations") or {}).items():
            rids = tuple(remote[(obj, c)] for c in cids if (obj, c) in remote)
            if rids:
                assoc[obj] = rids
            if absent := [c for c in cids if (obj, c) not in remote]:
                waiting[obj] = absent
        if missing is not None:
            missing.append(waiting)
        return WriteOp(
            kind=op_kind, object_type=object_type, key=cid, fields=dict(payload.get("fields") or {}),
            remote_id=remote_id, associations=assoc, native_type=native,
            merge_from=tuple(str(x) for x in payload.get("merge_from") or ()),
        )

    def _defer(self, items: list[Any], err: Exception) -> None:
        now = self.now()
        with self.store.session() as s:
            for it in items:
                row = s.get(st.OutboxRow, it[0])
                if row is not None:
                    row.attempts += 1
                    row.last_error = f"{type(err).__name__}: {err}"
                    row.next_attempt_at = now + timedelta(minutes=min(60, 2 ** min(row.attempts, 6)))
                    row.updated_at = now

    def _record_results(self, conn: Connection, ot: str, native: str, items: list[Any],
                        results: list[WriteResult], stats: PushStats,
                        sent_assoc: list[dict[str, tuple[str, ...]]],
                        missing: Sequence[Mapping[str, list[str]]] = ()) -> None:
        now = self.now()
        waiting = list(missing) or [{} for _ in items]
        if len(results) != len(items):
            raise RuntimeError(f"{conn.name}: connector returned {len(results)} results for {len(items)} ops")
        with gc_paused(), self.store.session() as s, s.no_autoflush:
            existing = st.refs_by_remote_id(
                s, conn.name, native, [r.remote_id for r in results if r.remote_id]
            )
            by_cid = st.refs_for_entities(s, ot, sorted({it[3] for it in items}))
            outbox = st.outbox_rows(s, [it[0] for it in items])
            ok_cids: list[str] = []
            created_cids: list[str] = []
            for it, res, sent, wait in zip(items, results, sent_assoc, waiting, strict=True):
                oid, kind, _native, cid, remote_id, payload = it
                row = outbox.get(oid)
                if row is None:
                    continue
                if not res.success:
                    stats.failed[conn.name] = stats.failed.get(conn.name, 0) + 1
                    row.state, row.attempts, row.last_error, row.updated_at = "failed", row.attempts + 1, res.message, now
                    err = st.record_error(s, system=conn.name, object_type=ot, native_type=native,
                                          remote_id=res.remote_id or remote_id, canonical_id=cid, direction="write",
                                          category=(res.category.value if res.category else "unknown"),
                                          message=f"{native} {res.remote_id or remote_id or cid}: {res.message}",
                                          field=res.field, payload=payload, now=now, run_id=self.run_id)
                    st.schedule_write_retry(err, now)  # the following cycles try it again
                    continue
                stats.written[conn.name] = stats.written.get(conn.name, 0) + 1
                if wait and kind in ("create", "update") and (res.remote_id or remote_id):
                    self._wait_for_targets(s, conn, ot, native, row, res.remote_id or remote_id or "", wait, now)
                ok_cids.append(cid)
                s.delete(row)
                if kind == "delete":
                    ref = next((r for r in by_cid.get(cid, []) if r.remote_id == remote_id), None)
                    if ref is not None:
                        ref.deleted_at = now
                    continue
                if kind == "merge":
                    self._merged(s, conn, ot, native, cid, remote_id, payload, res, by_cid.get(cid, []), now)
                    created_cids.append(cid)  # re-decide against the merged record next cycle
                    continue
                rid = res.remote_id or remote_id
                if not rid:
                    continue
                ref = existing.get(rid) or next(
                    (r for r in by_cid.get(cid, []) if r.system == conn.name and r.remote_id == rid), None
                )
                written = self._written_view(conn.kind, native, payload.get("fields") or {},
                                             partial=kind != "create", fieldmaps=self.fieldmaps)
                assoc = {k: list(v) for k, v in sent.items()}
                if kind == "create":
                    # the new record's own values (system defaults included) become claims:
                    # re-decide the entity next time, as a re-run after a crash would
                    created_cids.append(cid)
                if ref is None:
                    ref = st.ExternalRefRow(
                        canonical_id=cid, system=conn.name, object_type=ot, native_type=native, remote_id=rid,
                        canonical_fields=written, associations=assoc, link_rule="created",
                        first_seen_at=now, last_seen_at=now,
                    )
                    s.add(ref)
                    existing[rid] = ref
                else:
                    view = dict(ref.canonical_fields or {})
                    view.update({k: v for k, v in written.items() if v is not None and k != "extras"})
                    ref.canonical_fields = view
                    # association writes only add links, so the record now has the union
                    merged = {k: list(v) for k, v in (ref.associations or {}).items()}
                    for k, v in assoc.items():
                        merged[k] = sorted(set(merged.get(k, [])) | set(v))
                    ref.associations = merged
                digest = _view_hash(ref.canonical_fields or {}, ref.associations or {})
                ref.last_written_hash = ref.last_seen_hash = digest
                stamp = self._stamp_field(conn)
                if kind == "create" or (stamp and (payload.get("fields") or {}).get(stamp) == cid):
                    ref.revsync_id = cid
            st.resolve_errors(s, system=conn.name, object_type=ot, direction="write", canonical_ids=ok_cids)
            st.mark_dirty(s, ot, created_cids)

    def _still_waiting(self, conn: Connection, ot: str, native: str, items: list[Any],
                       missing: list[dict[str, list[str]]]) -> None:
        now = self.now()
        with self.store.session() as s:
            rows = st.outbox_rows(s, [it[0] for it in items])
            for it, wait in zip(items, missing, strict=True):
                row = rows.get(it[0])
                if row is not None:
                    if wait:
                        self._wait_for_targets(s, conn, ot, native, row, it[4] or "", wait, now)
                    s.delete(row)

    def _wait_for_targets(self, s: Any, conn: Connection, ot: str, native: str, row: Any, remote_id: str,
                          wait: Mapping[str, list[str]], now: datetime) -> None:
        """The op went through without the associations whose target has no record in
        the system yet (its create failed, or waits for a retry): they stay in the
        outbox as an association-only update, tried again with backoff, written once the
        target exists. After RETRY_CAP tries it fails like any write (ledger, retries)."""
        attempts = row.attempts + 1
        left = dict(wait)
        waiting = st.OutboxRow(
            run_id=self.run_id, system=conn.name, object_type=ot, native_type=native, kind="update",
            canonical_id=row.canonical_id, remote_id=remote_id,
            payload={"fields": {}, "associations": left, "changes": []},
            state="pending", attempts=attempts, created_at=now, updated_at=now,
            last_error="waiting for " + ", ".join(f"{o} {c}" for o, cs in sorted(left.items()) for c in cs),
            next_attempt_at=now + min(st.RETRY_MAX_DELAY, st.RETRY_BASE * 2 ** (attempts - 1)),
        )
        if attempts >= st.RETRY_CAP:
            waiting.state, waiting.next_attempt_at = "failed", None
            err = st.record_error(s, system=conn.name, object_type=ot, native_type=native, remote_id=remote_id,
                                  canonical_id=row.canonical_id, direction="write", category="not_found",
                                  message=f"{native} {remote_id}: association target not in {conn.name}: "
                                          f"{waiting.last_error}", field=None, payload=waiting.payload,
                                  now=now, run_id=self.run_id)
            st.schedule_write_retry(err, now)
        s.add(waiting)

    def _merged(self, s: Any, conn: Connection, ot: str, native: str, cid: str, primary: str | None,
                payload: Mapping[str, Any], res: WriteResult, refs: list[Any], now: datetime) -> None:
        """A merge went through: the records merged are gone (merged into the result,
        which HubSpot gives a new id), the result is this entity's record, and the
        merge-ledger entries that joined them get the remote before-images."""
        into = res.remote_id or primary
        if not into:
            return
        merged_ids = [primary, *[str(x) for x in payload.get("merge_from") or ()]]
        gone = [r for r in refs if r.system == conn.name and r.native_type == native and r.remote_id in merged_ids]
        view: dict[str, Any] = {}
        assoc: dict[str, list[str]] = {}
        for r in sorted(gone, key=lambda r: r.remote_id != primary):  # the primary's values first
            for k, v in (r.canonical_fields or {}).items():
                if view.get(k) in (None, "", [], {}):
                    view[k] = v
            for k, v in (r.associations or {}).items():
                assoc[k] = sorted(set(assoc.get(k, [])) | set(v))
        result = next((r for r in gone if r.remote_id == into), None)
        for r in gone:
            if r is not result:
                r.deleted_at, r.merged_into = now, into
        if result is None:
            s.flush()  # the old rows' state first: (system, native, remote id) is unique
            s.add(st.ExternalRefRow(
                canonical_id=cid, system=conn.name, object_type=ot, native_type=native, remote_id=into,
                canonical_fields=view, associations=assoc, link_rule="merged", first_seen_at=now,
                last_seen_at=now,
            ))
        else:
            result.canonical_fields, result.associations, result.last_seen_hash = view, assoc, None
        record = {"system": conn.name, "native_type": native, "primary": primary,
                  "merged": merged_ids[1:], "into": into, "at": now.isoformat(),
                  "before": payload.get("before") or {}}
        for merge_id in payload.get("merge_ids") or ():
            entry = s.get(st.MergeLedgerRow, int(merge_id))
            if entry is not None:
                results = dict(entry.remote_results or {})
                results[conn.name] = [*results.get(conn.name, []), record]
                entry.remote_results = results  # a new object: JSON columns track assignment

    @staticmethod
    def _written_view(kind: str, native: str, fields: Mapping[str, Any], *, partial: bool = True,
                      fieldmaps: Mapping[tuple[str, str], Any] | None = None) -> dict[str, Any]:
        """The canonical values a write set. For an update, only fields whose native
        field was sent (it says nothing about the others, even where a transform reads
        an absent field as a value, e.g. an opt-out flag as false). For a create, the
        absent fields are what the system starts with, which the mapping reads the
        same way (an unset flag is false)."""
        from connectors.base import RemoteRecord
        from sync.pull import map_record

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

    # ------------------------------------------------------------------ queries

    def pending(self) -> dict[tuple[str, str], int]:
        with self.store.session() as s:
            return st.pending_counts(s)


def _union(claims: Sequence[Claim]) -> Decision:
    """An opportunity's contacts: every contact any linked record names (links are
    only ever added, never removed, so the union is the stable answer)."""
    ids = sorted({cid for c in claims for cid in (c.value or ())})
    systems = sorted({c.system for c in claims if c.value})
    distinct = {tuple(sorted(c.value)) for c in claims if c.value}
    return Decision("contact_ids", tuple(ids) or None, "union", system=",".join(systems) or None,
                    conflict=len(distinct) > 1)


def _json(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in fields.items()}


__all__ = ["Connection", "Engine", "PushStats", "ResolveStats", "to_entity"]
