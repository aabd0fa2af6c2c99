"""HubSpotConnector (real hubspot-api-client 12 over HTTPS, CA bundle) against the sandbox."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    Cursor,
    OpKind,
    RetryPolicy,
    WriteOp,
)
from connectors.hubspot import HubSpotConnector
from mapping.canonical import ObjectType
from sandbox.hubspot import HubSpotEmulator
from sandbox.server import Sandbox

from .conftest import MakeSandbox


def emulator(sb: Sandbox) -> HubSpotEmulator:
    emu = sb.emulators["hubspot"]
    assert isinstance(emu, HubSpotEmulator)
    return emu


def connect(
    sb: Sandbox, *, oauth: bool = False, cls: type[HubSpotConnector] = HubSpotConnector,
    budget: ApiBudget | None = None,
) -> HubSpotConnector:
    creds = sb.info["credentials"]["hubspot"]
    secrets = ({k: creds[k] for k in ("client_id", "client_secret", "refresh_token")} if oauth
               else {"access_token": creds["access_token"]})
    settings = ConnectionSettings(
        name="marketing", kind="hubspot",
        options={"host": sb.urls["hubspot"], "ca_bundle": str(sb.info["ca_cert"]), "timeout": 10},
        secrets=secrets,
    )
    conn = cls.from_settings(settings, budget=budget or ApiBudget(),
                             retry=RetryPolicy(attempts=10, sleep=lambda s: None))
    assert isinstance(conn, cls)
    return conn


class SmallSearch(HubSpotConnector):
    """Caps shrunk so a small sandbox exercises the re-anchoring."""

    SEARCH_PAGE: ClassVar[int] = 4
    SEARCH_CAP: ClassVar[int] = 12


@pytest.fixture
def hs(make_sandbox: MakeSandbox) -> Sandbox:
    return make_sandbox(systems=("hubspot",))


def test_given_seeded_sandbox_when_read_write_back_read_then_each_record_once_and_changes_land(hs: Sandbox) -> None:
    conn = connect(hs)
    counts = emulator(hs).counts()
    companies = list(conn.read(ObjectType.ACCOUNT))
    contacts = list(conn.read(ObjectType.CONTACT))
    deals = list(conn.read(ObjectType.OPPORTUNITY))
    for recs, native in ((companies, "companies"), (contacts, "contacts"), (deals, "deals")):
        assert len(recs) == len({r.remote_id for r in recs}) == counts[native] > 0
        assert all(r.modstamp is not None and r.native_type == native for r in recs)
    company_ids = {r.remote_id for r in companies}
    linked = [r for r in contacts if r.associations.get("account")]
    assert linked and all(set(r.associations["account"]) <= company_ids for r in linked)
    assert any(r.associations.get("account") for r in deals)
    assert all(r.fields.get("_owner_email", "@").count("@") == 1 for r in companies)

    ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}", remote_id=r.remote_id,
                   fields={"jobtitle": f"Role {r.remote_id[-4:]}", "_owner_email": r.fields.get("_owner_email")})
           for r in contacts]
    results = conn.write(ObjectType.CONTACT, ops)
    assert [r.op for r in results] == ops and all(r.success for r in results)

    again = {r.remote_id: r for r in conn.read(ObjectType.CONTACT)}
    assert len(again) == len(contacts)
    assert all(again[op.remote_id or ""].fields["jobtitle"] == op.fields["jobtitle"] for op in ops)
    assert all(again[r.remote_id].fields.get("_owner_email") == r.fields.get("_owner_email") for r in contacts)


def test_given_new_records_when_upserted_twice_then_created_once_and_linked(hs: Sandbox) -> None:
    conn = connect(hs)
    before = emulator(hs).counts()
    company = next(iter(conn.read(ObjectType.ACCOUNT)))
    ops = [WriteOp(OpKind.UPSERT, ObjectType.CONTACT, f"canon-new-{i}",
                   fields={"email": f"new.person{i}@example.org", "firstname": f"New{i}", "lastname": "Person"},
                   associations={"account": (company.remote_id,)})
           for i in range(3)]

    first = conn.write(ObjectType.CONTACT, ops)
    second = conn.write(ObjectType.CONTACT, ops)  # a retried create never duplicates

    assert all(r.success and r.created for r in first)
    assert all(r.success and not r.created for r in second)
    assert [r.remote_id for r in first] == [r.remote_id for r in second]
    assert emulator(hs).counts()["contacts"] == before["contacts"] + 3
    created = {r.remote_id: r for r in conn.read(ObjectType.CONTACT) if r.remote_id in {x.remote_id for x in first}}
    assert {r.fields["revsync_id"] for r in created.values()} == {op.key for op in ops}
    assert all(r.associations.get("account") == (company.remote_id,) for r in created.values())


def test_given_one_invalid_value_when_batch_writing_then_split_isolates_it_and_the_rest_land(hs: Sandbox) -> None:
    """HubSpot refuses a whole batch (400 VALIDATION_ERROR) for one invalid value: the
    connector splits until the bad op is alone; the good ones land, the bad one is a
    per-record validation error on its field."""
    conn = connect(hs)
    before = emulator(hs).counts()["deals"]
    deals = list(conn.read(ObjectType.OPPORTUNITY))[:5]
    creates = [WriteOp(OpKind.UPSERT, ObjectType.OPPORTUNITY, f"canon-deal-{i}",
                       fields={"dealname": f"Split {i}", "amount": "lots" if i == 3 else str(100 + i)})
               for i in range(6)]
    updates = [WriteOp(OpKind.UPDATE, ObjectType.OPPORTUNITY, f"canon-upd-{i}", remote_id=d.remote_id,
                       fields={"amount": "n/a" if i == 1 else str(7000 + i)})
               for i, d in enumerate(deals)]

    made = conn.write(ObjectType.OPPORTUNITY, creates)
    changed = conn.write(ObjectType.OPPORTUNITY, updates)

    assert [r.success for r in made] == [True, True, True, False, True, True]
    assert made[3].category is not None and made[3].category.value == "validation"
    assert made[3].field == "amount"
    assert emulator(hs).counts()["deals"] == before + 5
    assert [r.success for r in changed] == [True, False, True, True, True]
    assert changed[1].field == "amount" and changed[1].remote_id == deals[1].remote_id
    now = {r.remote_id: r.fields.get("amount") for r in conn.read(ObjectType.OPPORTUNITY)}
    assert now[deals[0].remote_id] == "7000" and now[deals[4].remote_id] == "7004"
    assert now[deals[1].remote_id] == deals[1].fields.get("amount")  # the bad value never landed


def test_given_key_already_on_another_contact_when_upserting_then_links_to_it(hs: Sandbox) -> None:
    conn = connect(hs)
    a, b = list(conn.read(ObjectType.CONTACT))[:2]
    [tagged] = conn.write(ObjectType.CONTACT, [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, "canon-x",
                                                       remote_id=a.remote_id, fields={"revsync_id": "canon-x"})])
    assert tagged.success
    # a create for canon-x under a fresh email collides with a's revsync_id: linked to a
    [res] = conn.write(ObjectType.CONTACT, [WriteOp(OpKind.UPSERT, ObjectType.CONTACT, "canon-x",
                                                    fields={"email": "fresh.address@example.org", "firstname": "Linked"})])
    assert res.success and res.remote_id == a.remote_id and not res.created
    assert b.remote_id != a.remote_id


def test_given_more_results_than_cap_when_incremental_read_then_each_record_once(hs: Sandbox) -> None:
    conn = connect(hs, cls=SmallSearch)
    n = emulator(hs).counts()["contacts"]
    assert n > SmallSearch.SEARCH_CAP

    recs = list(conn.read(ObjectType.CONTACT, since=Cursor(datetime(2000, 1, 1, tzinfo=UTC))))

    assert len(recs) == len({r.remote_id for r in recs}) == n
    stamps = [r.modstamp for r in recs]
    assert stamps == sorted(stamps)  # type: ignore[type-var]


def test_given_edits_in_hubspot_when_incremental_then_changes_deletes_and_merges_seen(hs: Sandbox) -> None:
    conn = connect(hs)
    emu = emulator(hs)
    natives = {"companies": ObjectType.ACCOUNT, "contacts": ObjectType.CONTACT, "deals": ObjectType.OPPORTUNITY}
    start = max(r.modstamp for ot in natives.values() for r in conn.read(ot) if r.modstamp)
    edits: list[dict[str, Any]] = emu.apply_edits(random.Random(3), 12, ["update", "delete", "merge"])
    cursor = Cursor(start)
    seen_kinds = set()

    for native, ot in natives.items():
        changed = {r.remote_id for r in conn.read(ot, since=cursor)}
        gone = {g.remote_id: g for g in conn.read_deleted(ot, since=cursor)}
        assert all(g.deleted for g in gone.values())
        for e in (e for e in edits if e["object"] == native):
            seen_kinds.add(e["kind"])
            if e["kind"] == "delete":
                assert e["id"] in gone and gone[e["id"]].merged_into is None
            elif e["id"] not in gone:  # updated (or merged into) and still alive
                assert e["id"] in changed
            if e["kind"] == "merge":
                for old in e["merged_ids"]:
                    assert gone[old].merged_into is not None
                    assert old not in changed
    assert seen_kinds == {"update", "delete", "merge"}


def test_given_faults_when_reading_and_writing_then_retried_and_every_op_has_a_result(make_sandbox: MakeSandbox) -> None:
    # every endpoint's 1st call is rate limited, its 2nd gets a 500, its 3rd a TCP reset
    sb = make_sandbox(systems=("hubspot",), faults={"script": [
        {"system": "hubspot", "nth": 1, "kind": "rate_limit", "params": {"retry_after": 0}},
        {"system": "hubspot", "nth": 2, "kind": "server_error"},
        {"system": "hubspot", "nth": 3, "kind": "reset"},
    ]})
    budget = ApiBudget()
    conn = connect(sb, budget=budget)
    emu = emulator(sb)

    contacts = list(conn.read(ObjectType.CONTACT))
    assert len(contacts) == len({r.remote_id for r in contacts}) == emu.counts()["contacts"]
    injected = sb.ctx.stats.snapshot()["hubspot"]["faults"]
    assert injected.get("rate_limit") and injected.get("server_error") and injected.get("reset"), injected

    sb.ctx.faults.set_spec("hubspot:partial=1;fraction=0.3, seed=5")
    ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}", remote_id=r.remote_id,
                   fields={"jobtitle": "Faulted"}) for r in contacts]
    results = conn.write(ObjectType.CONTACT, ops)
    assert [r.op for r in results] == ops
    failed = [r for r in results if not r.success]
    assert failed and len(failed) < len(ops)
    assert all(r.category is not None and r.remote_id for r in failed)
    stats = sb.ctx.stats.snapshot()["hubspot"]
    assert budget.calls("hubspot") == stats["calls"]


def test_given_oauth_and_expiring_tokens_when_reading_then_refreshes(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(systems=("hubspot",))
    conn = connect(sb, oauth=True)
    sb.ctx.faults.set_spec({"script": [{"system": "hubspot", "endpoint": "crm.list", "nth": 1,
                                        "kind": "expired_token"}]})

    recs = list(conn.read(ObjectType.ACCOUNT))

    assert len(recs) == emulator(sb).counts()["companies"]
    stats = sb.ctx.stats.snapshot()["hubspot"]
    assert stats["faults"] == {"expired_token": 1}
    assert stats["by_endpoint"]["oauth"] == 2  # the first token, then one refresh after the 401
    assert stats["by_endpoint"]["crm.list"] == 2


def test_given_slow_answer_when_reading_then_times_out_and_retries(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(systems=("hubspot",), faults={"script": [
        {"system": "hubspot", "endpoint": "crm.list", "nth": 1, "kind": "slow", "params": {"seconds": 1.5}}]})
    creds = sb.info["credentials"]["hubspot"]
    settings = ConnectionSettings(
        name="marketing", kind="hubspot",
        options={"host": sb.urls["hubspot"], "ca_bundle": str(sb.info["ca_cert"]), "timeout": 0.5},
        secrets={"access_token": creds["access_token"]},
    )
    conn = HubSpotConnector.from_settings(settings, budget=ApiBudget(),
                                          retry=RetryPolicy(attempts=3, sleep=lambda s: None))

    ids = list(conn.list_ids(ObjectType.ACCOUNT))

    assert sorted(ids) == sorted(r.remote_id for r in conn.read(ObjectType.ACCOUNT))
    assert len(ids) == emulator(sb).counts()["companies"]
    assert sb.ctx.stats.snapshot()["hubspot"]["faults"] == {"slow": 1}


def test_given_merge_op_when_writing_then_survivor_gets_new_id_and_losers_reported(hs: Sandbox) -> None:
    conn = connect(hs)
    a, b, c = list(conn.read(ObjectType.ACCOUNT))[:3]
    before = max(r.modstamp for r in (a, b, c) if r.modstamp)
    op = WriteOp(OpKind.MERGE, ObjectType.ACCOUNT, "canon-merged", remote_id=a.remote_id,
                 merge_from=(b.remote_id, c.remote_id))

    [res] = conn.write(ObjectType.ACCOUNT, [op])

    assert res.success and res.remote_id not in {a.remote_id, b.remote_id, c.remote_id}
    live = {r.remote_id for r in conn.read(ObjectType.ACCOUNT)}
    assert res.remote_id in live and not {a.remote_id, b.remote_id, c.remote_id} & live
    gone = {g.remote_id: g.merged_into for g in conn.read_deleted(ObjectType.ACCOUNT, since=Cursor(before))}
    assert {gone[x] for x in (a.remote_id, b.remote_id, c.remote_id)} == {res.remote_id}
