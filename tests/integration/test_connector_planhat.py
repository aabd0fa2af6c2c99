"""PlanhatConnector (real requests client, HTTPS, CA bundle) against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    ErrorCategory,
    OpKind,
    RetryPolicy,
    WriteOp,
)
from connectors.planhat import PlanhatConnector
from mapping.canonical import ObjectType
from sandbox.planhat import PlanhatEmulator
from sandbox.server import Sandbox

from .conftest import MakeSandbox
from .test_sandbox_planhat import write_planhat_seed


def emulator(sb: Sandbox) -> PlanhatEmulator:
    emu = sb.emulators["planhat"]
    assert isinstance(emu, PlanhatEmulator)
    return emu


def connect(sb: Sandbox, budget: ApiBudget | None = None, **options: Any) -> PlanhatConnector:
    settings = ConnectionSettings(
        name="cs", kind="planhat",
        options={"base_url": sb.urls["planhat"], "ca_bundle": str(sb.info["ca_cert"]), "timeout": 10, **options},
        secrets={"api_token": sb.info["credentials"]["planhat"]["api_token"]},
    )
    return PlanhatConnector.from_settings(
        settings, budget=budget or ApiBudget(), retry=RetryPolicy(attempts=8, sleep=lambda s: None)
    )


@pytest.fixture
def ph(make_sandbox: MakeSandbox, tmp_path: Path) -> Sandbox:
    return make_sandbox(data_dir=write_planhat_seed(tmp_path), systems=("planhat",))


def test_given_seeded_sandbox_when_read_write_back_read_then_each_record_once_and_changes_land(ph: Sandbox) -> None:
    conn = connect(ph, page_size=7)
    emu = emulator(ph)
    companies = [r for page in conn.read_pages(ObjectType.ACCOUNT) for r in page]
    endusers = list(conn.read(ObjectType.CONTACT))
    assert len(companies) == len({r.remote_id for r in companies}) == emu.counts()["companies"] == 40
    assert len(endusers) == len({r.remote_id for r in endusers}) == emu.counts()["endusers"] == 80
    company_ids = {r.remote_id for r in companies}
    assert all(r.associations["account"][0] in company_ids for r in endusers)
    assert {r.fields["_owner_email"] for r in companies} == {f"csm{i}@vendor.example" for i in range(3)}
    assert all(r.modstamp is not None for r in companies)

    # write every record back (one field changed), by _id
    ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}", remote_id=r.remote_id,
                   fields={"position": f"Role {r.remote_id[-4:]}"},
                   associations=r.associations)
           for r in endusers]
    results = conn.write(ObjectType.CONTACT, ops)
    assert [r.op for r in results] == ops and all(r.success for r in results)
    again = {r.remote_id: r for r in conn.read(ObjectType.CONTACT)}
    assert len(again) == 80
    assert all(again[op.remote_id or ""].fields["position"] == op.fields["position"] for op in ops)

    # owner by email round trip on companies
    target = companies[0]
    [res] = conn.write(ObjectType.ACCOUNT, [WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "canon-c0",
                                                    remote_id=target.remote_id,
                                                    fields={"_owner_email": "CSM2@vendor.example"})])
    assert res.success
    conn.reset_caches()
    reread = {r.remote_id: r for r in conn.read(ObjectType.ACCOUNT)}
    assert reread[target.remote_id].fields["_owner_email"] == "csm2@vendor.example"
    assert sorted(conn.list_ids(ObjectType.ACCOUNT)) == sorted(reread)


def test_given_creates_when_retried_then_no_duplicates_and_deletes_apply(ph: Sandbox) -> None:
    conn = connect(ph)
    emu = emulator(ph)
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, f"9f0c0000-0000-4000-8000-{i:012d}",
                   fields={"name": f"New Co {i}", "_owner_email": "csm1@vendor.example"}) for i in range(5)]
    first = conn.write(ObjectType.ACCOUNT, ops)
    assert all(r.success and r.created for r in first)
    second = conn.write(ObjectType.ACCOUNT, ops)  # a retried create matches sourceId
    assert all(r.success and not r.created for r in second)
    assert [r.remote_id for r in first] == [r.remote_id for r in second]
    assert emu.counts()["companies"] == 45
    doc = emu.get("companies", first[0].remote_id or "")
    assert doc is not None and doc["sourceId"] == ops[0].key and doc["owner"] == "64000001" + f"{1:016x}"
    dels = [WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, op.key, remote_id=r.remote_id) for op, r in zip(ops, first, strict=True)]
    assert all(r.success for r in conn.write(ObjectType.ACCOUNT, dels))
    assert emu.counts()["companies"] == 40
    assert all(r.success for r in conn.write(ObjectType.ACCOUNT, dels[:1]))  # already gone: still success


def test_given_5xx_and_429_faults_when_read_then_every_record_once(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = make_sandbox(data_dir=write_planhat_seed(tmp_path), systems=("planhat",),
                      faults="planhat:server_error=0.2, planhat:rate_limit=0.2;retry_after=0")
    budget = ApiBudget()
    conn = connect(sb, budget=budget, page_size=5)
    ids = [r.remote_id for r in conn.read(ObjectType.CONTACT)]
    assert len(ids) == len(set(ids)) == 80
    faults = sb.ctx.stats.snapshot()["planhat"]["faults"]
    assert sum(faults.values()) > 0
    assert budget.calls("planhat") == sb.ctx.stats.snapshot()["planhat"]["calls"]


def test_given_partial_fault_when_bulk_write_then_failures_mapped_to_their_ops(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(data_dir=write_planhat_seed(tmp_path), systems=("planhat",),
                      faults="planhat/companies.bulk:partial=1;fraction=0.3")
    conn = connect(sb)
    emu = emulator(sb)
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, f"key-{i:03d}", fields={"name": f"P{i}"}) for i in range(60)]
    results = conn.write(ObjectType.ACCOUNT, ops)
    ok = [r for r in results if r.success]
    bad = [r for r in results if not r.success]
    assert ok and bad
    for r in ok:
        doc = emu.get("companies", r.remote_id or "")
        assert doc is not None and doc["sourceId"] == r.op.key
    assert emu.counts()["companies"] == 40 + len(ok)
    assert all(r.category == ErrorCategory.SERVER and r.remote_id is None for r in bad)


def test_given_generated_seed_when_read_then_counts_match_manifest_and_links_resolve(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(systems=("planhat",), accounts=30, seed=11)
    assert sb.manifest is not None
    expected = sb.manifest["counts"]["planhat"]
    conn = connect(sb)
    companies = list(conn.read(ObjectType.ACCOUNT))
    endusers = list(conn.read(ObjectType.CONTACT))
    assert len({r.remote_id for r in companies}) == len(companies) == expected["companies"]
    assert len({r.remote_id for r in endusers}) == len(endusers) == expected["endusers"]
    company_ids = {r.remote_id for r in companies}
    assert all(r.associations["account"][0] in company_ids for r in endusers)
    owned = [r for r in companies if r.fields.get("owner")]
    assert owned and all(r.fields["_owner_email"] for r in owned)


def test_given_delete_between_pages_when_read_then_no_live_record_skipped(ph: Sandbox) -> None:
    conn = connect(ph, page_size=8)  # overlap of 2 records per page boundary
    pages = conn.read_pages(ObjectType.CONTACT)
    first = list(next(pages))
    assert len(first) == 8
    # two records of the first page disappear while the reader is between pages
    gone = [WriteOp(OpKind.DELETE, ObjectType.CONTACT, f"k{i}", remote_id=first[i].remote_id) for i in (2, 5)]
    assert all(r.success for r in conn.write(ObjectType.CONTACT, gone))
    rest = [r.remote_id for page in pages for r in page]
    seen = [r.remote_id for r in first] + rest
    assert len(seen) == len(set(seen)) == 80  # 78 live records + the 2 read before the delete
    assert set(seen) - {op.remote_id for op in gone} == set(conn.list_ids(ObjectType.CONTACT))


def test_given_every_item_invalid_when_bulk_write_then_each_op_fails_alone_and_nothing_raised(ph: Sandbox) -> None:
    """Planhat answers 400 when every item fails (entries in createdErrors/updatedErrors):
    each op gets its own failure; the run goes on."""
    conn = connect(ph)
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, f"9f0c0000-0000-4000-8000-{i:012d}",
                   fields={"phone": f"+1 415 555 01{i:02d}"}) for i in range(3)]  # no name: all invalid
    results = conn.write(ObjectType.ACCOUNT, ops)
    assert [r.success for r in results] == [False, False, False]
    assert all(r.category == ErrorCategory.VALIDATION and r.field == "name" for r in results)
    assert emulator(ph).counts()["companies"] == 40


def test_given_records_without_permission_when_bulk_write_then_403_maps_only_them(ph: Sandbox) -> None:
    conn = connect(ph)
    emu = emulator(ph)
    ids = list(conn.list_ids(ObjectType.ACCOUNT))[:3]
    emu.deny("companies", ids[1])
    ops = [WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, f"c-{i}", remote_id=rid, fields={"name": f"Renamed {i}"})
           for i, rid in enumerate(ids)]
    ops.append(WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, "9f0c0000-0000-4000-8000-000000000777",
                       fields={"name": "Allowed create"}))
    results = conn.write(ObjectType.ACCOUNT, ops)
    assert [r.success for r in results] == [True, False, True, True]
    assert results[1].category == ErrorCategory.PERMISSION
    assert (emu.get("companies", ids[0]) or {})["name"] == "Renamed 0"
    assert (emu.get("companies", ids[1]) or {})["name"] != "Renamed 1"
    assert results[3].created and emu.counts()["companies"] == 41
    # a delete the account may not make fails for that record only
    [gone, kept] = conn.write(ObjectType.ACCOUNT, [
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, "c-0", remote_id=ids[0]),
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, "c-1", remote_id=ids[1])])
    assert gone.success and not kept.success and kept.category == ErrorCategory.PERMISSION
    assert emu.get("companies", ids[1]) is not None


def test_given_the_same_key_twice_when_bulk_write_then_no_400_and_last_value_wins(ph: Sandbox) -> None:
    conn = connect(ph)
    key = "9f0c0000-0000-4000-8000-000000000888"
    ops = [WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, key, fields={"name": "First"}),
           WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, key, fields={"name": "Second"})]
    first, second = conn.write(ObjectType.ACCOUNT, ops)
    assert first.success and second.success and first.remote_id == second.remote_id
    assert (emulator(ph).get("companies", first.remote_id or "") or {})["name"] == "Second"
    assert emulator(ph).counts()["companies"] == 41
