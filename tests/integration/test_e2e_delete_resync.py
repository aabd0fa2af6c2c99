"""The Salesforce delete feed recovers after its log is purged past our position.

Before: getDeleted answered with an ``earliestDateAvailable`` after the cursor, the
cycle reported "delete log starts after the cursor", the delete cursor never moved,
and every later cycle repeated it while deletes stopped flowing (``revsync backfill``
did not help). Now the cycle sweeps deletes once (what queryAll still reports, then
an id listing diffed against the identity map) and restarts the feed from now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce_soql import sf_datetime
from sync import store as st

from .conftest import MakeSandbox
from .e2e_support import open_world, sync_until_quiet


def live_contacts(emu: SalesforceEmulator, n: int) -> list[str]:
    with emu.lock:
        return [rid for rid, rec in emu.org.records["Contact"].items() if not rec.get("IsDeleted")][:n]


def deleted_refs(world: object, ids: list[str]) -> dict[str, bool]:
    store = world.store  # type: ignore[attr-defined]
    with store.session() as s:
        refs = st.refs_by_remote_id(s, "salesforce", "Contact", ids)
        return {rid: refs[rid].deleted_at is not None for rid in ids if rid in refs}


def test_purged_delete_log_is_swept_once_then_deletes_flow_again(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = make_sandbox(accounts=12, seed=31)
    emu = sb.emulators["salesforce"]
    assert isinstance(emu, SalesforceEmulator)
    world = open_world(sb, tmp_path / "w")
    sync_until_quiet(world)
    world.runner.run_cycle()  # the delete clock has started for every object

    soft, hard, later = live_contacts(emu, 3)
    assert deleted_refs(world, [soft, hard, later]) == {soft: False, hard: False, later: False}
    with emu.lock:
        emu.org.soft_delete("Contact", soft, sf_datetime(datetime.now(UTC)))  # in the recycle bin
        emu.org.hard_delete("Contact", hard)  # gone for good: only an id listing shows it
    # Salesforce purges its delete log: it now starts after our delete cursor
    emu.set_earliest_deleted("Contact", datetime.now(UTC))

    recovered = world.runner.run_cycle()

    notes = [m for m in recovered.messages if "restarted the delete feed" in m]
    assert len(notes) == 1 and notes[0].startswith("salesforce/Contact: ")
    assert recovered.status != "failed"
    assert deleted_refs(world, [soft, hard]) == {soft: True, hard: True}
    assert recovered.deleted >= 2

    # the next cycles are incremental again: no repeat, and a new delete flows
    with emu.lock:
        emu.org.soft_delete("Contact", later, sf_datetime(datetime.now(UTC)))
    after = world.runner.run_cycle()
    assert not [m for m in after.messages if "delete" in m and "salesforce" in m], after.messages
    assert deleted_refs(world, [later]) == {later: True}
