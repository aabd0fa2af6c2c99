"""The local SQL store (SQLAlchemy 2.x). The only module that talks SQL.

Tables: the three canonical entities, the identity map (``external_ref``), field
provenance, cursors, runs, the outbox, the error ledger, the merge ledger, leases
and API usage. Everything is portable SQLAlchemy: the same code runs on SQLite (the
embedded default) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(36)  # canonical ids are UUID strings
MONEY = Numeric(18, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC datetimes only")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        date: Date(),
        Decimal: MONEY,
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class _EntityColumns:
    """Columns every canonical entity table has."""

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    # Set when dedupe folds this entity into another (the survivor's id).
    merged_into: Mapped[str | None] = mapped_column(ID, index=True)
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set (with the cursor advance, in one transaction) when a linked remote record
    # changed; cleared when reconcile and plan have handled it. Survives a crash.
    dirty: Mapped[bool] = mapped_column(Boolean, default=True, index=True)


class AccountRow(_EntityColumns, Base):
    __tablename__ = "account"
    # free text is TEXT: a CRM may hold a 300-character name; a target's own limit is a
    # write error there, never a reason to lose the record here (migration 0004)

    name: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    website: Mapped[str | None] = mapped_column(Text)
    industry: Mapped[str | None] = mapped_column(String(80))
    employees: Mapped[int | None] = mapped_column(Integer)
    annual_revenue: Mapped[Decimal | None]
    phone: Mapped[str | None] = mapped_column(String(40))
    billing_street: Mapped[str | None] = mapped_column(Text)
    billing_city: Mapped[str | None] = mapped_column(Text)
    billing_state: Mapped[str | None] = mapped_column(Text)
    billing_postal_code: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    owner_email: Mapped[str | None] = mapped_column(String(255))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(40))
    customer_status: Mapped[str | None] = mapped_column(String(40))
    health: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    arr: Mapped[Decimal | None]
    renewal_date: Mapped[date | None]


class ContactRow(_EntityColumns, Base):
    __tablename__ = "contact"

    email: Mapped[str | None] = mapped_column(String(255))
    # email folded for matching (lowercase, plus-tags and Gmail dots removed)
    email_key: Mapped[str | None] = mapped_column(String(255), index=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(ID, index=True)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(40))
    owner_email: Mapped[str | None] = mapped_column(String(255))
    lead_source: Mapped[str | None] = mapped_column(String(40))
    do_not_contact: Mapped[bool | None] = mapped_column(Boolean)


class OpportunityRow(_EntityColumns, Base):
    __tablename__ = "opportunity"

    name: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(ID, index=True)
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    stage: Mapped[str | None] = mapped_column(String(40))
    close_date: Mapped[date | None]
    probability: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    type: Mapped[str | None] = mapped_column(String(40))
    owner_email: Mapped[str | None] = mapped_column(String(255))
    is_closed: Mapped[bool | None] = mapped_column(Boolean)
    is_won: Mapped[bool | None] = mapped_column(Boolean)


class OpportunityContactRow(Base):
    """Opportunity ↔ contact links (canonical ids)."""

    __tablename__ = "opportunity_contact"

    opportunity_id: Mapped[str] = mapped_column(
        ID, ForeignKey("opportunity.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[str] = mapped_column(ID, primary_key=True)


class ExternalRefRow(Base):
    """Identity map: (system, native object, remote id) → canonical id."""

    __tablename__ = "external_ref"
    __table_args__ = (
        UniqueConstraint("system", "native_type", "remote_id"),
        Index("ix_external_ref_canonical", "object_type", "canonical_id"),
        # lookups by remote id whatever the system or native type: associations
        # translated to canonical ids (refs_for_remote_ids_any_system) and a record
        # merged into another (remote_merge_pairs; a converted Lead into a Contact)
        Index("ix_external_ref_remote", "remote_id", "object_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    canonical_id: Mapped[str] = mapped_column(ID)
    system: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(20))
    native_type: Mapped[str] = mapped_column(String(80))
    remote_id: Mapped[str] = mapped_column(String(64))
    remote_modstamp: Mapped[datetime | None]
    last_seen_hash: Mapped[str | None] = mapped_column(String(64))
    last_written_hash: Mapped[str | None] = mapped_column(String(64))
    # The record's values in canonical form, as last seen (or written): what
    # reconcile takes as this record's claims and what plan diffs against.
    canonical_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Remote ids of associated records, by canonical object type ({"account": [...]})
    associations: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # How this record was linked to its canonical entity (external_id, xref, email, domain, new)
    link_rule: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    merged_into: Mapped[str | None] = mapped_column(String(64))
    # The revsync id the record carries in its external-id field (None: none, or not
    # known); plan writes the entity's id where it is missing, so identity survives
    # the store (a lost store, an old backup, a move to PostgreSQL)
    revsync_id: Mapped[str | None] = mapped_column(ID)


class FieldProvenanceRow(Base):
    """Why a canonical field has its value: which system/record supplied it, by which rule."""

    __tablename__ = "field_provenance"
    __table_args__ = (UniqueConstraint("object_type", "entity_id", "field"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(ID)
    field: Mapped[str] = mapped_column(String(80))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    system: Mapped[str | None] = mapped_column(String(40))
    remote_id: Mapped[str | None] = mapped_column(String(64))
    remote_modstamp: Mapped[datetime | None]
    rule: Mapped[str] = mapped_column(String(80))
    run_id: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime]


class SyncCursorRow(Base):
    """Incremental position per (connection, native object)."""

    __tablename__ = "sync_cursor"

    system: Mapped[str] = mapped_column(String(40), primary_key=True)
    native_type: Mapped[str] = mapped_column(String(80), primary_key=True)
    modstamp: Mapped[datetime | None]
    remote_id: Mapped[str | None] = mapped_column(String(64))
    records_seen: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    updated_at: Mapped[datetime]


class SyncRunRow(Base):
    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # cycle | backfill | sweep | retry | dedupe
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))  # running | ok | failed | partial | stopped
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class OutboxRow(Base):
    """Pending write operations, drained by push in batches."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "state", "system", "native_type"),
        # a batch's plan replaces the entities' pending ops (delete_pending_ops)
        Index("ix_outbox_entity", "object_type", "canonical_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    system: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(20))
    native_type: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))  # create | update | upsert | delete | merge
    canonical_id: Mapped[str] = mapped_column(ID)
    remote_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ErrorLedgerRow(Base):
    """Records that could not be read, mapped or written, with a category."""

    __tablename__ = "error_ledger"
    __table_args__ = (Index("ix_error_ledger_state", "state", "category"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    system: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(20))
    native_type: Mapped[str | None] = mapped_column(String(80))
    remote_id: Mapped[str | None] = mapped_column(String(64))
    canonical_id: Mapped[str | None] = mapped_column(ID)
    direction: Mapped[str] = mapped_column(String(10))  # read | write
    category: Mapped[str] = mapped_column(String(20))
    field: Mapped[str | None] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved | ignored | parked
    run_id: Mapped[int | None] = mapped_column(Integer)
    # a write failure: when the following sync cycles retry it (backoff); None once parked
    next_attempt_at: Mapped[datetime | None]


class MergeLedgerRow(Base):
    """Every merge or link of duplicates, with before-images so it can be undone."""

    __tablename__ = "merge_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    survivor_id: Mapped[str] = mapped_column(ID, index=True)
    merged_ids: Mapped[list[Any]] = mapped_column(JSON)
    policy: Mapped[str] = mapped_column(String(10))  # link | merge
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    before_images: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    undone_at: Mapped[datetime | None]


class MatchReviewRow(Base):
    """Doubtful duplicate pairs waiting for an admin (and decided ones, kept so a
    rejected pair is never linked automatically)."""

    __tablename__ = "match_review"
    __table_args__ = (UniqueConstraint("object_type", "left_id", "right_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    left_id: Mapped[str] = mapped_column(ID)
    right_id: Mapped[str] = mapped_column(ID)
    probability: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default="open", index=True)  # open | accepted | rejected
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    merge_id: Mapped[int | None] = mapped_column(Integer)


class MatchModelRow(Base):
    """The trained match model per object type (splink model JSON)."""

    __tablename__ = "match_model"

    object_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    model_json: Mapped[str] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[datetime]
    # entities created before this instant have been matched (batch or incremental)
    matched_until: Mapped[datetime]


class LeaseRow(Base):
    """Who holds which (system, object) until when: one writer per scope."""

    __tablename__ = "lease"

    system: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ApiUsageRow(Base):
    """API calls per connection and UTC day, and the limits the APIs last reported."""

    __tablename__ = "api_usage"

    system: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    limit: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    remaining: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    updated_at: Mapped[datetime]


metadata = Base.metadata

ENTITY_TABLES: dict[str, type[AccountRow] | type[ContactRow] | type[OpportunityRow]] = {
    "account": AccountRow,
    "contact": ContactRow,
    "opportunity": OpportunityRow,
}


# --------------------------------------------------------------------------- engine


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


# --------------------------------------------------------------------------- engine queries
# Every function below takes an open Session: the caller decides the transaction.


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


def refs_by_remote_id(
    s: Session, system: str, native_type: str, remote_ids: list[str]
) -> dict[str, ExternalRefRow]:
    out: dict[str, ExternalRefRow] = {}
    for i in range(0, len(remote_ids), 500):
        chunk = remote_ids[i : i + 500]
        for r in s.scalars(
            select(ExternalRefRow).where(
                ExternalRefRow.system == system,
                ExternalRefRow.native_type == native_type,
                ExternalRefRow.remote_id.in_(chunk),
            )
        ):
            out[r.remote_id] = r
    return out


def refs_for_remote_ids_any_system(
    s: Session, object_type: str, remote_ids: list[str]
) -> dict[tuple[str, str], str]:
    """(system, remote_id) → canonical id, for refs of ``object_type`` in any system."""
    out: dict[tuple[str, str], str] = {}
    ids = sorted(set(remote_ids))
    for i in range(0, len(ids), 500):
        for r in s.execute(
            select(ExternalRefRow.system, ExternalRefRow.remote_id, ExternalRefRow.canonical_id).where(
                ExternalRefRow.object_type == object_type, ExternalRefRow.remote_id.in_(ids[i : i + 500])
            )
        ):
            out[(r.system, r.remote_id)] = r.canonical_id
    return out


def live_entity_ids(s: Session, object_type: str, ids: list[str]) -> set[str]:
    t = ENTITY_TABLES[object_type]
    found: set[str] = set()
    uniq = sorted(set(ids))
    for i in range(0, len(uniq), 500):
        found.update(s.scalars(select(t.id).where(t.id.in_(uniq[i : i + 500]), t.merged_into.is_(None))))
    return found


def resolve_entity_ids(s: Session, object_type: str, ids: list[str]) -> dict[str, str]:
    """id → the entity holding it now: itself, or the survivor it was merged into
    (followed to the end of the chain). Ids the store does not know are left out."""
    t = ENTITY_TABLES[object_type]
    merged: dict[str, str | None] = {}
    todo = sorted(set(ids))
    for _ in range(16):  # merge chains are short; a cycle would be a bug, not data
        todo = [i for i in todo if i not in merged]
        if not todo:
            break
        for i in range(0, len(todo), 500):
            merged.update((eid, into) for eid, into in s.execute(
                select(t.id, t.merged_into).where(t.id.in_(todo[i : i + 500]))))
        todo = [into for into in merged.values() if into]
    out: dict[str, str] = {}
    for eid in set(ids):
        cur: str | None = eid
        seen: set[str] = set()
        while cur is not None and cur in merged and merged[cur] and cur not in seen:
            seen.add(cur)
            cur = merged[cur]
        if cur is not None and cur in merged:
            out[eid] = cur
    return out


def entity_is_unanchored_since(s: Session, object_type: str, entity_id: str, since: datetime) -> bool:
    """True if the entity was made at or after ``since`` and none of its records
    carries its id (so renaming it to an id a record carries loses nothing)."""
    t: Any = ENTITY_TABLES[object_type]
    row = s.get(t, entity_id)
    if row is None or row.created_at < since or row.merged_into:
        return False
    anchored = s.scalar(select(func.count()).select_from(ExternalRefRow).where(
        ExternalRefRow.object_type == object_type, ExternalRefRow.canonical_id == entity_id,
        ExternalRefRow.revsync_id == entity_id))
    return not anchored


def rename_entity(s: Session, object_type: str, old: str, new: str) -> None:
    """Give entity ``old`` the id ``new`` (which no entity has), with everything that
    points at it: its records, associations, provenance, outbox and ledger rows."""
    from sqlalchemy import update

    t = ENTITY_TABLES[object_type]
    s.flush()
    row = s.get(t, old)
    if row is None:
        return
    values = {c.key: getattr(row, c.key) for c in t.__mapper__.column_attrs}
    values["id"] = new
    s.add(t(**values))  # the new row first: the opportunity's contacts reference it
    s.flush()
    s.execute(update(ExternalRefRow).where(ExternalRefRow.object_type == object_type,
                                           ExternalRefRow.canonical_id == old).values(canonical_id=new)
              .execution_options(synchronize_session="fetch"))
    s.execute(update(FieldProvenanceRow).where(FieldProvenanceRow.object_type == object_type,
                                               FieldProvenanceRow.entity_id == old).values(entity_id=new))
    for tbl in (OutboxRow, ErrorLedgerRow):
        s.execute(update(tbl).where(tbl.object_type == object_type, tbl.canonical_id == old)
                  .values(canonical_id=new))
    s.execute(update(t).where(t.merged_into == old).values(merged_into=new))
    if object_type == "account":
        for child in (ContactRow, OpportunityRow):
            s.execute(update(child).where(child.account_id == old).values(account_id=new))
    elif object_type == "contact":
        s.execute(update(OpportunityContactRow).where(OpportunityContactRow.contact_id == old)
                  .values(contact_id=new))
    else:
        s.execute(update(OpportunityContactRow).where(OpportunityContactRow.opportunity_id == old)
                  .values(opportunity_id=new))
    s.delete(row)
    s.flush()


def contacts_by_email_key(s: Session, keys: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    uniq = sorted(set(keys))
    for i in range(0, len(uniq), 500):
        for key, cid in s.execute(
            select(ContactRow.email_key, ContactRow.id)
            .where(ContactRow.email_key.in_(uniq[i : i + 500]), ContactRow.merged_into.is_(None))
            .order_by(ContactRow.created_at, ContactRow.id)
        ):
            if key:
                out.setdefault(key, cid)
    return out


def accounts_by_domain(s: Session, domains: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    uniq = sorted(set(domains))
    for i in range(0, len(uniq), 500):
        for dom, cid in s.execute(
            select(AccountRow.domain, AccountRow.id)
            .where(AccountRow.domain.in_(uniq[i : i + 500]), AccountRow.merged_into.is_(None))
            .order_by(AccountRow.created_at, AccountRow.id)
        ):
            if dom:
                out.setdefault(dom, cid)
    return out


def opportunities_by_account(s: Session, account_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """account id → its opportunities as {id, name, close_date, amount, systems}
    (for the account+name deterministic key; ``systems``: where it has live records)."""
    out: dict[str, list[dict[str, Any]]] = {}
    uniq = sorted(set(account_ids))
    by_id: dict[str, dict[str, Any]] = {}
    for i in range(0, len(uniq), 500):
        for aid, oid, name, close, amount in s.execute(
            select(OpportunityRow.account_id, OpportunityRow.id, OpportunityRow.name, OpportunityRow.close_date,
                   OpportunityRow.amount).where(
                OpportunityRow.account_id.in_(uniq[i : i + 500]), OpportunityRow.merged_into.is_(None)
            )
        ):
            if aid:
                item: dict[str, Any] = {"id": oid, "name": name, "close_date": close, "amount": amount, "systems": set()}
                out.setdefault(aid, []).append(item)
                by_id[oid] = item
    ids = sorted(by_id)
    for i in range(0, len(ids), 500):
        for cid, system in s.execute(
            select(ExternalRefRow.canonical_id, ExternalRefRow.system).where(
                ExternalRefRow.object_type == "opportunity", ExternalRefRow.canonical_id.in_(ids[i : i + 500]),
                ExternalRefRow.deleted_at.is_(None),
            )
        ):
            by_id[cid]["systems"].add(system)
    return out


def add_entity(s: Session, object_type: str, entity_id: str, now: datetime, **values: Any) -> None:
    t = ENTITY_TABLES[object_type]
    s.add(t(id=entity_id, created_at=now, updated_at=now, extras={}, dirty=True, **values))


def mark_dirty(s: Session, object_type: str, ids: list[str]) -> None:
    from sqlalchemy import update

    t = ENTITY_TABLES[object_type]
    uniq = sorted(set(ids))
    for i in range(0, len(uniq), 500):
        s.execute(update(t).where(t.id.in_(uniq[i : i + 500])).values(dirty=True))


def dirty_entities(s: Session, object_type: str, limit: int, after: str = "") -> list[Any]:
    t = ENTITY_TABLES[object_type]
    return list(
        s.scalars(select(t).where(t.dirty.is_(True), t.id > after).order_by(t.id).limit(limit))
    )


def count_dirty(s: Session, object_type: str) -> int:
    t = ENTITY_TABLES[object_type]
    return s.scalar(select(func.count()).select_from(t).where(t.dirty.is_(True))) or 0


def refs_for_entities(s: Session, object_type: str, ids: list[str]) -> dict[str, list[ExternalRefRow]]:
    out: dict[str, list[ExternalRefRow]] = {}
    for i in range(0, len(ids), 500):
        for r in s.scalars(
            select(ExternalRefRow)
            .where(ExternalRefRow.object_type == object_type, ExternalRefRow.canonical_id.in_(ids[i : i + 500]))
            .order_by(ExternalRefRow.id)
        ):
            out.setdefault(r.canonical_id, []).append(r)
    return out


def remote_ids_for(
    s: Session, object_type: str, canonical_ids: list[str], exclude_natives: Any = (),
) -> dict[tuple[str, str], list[str]]:
    """(canonical id, system) → live remote ids of that entity in that system
    (leaving out records whose native type is in ``exclude_natives``)."""
    out: dict[tuple[str, str], list[str]] = {}
    uniq = sorted(set(canonical_ids))
    for i in range(0, len(uniq), 500):
        for cid, system, rid, native in s.execute(
            select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.remote_id,
                   ExternalRefRow.native_type)
            .where(
                ExternalRefRow.object_type == object_type,
                ExternalRefRow.canonical_id.in_(uniq[i : i + 500]),
                ExternalRefRow.deleted_at.is_(None),
            )
            .order_by(ExternalRefRow.id)
        ):
            if native not in exclude_natives:
                out.setdefault((cid, system), []).append(rid)
    return out


_PROVENANCE_KEY = (FieldProvenanceRow.id, FieldProvenanceRow.entity_id, FieldProvenanceRow.field,
                   FieldProvenanceRow.value, FieldProvenanceRow.system, FieldProvenanceRow.remote_id,
                   FieldProvenanceRow.rule)


def provenance_for(s: Session, object_type: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """entity id → field → the provenance row's (id, entity_id, field, value, system,
    remote_id, rule), read as plain rows (not ORM objects: a batch has thousands)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        for p in s.execute(
            select(*_PROVENANCE_KEY).where(
                FieldProvenanceRow.object_type == object_type, FieldProvenanceRow.entity_id.in_(ids[i : i + 500])
            )
        ):
            out.setdefault(p.entity_id, {})[p.field] = p
    return out


def upsert_provenance(
    s: Session, object_type: str, entity_id: str, rows: list[dict[str, Any]],
    existing: Any = None, new_rows: list[dict[str, Any]] | None = None,
    changed_rows: list[dict[str, Any]] | None = None,
) -> None:
    """Record each row's decision (``existing``: this entity's ``provenance_for``).

    Given ``new_rows`` and ``changed_rows``, the inserts and updates are appended there
    as plain dicts for one bulk ``insert_provenance`` later (far cheaper than ORM
    objects, one per field); otherwise they are written now."""
    if existing is None:
        existing = provenance_for(s, object_type, [entity_id]).get(entity_id, {})
    inserts = [] if new_rows is None else new_rows
    updates = [] if changed_rows is None else changed_rows
    for r in rows:
        p = existing.get(r["field"])
        if p is None:
            inserts.append({"object_type": object_type, "entity_id": entity_id, **r})
        elif (p.value, p.system, p.remote_id, p.rule) != (r["value"], r["system"], r["remote_id"], r["rule"]):
            updates.append({"id": p.id, **r})
    if new_rows is None or changed_rows is None:
        insert_provenance(s, inserts if new_rows is None else [], updates if changed_rows is None else [])


def insert_provenance(s: Session, rows: list[dict[str, Any]], changed: Sequence[dict[str, Any]] = ()) -> None:
    """Insert new provenance rows and update changed ones (by id), each in one
    executemany (the dicts ``upsert_provenance`` collects)."""
    from sqlalchemy import update

    table = metadata.tables[FieldProvenanceRow.__tablename__]
    if rows:
        s.execute(insert(table), rows)
    if changed:
        s.execute(update(FieldProvenanceRow), list(changed))


def provenance(s: Session, object_type: str, entity_id: str) -> list[FieldProvenanceRow]:
    return list(
        s.scalars(
            select(FieldProvenanceRow)
            .where(FieldProvenanceRow.object_type == object_type, FieldProvenanceRow.entity_id == entity_id)
            .order_by(FieldProvenanceRow.field)
        )
    )


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
    from datetime import timedelta

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


def entity_row(s: Session, object_type: str, entity_id: str) -> Any:
    return s.get(ENTITY_TABLES[object_type], entity_id)


def _follow_merges(s: Session, object_type: str, row: Any) -> Any:
    """The row an entity was (transitively) folded into, or the row itself."""
    t: Any = ENTITY_TABLES[object_type]
    seen: set[str] = set()
    while row is not None and row.merged_into and row.id not in seen:
        seen.add(row.id)
        row = s.get(t, row.merged_into)
    return row


def current_entity(s: Session, object_type: str, entity_id: str) -> str | None:
    """The live entity ``entity_id`` now belongs to (following links made since), or None
    when it is gone or deleted."""
    row = _follow_merges(s, object_type, s.get(ENTITY_TABLES[object_type], entity_id))
    if row is None or row.deleted_at is not None:
        return None
    return str(row.id)


def set_opportunity_contacts(s: Session, opportunity_id: str, contact_ids: list[str]) -> None:
    from sqlalchemy import delete

    s.execute(delete(OpportunityContactRow).where(OpportunityContactRow.opportunity_id == opportunity_id))
    for cid in sorted(set(contact_ids)):
        s.add(OpportunityContactRow(opportunity_id=opportunity_id, contact_id=cid))


def replace_opportunity_contacts(s: Session, links: Mapping[str, list[str]]) -> None:
    """``set_opportunity_contacts`` for many opportunities: one DELETE per 500."""
    from sqlalchemy import delete

    ids = sorted(links)
    for i in range(0, len(ids), 500):
        s.execute(delete(OpportunityContactRow).where(OpportunityContactRow.opportunity_id.in_(ids[i : i + 500])))
    for oid in ids:
        for cid in sorted(set(links[oid])):
            s.add(OpportunityContactRow(opportunity_id=oid, contact_id=cid))


def opportunity_contacts(s: Session, ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        for oid, cid in s.execute(
            select(OpportunityContactRow.opportunity_id, OpportunityContactRow.contact_id)
            .where(OpportunityContactRow.opportunity_id.in_(ids[i : i + 500]))
            .order_by(OpportunityContactRow.contact_id)
        ):
            out.setdefault(oid, []).append(cid)
    return out


def entity_counts(s: Session) -> dict[str, int]:
    """Live canonical entities per object type (not deleted, not merged away)."""
    return {
        name: s.scalar(
            select(func.count()).select_from(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
        )
        or 0
        for name, t in ENTITY_TABLES.items()
    }


class AmbiguousEntity(LookupError):
    """A short id that is the prefix of more than one canonical id."""

    def __init__(self, ref: str, matches: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{o} {i}" for o, i in matches[:5])
        super().__init__(f"{ref!r} is the start of {len(matches)} ids ({shown}{', …' if len(matches) > 5 else ''}):"
                         " give more characters")
        self.matches = matches


#: the shortest id prefix accepted (``revsync plan`` prints 8 characters)
MIN_ID_PREFIX = 4


def find_entity(s: Session, ref: str) -> tuple[str, str] | None:
    """(object type, canonical id) for a canonical id, a unique prefix of one (at least
    ``MIN_ID_PREFIX`` characters, as ``revsync plan`` prints them) or ``SYSTEM:REMOTE_ID``.
    Raises ``AmbiguousEntity`` when a prefix names several entities."""
    if ":" in ref:
        system, rid = ref.split(":", 1)
        row = s.scalars(
            select(ExternalRefRow).where(ExternalRefRow.system == system, ExternalRefRow.remote_id == rid).limit(1)
        ).first()
        return (row.object_type, row.canonical_id) if row else None
    for name, t in ENTITY_TABLES.items():
        if s.get(t, ref) is not None:
            return name, ref
    ref = ref.strip().lower()
    if len(ref) < MIN_ID_PREFIX or not all(c in "0123456789abcdef-" for c in ref):
        return None
    matches: list[tuple[str, str]] = []
    for name, t in ENTITY_TABLES.items():
        matches.extend((name, i) for i in s.scalars(select(t.id).where(t.id.startswith(ref)).limit(6)))
    if len(matches) > 1:
        raise AmbiguousEntity(ref, matches)
    return matches[0] if matches else None


#: the columns ``search_entities`` looks in, per object
SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "account": ("name", "domain", "website"),
    "contact": ("email", "first_name", "last_name"),
    "opportunity": ("name",),
}


def search_entities(
    s: Session, text: str, *, object_types: Sequence[str] | None = None, limit: int = 50,
) -> list[tuple[str, Any]]:
    """Live entities whose name, email, domain or a remote record id matches ``text``
    (case-insensitive substring; a contact's full name "First Last" too), as
    ``(object type, row)``, remote-id matches first."""
    from sqlalchemy import func, or_

    needle = text.strip().lower()
    if not needle:
        return []
    objects = list(object_types or ENTITY_TABLES)
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    by_ref = s.execute(
        select(ExternalRefRow.object_type, ExternalRefRow.canonical_id)
        .where(func.lower(ExternalRefRow.remote_id) == needle, ExternalRefRow.object_type.in_(objects)).limit(limit)
    ).all()
    for ot, cid in by_ref:
        row = _follow_merges(s, ot, s.get(ENTITY_TABLES[ot], cid))
        if row is not None and row.id not in seen:
            seen.add(row.id)
            out.append((ot, row))
    pattern = f"%{needle}%"
    for ot in objects:
        t: Any = ENTITY_TABLES[ot]
        conds = [func.lower(getattr(t, c)).like(pattern) for c in SEARCH_COLUMNS[ot]]
        if ot == "contact":
            conds.append(func.lower(func.coalesce(t.first_name, "") + " " + func.coalesce(t.last_name, "")).like(pattern))
        q = (select(t).where(t.merged_into.is_(None), t.deleted_at.is_(None), or_(*conds))
             .order_by(t.id).limit(max(limit - len(out), 0)))
        for row in s.scalars(q):
            if row.id not in seen:
                seen.add(row.id)
                out.append((ot, row))
        if len(out) >= limit:
            break
    return out[:limit]


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
    """Drop the pending and failed ops of these entities in these systems (a new plan,
    from the current canonical state, replaces them)."""
    from sqlalchemy import delete

    wanted = set(systems)
    for i in range(0, len(ids), 500):
        # the entities' rows by ix_outbox_entity, then by primary key: with state and
        # system in the same WHERE, SQLite walked every pending row of the system per batch
        rows = s.execute(select(OutboxRow.id, OutboxRow.system, OutboxRow.state).where(
            OutboxRow.object_type == object_type, OutboxRow.canonical_id.in_(ids[i : i + 500])))
        gone = [oid for oid, system, state in rows if system in wanted and state in ("pending", "failed")]
        if gone:
            s.execute(delete(OutboxRow).where(OutboxRow.id.in_(gone)).execution_options(
                synchronize_session=False))


def outbox_rows(s: Session, ids: list[int]) -> dict[int, OutboxRow]:
    out: dict[int, OutboxRow] = {}
    for i in range(0, len(ids), 500):
        for r in s.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids[i : i + 500]))):
            out[r.id] = r
    return out


# --------------------------------------------------------------------------- dedupe


def dedupe_records(s: Session, object_type: str, ids: Any = None) -> list[dict[str, Any]]:
    """Live canonical entities as match records (canonical fields + ``id``); contacts
    carry their account's name as ``company``. ``ids`` limits them."""
    t = ENTITY_TABLES[object_type]
    q = select(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
    rows: list[Any] = []
    if ids is not None:
        uniq = sorted(set(ids))
        for i in range(0, len(uniq), 500):
            rows.extend(s.scalars(q.where(t.id.in_(uniq[i : i + 500]))))
    else:
        rows = list(s.scalars(q.order_by(t.id)))
    if object_type == "contact":
        names = dict(s.execute(select(AccountRow.id, AccountRow.name)).all())
        return [{"id": r.id, "first_name": r.first_name, "last_name": r.last_name, "email": r.email,
                 "phone": r.phone, "title": r.title, "account_id": r.account_id,
                 "company": names.get(r.account_id) if r.account_id else None} for r in rows]
    if object_type == "account":
        return [{"id": r.id, "name": r.name, "domain": r.domain, "website": r.website, "phone": r.phone,
                 "billing_street": r.billing_street, "billing_postal_code": r.billing_postal_code,
                 "industry": r.industry, "country": r.country} for r in rows]
    raise ValueError(f"no match model for {object_type}")


#: the canonical fields tier 2 reads, per object (``dedupe_records``, ``match_training_records``)
MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "last_name", "email", "phone", "title"),
    "account": ("name", "domain", "website", "phone", "billing_street", "billing_postal_code", "industry",
                "country"),
}


def match_training_records(s: Session, object_type: str) -> list[dict[str, Any]]:
    """Every live remote record's last-seen values as match records (``id`` = the ref's
    id): the systems' records *before* tier 1 joined those sharing an email or domain,
    which the match model trains on. Contacts carry their account's name as ``company``
    (from the record's own account association)."""
    wanted = MATCH_FIELDS[object_type]
    q = (select(ExternalRefRow.id, ExternalRefRow.system, ExternalRefRow.canonical_fields,
                ExternalRefRow.associations)
         .where(ExternalRefRow.object_type == object_type, ExternalRefRow.deleted_at.is_(None))
         .order_by(ExternalRefRow.id))
    company: dict[tuple[str, str], str] = {}
    if object_type == "contact":
        names = dict(s.execute(select(AccountRow.id, AccountRow.name)).all())
        for system, rid, cid in s.execute(select(ExternalRefRow.system, ExternalRefRow.remote_id,
                                                 ExternalRefRow.canonical_id)
                                          .where(ExternalRefRow.object_type == "account")):
            if (name := names.get(cid)) is not None:
                company[(system, rid)] = name
    out: list[dict[str, Any]] = []
    for ref_id, system, view, assoc in s.execute(q):
        values = {f: v for f in wanted if isinstance(v := (view or {}).get(f), str)}
        if object_type == "contact":
            accounts = (assoc or {}).get("account") or []
            name = company.get((system, accounts[0])) if accounts else None
            if name is not None:
                values["company"] = name
        out.append({"id": f"ref:{ref_id}", **values})
    return out


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


def entity_ids_created_since(s: Session, object_type: str, since: datetime) -> list[str]:
    t = ENTITY_TABLES[object_type]
    return list(s.scalars(select(t.id).where(t.created_at >= since, t.deleted_at.is_(None),
                                             t.merged_into.is_(None))))


def decided_pairs(s: Session, object_type: str) -> dict[tuple[str, str], str]:
    """(left, right) → state for every review pair (open, accepted, rejected)."""
    return {(a, b): st for a, b, st in s.execute(
        select(MatchReviewRow.left_id, MatchReviewRow.right_id, MatchReviewRow.state)
        .where(MatchReviewRow.object_type == object_type))}


def add_review_pairs(s: Session, object_type: str, pairs: list[Any], run_id: int | None, now: datetime) -> int:
    known = decided_pairs(s, object_type)
    n = 0
    for p in pairs:
        key = (min(p.left, p.right), max(p.left, p.right))
        if key in known:
            continue
        s.add(MatchReviewRow(object_type=object_type, left_id=key[0], right_id=key[1],
                             probability=float(p.probability), evidence=dict(p.evidence), state="open",
                             run_id=run_id, created_at=now))
        known[key] = "open"
        n += 1
    return n


def review_rows(s: Session, object_type: str | None = None, state: str | None = "open",
                limit: int = 500) -> list[MatchReviewRow]:
    q = select(MatchReviewRow)
    if object_type:
        q = q.where(MatchReviewRow.object_type == object_type)
    if state:
        q = q.where(MatchReviewRow.state == state)
    return list(s.scalars(q.order_by(MatchReviewRow.probability.desc(), MatchReviewRow.id).limit(limit)))


def _image(row: Any) -> dict[str, Any]:
    from mapping.canonical import encode_value

    cols = [c.key for c in row.__table__.columns]
    return {c: encode_value(getattr(row, c)) for c in cols}


def _mark_dependents_dirty(s: Session, object_type: str, ids: list[str]) -> None:
    from sqlalchemy import update

    if object_type == "account":
        for t in (ContactRow, OpportunityRow):
            s.execute(update(t).where(t.account_id.in_(ids)).values(dirty=True))
    elif object_type == "contact":
        opp_ids = list(s.scalars(select(OpportunityContactRow.opportunity_id)
                                 .where(OpportunityContactRow.contact_id.in_(ids))))
        if opp_ids:
            s.execute(update(OpportunityRow).where(OpportunityRow.id.in_(opp_ids)).values(dirty=True))


def link_entities(
    s: Session, object_type: str, ids: list[str], *, evidence: dict[str, Any], run_id: int | None,
    now: datetime, survivor_id: str | None = None, policy: str = "link",
) -> int | None:
    """Fold the entities ``ids`` into one: the oldest (or ``survivor_id``) survives, the
    others' remote records point at it, and before-images go to the merge ledger.

    ``policy`` is what the ledger entry records: ``link`` (remote records untouched) or
    ``merge`` (the plan will also call the systems' merge APIs for the records that
    now share one entity; see ``remote_merge_candidates``)."""
    t = ENTITY_TABLES[object_type]
    rows: list[Any] = list(s.scalars(select(t).where(t.id.in_(ids), t.merged_into.is_(None))))
    if len(rows) < 2:
        return None
    rows.sort(key=lambda r: (r.id != survivor_id, r.created_at, r.id))
    survivor, losers = rows[0], rows[1:]
    loser_ids = [r.id for r in losers]
    refs = list(s.scalars(select(ExternalRefRow).where(ExternalRefRow.object_type == object_type,
                                                       ExternalRefRow.canonical_id.in_(loser_ids))))
    before = {r.id: {"entity": _image(r), "refs": [x.id for x in refs if x.canonical_id == r.id]} for r in losers}
    before[survivor.id] = {"entity": _image(survivor), "refs": []}
    for x in refs:
        x.canonical_id = survivor.id
    for r in losers:
        r.merged_into, r.dirty, r.updated_at = survivor.id, False, now
    survivor.dirty, survivor.updated_at = True, now
    _mark_dependents_dirty(s, object_type, loser_ids)
    entry = MergeLedgerRow(object_type=object_type, survivor_id=survivor.id, merged_ids=loser_ids, policy=policy,
                           evidence=evidence, before_images=before, remote_results={}, run_id=run_id,
                           created_at=now)
    s.add(entry)
    s.flush()
    return entry.id


def undo_link(s: Session, merge_id: int, now: datetime) -> MergeLedgerRow:
    """Restore the entities of a merge-ledger entry (refs back to their entities); the
    pairs it joined are recorded as rejected so they are never linked again."""
    from sqlalchemy import update

    entry = s.get(MergeLedgerRow, merge_id)
    if entry is None:
        raise LookupError(f"no merge {merge_id}")
    if entry.undone_at is not None:
        raise ValueError(f"merge {merge_id} was already undone at {entry.undone_at.isoformat()}")
    t = ENTITY_TABLES[entry.object_type]
    for loser_id in entry.merged_ids:
        image = entry.before_images.get(loser_id, {})
        ref_ids = image.get("refs", [])
        if ref_ids:
            s.execute(update(ExternalRefRow).where(ExternalRefRow.id.in_(ref_ids)).values(canonical_id=loser_id))
        row: Any = s.get(t, loser_id)
        if row is not None:
            row.merged_into, row.dirty, row.updated_at = None, True, now
        key = (min(loser_id, entry.survivor_id), max(loser_id, entry.survivor_id))
        existing = s.scalars(select(MatchReviewRow).where(
            MatchReviewRow.object_type == entry.object_type, MatchReviewRow.left_id == key[0],
            MatchReviewRow.right_id == key[1])).first()
        if existing is None:
            s.add(MatchReviewRow(object_type=entry.object_type, left_id=key[0], right_id=key[1], probability=1.0,
                                 evidence={"undo": str(merge_id)}, state="rejected", created_at=now,
                                 decided_at=now, merge_id=merge_id))
        else:
            existing.state, existing.decided_at = "rejected", now
    survivor: Any = s.get(t, entry.survivor_id)
    if survivor is not None:
        survivor.dirty, survivor.updated_at = True, now
    _mark_dependents_dirty(s, entry.object_type, [entry.survivor_id, *entry.merged_ids])
    # a remote merge this entry planned and that has not gone out yet is withdrawn
    for op in s.scalars(select(OutboxRow).where(
            OutboxRow.object_type == entry.object_type, OutboxRow.canonical_id == entry.survivor_id,
            OutboxRow.kind == "merge", OutboxRow.state != "done")):
        if merge_id in (op.payload or {}).get("merge_ids", []):
            s.delete(op)
    entry.undone_at = now
    return entry


def remote_merge_pairs(s: Session, object_type: str) -> list[dict[str, Any]]:
    """Records a system reports merged into a record of *another* live entity.

    A user merging two records in HubSpot or Salesforce (or Salesforce converting a
    Lead into a Contact) says the two entities are one: each item names the entity
    holding the surviving record (``survivor``), the entity of the merged-away record
    (``merged``) and the records, for ``Deduper.follow_remote_merges`` to link.
    """
    from sqlalchemy.orm import aliased

    t = ENTITY_TABLES[object_type]
    gone, kept = aliased(ExternalRefRow), aliased(ExternalRefRow)
    ge, ke = aliased(t), aliased(t)
    q = (
        select(kept.canonical_id, gone.canonical_id, gone.system, gone.native_type, gone.remote_id,
               kept.native_type, kept.remote_id)
        .join(kept, (kept.system == gone.system) & (kept.object_type == gone.object_type)
              & (kept.remote_id == gone.merged_into))
        .join(ge, ge.id == gone.canonical_id)
        .join(ke, ke.id == kept.canonical_id)
        .where(gone.object_type == object_type, gone.merged_into.is_not(None), gone.deleted_at.is_not(None),
               kept.deleted_at.is_(None), kept.canonical_id != gone.canonical_id,
               ge.merged_into.is_(None), ke.merged_into.is_(None), ge.deleted_at.is_(None),
               ke.deleted_at.is_(None))
        .order_by(gone.system, gone.remote_id)
    )
    return [
        {"survivor": a, "merged": b, "system": system, "native_type": gnat, "remote_id": grid,
         "into_native_type": knat, "into_remote_id": krid}
        for a, b, system, gnat, grid, knat, krid in s.execute(q)
    ]


def merge_entries_for(s: Session, object_type: str, survivor_ids: list[str]) -> dict[str, list[MergeLedgerRow]]:
    """Live (not undone) ``merge``-policy ledger entries per survivor entity."""
    out: dict[str, list[MergeLedgerRow]] = {}
    for i in range(0, len(survivor_ids), 500):
        q = select(MergeLedgerRow).where(
            MergeLedgerRow.object_type == object_type, MergeLedgerRow.policy == "merge",
            MergeLedgerRow.undone_at.is_(None), MergeLedgerRow.survivor_id.in_(survivor_ids[i:i + 500]),
        ).order_by(MergeLedgerRow.id)
        for row in s.scalars(q):
            out.setdefault(row.survivor_id, []).append(row)
    return out


def merges(s: Session, limit: int = 200) -> list[MergeLedgerRow]:
    return list(s.scalars(select(MergeLedgerRow).order_by(MergeLedgerRow.id.desc()).limit(limit)))


def get_match_model(s: Session, object_type: str) -> MatchModelRow | None:
    return s.get(MatchModelRow, object_type)


def save_match_model(s: Session, object_type: str, model_json: str, records: int, now: datetime,
                     matched_until: datetime) -> None:
    row = s.get(MatchModelRow, object_type)
    if row is None:
        s.add(MatchModelRow(object_type=object_type, model_json=model_json, records=records, trained_at=now,
                            matched_until=matched_until))
    else:
        row.model_json, row.records, row.trained_at, row.matched_until = model_json, records, now, matched_until


def set_matched_until(s: Session, object_type: str, when: datetime) -> None:
    row = s.get(MatchModelRow, object_type)
    if row is not None and when > row.matched_until:
        row.matched_until = when


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


# --------------------------------------------------------------------------- opportunity matching


def _account_merges(s: Session) -> dict[str, str]:
    """Folded account id → the account it was folded into."""
    rows = s.execute(select(AccountRow.id, AccountRow.merged_into).where(AccountRow.merged_into.is_not(None)))
    return {a: b for a, b in rows if b is not None}


def _live_account(merged: Mapping[str, str], account_id: str | None) -> str | None:
    """The live account ``account_id`` was folded into (itself when not folded)."""
    seen = 0
    while account_id is not None and account_id in merged and seen < 64:
        account_id, seen = merged[account_id], seen + 1
    return account_id


def opportunity_match_records(s: Session, ids: Any = None, account_ids: Any = None) -> list[dict[str, Any]]:
    """Live opportunities as match records (``sync.dedupe_opportunity``): canonical
    fields + ``id``, ``account_id`` resolved through account links to the live account,
    ``account_name`` and ``systems`` (of the entity's live records). ``ids`` or
    ``account_ids`` (live accounts) limit them."""
    t = OpportunityRow
    merged = _account_merges(s)
    q = select(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
    rows: list[Any] = []
    if ids is not None or account_ids is not None:
        if ids is not None:
            keys = sorted(set(ids))
        else:
            wanted = set(account_ids)
            keys = sorted(wanted | {a for a in merged if _live_account(merged, a) in wanted})
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows.extend(s.scalars(q.where(t.id.in_(chunk) if ids is not None else t.account_id.in_(chunk))))
    else:
        rows = list(s.scalars(q.order_by(t.id)))
    accounts = {r.id: _live_account(merged, r.account_id) for r in rows}
    wanted_accounts = sorted({a for a in accounts.values() if a})
    names: dict[str, str | None] = {}
    for i in range(0, len(wanted_accounts), 500):
        names.update(s.execute(select(AccountRow.id, AccountRow.name)
                               .where(AccountRow.id.in_(wanted_accounts[i : i + 500]))).all())
    systems: dict[str, set[str]] = {}
    entity_ids = [r.id for r in rows]
    ref_q = select(ExternalRefRow.canonical_id, ExternalRefRow.system).where(
        ExternalRefRow.object_type == "opportunity", ExternalRefRow.deleted_at.is_(None))
    if ids is None and account_ids is None:
        for cid, system in s.execute(ref_q):
            systems.setdefault(cid, set()).add(system)
    else:
        for i in range(0, len(entity_ids), 500):
            for cid, system in s.execute(ref_q.where(ExternalRefRow.canonical_id.in_(entity_ids[i : i + 500]))):
                systems.setdefault(cid, set()).add(system)
    return [{"id": r.id, "account_id": accounts[r.id], "account_name": names.get(accounts[r.id] or ""),
             "name": r.name, "amount": r.amount, "currency": r.currency, "stage": r.stage,
             "close_date": r.close_date, "type": r.type, "owner_email": r.owner_email,
             "systems": sorted(systems.get(r.id, ()))} for r in rows]


def opportunity_record_copies(s: Session, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each opportunity's live records as last read: ``system``, ``name``, ``close_date``
    and ``amount`` of each (tier 2 tells a deal copied twice into one system by them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    uniq = sorted(set(ids))
    q = select(ExternalRefRow.canonical_id, ExternalRefRow.system, ExternalRefRow.canonical_fields).where(
        ExternalRefRow.object_type == "opportunity", ExternalRefRow.deleted_at.is_(None))
    for i in range(0, len(uniq), 500):
        for cid, system, view in s.execute(q.where(ExternalRefRow.canonical_id.in_(uniq[i : i + 500]))):
            view = view or {}
            out.setdefault(cid, []).append({"system": system, "name": view.get("name"),
                                            "close_date": view.get("close_date"), "amount": view.get("amount")})
    return out


def opportunities_of_accounts_linked_since(s: Session, since: datetime) -> list[str]:
    """Live opportunities of accounts that took another account in since ``since``: their
    deals now share one account and were never compared."""
    merged = _account_merges(s)
    folded = s.execute(select(AccountRow.id).where(AccountRow.merged_into.is_not(None),
                                                   AccountRow.updated_at >= since)).scalars()
    survivors = {_live_account(merged, a) for a in folded}
    if not survivors:
        return []
    raw = sorted(x for x in survivors | {a for a in merged if _live_account(merged, a) in survivors} if x)
    t = OpportunityRow
    out: list[str] = []
    for i in range(0, len(raw), 500):
        out.extend(s.scalars(select(t.id).where(t.account_id.in_(raw[i : i + 500]), t.deleted_at.is_(None),
                                                t.merged_into.is_(None))))
    return sorted(set(out))
