"""The outbox (planned writes, pending until pushed) and the error ledger (failed
reads and writes, unreadable values, write retries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from sync.store.tables import ErrorLedgerRow, OutboxRow, metadata


def insert_outbox(s: Session, rows: list[dict[str, Any]]) -> None:
    """Add outbox rows (column name → value dicts), in order, in one executemany."""
    if rows:
        s.execute(insert(metadata.tables[OutboxRow.__tablename__]), rows)


def replace_pending_ops(s: Session, system: str, object_type: str, canonical_id: str) -> None:
    from sqlalchemy import delete

    s.execute(
        delete(OutboxRow).where(
            OutboxRow.system == system,
            OutboxRow.object_type == object_type,
            OutboxRow.canonical_id == canonical_id,
            OutboxRow.state == "pending",
        )
    )


def pending_ops(s: Session, system: str, object_type: str, limit: int, now: datetime) -> list[OutboxRow]:
    from sqlalchemy import or_

    return list(
        s.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.system == system,
                OutboxRow.object_type == object_type,
                OutboxRow.state == "pending",
                or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now),
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
    )


def pending_counts(s: Session, run_id: int | None = None) -> dict[tuple[str, str], int]:
    q = select(OutboxRow.system, OutboxRow.kind, func.count()).where(OutboxRow.state == "pending")
    if run_id is not None:
        q = q.where(OutboxRow.run_id == run_id)
    return {(sy, k): n for sy, k, n in s.execute(q.group_by(OutboxRow.system, OutboxRow.kind))}


def list_pending(s: Session, limit: int = 1000) -> list[OutboxRow]:
    return list(s.scalars(select(OutboxRow).where(OutboxRow.state == "pending").order_by(OutboxRow.id).limit(limit)))


def record_error(
    s: Session, *, system: str, object_type: str, native_type: str | None, remote_id: str | None,
    canonical_id: str | None, direction: str, category: str, message: str, field: str | None,
    payload: dict[str, Any] | None, now: datetime, run_id: int | None,
) -> ErrorLedgerRow:
    """Add to the error ledger, or bump the open entry for the same record and direction."""
    q = select(ErrorLedgerRow).where(
        ErrorLedgerRow.system == system,
        ErrorLedgerRow.object_type == object_type,
        ErrorLedgerRow.direction == direction,
        ErrorLedgerRow.state == "open",
    )
    q = q.where(ErrorLedgerRow.remote_id == remote_id) if remote_id else q.where(ErrorLedgerRow.remote_id.is_(None))
    q = q.where(ErrorLedgerRow.canonical_id == canonical_id) if canonical_id else q
    q = q.where(ErrorLedgerRow.category != BAD_VALUE)  # per-field entries: sync_bad_values
    row = s.scalars(q.limit(1)).first()
    if row is None:
        row = ErrorLedgerRow(system=system, object_type=object_type, native_type=native_type,
                             remote_id=remote_id, canonical_id=canonical_id, direction=direction,
                             category=category, field=field, message=message, payload=payload,
                             first_seen_at=now, last_seen_at=now, attempts=1, state="open", run_id=run_id)
        s.add(row)
    else:
        row.category, row.field, row.message, row.payload = category, field, message, payload
        row.last_seen_at, row.attempts, row.run_id = now, row.attempts + 1, run_id
    return row


#: a failed write is retried by the following sync cycles at most this many times in
#: all, RETRY_BASE after the first failure and twice as long after each next one (at
#: most RETRY_MAX_DELAY), then parked with its reason until `revsync retry`
RETRY_CAP = 6


RETRY_BASE = timedelta(minutes=1)


RETRY_MAX_DELAY = timedelta(hours=6)


def schedule_write_retry(row: ErrorLedgerRow, now: datetime, cap: int = RETRY_CAP) -> None:
    """After a failed write: when the cycles retry it next, or parked once ``cap`` tries failed."""
    if row.attempts >= cap:
        row.state, row.next_attempt_at = "parked", None
        return
    row.next_attempt_at = now + min(RETRY_MAX_DELAY, RETRY_BASE * 2 ** max(0, row.attempts - 1))


def due_write_retries(s: Session, now: datetime) -> dict[str, list[str]]:
    """object → entities with a failed write due for another try (taken: their
    schedule is cleared; a new failure schedules the next one)."""
    from sqlalchemy import update

    rows = s.execute(select(ErrorLedgerRow.id, ErrorLedgerRow.object_type, ErrorLedgerRow.canonical_id).where(
        ErrorLedgerRow.state == "open", ErrorLedgerRow.direction == "write",
        ErrorLedgerRow.canonical_id.is_not(None), ErrorLedgerRow.next_attempt_at <= now)).all()
    out: dict[str, list[str]] = {}
    for _id, ot, cid in rows:
        out.setdefault(ot, []).append(str(cid))
    ids = [r[0] for r in rows]
    for i in range(0, len(ids), 500):
        s.execute(update(ErrorLedgerRow).where(ErrorLedgerRow.id.in_(ids[i : i + 500])).values(next_attempt_at=None))
    return out


def count_due_write_retries(s: Session, now: datetime) -> int:
    """Failed writes whose backoff is over (what the next cycle retries)."""
    return s.scalar(select(func.count()).select_from(ErrorLedgerRow).where(
        ErrorLedgerRow.state == "open", ErrorLedgerRow.direction == "write",
        ErrorLedgerRow.canonical_id.is_not(None), ErrorLedgerRow.next_attempt_at <= now)) or 0


def reopen_write_errors(s: Session, error_ids: Any, now: datetime) -> int:
    """Failed writes (all open or parked ones, or the ledger ids given) due now again."""
    q = select(ErrorLedgerRow).where(ErrorLedgerRow.direction == "write",
                                     ErrorLedgerRow.state.in_(("open", "parked")),
                                     ErrorLedgerRow.canonical_id.is_not(None))
    if error_ids:
        q = q.where(ErrorLedgerRow.id.in_(list(error_ids)))
    rows = list(s.scalars(q))
    for r in rows:
        r.state, r.next_attempt_at = "open", now
    return len(rows)


def resolve_errors(s: Session, *, system: str, object_type: str, direction: str,
                   remote_ids: list[str] | None = None, canonical_ids: list[str] | None = None) -> int:
    """Resolve the open entries of these records (never ``bad_value`` ones: those are
    per field, and only a readable value clears them, see ``sync_bad_values``)."""
    from sqlalchemy import update

    n = 0
    for col, ids in ((ErrorLedgerRow.remote_id, remote_ids), (ErrorLedgerRow.canonical_id, canonical_ids)):
        if not ids:
            continue
        uniq = sorted(set(ids))
        for i in range(0, len(uniq), 500):
            res = s.execute(
                update(ErrorLedgerRow)
                .where(ErrorLedgerRow.system == system, ErrorLedgerRow.object_type == object_type,
                       ErrorLedgerRow.direction == direction, ErrorLedgerRow.state == "open",
                       ErrorLedgerRow.category != BAD_VALUE, col.in_(uniq[i : i + 500]))
                .values(state="resolved")
            )
            n += getattr(res, "rowcount", 0) or 0
    return n


#: error-ledger category of one unreadable value (one entry per record and native field)
BAD_VALUE = "bad_value"


def sync_bad_values(
    s: Session, *, system: str, object_type: str, native_type: str,
    found: Mapping[str, Mapping[str, tuple[str, str]]], canonical_ids: Mapping[str, str],
    now: datetime, run_id: int | None,
) -> tuple[int, int]:
    """Make the open ``bad_value`` entries of these records match what was just read.

    ``found``: remote id → native field → (raw value as safe text, reason), for every
    record read (an empty table when all its values read). A new unreadable value opens
    an entry; a changed one updates it; a field that reads now resolves its entry.
    Returns (opened, resolved).
    """
    rids = sorted(found)
    held: dict[tuple[str, str | None], ErrorLedgerRow] = {}
    for i in range(0, len(rids), 500):
        for found_row in s.scalars(select(ErrorLedgerRow).where(
                ErrorLedgerRow.state == "open", ErrorLedgerRow.category == BAD_VALUE,
                ErrorLedgerRow.system == system, ErrorLedgerRow.native_type == native_type,
                ErrorLedgerRow.remote_id.in_(rids[i : i + 500]))):
            held[(found_row.remote_id or "", found_row.field)] = found_row
    opened = resolved = 0
    for rid, fields in found.items():
        for name, (raw, reason) in fields.items():
            row = held.pop((rid, name)) if (rid, name) in held else None
            payload = {"raw": raw, "reason": reason}
            message = f"{native_type} {rid}.{name}: unreadable value {raw} ({reason})"
            if row is None:
                opened += 1
                s.add(ErrorLedgerRow(system=system, object_type=object_type, native_type=native_type,
                                     remote_id=rid, canonical_id=canonical_ids.get(rid), direction="read",
                                     category=BAD_VALUE, field=name, message=message, payload=payload,
                                     first_seen_at=now, last_seen_at=now, attempts=1, state="open",
                                     run_id=run_id))
            elif row.payload != payload:
                row.message, row.payload, row.last_seen_at, row.run_id = message, payload, now, run_id
                row.canonical_id = canonical_ids.get(rid, row.canonical_id)
    for gone in held.values():
        gone.state, gone.last_seen_at = "resolved", now
        resolved += 1
    return opened, resolved


def list_errors(s: Session, *, category: str | None = None, state: str | None = None,
                limit: int = 200) -> list[ErrorLedgerRow]:
    """Ledger entries in ``state`` (default: the unresolved ones, open or parked)."""
    q = select(ErrorLedgerRow).where(
        ErrorLedgerRow.state.in_(("open", "parked")) if state is None else ErrorLedgerRow.state == state)
    if category:
        q = q.where(ErrorLedgerRow.category == category)
    return list(s.scalars(q.order_by(ErrorLedgerRow.id).limit(limit)))


def pending_create_ids(s: Session, system: str, object_type: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` have a create pending in the outbox for ``system`` (or failed:
    the cycles retry it, and associations to it wait for it)."""
    out: set[str] = set()
    uniq = sorted(set(ids))
    for i in range(0, len(uniq), 500):
        out.update(s.scalars(
            select(OutboxRow.canonical_id).where(
                OutboxRow.system == system, OutboxRow.object_type == object_type, OutboxRow.kind == "create",
                OutboxRow.state.in_(("pending", "failed")), OutboxRow.canonical_id.in_(uniq[i : i + 500]),
            )
        ))
    return out


def delete_pending_ops(s: Session, object_type: str, ids: list[str], systems: list[str]) -> None:
    """Drop the pending, failed and held ops of these entities in these systems (a new
    plan, from the current canonical state, replaces them)."""
    from sqlalchemy import delete

    wanted = set(systems)
    for i in range(0, len(ids), 500):
        # the entities' rows by ix_outbox_entity, then by primary key: with state and
        # system in the same WHERE, SQLite walked every pending row of the system per batch
        rows = s.execute(select(OutboxRow.id, OutboxRow.system, OutboxRow.state).where(
            OutboxRow.object_type == object_type, OutboxRow.canonical_id.in_(ids[i : i + 500])))
        gone = [oid for oid, system, state in rows if system in wanted and state in ("pending", "failed", "held")]
        if gone:
            s.execute(delete(OutboxRow).where(OutboxRow.id.in_(gone)).execution_options(
                synchronize_session=False))


def outbox_rows(s: Session, ids: list[int]) -> dict[int, OutboxRow]:
    out: dict[int, OutboxRow] = {}
    for i in range(0, len(ids), 500):
        for r in s.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids[i : i + 500]))):
            out[r.id] = r
    return out


def delete_outbox_rows(s: Session, ids: Sequence[int]) -> None:
    """Delete outbox rows by id (ops done), one statement per 500."""
    from sqlalchemy import delete

    for i in range(0, len(ids), 500):
        s.execute(delete(OutboxRow).where(OutboxRow.id.in_(list(ids[i : i + 500]))).execution_options(
            synchronize_session=False))


def drop_pending_ops(s: Session, object_type: str, ids: list[str]) -> dict[str, dict[str, int]]:
    """Drop every pending op of these entities (folded into another, which is planned
    again); returns system → op kind → ops dropped."""
    from sqlalchemy import delete

    dropped: dict[str, dict[str, int]] = {}
    for i in range(0, len(ids), 500):
        rows = s.execute(select(OutboxRow.id, OutboxRow.system, OutboxRow.kind).where(
            OutboxRow.object_type == object_type, OutboxRow.canonical_id.in_(ids[i : i + 500]),
            OutboxRow.state == "pending")).all()
        for _, system, kind in rows:
            per = dropped.setdefault(system, {})
            per[kind] = per.get(kind, 0) + 1
        if rows:
            s.execute(delete(OutboxRow).where(OutboxRow.id.in_([r[0] for r in rows])).execution_options(
                synchronize_session=False))
    return dropped


def pending_payloads_for_remote(s: Session, system: str, native_type: str, remote_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """remote id → payloads of its pending (not yet recorded) update ops."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(remote_ids), 500):
        for rid, payload in s.execute(
            select(OutboxRow.remote_id, OutboxRow.payload).where(
                OutboxRow.system == system, OutboxRow.native_type == native_type, OutboxRow.state == "pending",
                OutboxRow.kind == "update", OutboxRow.remote_id.in_(remote_ids[i : i + 500]),
            )
        ):
            if rid:
                out.setdefault(rid, []).append(payload or {})
    return out
