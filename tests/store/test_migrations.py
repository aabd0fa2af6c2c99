"""The migrations create exactly the store's schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from sync.migrate import head_revision, upgrade
from sync.store import (
    AccountRow,
    ExternalRefRow,
    Store,
    make_engine,
    metadata,
)


def test_upgrade_head_on_empty_database_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"migrations and models differ: {diff}"
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert Store(engine).schema_revision() == head_revision()
    engine.dispose()


def test_a_model_change_without_a_migration_is_detected(tmp_path) -> None:
    """The comparison above can fail: drop a column from a copy and it is reported."""
    from sqlalchemy import Column, MetaData, String, Table

    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    changed = MetaData()
    for t in metadata.tables.values():
        t.to_metadata(changed)
    Table("account", changed, Column("new_field", String(10)), extend_existing=True)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), changed)
    assert any(d[0] == "add_column" and d[3].name == "new_field" for d in diff)


def test_store_round_trips_aware_datetimes_decimals_and_json(db_url: str) -> None:
    upgrade(db_url)
    store = Store.from_url(db_url)
    now = datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC)
    with store.session() as s:
        s.add(AccountRow(id="a1", name="Acme", created_at=now, updated_at=now, extras={"tier": "gold"},
                         arr=Decimal("120000.50"), renewal_date=date(2027, 1, 31)))
    with store.session() as s:
        row = s.scalars(select(AccountRow)).one()
        assert row.created_at == now and row.created_at.tzinfo is not None
        assert row.arr == Decimal("120000.50")
        assert row.renewal_date == date(2027, 1, 31)
        assert row.extras == {"tier": "gold"}
    status = store.status()
    assert status["entities"]["account"] == 1


def test_external_ref_is_unique_per_system_object_remote_id(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    upgrade(db_url)
    store = Store.from_url(db_url)
    now = datetime.now(UTC)
    ref = {"canonical_id": "c1", "system": "hubspot", "object_type": "contact", "native_type": "contacts",
               "remote_id": "101", "first_seen_at": now, "last_seen_at": now}
    with store.session() as s:
        s.add(ExternalRefRow(**ref))
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(ExternalRefRow(**{**ref, "canonical_id": "c2"}))


def test_naive_datetimes_are_refused(tmp_path) -> None:
    from sqlalchemy.exc import StatementError

    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(url)
    store = Store.from_url(url)
    with pytest.raises(StatementError, match="naive datetime"), store.session() as s:
        s.add(AccountRow(id="a1", created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1)))
