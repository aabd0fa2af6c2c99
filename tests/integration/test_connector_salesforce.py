"""SalesforceConnector (real simple-salesforce client, HTTPS, CA bundle) against the sandbox."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

import pytest

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    Cursor,
    OpKind,
    RemoteRecord,
    ResyncRequired,
    RetryPolicy,
    WriteOp,
)
from connectors.salesforce import SalesforceConnector
from mapping.canonical import ObjectType
from sandbox.salesforce import SalesforceEmulator
from sandbox.server import Sandbox

from .conftest import MakeSandbox


def emulator(sb: Sandbox) -> SalesforceEmulator:
    emu = sb.emulators["salesforce"]
    assert isinstance(emu, SalesforceEmulator)
    return emu


def connect(
    sb: Sandbox, budget: ApiBudget | None = None, secrets: dict[str, str] | None = None,
    **options: Any,
) -> SalesforceConnector:
    base = sb.urls["salesforce"]
    cred = sb.info["credentials"]["salesforce"]
    settings = ConnectionSettings(
        name="sf-sandbox", kind="salesforce",
        options={"instance_url": base, "token_url": f"{base}/services/oauth2/token",
                 "ca_bundle": str(sb.info["ca_cert"]), "timeout": 10, **options},
        secrets=secrets or {k: cred[k] for k in ("client_id", "client_secret", "refresh_token")},
    )
    return SalesforceConnector.from_settings(
        settings, budget=budget or ApiBudget(), retry=RetryPolicy(attempts=8, sleep=lambda s: None)
    )


def read_all(conn: SalesforceConnector, ot: ObjectType, native: str | None = None,
             since: Cursor | None = None) -> list[RemoteRecord]:
    return [r for page in conn.read_pages(ot, native=native, since=since) for r in page]


@pytest.fixture
def sf(make_sandbox: MakeSandbox) -> Sandbox:
    return make_sandbox(accounts=100, systems=("salesforce",))


def test_given_seeded_sandbox_when_read_write_back_read_then_each_record_once_and_changes_land(
    sf: Sandbox,
) -> None:
    conn = connect(sf, page_size=200)
    emu = emulator(sf)
    counts = emu.counts()
    accounts = read_all(conn, ObjectType.ACCOUNT)
    contact_pages = list(conn.read_pages(ObjectType.CONTACT))
    contacts = [r for p in contact_pages for r in p]
    leads = read_all(conn, ObjectType.CONTACT, native="Lead")
    opps = read_all(conn, ObjectType.OPPORTUNITY)

    assert len(contact_pages) >= 2 and all(len(p) <= 200 for p in contact_pages)
    assert len(accounts) == len({r.remote_id for r in accounts}) == counts["Account"]
    assert len(contacts) == len({r.remote_id for r in contacts}) == counts["Contact"]
    assert len(opps) == len({r.remote_id for r in opps}) == counts["Opportunity"]
    assert {r.native_type for r in leads} == {"Lead"} and all(r.fields["IsConverted"] is False for r in leads)
    stamps = [(r.modstamp, r.remote_id) for r in contacts]
    assert stamps == sorted(stamps)  # oldest first across pages
    account_ids = {r.remote_id for r in accounts}
    assert all(r.associations["account"][0] in account_ids for r in contacts if r.associations)
    assert any("contact" in r.associations for r in opps)
    assert all(r.fields["_owner_email"] for r in accounts)

    # write every contact back (one field changed), by Id, through Collections
    ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}", remote_id=r.remote_id,
                   fields={"Title": f"Role {r.remote_id[-4:]}"}, associations=r.associations)
           for r in contacts]
    results = conn.write(ObjectType.CONTACT, ops)
    assert [r.op for r in results] == ops and all(r.success for r in results)

    last_stamp, last_id = max(stamps)
    assert last_stamp is not None
    changed = read_all(conn, ObjectType.CONTACT, since=Cursor(last_stamp, last_id))
    assert {r.remote_id for r in changed} == {r.remote_id for r in contacts}
    titles = {r.remote_id: r.fields["Title"] for r in changed}
    assert all(titles[op.remote_id or ""] == op.fields["Title"] for op in ops)

    # creates upsert on the external id: a retried create never duplicates
    owner_email = sorted(conn.owners().values())[0]
    creates = [WriteOp(OpKind.CREATE, ObjectType.CONTACT, f"00000000-0000-4000-8000-00000000000{i}",
                       fields={"LastName": f"New{i}", "Email": f"new{i}@example.org",
                               "_owner_email": owner_email.upper()},
                       associations={"account": (accounts[i].remote_id,)})
               for i in range(3)]
    first = conn.write(ObjectType.CONTACT, creates)
    again = conn.write(ObjectType.CONTACT, creates)
    assert all(r.success and r.created for r in first)
    assert all(r.success and not r.created for r in again)
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert emu.counts()["Contact"] == counts["Contact"] + 3
    conn.reset_caches()
    fresh = {r.remote_id: r for r in read_all(conn, ObjectType.CONTACT)}
    made = fresh[first[0].remote_id or ""]
    assert made.fields["Revsync_Id__c"] == creates[0].key
    assert made.fields["_owner_email"] == owner_email
    assert made.associations == {"account": (accounts[0].remote_id,)}


def test_given_threshold_exceeded_when_read_and_write_then_bulk_api_matches_rest(sf: Sandbox) -> None:
    rest = connect(sf, bulk_threshold=0)
    bulk = connect(sf, bulk_threshold=50, bulk_poll_seconds=0.1)
    by_rest = {r.remote_id: r for r in read_all(rest, ObjectType.CONTACT)}
    by_bulk = read_all(bulk, ObjectType.CONTACT)
    assert len(by_bulk) == len({r.remote_id for r in by_bulk}) == len(by_rest)
    for rec in by_bulk:
        assert rec.modstamp == by_rest[rec.remote_id].modstamp
        assert rec.associations == by_rest[rec.remote_id].associations
        assert rec.fields["LastName"] == by_rest[rec.remote_id].fields["LastName"]
        assert rec.fields["HasOptedOutOfEmail"] == by_rest[rec.remote_id].fields["HasOptedOutOfEmail"]

    targets = list(by_rest.values())[:60]
    ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}", remote_id=r.remote_id,
                   fields={"Title": f"Bulk {i}"}) for i, r in enumerate(targets)]
    creates = [WriteOp(OpKind.CREATE, ObjectType.CONTACT, f"bulk-key-{i:04d}",
                       fields={"LastName": f"Bulk{i}"}) for i in range(55)]
    results = bulk.write(ObjectType.CONTACT, ops + creates)
    assert [r.op for r in results] == ops + creates
    assert all(r.success for r in results)
    assert all(r.created and r.remote_id for r in results[60:])
    endpoints = sf.ctx.stats.snapshot()["salesforce"]["by_endpoint"]
    assert any(name.startswith("bulk2.ingest") for name in endpoints)
    assert any(name.startswith("bulk2.query") for name in endpoints)
    after = {r.remote_id: r for r in read_all(rest, ObjectType.CONTACT)}
    assert all(after[op.remote_id or ""].fields["Title"] == op.fields["Title"] for op in ops)
    created = {r.remote_id or "" for r in results[60:]}
    assert {after[rid].fields["Revsync_Id__c"] for rid in created} == {op.key for op in creates}


def test_given_faults_when_read_and_write_then_retried_each_record_once(sf: Sandbox) -> None:
    conn = connect(sf, page_size=200)
    clean = {r.remote_id for r in read_all(conn, ObjectType.CONTACT)}
    sf.ctx.faults.set_spec(
        "salesforce:server_error=0.1, salesforce:unavailable=0.1;retry_after=0, "
        "salesforce:reset=0.05, salesforce/composite/sobjects:lock=0.3, seed=5"
    )
    try:
        faulty = connect(sf, page_size=200)
        got = read_all(faulty, ObjectType.CONTACT)
        assert len(got) == len({r.remote_id for r in got}) and {r.remote_id for r in got} == clean
        ops = [WriteOp(OpKind.UPDATE, ObjectType.CONTACT, f"canon-{r.remote_id}",
                       remote_id=r.remote_id, fields={"Title": "Faulty"}) for r in got]
        results = faulty.write(ObjectType.CONTACT, ops)
        assert all(r.success for r in results), [r.message for r in results if not r.success][:3]
        faults = sf.ctx.stats.snapshot()["salesforce"]["faults"]
        assert faults  # the run really went through faults
    finally:
        sf.ctx.faults.set_spec(None)


def test_given_expired_token_mid_run_when_read_then_refreshes_and_continues(sf: Sandbox) -> None:
    conn = connect(sf)
    sf.ctx.faults.set_spec({"script": [{"system": "salesforce", "endpoint": "query", "nth": 2,
                                        "kind": "expired_token"}]})
    try:
        assert len(read_all(conn, ObjectType.ACCOUNT)) == emulator(sf).counts()["Account"]
    finally:
        sf.ctx.faults.set_spec(None)


def test_given_bad_refresh_token_when_connect_then_auth_error(sf: Sandbox) -> None:
    cred = sf.info["credentials"]["salesforce"]
    with pytest.raises(AuthError, match="sf-sandbox"):
        connect(sf, secrets={"client_id": cred["client_id"], "client_secret": cred["client_secret"],
                             "refresh_token": "revoked"})


def test_given_password_grant_when_connect_then_check_succeeds(sf: Sandbox) -> None:
    cred = sf.info["credentials"]["salesforce"]
    conn = connect(sf, secrets={k: cred[k] for k in ("client_id", "client_secret", "username", "password")})
    assert conn.check()["daily_api_max"] is not None


def test_given_deletes_and_merges_when_read_deleted_then_tombstones(sf: Sandbox) -> None:
    conn = connect(sf)
    emu = emulator(sf)
    since = Cursor(emu.ctx.clock.now() - timedelta(minutes=5))
    # The delete log reaches a day back of the cursor (a purge further back).
    for obj in ("Account", "Contact", "Lead", "Opportunity"):
        emu.set_earliest_deleted(obj, since.modstamp - timedelta(days=1))
    edits = emu.apply_edits(random.Random(3), 8, ["delete", "merge"])
    assert edits
    gone: dict[str, RemoteRecord] = {}
    for ot, native in ((ObjectType.ACCOUNT, "Account"), (ObjectType.CONTACT, "Contact"),
                       (ObjectType.CONTACT, "Lead"), (ObjectType.OPPORTUNITY, "Opportunity")):
        for rec in conn.read_deleted(ot, since=since, native=native):
            assert rec.remote_id not in gone
            gone[rec.remote_id] = rec
    for edit in edits:
        rec = gone[edit["id"]]
        assert rec.deleted
        assert rec.merged_into == (edit["winner"] if edit["kind"] == "merge" else None)
    live = set(conn.list_ids(ObjectType.ACCOUNT))
    assert not live & set(gone)


def test_given_purged_delete_log_when_read_deleted_then_resync_required(sf: Sandbox) -> None:
    conn = connect(sf)
    emu = emulator(sf)
    now = emu.ctx.clock.now()
    emu.set_earliest_deleted("Account", now - timedelta(hours=1))
    with pytest.raises(ResyncRequired):
        list(conn.read_deleted(ObjectType.ACCOUNT, since=Cursor(now - timedelta(days=2))))


def test_given_field_dropped_from_org_when_read_and_write_then_skipped_with_warning(
    sf: Sandbox, caplog: pytest.LogCaptureFixture,
) -> None:
    emulator(sf).drop_field("Contact", "Title")
    conn = connect(sf, fields={"Contact": ["LastName", "Email", "Title"]})
    with caplog.at_level(logging.WARNING, logger="connectors.salesforce"):
        recs = read_all(conn, ObjectType.CONTACT)
        assert recs and all("Title" not in r.fields and "LastName" in r.fields for r in recs)
        target = recs[0]
        [res] = conn.write(ObjectType.CONTACT, [WriteOp(
            OpKind.UPDATE, ObjectType.CONTACT, "canon-x", remote_id=target.remote_id,
            fields={"Title": "Gone", "LastName": "Still"})])
    assert res.success
    assert any("Contact.Title" in r.getMessage() for r in caplog.records)


def test_given_opportunity_contact_link_when_written_then_read_back_as_association(sf: Sandbox) -> None:
    conn = connect(sf)
    opps = read_all(conn, ObjectType.OPPORTUNITY)
    contacts = read_all(conn, ObjectType.CONTACT)
    opp = next(o for o in opps if "contact" not in o.associations)
    new = contacts[0].remote_id
    op = WriteOp(OpKind.UPDATE, ObjectType.OPPORTUNITY, f"canon-{opp.remote_id}", remote_id=opp.remote_id,
                 associations={"contact": (new,)})
    assert conn.write(ObjectType.OPPORTUNITY, [op])[0].success
    assert conn.write(ObjectType.OPPORTUNITY, [op])[0].success  # idempotent: no second role
    again = {r.remote_id: r for r in read_all(conn, ObjectType.OPPORTUNITY)}
    assert again[opp.remote_id].associations["contact"] == (new,)
    assert again[opp.remote_id].modstamp == opp.modstamp  # a link-only op never touches the opportunity
