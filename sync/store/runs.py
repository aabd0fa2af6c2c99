"""Cursors, runs, leases and API usage.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from sync.store.tables import ApiUsageRow, LeaseRow, SyncCursorRow, SyncRunRow


def get_cursor(s: Session, system: str, native_type: str) -> SyncCursorRow | None:
    return s.get(SyncCursorRow, (system, native_type))


def set_cursor(
    s: Session, system: str, native_type: str, modstamp: datetime | None, remote_id: str | None,
    seen: int, now: datetime,
) -> None:
    row = s.get(SyncCursorRow, (system, native_type))
    if row is None:
        s.add(SyncCursorRow(system=system, native_type=native_type, modstamp=modstamp,
                            remote_id=remote_id, records_seen=seen, updated_at=now))
        return
    if modstamp is not None and (row.modstamp is None or (modstamp, remote_id or "") > (row.modstamp, row.remote_id or "")):
        row.modstamp, row.remote_id = modstamp, remote_id
    row.records_seen += seen
    row.updated_at = now


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
