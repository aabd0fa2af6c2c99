"""End-to-end: identity lives in the systems, so a lost store rebuilds the same state.

Sync a seeded sandbox until quiet; every record then carries its entity's revsync id
(Salesforce ``Revsync_Id__c``, HubSpot ``revsync_id``, Planhat ``externalId`` or
``sourceId``). Delete the store file, migrate a new one (what ``revsync db upgrade``
does) and sync again: no record is created anywhere, the same canonical ids hold the
same records, and the cycle after writes nothing. The PostgreSQL variant is the move
from SQLite to PostgreSQL the README describes (point the store at PostgreSQL,
``revsync db upgrade``, ``revsync sync``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cli import make_runner, sandbox_settings
from sync import store as st
from sync.migrate import upgrade
from tests.integration import e2e_support as E

pytestmark = pytest.mark.slow

ACCOUNTS, SEED = 40, 11


def identity(world: E.World) -> dict[str, dict[str, list[str]]]:
    """object → canonical id → its live records ("system/native/remote id"), sorted."""
    out: dict[str, dict[str, list[str]]] = {}
    with world.store.session() as s:
        for ref in s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.deleted_at.is_(None))):
            out.setdefault(ref.object_type, {}).setdefault(ref.canonical_id, []).append(
                f"{ref.system}/{ref.native_type}/{ref.remote_id}")
    return {ot: {cid: sorted(v) for cid, v in per.items()} for ot, per in out.items()}


def creates(reports: list[Any]) -> dict[str, int]:
    return {system: sum(r.planned.get(system, {}).get("create", 0) for r in reports)
            for system in E.SYSTEM_NAMES}


def _lose_and_rebuild(make_sandbox: Any, tmp_path: Path, new_url: str | None) -> None:
    sb = make_sandbox(accounts=ACCOUNTS, seed=SEED)
    world = E.open_world(sb, tmp_path / "before")
    first = E.sync_until_quiet(world)
    assert first[-1].writes == 0, E.summarize(first)
    assert sum(creates(first).values()) > 0  # revsync made records (they carry their id)
    before_ids, before_state = identity(world), E.stable_state(world)
    before_counts = E.remote_counts(sb)
    world.store.engine.dispose()

    if new_url is None:  # the store file is lost; a new one is migrated in its place
        db = Path(world.db_url.removeprefix("sqlite:///"))
        db.unlink()
        url = world.db_url
    else:  # the move: a new, empty PostgreSQL store
        url = new_url
    upgrade(url)
    rebuilt = E.World(sb, url, make_runner(sandbox_settings(sb.info, url)))
    reports = E.sync_until_quiet(rebuilt)
    print("after the loss:", E.summarize(reports), "creates:", creates(reports))
    assert creates(reports) == {s: 0 for s in E.SYSTEM_NAMES}
    assert E.remote_counts(sb) == before_counts
    assert reports[-1].writes == 0 and len(reports) <= 2, E.summarize(reports)
    after_ids = identity(rebuilt)
    for ot in before_ids:
        missing = sorted(set(before_ids[ot]) - set(after_ids.get(ot, {})))
        assert missing == [], f"{ot}: {len(missing)} canonical ids not rebuilt, e.g. {missing[:3]}"
        changed = [cid for cid, refs in before_ids[ot].items() if after_ids[ot][cid] != refs]
        assert changed == [], f"{ot}: records linked differently, e.g. {changed[:3]}"
    assert after_ids == before_ids
    assert E.diff_states(before_state, E.stable_state(rebuilt)) == []
    assert E.duplicate_external_ids(E.read_remote(rebuilt)) == {}
    # and the cycle after writes nothing
    again = rebuilt.runner.run_cycle()
    assert again.writes == 0 and sum(sum(k.values()) for k in again.planned.values()) == 0


def test_a_lost_store_is_rebuilt_from_the_systems_with_no_create(make_sandbox: Any, tmp_path: Path) -> None:
    _lose_and_rebuild(make_sandbox, tmp_path, None)


@pytest.mark.postgres
def test_moving_from_sqlite_to_postgresql_rebuilds_the_same_state(
    make_sandbox: Any, tmp_path: Path, pg_url: str,
) -> None:
    _lose_and_rebuild(make_sandbox, tmp_path, pg_url)
