"""Push: outbox → batched writes → write results → identity map / error ledger.

``Pusher.push`` drains the outbox in the largest batches each connector allows.
Results update the identity map (remote ids of created records, last written
state, merges that went through) and failures go to the error ledger, with
retries scheduled. An error that stops a connection (auth, quota, outage)
defers the rest of its batch with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors import registry
from connectors.base import (
    AuthError,
    FatalError,
    OpKind,
    QuotaExhausted,
    RetriableError,
    WriteOp,
    WriteResult,
)
from mapping.canonical import ObjectType
from sync import store as st
from sync.connection import Connection
from sync.plan import stamp_field_for
from sync.reconcile import ASSOC_OBJECTS
from sync.views import after_update, gc_paused, view_hash, written_view

log = logging.getLogger(__name__)

PUSH_CHUNK = 2000


@dataclass
class PushStats:
    written: dict[str, int] = field(default_factory=dict)  # system → ops succeeded
    failed: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # system → why it stopped
    stopped_by: dict[str, Exception] = field(default_factory=dict)  # system → the error itself



class Pusher:
    """Write the outbox to the connections."""

    def __init__(
        self,
        store: st.Store,
        connections: Mapping[str, Connection],
        *,
        now: Callable[[], datetime],
        run_id: int | None = None,
        fieldmaps: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self.store, self.connections, self.now, self.run_id = store, connections, now, run_id
        self.fieldmaps = fieldmaps

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
                # parents before children: an account whose parent is written in this
                # batch goes in a later call, once the parent's id there is known
                groups = [(key, wave) for key, items in sorted(by_native.items())
                          for wave in (parent_waves(items) if ot == "account" else [items])]
                for (_merges, native), items in groups:
                    if len(groups) > len(by_native):
                        remote = self._remote_associations(name, items)
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
                target = ASSOC_OBJECTS.get(obj, obj)
                for (cid, sys_name), rids in st.remote_ids_for(s, target, sorted(cids),
                                                               registry.not_associable()).items():
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
            if rids or (obj == "parent" and not cids):  # an empty parent: remove it
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
            rids = [r.remote_id for r in results if r.remote_id]
            cids = sorted({it[3] for it in items})
            merges = any(it[1] == "merge" for it in items)
            # merges (rare, one call of their own) change several records: ORM objects;
            # everything else is read as plain rows and written set-based below
            if merges:
                existing: dict[str, Any] = st.refs_by_remote_id(s, conn.name, native, rids)
                by_cid: dict[str, list[Any]] = st.refs_for_entities(s, ot, cids)
            else:
                existing = st.ref_rows_by_remote_id(s, conn.name, native, rids)
                by_cid = st.ref_rows_for_entities(s, ot, cids)
            outbox = st.outbox_rows(s, [it[0] for it in items])
            ok_cids: list[str] = []
            created_cids: list[str] = []
            done: list[int] = []  # outbox rows of the ops that went through: deleted in one go
            new_refs: dict[str, dict[str, Any]] = {}  # remote id → the ref row to insert
            changed: dict[int, dict[str, Any]] = {}  # ref id → its new column values
            stamp = stamp_field_for(conn)
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
                done.append(oid)
                if kind == "delete":
                    ref = next((r for r in by_cid.get(cid, []) if r.remote_id == remote_id), None)
                    if ref is not None:
                        changed.setdefault(ref.id, {})["deleted_at"] = now
                    continue
                if kind == "merge":
                    self._merged(s, conn, ot, native, cid, remote_id, payload, res, by_cid.get(cid, []), now)
                    created_cids.append(cid)  # re-decide against the merged record next cycle
                    continue
                rid = res.remote_id or remote_id
                if not rid:
                    continue
                written = written_view(conn.kind, native, payload.get("fields") or {},
                                       partial=kind != "create", fieldmaps=self.fieldmaps)
                assoc = {k: list(v) for k, v in sent.items()}
                if kind == "create":
                    # the new record's own values (system defaults included) become claims:
                    # re-decide the entity next time, as a re-run after a crash would
                    created_cids.append(cid)
                ref = existing.get(rid) or next(
                    (r for r in by_cid.get(cid, []) if r.system == conn.name and r.remote_id == rid), None
                )
                if ref is None and rid not in new_refs:
                    values: dict[str, Any] = {
                        "canonical_id": cid, "system": conn.name, "object_type": ot, "native_type": native,
                        "remote_id": rid, "canonical_fields": written, "associations": assoc,
                        "link_rule": "created", "first_seen_at": now, "last_seen_at": now,
                        "remote_modstamp": None, "deleted_at": None, "merged_into": None,
                        "revsync_id": None, "last_written_hash": None, "last_seen_hash": None, "raw_hash": None,
                    }
                    new_refs[rid] = values
                else:
                    if ref is None:
                        values = new_refs[rid]
                    else:
                        values = changed.setdefault(ref.id, {})
                        values.setdefault("canonical_fields", ref.canonical_fields)
                        values.setdefault("associations", ref.associations)
                    values["canonical_fields"] = after_update(values["canonical_fields"] or {}, written)
                    # association writes only add links, so the record now has the union
                    merged = {k: list(v) for k, v in (values["associations"] or {}).items()}
                    for k, v in assoc.items():
                        # an account has one parent: writing one replaces the last
                        merged[k] = list(v) if k == "parent" else sorted(set(merged.get(k, [])) | set(v))
                    values["associations"] = merged
                digest = view_hash(values["canonical_fields"] or {}, values["associations"] or {})
                values["last_written_hash"] = values["last_seen_hash"] = digest
                values["raw_hash"] = None  # the view is now what we wrote: the next read is mapped
                if kind == "create" or (stamp and (payload.get("fields") or {}).get(stamp) == cid):
                    values["revsync_id"] = cid
            if merges:
                for ref_id, values in changed.items():  # a delete in a merge call: on the ORM object
                    obj = s.get(st.ExternalRefRow, ref_id)
                    if obj is not None:
                        for k, v in values.items():
                            setattr(obj, k, v)
                changed = {}
            # before the flush: an entity's earlier errors are resolved by an op of it
            # that went through, never the failure of another of its records just
            # entered above (still unflushed: it keeps its retry)
            st.resolve_errors(s, system=conn.name, object_type=ot, direction="write", canonical_ids=ok_cids)
            s.flush()  # the ledger rows and waiting ops above, before the set-based writes
            st.write_ref_rows(s, list(new_refs.values()), [{"id": i, **v} for i, v in changed.items()])
            st.delete_outbox_rows(s, done)
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
            result.raw_hash = None
        record = {"system": conn.name, "native_type": native, "primary": primary,
                  "merged": merged_ids[1:], "into": into, "at": now.isoformat(),
                  "before": payload.get("before") or {}}
        for merge_id in payload.get("merge_ids") or ():
            entry = s.get(st.MergeLedgerRow, int(merge_id))
            if entry is not None:
                results = dict(entry.remote_results or {})
                results[conn.name] = [*results.get(conn.name, []), record]
                entry.remote_results = results  # a new object: JSON columns track assignment


def parent_waves(items: list[Any]) -> list[list[Any]]:
    """Outbox items (accounts) in waves: an item whose parent is another item of the
    list comes in a wave after the parent's (a cycle, refused upstream, stays in one)."""
    parent_of = {it[3]: ((it[5].get("associations") or {}).get("parent") or [None])[0] for it in items}
    depth: dict[str, int] = {}

    def level(cid: str) -> int:
        seen: list[str] = []
        cur: str | None = cid
        while cur is not None and cur in parent_of and cur not in depth and cur not in seen:
            seen.append(cur)
            cur = parent_of[cur]
        base = depth.get(cur, -1) if cur is not None and cur in depth else -1
        for c in reversed(seen):
            base += 1
            depth[c] = base
        return depth[cid]

    waves: dict[int, list[Any]] = {}
    for it in items:
        waves.setdefault(level(it[3]), []).append(it)
    return [waves[k] for k in sorted(waves)]
