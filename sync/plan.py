"""Plan: desired state per system vs. last known remote state → write ops.

The diff functions (``changed_fields``, ``native_diff``, ``check_caps``) are pure.
``Planner`` turns what reconcile decided for a batch into outbox rows, in the same
transaction: creates, updates (with associations and the revsync id stamp),
deletes under policy "propagate", and merges under policy "merge".

Diffs are made in canonical space (typed values: ``Decimal("1.0") == Decimal("1")``),
so a remote that formats a value differently is not "changed", and the echo of a
value we wrote is never a change. Only fields that really differ become native
fields of an update; blank canonical values are never written over remote values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from connectors import registry
from connectors.base import RecordError
from mapping.canonical import ObjectType, encode_value
from mapping.fieldmap import from_entity, get_field_map
from sync import store as st
from sync.connection import Connection
from sync.link import STAMP_FIELDS
from sync.reconcile import (
    ASSOC_FIELDS,
    ASSOC_OBJECTS,
    Decision,
    FieldPolicy,
    ReconciledBatch,
    ResolveStats,
    is_blank,
)
from sync.views import decoded, unreadable_fields

#: canonical fields whose native property must be unique within the system: with
#: several records of one entity in that system (duplicates kept under policy
#: "link"), only the record that already holds the value keeps it
#: (``Connector.unique_fields``, per (kind, native object))
UNIQUE_FIELDS = cast("Mapping[tuple[str, str], frozenset[str]]", registry.per_native("unique_fields"))
#: native fields sent along with a changed field even when unchanged themselves
#: (``Connector.write_with``: e.g. Salesforce resets Probability when StageName changes alone)
WRITE_WITH = cast("Mapping[tuple[str, str], Mapping[str, tuple[str, ...]]]", registry.per_native("write_with"))
#: associations each connector writes, per (kind, native object); unknown pairs: all
#: (``Connector.writable_associations``)
WRITABLE_ASSOCIATIONS = cast(
    "Mapping[tuple[str, str], frozenset[str]]", registry.per_native("writable_associations")
)



@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any
    rule: str | None = None

    def as_json(self) -> list[Any]:
        return [self.field, encode_value(self.old), encode_value(self.new), self.rule]


@dataclass(frozen=True)
class PlannedWrite:
    """One op for the outbox."""

    system: str
    object_type: str
    native_type: str
    kind: str  # create | update | delete | merge
    canonical_id: str
    remote_id: str | None
    fields: Mapping[str, Any]
    changes: tuple[FieldChange, ...] = ()
    associations: Mapping[str, list[str]] = field(default_factory=dict)
    # merge: the records merged into ``remote_id`` (the primary), the merge-ledger
    # entries that joined them, and their last-seen images (kept in the ledger)
    merge_from: tuple[str, ...] = ()
    merge_ids: tuple[int, ...] = ()
    before: Mapping[str, Any] = field(default_factory=dict)


def changed_fields(
    desired: Any,
    current: Any,
    candidates: Iterable[str],
    policy: FieldPolicy,
    system: str,
) -> list[str]:
    """Canonical fields whose desired value differs from what ``system`` holds."""
    out = []
    for f in candidates:
        if not policy.writes_to(system, f):
            continue
        new, old = getattr(desired, f, None), getattr(current, f, None)
        if is_blank(new):
            continue  # never blank a remote value
        if new != old:
            out.append(f)
    return out


def native_diff(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """Native fields of ``new`` whose value differs from ``old``."""
    return {k: v for k, v in new.items() if old.get(k) != v}


class PlanTooLarge(Exception):
    """A plan is over a blast-radius cap; nothing was written."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("; ".join(violations))
        self.violations = violations


def check_caps(counts: Mapping[str, int], caps: Mapping[str, int]) -> list[str]:
    """Cap violations for per-kind op counts, e.g. ``{"create": 12}`` vs ``{"create": 10}``."""
    return [
        f"{counts[k]} {k}s planned, over the cap of {caps[k]} (limits.max_{k}s; use --force to go ahead)"
        for k in sorted(counts)
        if k in caps and counts[k] > caps[k]
    ]


# ---------------------------------------------------------------------- the stage


def stamp_field_for(conn: Connection) -> str | None:
    """The native field ``conn``'s records carry the revsync id in (None: the
    connector has none we know of)."""
    configured = getattr(conn.connector, "external_id_field", None)  # Salesforce's option
    return str(configured) if configured else STAMP_FIELDS.get(conn.kind)


class Planner:
    """Plan the writes that bring every connection to what reconcile decided."""

    def __init__(
        self,
        connections: Mapping[str, Connection],
        policy: Callable[[str], FieldPolicy],
        *,
        now: Callable[[], datetime],
        run_id: int | None = None,
        fieldmaps: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self.connections, self.policy, self.now, self.run_id = connections, policy, now, run_id
        self.fieldmaps = fieldmaps
        # while a resolve batch runs: the outbox rows it plans, inserted together at its end
        self.outbox: list[dict[str, Any]] | None = None

    def _fm(self, kind: str, native: str) -> Any:
        return self.fieldmaps.get((kind, native)) if self.fieldmaps else None

    def create_in(self, object_type: str) -> tuple[str, ...]:
        p = self.policy(object_type)
        if p.create_in is not None:
            return p.create_in
        return tuple(n for n, c in self.connections.items() if registry.declares(c.kind, "creates_by_default"))

    def merge_in(self, object_type: str) -> tuple[str, ...]:
        """Connections whose merge API policy ``merge`` calls: ``merge_in``, else those
        whose connector declares ``merges_by_default`` (HubSpot; a Salesforce merge
        cannot be undone: it is opt-in)."""
        p = self.policy(object_type)
        if p.merge_in is not None:
            return p.merge_in
        return tuple(n for n, c in self.connections.items() if registry.declares(c.kind, "merges_by_default"))

    def plan_batch(self, s: Any, ot: str, batch: ReconciledBatch, targets: list[str],
                   stats: ResolveStats) -> None:
        """Plan one reconciled batch for the connections in ``targets``; this batch's
        plan replaces any older one still pending for its entities."""
        st.delete_pending_ops(s, ot, batch.ids, targets)
        for cid, live in batch.deleted:
            for r in live:
                if r.system in targets:
                    self._queue(s, PlannedWrite(r.system, ot, r.native_type, "delete", cid, r.remote_id, {}), stats)
        reach = self._reach_map(s, [self._desired_associations(ot, d) for d, _, _, _ in batch.to_plan], targets)
        for desired, entity_refs, decisions, entries in batch.to_plan:
            self._plan_entity(s, ot, desired, entity_refs, targets, decisions, stats, batch.translate, reach,
                              entries, batch.views)

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
            # a parent not there yet is still asked for where accounts are created (push
            # writes it once the parent exists there: parents are created first or in the
            # cycle after; see sync.push); a system that holds only some accounts (a CS
            # system holds customers) gets a parent only if the parent is there or being
            # created: it would otherwise wait for a record that never comes
            parent_waits = name in self.create_in(ot)
            reachable = {obj: kept for obj, cids in want_assoc.items()
                         if (kept := [c for c in cids if (obj == "parent" and parent_waits)
                                      or c in reach.get((name, obj), set())])}
            try:
                merge = (self._plan_merge(ot, conn, desired, in_system, merge_entries)
                         if merge_entries and name in self.merge_in(ot) else None)
                if merge is not None:
                    # the merged record gets a new id: its updates are planned next cycle
                    self._queue(s, merge, stats)
                    continue
                if in_system:
                    stamp_field = stamp_field_for(conn)
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
            target = ASSOC_OBJECTS.get(obj, obj)
            for (cid, sys_name) in st.remote_ids_for(s, target, sorted(wanted), registry.not_associable()):
                out.setdefault((sys_name, obj), set()).add(cid)
            for system in systems:
                out.setdefault((system, obj), set()).update(st.pending_create_ids(s, system, target, sorted(wanted)))
        return out

    @staticmethod
    def _desired_associations(ot: str, desired: Any) -> dict[str, list[str]]:
        """{"account": [canonical id], "contact": [...]}: resolved to remote ids at push time."""
        out: dict[str, list[str]] = {}
        if ot in ("contact", "opportunity") and desired.account_id:
            out["account"] = [desired.account_id]
        if ot == "opportunity" and desired.contact_ids:
            out["contact"] = sorted(desired.contact_ids)
        if ot == "account" and desired.parent_id:
            out["parent"] = [desired.parent_id]
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
            current = decoded(ot, ref.canonical_fields)
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
        if not policy.writes_to(conn.name, "parent_id"):
            assoc.pop("parent", None)
        elif self._removes_parent(ot, conn, ref, desired, have, decisions):
            assoc["parent"] = []  # the record's parent goes (see sync.hierarchy)
        if stamp:
            fields[stamp] = desired.id
        if not fields and not assoc:
            return None
        changes = tuple(FieldChange(f, getattr(current, f), getattr(desired, f), decisions[f].rule) for f in diff)
        return PlannedWrite(conn.name, ot, ref.native_type, "update", desired.id, ref.remote_id, fields, changes, assoc)

    def _removes_parent(self, ot: str, conn: Connection, ref: Any, desired: Any,
                        have: Mapping[str, set[str]], decisions: Mapping[str, Decision]) -> bool:
        """Whether this record's parent must be removed: a system removed the account's
        parent (rule ``…:removed``, see sync.hierarchy), this record still names one we
        know, and the connector can write it. Nothing else takes a parent away: not a
        refusal (it leaves every system as it is), not a system whose claims are not read."""
        if ot != "account" or desired.parent_id is not None or not have.get("parent"):
            return False
        d = decisions.get("parent_id")
        if d is None or not d.rule.endswith(":removed"):
            return False
        return bool(self._writable_assoc(conn.kind, ref.native_type, {"parent": ["?"]}))

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
        if self.outbox is not None:
            self.outbox.append(row)
        else:
            s.add(st.OutboxRow(**row))
        per = stats.planned.setdefault(op.system, {})
        per[op.kind] = per.get(op.kind, 0) + 1


def _json(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in fields.items()}
