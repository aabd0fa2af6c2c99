"""A console app over the hand-made store, with a known password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sync.quality_seed import NOW, seed
from web.app import Console, create_app
from web.auth import AuditLog, Credentials, hash_password

PASSWORD = "correct horse battery staple"
SECRET_IN_DATA = "00Dxx0000001gPL!AQ4AQFakeSessionTokenValue"


@pytest.fixture
def console(tmp_path: Path) -> Console:
    store = seed(f"sqlite:///{tmp_path / 'web.db'}")
    c = Console(store=store, credentials=Credentials("admin", hash_password(PASSWORD)),
                audit=AuditLog(tmp_path / "audit.jsonl"), now=lambda: NOW, secrets=[SECRET_IN_DATA])
    c.refresh_quality(wait=True)
    return c


@pytest.fixture
def app(console: Console) -> Any:
    return create_app(console)
