"""Pull: read → map → link → upsert page → advance cursor, one transaction per page.

A crash loses at most the page in flight; re-reading it is harmless (records whose
content hash is unchanged are skipped, which is also how echoes of our own writes
are recognised). Every new remote record is linked to a canonical entity by
``sync.link`` (tier 1, then the ``LinkHook`` of tier 2) before a new entity is made.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.base import (
    Connector,
    Cursor,
    ErrorCategory,
    RecordError,
    RemoteRecord,
    ResyncRequired,
)
from mapping import normalize
from mapping.canonical import ObjectType
from mapping.fieldmap import compile_reader
from sync import hierarchy
from sync import store as st
from sync.link import EXTERNAL_ID_FIELDS as EXTERNAL_ID_FIELDS
from sync.link import REVSYNC_ID_FIELDS, UUID_RE, Linker
from sync.link import LinkHook as LinkHook
from sync.prefetch import DEFAULT_DEPTH, prefetched
from sync.views import Mapped, gc_paused, unreadable_fields, view_hash, written_view
from sync.views import map_record as map_record

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK = timedelta(seconds=60)
#: cursor rows for delete checks are keyed "<native>#deletes"
DELETES_SUFFIX = "#deletes"


@dataclass
class PullStats:
    pulled: int = 0  # records read
    changed: int = 0  # records new or changed (not echoes / unchanged)
    mapped: int = 0  # records mapped (the others were skipped before mapping: raw hash unchanged)
    new_entities: int = 0
    links: int = 0  # new records linked to an existing entity by a key
    errors: int = 0
    deleted: int = 0
    bad_values: int = 0  # unreadable values newly entered in the ledger (category bad_value)
    link_rules: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth a line in the run report


#: bump when a change to the mapping code (normalisers, transforms) changes what an
#: unchanged record maps to: every stored raw hash then differs once, and each record
#: is mapped again on its next read
RAW_HASH_VERSION = "1"


def raw_digest(rec: RemoteRecord, salt: str) -> str:
    """Hash of a record as read, before mapping: its raw fields, associations and
    modstamp, salted with the field map in force (``salt``). Equal digests mean the
    record would map to what the store already holds."""
    payload = (rec.modstamp.isoformat() if rec.modstamp else None, rec.fields,
               {k: sorted(map(str, v)) for k, v in rec.associations.items()})
    text = salt + json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


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
        read_ahead: int = DEFAULT_DEPTH,
        write_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.store, self.name, self.kind, self.connector = store, name, kind, connector
        # held around every transaction that writes (pages, cursors, deletes) when pulls
        # of several connections run side by side in one process (``Runner``): SQLite has
        # one writer, and tier-1 linking must see the pages stored before (as in order)
        self.write_lock: AbstractContextManager[Any] = write_lock if write_lock is not None else nullcontext()
        # pages fetched (in a thread of their own) while the current one is stored; 0: none
        self.read_ahead = read_ahead
        self.now, self.run_id, self.lookback, self.link_hook = now, run_id, lookback, link_hook
        self.ext_field = external_id_field or EXTERNAL_ID_FIELDS.get(kind, "")
        self.id_fields = (self.ext_field, *(f for f in REVSYNC_ID_FIELDS.get(kind, ()) if f != self.ext_field))
        self.fieldmaps = fieldmaps
        self._run_started: datetime | None = None
        self._salts: dict[str, str] = {}

    def raw_salt(self, native: str) -> str:
        """What besides the raw record decides its mapping: the field map in force for
        ``native`` (defaults with revsync.toml's overrides) and ``RAW_HASH_VERSION``."""
        salt = self._salts.get(native)
        if salt is None:
            fm = self.fieldmaps.get((self.kind, native)) if self.fieldmaps else None
            salt = self._salts[native] = f"{RAW_HASH_VERSION}|{self.kind}|{native}|{fm!r}|"
        return salt

    @contextmanager
    def _write_session(self) -> Iterator[Any]:
        """A store session that writes, under ``write_lock``."""
        with self.write_lock, self.store.session() as s:
            yield s

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
            read_at = self.now()
            if since is not None:
                cursor = Cursor(since)
            else:
                with self.store.session() as s:
                    row = st.get_cursor(s, self.name, native)
                    if row is not None and row.modstamp is not None:
                        cursor = Cursor(self.read_start(row.modstamp, row.read_at), "")
            # A full read (no cursor yet) may come in id order, not modstamp order: its
            # cursor is set once the whole listing is in, so a crash half-way means
            # reading it again, never skipping records with older modstamps.
            full = cursor is None
            top: tuple[datetime, str] | None = None
            pages = self.connector.read_pages(object_type, since=cursor, native=native)
            # closed on the way out, error or not: the reader thread stops and is joined
            # before anything else may use the connector
            with closing(prefetched(pages, self.read_ahead, name=f"revsync-read-{self.name}")) as ahead:
                for page in ahead:
                    recs = [r for r in page if until is None or r.modstamp is None or r.modstamp <= until]
                    self._apply_page(object_type, native, recs, stats, move_cursor=move_cursor and not full,
                                     read_at=read_at if since is None else None)
                    for r in page:
                        if r.modstamp is not None and (top is None or (r.modstamp, r.remote_id) > top):
                            top = (r.modstamp, r.remote_id)
                    if on_page:
                        on_page(len(page))
            if full and move_cursor:
                with self._write_session() as s:
                    st.set_cursor(s, self.name, native, top[0] if top else None, top[1] if top else None,
                                  0, self.now(), read_at=read_at)
            elif move_cursor and since is None and until is None:
                with self._write_session() as s:
                    st.confirm_cursor_read(s, self.name, native, read_at)
        return stats

    def read_start(self, modstamp: datetime, read_at: datetime | None) -> datetime:
        """Where an incremental read starts (inclusive), given the stored position.

        The look-back exists for late-committing transactions: a record may become
        visible some time after its modstamp, so a read at time R can only vouch for
        the records stamped before R - look-back. Everything stamped before
        min(position, last read's start - look-back) has therefore been seen, and the
        next read starts there: right after a burst (ours or anyone's) it re-reads the
        look-back window, as before; once a read has started a look-back after the
        newest modstamp, it starts at that modstamp (inclusive: records sharing it are
        read again, and skipped before mapping by their raw hash). Without a recorded
        read time (a store from before this column) it is position - look-back."""
        if read_at is None:
            return modstamp - self.lookback
        return min(modstamp, read_at - self.lookback)

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
                with self._write_session() as s:
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
        *, move_cursor: bool, read_at: datetime | None = None,
    ) -> None:
        with gc_paused():
            self._apply_page_now(object_type, native, page, stats, move_cursor=move_cursor, read_at=read_at)

    def _apply_page_now(
        self, object_type: ObjectType, native: str, page: Sequence[RemoteRecord], stats: PullStats,
        *, move_cursor: bool, read_at: datetime | None = None,
    ) -> None:
        now = self.now()
        mapped: list[Mapped] = []
        bad: list[tuple[RemoteRecord, RecordError]] = []
        deleted: list[RemoteRecord] = []
        salt = self.raw_salt(native)
        fm = self.fieldmaps.get((self.kind, native)) if self.fieldmaps else None
        reader = compile_reader(self.kind, native, fieldmap=fm)
        raws = {rec.remote_id: raw_digest(rec, salt) for rec in page if not rec.deleted}
        with self.store.session() as s:
            known = st.raw_hashes(s, self.name, native, list(raws))
        # unchanged since the last read (same raw fields, associations, modstamp and
        # field map): nothing to map, nothing to store but when it was last seen
        unchanged = {rid for rid, digest in raws.items() if rid in known and known[rid][1] == digest}
        for rec in page:
            stats.pulled += 1
            if rec.deleted:
                deleted.append(rec)
                continue
            if rec.remote_id in unchanged:
                continue
            stats.mapped += 1
            try:
                view = map_record(self.kind, rec, self.fieldmaps,
                                  reader=reader if rec.native_type == native else None)
            except RecordError as e:
                bad.append((rec, e))
                continue
            except Exception as e:  # a mapping bug must cost one record, never the cycle
                log.exception("%s %s %s: cannot map", self.name, native, rec.remote_id)
                bad.append((rec, RecordError(f"cannot map the record: {type(e).__name__}: {e}",
                                             category=ErrorCategory.MAPPING)))
                continue
            mapped.append(Mapped(rec, view, view_hash(view, rec.associations), raws.get(rec.remote_id)))
        last = max(
            ((r.modstamp, r.remote_id) for r in page if r.modstamp is not None), default=None
        )
        with self._write_session() as s:
            if unchanged:
                st.touch_refs(s, [known[rid][0] for rid in unchanged], now)
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
                              last[1] if last else None, len(page), now, read_at=read_at)

    def _upsert(
        self, s: Any, object_type: ObjectType, native: str, mapped: list[Mapped], stats: PullStats,
        now: datetime,
    ) -> dict[str, Any]:
        """Store the page's records; returns remote id → its ``ExternalRefRow``."""
        if not mapped:
            return {}
        # known records as plain rows, changed with one executemany per set of columns;
        # new ones are ORM objects (the linker may rename an entity made this page)
        existing: dict[str, Any] = st.ref_rows_by_remote_id(s, self.name, native,
                                                            [m.rec.remote_id for m in mapped])
        # ops we sent but never recorded (a crash between the API call and our commit):
        # reading their result back is our own echo, not somebody's edit
        unrecorded = st.pending_payloads_for_remote(
            s, self.name, native, [m.rec.remote_id for m in mapped if m.rec.remote_id in existing]
        )
        dirty: list[str] = []
        updates: dict[int, dict[str, Any]] = {}  # ref id → its new column values
        fresh = [m for m in mapped if m.rec.remote_id not in existing]
        linker = Linker(self, s, object_type, fresh, now) if fresh else None
        adopted = False
        for m in mapped:
            ref = existing.get(m.rec.remote_id)
            if ref is not None and not isinstance(ref, st.ExternalRefRow):
                upd = updates.setdefault(ref.id, {"id": ref.id})
                upd["last_seen_at"] = now
                if m.raw is not None and upd.get("raw_hash", ref.raw_hash) != m.raw:
                    upd["raw_hash"] = m.raw
                if upd.get("last_seen_hash", ref.last_seen_hash) == m.digest \
                        and upd.get("deleted_at", ref.deleted_at) is None:
                    # Unchanged, or the echo of our own write. The modstamp is left as it
                    # was: our own write must not make this record "the latest" edit.
                    continue
                if m.rec.modstamp is not None and not self._is_unrecorded_echo(
                        native, m, unrecorded.get(m.rec.remote_id, ())):
                    upd["remote_modstamp"] = m.rec.modstamp
                upd.update(canonical_fields=m.view, last_seen_hash=m.digest, deleted_at=None,
                           associations=hierarchy.with_removal(
                               upd.get("associations", ref.associations),
                               {k: list(v) for k, v in m.rec.associations.items()}),
                           revsync_id=self.carried_id(m.rec))
                dirty.append(ref.canonical_id)
                stats.changed += 1
                continue
            if ref is not None:  # a record new in this page, read twice in it
                ref.last_seen_at = now
                if m.raw is not None and ref.raw_hash != m.raw:
                    ref.raw_hash = m.raw
                if ref.last_seen_hash == m.digest and ref.deleted_at is None:
                    continue
                if m.rec.modstamp is not None:
                    ref.remote_modstamp = m.rec.modstamp
                ref.canonical_fields = m.view
                ref.associations = hierarchy.with_removal(ref.associations,
                                                          {k: list(v) for k, v in m.rec.associations.items()})
                ref.last_seen_hash = m.digest
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
            adopted = adopted or rule == "adopted"
            if rule not in ("new", "adopted"):
                stats.links += 1
            ref = st.ExternalRefRow(
                canonical_id=cid, system=self.name, object_type=object_type.value, native_type=native,
                remote_id=m.rec.remote_id, remote_modstamp=m.rec.modstamp, last_seen_hash=m.digest,
                canonical_fields=m.view,
                associations=hierarchy.with_removal(None, {k: list(v) for k, v in m.rec.associations.items()}),
                link_rule=rule, first_seen_at=now, last_seen_at=now, revsync_id=self.carried_id(m.rec),
                raw_hash=m.raw,
            )
            s.add(ref)
            existing[m.rec.remote_id] = ref
            dirty.append(cid)
        s.flush()
        st.write_ref_rows(s, [], list(updates.values()))
        if adopted:
            # an entity made earlier was renamed to the id its record carries: the rows
            # read before say the old id
            before = {rid: v.canonical_id for rid, v in existing.items() if not isinstance(v, st.ExternalRefRow)}
            renamed = st.ref_rows_by_remote_id(s, self.name, native, list(before))
            marked = set(dirty)
            dirty.extend(r.canonical_id for rid, r in renamed.items()
                         if r.canonical_id != before[rid] and before[rid] in marked)
            existing.update(renamed)
        st.mark_dirty(s, object_type.value, dirty)
        return dict(existing)

    def _is_unrecorded_echo(self, native: str, m: Mapped, payloads: Sequence[Mapping[str, Any]]) -> bool:
        for payload in payloads:
            written = written_view(self.kind, native, payload.get("fields") or {}, fieldmaps=self.fieldmaps)
            if written and all(m.view.get(k) == v for k, v in written.items()):
                return True
        return False

    # ------------------------------------------------------------------ deletes

    def _apply_deletes(self, object_type: ObjectType, native: str, recs: Sequence[RemoteRecord],
                       stats: PullStats) -> None:
        with self._write_session() as s:
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
