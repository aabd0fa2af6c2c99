"""Engines and sessions: ``make_engine`` (SQLite gets WAL, foreign keys, a busy
timeout) and ``Store``, the session factory with the status queries the CLI shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sync.store.tables import (
    ENTITY_TABLES,
    ApiUsageRow,
    ErrorLedgerRow,
    OutboxRow,
    SyncCursorRow,
    SyncRunRow,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """Sessions and the queries the CLI and engine share."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as s, s.begin():
            yield s

    # ------------------------------------------------------------------ status queries

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None if never migrated)."""
        from sqlalchemy import inspect, text

        if not inspect(self.engine).has_table("alembic_version"):
            return None
        with self.engine.connect() as c:
            row = c.execute(text("SELECT version_num FROM alembic_version")).first()
            return row[0] if row else None

    def status(self) -> dict[str, Any]:
        """Cursors, last runs, outbox and error counts, API usage, entity counts."""
        with self.session() as s:
            entities = {
                name: s.scalar(
                    select(func.count()).select_from(t).where(
                        t.deleted_at.is_(None), t.merged_into.is_(None)
                    )
                )
                or 0
                for name, t in ENTITY_TABLES.items()
            }
            cursors = [
                {
                    "system": c.system,
                    "object": c.native_type,
                    "modstamp": c.modstamp.isoformat() if c.modstamp else None,
                    "remote_id": c.remote_id,
                    "records_seen": c.records_seen,
                }
                for c in s.scalars(select(SyncCursorRow).order_by(SyncCursorRow.system, SyncCursorRow.native_type))
            ]
            runs = [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "status": r.status,
                    "started_at": r.started_at.isoformat(),
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "counts": r.counts,
                }
                for r in s.scalars(select(SyncRunRow).order_by(SyncRunRow.id.desc()).limit(5))
            ]
            outbox: dict[str, int] = dict(
                s.execute(
                    select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
                ).all()
            )
            errors: dict[str, int] = dict(
                s.execute(
                    select(ErrorLedgerRow.category, func.count())
                    .where(ErrorLedgerRow.state == "open")
                    .group_by(ErrorLedgerRow.category)
                ).all()
            )
            usage = [
                {
                    "system": u.system,
                    "day": u.day.isoformat(),
                    "calls": u.calls,
                    "limit": u.limit,
                    "remaining": u.remaining,
                }
                for u in s.scalars(select(ApiUsageRow).order_by(ApiUsageRow.day.desc(), ApiUsageRow.system).limit(20))
            ]
        return {
            "entities": entities,
            "cursors": cursors,
            "last_runs": runs,
            "outbox": outbox,
            "errors_open": errors,
            "api_usage": usage,
        }
