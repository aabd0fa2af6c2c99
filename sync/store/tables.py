"""Tables: the canonical entities, the identity map (``external_ref``), field
provenance, cursors, runs, the outbox, the error ledger, the merge ledger, the match
review queue and models, leases and API usage.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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
    # the parent account's canonical id (migration 0011)
    parent_id: Mapped[str | None] = mapped_column(ID, index=True)


class ContactRow(_EntityColumns, Base):
    __tablename__ = "contact"

    email: Mapped[str | None] = mapped_column(String(255))
    # email folded for matching (lowercase, plus-tags and Gmail dots removed)
    email_key: Mapped[str | None] = mapped_column(String(255), index=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(Text)
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
    # Hash of the record as last read, before mapping: its raw fields, associations,
    # modstamp and the field map in force (``sync.pull.raw_digest``). A re-read record
    # with the same hash is skipped before it is mapped (a quiet cycle is quiet).
    raw_hash: Mapped[str | None] = mapped_column(String(64))


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
    # When the read that last moved or confirmed this position started: every record
    # committed by then was visible to it, so the next read starts at
    # min(modstamp, read_at - look-back) instead of always modstamp - look-back
    read_at: Mapped[datetime | None]


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
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | done | failed | held
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


class HandoffRow(Base):
    """A closed-won account's handoff to customer success (``sync.handoff``): one per
    account, waiting until its data is complete, then written and marked complete."""

    __tablename__ = "handoff"

    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(ID)
    system: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10), index=True)  # waiting | complete
    missing: Mapped[list[Any]] = mapped_column(JSON, default=list)
    owners: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # missing item → who owns it
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completeness: Mapped[float] = mapped_column(Float, default=0.0)
    first_completeness: Mapped[float] = mapped_column(Float, default=0.0)
    detected_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    run_id: Mapped[int | None] = mapped_column(Integer)


metadata = Base.metadata


ENTITY_TABLES: dict[str, type[AccountRow] | type[ContactRow] | type[OpportunityRow]] = {
    "account": AccountRow,
    "contact": ContactRow,
    "opportunity": OpportunityRow,
}
