"""Pull: read → map → link → upsert page → advance cursor, one transaction per page.

A crash loses at most the page in flight; re-reading it is harmless (records whose
content hash is unchanged are skipped, which is also how echoes of our own writes
are recognised). Every new remote record is linked to a canonical entity by a
deterministic key before a new entity is made (tier 1):

1. the revsync id the record carries (``Revsync_Id__c`` / ``revsync_id`` / Planhat
   ``externalId`` or ``sourceId``): the entity with that id, or the one it was merged
   into; an id the store does not know (a lost store, an old backup, a new database)
   is adopted: the entity is made under that id, so identity lives in the systems;
2. a cross-system id (e.g. Planhat ``sourceId`` holding the Salesforce Id);
3. contact: email match key (never a role address); account: registrable domain
   (never a free-mail domain); opportunity: same canonical account and same name.

The dedupe issue adds probabilistic matching behind ``LinkHook``.
"""

from __future__ import annotations

import gc
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from connectors.base import (
    Connector,
    Cursor,
    ErrorCategory,
    RecordError,
    RemoteRecord,
    ResyncRequired,
)
from mapping import normalize
from mapping.canonical import ObjectType, entity_to_json, new_id
from mapping.fieldmap import content_hash, read_entity
from sync import store as st

log = logging.getLogger(__name__)

#: fields our writes carry the canonical id in, per system kind
EXTERNAL_ID_FIELDS: dict[str, str] = {
    "salesforce": "Revsync_Id__c",
    "hubspot": "revsync_id",
    "planhat": "sourceId",
}
#: where a record may carry its revsync id, per system kind (the first UUID wins):
#: Planhat records revsync created carry it in ``sourceId``, records it linked (whose
#: ``sourceId`` may hold another system's id) in ``externalId``
REVSYNC_ID_FIELDS: dict[str, tuple[str, ...]] = {
    "salesforce": ("Revsync_Id__c",),
    "hubspot": ("revsync_id",),
    "planhat": ("externalId", "sourceId"),
}
#: the field plan writes the entity's id into when a linked record lacks it
STAMP_FIELDS: dict[str, str] = {"salesforce": "Revsync_Id__c", "hubspot": "revsync_id", "planhat": "externalId"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEFAULT_LOOKBACK = timedelta(seconds=60)
#: how far apart two systems' close dates may be for one opportunity (account + name
#: key) when their amounts agree; with another amount (or none) the close dates must be
#: the same day. One account's deals often share a name (a yearly renewal): tier 1 keys
#: only the unmistakable copies, tier 2's scorer weighs the doubtful ones.
OPP_CLOSE_WINDOW_DAYS = 120
#: cursor rows for delete checks are keyed "<native>#deletes"
DELETES_SUFFIX = "#deletes"


class LinkHook(Protocol):
    """Seam for probabilistic matching (dedupe): canonical id for a new record, or None."""

    def __call__(self, s: Any, object_type: ObjectType, view: Mapping[str, Any]) -> str | None: ...


@dataclass
class PullStats:
    pulled: int = 0  # records read
    changed: int = 0  # records new or changed (not echoes / unchanged)
    new_entities: int = 0
    links: int = 0  # new records linked to an existing entity by a key
    errors: int = 0
    deleted: int = 0
    bad_values: int = 0  # unreadable values newly entered in the ledger (category bad_value)
    link_rules: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth a line in the run report


@dataclass
class _Mapped:
    rec: RemoteRecord
    view: dict[str, Any]
    digest: str


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


def _view_hash(view: Mapping[str, Any], assoc: Mapping[str, Sequence[str]]) -> str:
    payload = dict(view)
    payload["__assoc__"] = {k: sorted(v) for k, v in sorted(assoc.items())}
    return content_hash(payload, payload.keys())


#: keys of a record's view (``ExternalRefRow.canonical_fields``) that are not fields:
#: canonical field → {"field": native field, "raw": safe text, "reason" / "note"}
UNREADABLE_KEY = "_unreadable"
CLEANED_KEY = "_cleaned"


def map_record(kind: str, rec: RemoteRecord, fieldmaps: Mapping[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    """The record's values in canonical form (JSON-compatible), each field read on its own.

    A value that cannot be read leaves its field empty and is listed under
    ``view["_unreadable"]`` (reconcile takes it as no claim from this record, plan never
    writes that field to this record); a value read after removing control characters
    is listed under ``view["_cleaned"]``. Both keys are absent when there is nothing to say.
    ``fieldmaps``: the field maps in force (defaults with revsync.toml's overrides)."""
    fm = fieldmaps.get((kind, rec.native_type)) if fieldmaps else None
    result = read_entity(kind, rec.native_type, rec.fields, fieldmap=fm)
    ent = result.entity
    view = entity_to_json(ent)
    view.pop("account_id", None)
    view.pop("contact_ids", None)
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


def _ext_value(fields: Mapping[str, Any], name: str) -> str:
    """The external-id field's value as text; "" when it is hostile text (NUL, control
    characters, a lone surrogate): no id of ours, and no database would take it."""
    text = str(fields.get(name) or "")
    return "" if normalize.safe_text(text, limit=len(text) + 1) != text else text


def _bad_by_native(view: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """native field → (raw, reason): one ledger entry per native field (``Website`` feeds
    both ``website`` and ``domain``)."""
    out: dict[str, tuple[str, str]] = {}
    for entry in unreadable_fields(view).values():
        out.setdefault(entry["field"], (entry["raw"], entry["reason"]))
    return out


class Puller:
    """Pulls one connection's objects into the store."""

    def __init__(
        self,
        store: st.Store,
        name: str,
        kind: str,
        connector: Connector,
        *,
        now: Callable[[], datetime],
        run_id: int | None,
        lookback: timedelta = DEFAULT_LOOKBACK,
        link_hook: LinkHook | None = None,
        external_id_field: str | None = None,
        fieldmaps: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self.store, self.name, self.kind, self.connector = store, name, kind, connector
        self.now, self.run_id, self.lookback, self.link_hook = now, run_id, lookback, link_hook
        self.ext_field = external_id_field or EXTERNAL_ID_FIELDS.get(kind, "")
        self.id_fields = (self.ext_field, *(f for f in REVSYNC_ID_FIELDS.get(kind, ()) if f != self.ext_field))
        self.fieldmaps = fieldmaps
        self._run_started: datetime | None = None

    def carried_id(self, rec: RemoteRecord) -> str | None:
        """The revsync id ``rec`` carries in one of its external-id fields, if any."""
        for f in self.id_fields:
            value = str(rec.fields.get(f) or "").strip().lower()
            if UUID_RE.match(value):
                return value
        return None

    def run_started(self, s: Any) -> datetime | None:
        """When this puller's run started (entities made since are this run's own)."""
        if self._run_started is None and self.run_id is not None:
            run = s.get(st.SyncRunRow, self.run_id)
            self._run_started = run.started_at if run is not None else None
        return self._run_started

    # ------------------------------------------------------------------ reading

    def pull(
        self,
        object_type: ObjectType,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        move_cursor: bool = True,
        on_page: Callable[[int], None] | None = None,
    ) -> PullStats:
        """Pull every native object of ``object_type`` from its cursor (or ``since``)."""
        stats = PullStats()
        for native in self.connector.objects.get(object_type, ()):
            cursor = None
            if since is not None:
                cursor = Cursor(since)
            else:
                with self.store.session() as s:
                    row = st.get_cursor(s, self.name, native)
                    if row is not None and row.modstamp is not None:
                        cursor = Cursor(row.modstamp - self.lookback, "")
            # A full read (no cursor yet) may come in id order, not modstamp order: its
            # cursor is set once the whole listing is in, so a crash half-way means
            # reading it again, never skipping records with older modstamps.
            full = cursor is None
            top: tuple[datetime, str] | None = None
            for page in self.connector.read_pages(object_type, since=cursor, native=native):
                recs = [r for r in page if until is None or r.modstamp is None or r.modstamp <= until]
                self._apply_page(object_type, native, recs, stats, move_cursor=move_cursor and not full)
                for r in page:
                    if r.modstamp is not None and (top is None or (r.modstamp, r.remote_id) > top):
                        top = (r.modstamp, r.remote_id)
                if on_page:
                    on_page(len(page))
            if full and move_cursor:
                with self.store.session() as s:
                    st.set_cursor(s, self.name, native, top[0] if top else None, top[1] if top else None,
                                  0, self.now())
        return stats

    def pull_deleted(self, object_type: ObjectType, *, full_listing: bool = False) -> PullStats:
        """Apply deletes and merges the connector reports (or, with ``full_listing``,
        treat every known remote id absent from a full id listing as deleted)."""
        stats = PullStats()
        for native in self.connector.objects.get(object_type, ()):
            if full_listing:
                live = set(self.connector.list_ids(object_type, native=native))
                gone = self._absent_ids(native, live)
                recs = [RemoteRecord(self.name, object_type, rid, None, {}, native_type=native, deleted=True)
                        for rid in gone]
            else:
                # Deletes have their own position: when this connection last asked for them.
                # The first sync asks for none (it reads everything live) and starts the clock.
                key = f"{native}{DELETES_SUFFIX}"
                checked_at = self.now()
                restart_at = checked_at
                with self.store.session() as s:
                    row = st.get_cursor(s, self.name, key)
                    since = row.modstamp if row is not None else None
                if since is None:
                    recs = []
                else:
                    try:
                        recs = list(self.connector.read_deleted(object_type, since=Cursor(since - self.lookback),
                                                                native=native))
                    except ResyncRequired as e:
                        recs = self._resync_deletes(object_type, native, e)
                        # the sweep covered everything up to checked_at: the next call
                        # starts exactly there (the look-back would reach before it)
                        restart_at = checked_at + self.lookback
                        stats.notes.append(
                            f"{self.name}/{native}: {e}; swept {len(recs)} delete(s) from a full id "
                            "listing instead and restarted the delete feed from now"
                        )
            if recs:
                self._apply_deletes(object_type, native, recs, stats)
            if not full_listing:
                with self.store.session() as s:
                    st.set_cursor(s, self.name, key, restart_at, None, len(recs), checked_at)
        return stats

    def _resync_deletes(self, object_type: ObjectType, native: str, why: ResyncRequired) -> list[RemoteRecord]:
        """The delete feed cannot answer from our position (e.g. Salesforce purged its
        delete log): read what the system still reports without a start (soft deletes
        and merges in its recycle bin), then diff a full id listing against the
        identity map for the rest. The caller then restarts the feed from now, so the
        next cycle is incremental again instead of repeating the same refusal."""
        log.warning("%s/%s: %s; sweeping deletes from a full listing", self.name, native, why)
        recs: dict[str, RemoteRecord] = {}
        try:
            for rec in self.connector.read_deleted(object_type, since=None, native=native):
                recs.setdefault(rec.remote_id, rec)
        except ResyncRequired:
            pass  # nothing but the id listing then
        live = set(self.connector.list_ids(object_type, native=native))
        for rid in self._absent_ids(native, live):
            recs.setdefault(rid, RemoteRecord(self.name, object_type, rid, None, {}, native_type=native,
                                              deleted=True))
        return list(recs.values())

    def _absent_ids(self, native: str, live: set[str]) -> list[str]:
        from sqlalchemy import select

        with self.store.session() as s:
            known = s.scalars(
                select(st.ExternalRefRow.remote_id).where(
                    st.ExternalRefRow.system == self.name,
                    st.ExternalRefRow.native_type == native,
                    st.ExternalRefRow.deleted_at.is_(None),
                )
            ).all()
        return sorted(set(known) - live)

    # ------------------------------------------------------------------ one page

    def _apply_page(
        self, object_type: ObjectType, native: str, page: Sequence[RemoteRecord], stats: PullStats,
        *, move_cursor: bool,
    ) -> None:
        with gc_paused():
            self._apply_page_now(object_type, native, page, stats, move_cursor=move_cursor)

    def _apply_page_now(
        self, object_type: ObjectType, native: str, page: Sequence[RemoteRecord], stats: PullStats,
        *, move_cursor: bool,
    ) -> None:
        now = self.now()
        mapped: list[_Mapped] = []
        bad: list[tuple[RemoteRecord, RecordError]] = []
        deleted: list[RemoteRecord] = []
        for rec in page:
            stats.pulled += 1
            if rec.deleted:
                deleted.append(rec)
                continue
            try:
                view = map_record(self.kind, rec, self.fieldmaps)
            except RecordError as e:
                bad.append((rec, e))
                continue
            except Exception as e:  # a mapping bug must cost one record, never the cycle
                log.exception("%s %s %s: cannot map", self.name, native, rec.remote_id)
                bad.append((rec, RecordError(f"cannot map the record: {type(e).__name__}: {e}",
                                             category=ErrorCategory.MAPPING)))
                continue
            mapped.append(_Mapped(rec, view, _view_hash(view, rec.associations)))
        last = max(
            ((r.modstamp, r.remote_id) for r in page if r.modstamp is not None), default=None
        )
        with self.store.session() as s:
            for rec, err in bad:
                stats.errors += 1
                st.record_error(
                    s, system=self.name, object_type=object_type.value, native_type=native,
                    remote_id=rec.remote_id, canonical_id=None, direction="read",
                    category=err.category.value,
                    message=normalize.safe_text(f"{native} {rec.remote_id}: {err}", limit=2000),
                    field=err.field, payload=_jsonable(rec.fields), now=now, run_id=self.run_id,
                )
            refs = self._upsert(s, object_type, native, mapped, stats, now)
            if mapped:
                opened, _ = st.sync_bad_values(
                    s, system=self.name, object_type=object_type.value, native_type=native,
                    found={m.rec.remote_id: _bad_by_native(m.view) for m in mapped},
                    canonical_ids={rid: ref.canonical_id for rid, ref in refs.items()},
                    now=now, run_id=self.run_id)
                stats.bad_values += opened
                stats.errors += opened
            if deleted:
                self._apply_deletes_in(s, object_type, native, deleted, stats, now)
            st.resolve_errors(s, system=self.name, object_type=object_type.value, direction="read",
                              remote_ids=[m.rec.remote_id for m in mapped])
            if move_cursor:
                st.set_cursor(s, self.name, native, last[0] if last else None,
                              last[1] if last else None, len(page), now)

    def _upsert(
        self, s: Any, object_type: ObjectType, native: str, mapped: list[_Mapped], stats: PullStats,
        now: datetime,
    ) -> dict[str, Any]:
        """Store the page's records; returns remote id → its ``ExternalRefRow``."""
        if not mapped:
            return {}
        existing = st.refs_by_remote_id(s, self.name, native, [m.rec.remote_id for m in mapped])
        # ops we sent but never recorded (a crash between the API call and our commit):
        # reading their result back is our own echo, not somebody's edit
        unrecorded = st.pending_payloads_for_remote(
            s, self.name, native, [m.rec.remote_id for m in mapped if m.rec.remote_id in existing]
        )
        dirty: list[str] = []
        fresh = [m for m in mapped if m.rec.remote_id not in existing]
        linker = _Linker(self, s, object_type, fresh, now) if fresh else None
        for m in mapped:
            ref = existing.get(m.rec.remote_id)
            if ref is not None:
                ref.last_seen_at = now
                if ref.last_seen_hash == m.digest and ref.deleted_at is None:
                    # Unchanged, or the echo of our own write. The modstamp is left as it
                    # was: our own write must not make this record "the latest" edit.
                    continue
                if m.rec.modstamp is not None and not self._is_unrecorded_echo(
                        native, m, unrecorded.get(m.rec.remote_id, ())):
                    ref.remote_modstamp = m.rec.modstamp
                ref.canonical_fields = m.view
                ref.associations = {k: list(v) for k, v in m.rec.associations.items()}
                ref.last_seen_hash = m.digest
                ref.deleted_at = None
                ref.revsync_id = self.carried_id(m.rec)
                dirty.append(ref.canonical_id)
                stats.changed += 1
                continue
            assert linker is not None
            cid, rule = linker.link(m)
            stats.changed += 1
            stats.link_rules[rule] = stats.link_rules.get(rule, 0) + 1
            if rule in ("new", "adopted"):
                stats.new_entities += 1
            else:
                stats.links += 1
            ref = st.ExternalRefRow(
                canonical_id=cid, system=self.name, object_type=object_type.value, native_type=native,
                remote_id=m.rec.remote_id, remote_modstamp=m.rec.modstamp, last_seen_hash=m.digest,
                canonical_fields=m.view, associations={k: list(v) for k, v in m.rec.associations.items()},
                link_rule=rule, first_seen_at=now, last_seen_at=now, revsync_id=self.carried_id(m.rec),
            )
            s.add(ref)
            existing[m.rec.remote_id] = ref
            dirty.append(cid)
        s.flush()
        st.mark_dirty(s, object_type.value, dirty)
        return dict(existing)

    def _is_unrecorded_echo(self, native: str, m: _Mapped, payloads: Sequence[Mapping[str, Any]]) -> bool:
        from sync.engine import Engine

        for payload in payloads:
            written = Engine._written_view(self.kind, native, payload.get("fields") or {},
                                           fieldmaps=self.fieldmaps)
            if written and all(m.view.get(k) == v for k, v in written.items()):
                return True
        return False

    # ------------------------------------------------------------------ deletes

    def _apply_deletes(self, object_type: ObjectType, native: str, recs: Sequence[RemoteRecord],
                       stats: PullStats) -> None:
        with self.store.session() as s:
            self._apply_deletes_in(s, object_type, native, recs, stats, self.now())

    def _apply_deletes_in(self, s: Any, object_type: ObjectType, native: str,
                          recs: Sequence[RemoteRecord], stats: PullStats, now: datetime) -> None:
        refs = st.refs_by_remote_id(s, self.name, native, [r.remote_id for r in recs])
        dirty: list[str] = []
        for rec in recs:
            ref = refs.get(rec.remote_id)
            if ref is None or ref.deleted_at is not None:
                continue
            ref.deleted_at = now
            ref.merged_into = rec.merged_into
            stats.deleted += 1
            dirty.append(ref.canonical_id)
        st.mark_dirty(s, object_type.value, dirty)


class _Linker:
    """Tier-1 deterministic linking for the new records of one page."""

    def __init__(self, p: Puller, s: Any, object_type: ObjectType, fresh: list[_Mapped], now: datetime) -> None:
        self.p, self.s, self.object_type, self.now = p, s, object_type, now
        ot = object_type.value
        carried = [c for m in fresh if (c := p.carried_id(m.rec))]
        # carried id → the live entity holding it (itself, or the one it was merged into)
        self.explicit = st.resolve_entity_ids(s, ot, carried)
        ext_values = [_ext_value(m.rec.fields, p.ext_field) for m in fresh]
        self.xref = st.refs_for_remote_ids_any_system(s, ot, [v for v in ext_values if v and not UUID_RE.match(v)])
        self.email: dict[str, str] = {}
        self.domain: dict[str, str] = {}
        self.opps: dict[str, list[dict[str, Any]]] = {}
        self.account_of: dict[tuple[str, str], str] = {}
        self.anchored: set[str] = set()  # entities of this page a record carries the id of
        if object_type is ObjectType.CONTACT:
            self.email = st.contacts_by_email_key(s, [k for m in fresh if (k := _email_key(m.view))])
        elif object_type is ObjectType.ACCOUNT:
            self.domain = st.accounts_by_domain(s, [d for m in fresh if (d := _account_domain(m.view))])
        elif object_type is ObjectType.OPPORTUNITY:
            acc_rids = [rid for m in fresh for rid in m.rec.associations.get("account", ())]
            self.account_of = st.refs_for_remote_ids_any_system(s, "account", acc_rids)
            self.opps = st.opportunities_by_account(s, list(self.account_of.values()))

    def link(self, m: _Mapped) -> tuple[str, str]:
        p = self.p
        carried = p.carried_id(m.rec)
        if carried:
            known = self.explicit.get(carried)
            if known:
                return known, "external_id"
            return self._adopt(m, carried)
        ext = _ext_value(m.rec.fields, p.ext_field)
        if ext and not UUID_RE.match(ext):
            for (system, rid), cid in self.xref.items():
                if rid == ext and system != p.name:
                    return cid, "xref"
        if p.link_hook is not None:
            hooked = p.link_hook(self.s, self.object_type, m.view)
            if hooked:
                return hooked, "match"
        found = self._by_key(m)
        if found is not None:
            return found
        return self._new(m), "new"

    def _adopt(self, m: _Mapped, carried: str) -> tuple[str, str]:
        """A record carrying a revsync id the store does not know (a lost store, an old
        backup, a new database): its entity is made under that id. If a record without
        an id was linked by a key to an entity made in this run that no record carries
        the id of, that entity takes the carried id (the order records are read in must
        not decide identity)."""
        found = self._by_key(m, claim=False)
        if found is not None and self._renamable(found[0]):
            old = found[0]
            st.rename_entity(self.s, self.object_type.value, old, carried)
            self._renamed(old, carried)
            self.explicit[carried] = carried
            self.anchored.add(carried)
            if self.object_type is ObjectType.OPPORTUNITY:
                self._by_key(m)  # count this system among the opportunity's
            return carried, "external_id"
        self._new(m, carried)
        self.explicit[carried] = carried
        self.anchored.add(carried)
        return carried, "adopted"

    def _renamable(self, cid: str) -> bool:
        if cid in self.anchored:
            return False
        started = self.p.run_started(self.s)
        return started is not None and st.entity_is_unanchored_since(self.s, self.object_type.value, cid, started)

    def _renamed(self, old: str, new: str) -> None:
        for index in (self.email, self.domain):
            for k, v in list(index.items()):
                if v == old:
                    index[k] = new
        for k2, v2 in list(self.account_of.items()):
            if v2 == old:
                self.account_of[k2] = new
        for cands in self.opps.values():
            for cand in cands:
                if cand["id"] == old:
                    cand["id"] = new

    def _by_key(self, m: _Mapped, *, claim: bool = True) -> tuple[str, str] | None:
        """The entity a deterministic key names, with the key's rule, or None.
        ``claim``: an opportunity counts this system among its records."""
        p, ot = self.p, self.object_type
        if ot is ObjectType.CONTACT:
            key = _email_key(m.view)
            if key and key in self.email:
                return self.email[key], "email"
            return None
        if ot is ObjectType.ACCOUNT:
            dom = _account_domain(m.view)
            if dom and dom in self.domain:
                return self.domain[dom], "domain"
            return None
        # opportunity: same canonical account and same name, from another system (two
        # records of one system sharing a name are usually distinct deals), the same
        # close date, or the same amount and close dates within OPP_CLOSE_WINDOW_DAYS
        # (or either date blank); the nearest close date and amount win
        name_key = _name_key(m.view.get("name"))
        account_cid = self._account_cid(m)
        close = _as_date(m.view.get("close_date"))
        amount = _as_decimal(m.view.get("amount"))
        if account_cid and name_key:
            best = None
            for cand in self.opps.get(account_cid, []):
                if _name_key(cand["name"]) != name_key or p.name in cand["systems"]:
                    continue
                same_amount = amount is not None and cand["amount"] is not None and amount == cand["amount"]
                days = abs((close - cand["close_date"]).days) if close and cand["close_date"] else 0
                if days > (OPP_CLOSE_WINDOW_DAYS if same_amount else 0) or (
                        not same_amount and not (close and cand["close_date"])):
                    continue  # doubtful: tier 2's scorer decides
                gap = abs(amount - cand["amount"]) / max(abs(amount), 1) if amount is not None and \
                    cand["amount"] is not None else Decimal(0)
                score = (days, gap)
                if best is None or score < best[0]:
                    best = (score, cand)
            if best is not None:
                if claim:
                    best[1]["systems"].add(p.name)
                return best[1]["id"], "account_name"
        return None

    def _account_cid(self, m: _Mapped) -> str | None:
        return next(
            (self.account_of[(self.p.name, rid)] for rid in m.rec.associations.get("account", ())
             if (self.p.name, rid) in self.account_of),
            None,
        )

    def _new(self, m: _Mapped, cid: str | None = None) -> str:
        """A new entity for ``m`` (under ``cid``, or a fresh id), findable by its keys."""
        ot = self.object_type
        cid = cid or new_id()
        if ot is ObjectType.CONTACT:
            key = _email_key(m.view)
            st.add_entity(self.s, ot.value, cid, self.now, email=m.view.get("email"), email_key=key)
            if key:
                self.email.setdefault(key, cid)
            return cid
        if ot is ObjectType.ACCOUNT:
            dom = _account_domain(m.view)
            st.add_entity(self.s, ot.value, cid, self.now, name=m.view.get("name"), domain=dom)
            if dom:
                self.domain.setdefault(dom, cid)
            return cid
        account_cid = self._account_cid(m)
        close = _as_date(m.view.get("close_date"))
        amount = _as_decimal(m.view.get("amount"))
        st.add_entity(self.s, ot.value, cid, self.now, name=m.view.get("name"), account_id=account_cid,
                      close_date=close, amount=amount)
        if account_cid:
            self.opps.setdefault(account_cid, []).append(
                {"id": cid, "name": m.view.get("name"), "close_date": close, "amount": amount,
                 "systems": {self.p.name}})
        return cid


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def _email_key(view: Mapping[str, Any]) -> str | None:
    email = view.get("email")
    if not email or normalize.is_role_address(email):
        return None
    return normalize.email_match_key(email)


def _account_domain(view: Mapping[str, Any]) -> str | None:
    dom = view.get("domain")
    if not dom and view.get("website"):
        try:
            dom = normalize.domain_from_url(view["website"])
        except RecordError:
            dom = None
    if not dom or normalize.is_free_mail_domain(dom):
        return None
    return str(dom)


def _name_key(name: Any) -> str | None:
    if not name:
        return None
    return " ".join(re.sub(r"[^\w]+", " ", str(name).casefold()).split()) or None


def _jsonable(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The raw fields as JSON any store takes: text with NUL, control characters or lone
    surrogates escaped (PostgreSQL refuses them in JSON), other values as text."""
    import json

    def safe(value: Any) -> Any:
        if isinstance(value, str):
            return normalize.safe_text(value, limit=10_000)
        if isinstance(value, Mapping):
            return {safe(str(k)): safe(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [safe(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)  # NaN and infinities are not JSON
        if value is None or isinstance(value, bool | int | float):
            return value
        return safe(str(value))

    return dict(json.loads(json.dumps(safe(dict(fields)))))


def uniq(items: Iterable[str]) -> list[str]:
    return sorted(set(items))
