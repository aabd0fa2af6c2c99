"""Cursors, runs, leases and API usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.store.tables import ApiUsageRow, ExternalRefRow, LeaseRow, SyncCursorRow, SyncRunRow


def get_cursor(s: Session, system: str, native_type: str) -> SyncCursorRow | None:
    return s.get(SyncCursorRow, (system, native_type))


def set_cursor(
    s: Session, system: str, native_type: str, modstamp: datetime | None, remote_id: str | None,
    seen: int, now: datetime, *, read_at: datetime | None = None,
) -> None:
    """Move the position forward to (modstamp, remote_id) (never back).

    ``read_at``: when the read that reached this position started; kept only when the
    position is moved or confirmed (a read that has not yet come back up to the stored
    position has not re-covered what lies below it)."""
    row = s.get(SyncCursorRow, (system, native_type))
    if row is None:
        s.add(SyncCursorRow(system=system, native_type=native_type, modstamp=modstamp,
                            remote_id=remote_id, records_seen=seen, updated_at=now, read_at=read_at))
        return
    if modstamp is not None and (row.modstamp is None or (modstamp, remote_id or "") > (row.modstamp, row.remote_id or "")):
        row.modstamp, row.remote_id = modstamp, remote_id
    if read_at is not None and modstamp is not None and row.modstamp is not None and modstamp >= row.modstamp \
            and (row.read_at is None or read_at > row.read_at):
        row.read_at = read_at
    row.records_seen += seen
    row.updated_at = now


def confirm_cursor_read(s: Session, system: str, native_type: str, read_at: datetime) -> None:
    """A read from the stored position to the end of the listing, started at
    ``read_at``, has completed: everything committed by then has been seen."""
    row = s.get(SyncCursorRow, (system, native_type))
    if row is not None and row.modstamp is not None and (row.read_at is None or read_at > row.read_at):
        row.read_at = read_at


def raw_hashes(
    s: Session, system: str, native_type: str, remote_ids: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """remote id → (ref row id, raw hash) of the live records among ``remote_ids`` that
    have a raw hash: plain rows, no ORM objects (the quiet-cycle check before mapping)."""
    out: dict[str, tuple[int, str]] = {}
    t = ExternalRefRow.__table__
    for i in range(0, len(remote_ids), 500):
        chunk = list(remote_ids[i : i + 500])
        for rid, ref_id, digest in s.execute(
            select(t.c.remote_id, t.c.id, t.c.raw_hash).where(
                t.c.system == system, t.c.native_type == native_type, t.c.remote_id.in_(chunk),
                t.c.deleted_at.is_(None), t.c.raw_hash.is_not(None),
            )
        ):
            out[rid] = (ref_id, digest)
    return out


def touch_refs(s: Session, ref_ids: Sequence[int], now: datetime) -> None:
    """``last_seen_at = now`` for the given ref rows, one UPDATE per 500."""
    from sqlalchemy import update

    for i in range(0, len(ref_ids), 500):
        s.execute(update(ExternalRefRow).where(ExternalRefRow.id.in_(list(ref_ids[i : i + 500])))
                  .values(last_seen_at=now).execution_options(synchronize_session=False))


def start_run(s: Session, kind: str, scope: dict[str, Any], now: datetime) -> int:
    run = SyncRunRow(kind=kind, scope=scope, started_at=now, status="running", counts={})
    s.add(run)
    s.flush()
    return run.id


def finish_run(s: Session, run_id: int, status: str, counts: dict[str, Any], now: datetime,
               error: str | None = None) -> None:
    run = s.get(SyncRunRow, run_id)
    if run is not None:
        run.status, run.counts, run.finished_at, run.error = status, counts, now, error


def add_api_usage(s: Session, system: str, calls: int, now: datetime,
                  limit: int | None = None, remaining: int | None = None) -> None:
    day = now.date()
    row = s.get(ApiUsageRow, (system, day))
    if row is None:
        s.add(ApiUsageRow(system=system, day=day, calls=calls, limit=limit, remaining=remaining, updated_at=now))
    else:
        row.calls += calls
        if limit is not None:
            row.limit = limit
        if remaining is not None:
            row.remaining = remaining
        row.updated_at = now


def acquire_lease(
    s: Session, system: str, object_type: str, holder: str, now: datetime, ttl_seconds: float,
    is_stale: Any = None,
) -> bool:
    """Take (system, object) for ``holder`` unless someone else holds a live lease.

    ``is_stale(holder) -> bool`` lets the caller take over a lease whose holder is
    known to be gone (e.g. a killed process on this host) before it expires.
    """
    row = s.get(LeaseRow, (system, object_type), with_for_update=True)
    expires = now + timedelta(seconds=ttl_seconds)
    if row is None:
        s.add(LeaseRow(system=system, object_type=object_type, holder=holder, acquired_at=now, expires_at=expires))
        try:
            s.flush()
        except Exception:
            return False
        return True
    if row.holder != holder and row.expires_at > now and not (is_stale and is_stale(row.holder)):
        return False
    row.holder, row.acquired_at, row.expires_at = holder, now, expires
    return True


def release_lease(s: Session, system: str, object_type: str, holder: str) -> None:
    row = s.get(LeaseRow, (system, object_type))
    if row is not None and row.holder == holder:
        s.delete(row)
