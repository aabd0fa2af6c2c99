"""Shared fixtures: database URLs for SQLite and (when configured) PostgreSQL.

Under pytest-xdist (``make test PYTEST_XDIST="-n 2 ..."``) every worker is its own process with
its own temp directories, sandboxes and PostgreSQL databases (one per test, named by a
random id); the one shared service, Redis, is split per worker below.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "REVSYNC_TEST_POSTGRES_URL"
REDIS_ENV = "REVSYNC_TEST_REDIS_URL"


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker uses its own Redis database (``gw0`` → db 1, ``gw1`` → db 2, ...):
    the fleet tests empty their database before and after each test, and share nothing
    else with the tests another worker runs at the same time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get(REDIS_ENV)
    if url and worker.startswith("gw"):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        os.environ[REDIS_ENV] = urlunsplit(parts._replace(path=f"/{int(worker[2:]) + 1}"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test picks up the developer's own config, database or secrets."""
    for var in ("REVSYNC_CONFIG", "REVSYNC_DATABASE_URL", "REVSYNC_SECRETS_FILE", "REVSYNC_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _default_definitions() -> Iterator[None]:
    """Each test starts and ends with the connectors' default shared definitions (a
    Runner activates its settings' ``[definitions]`` process-wide)."""
    from mapping import definitions

    definitions.activate(None)
    yield
    definitions.activate(None)


def _pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (CI sets it; see .ci/run)")
    name = f"revsync_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (skips when REVSYNC_TEST_POSTGRES_URL is unset)."""
    yield from _pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from _pg_database()
