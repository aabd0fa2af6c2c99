"""The Salesforce emulator behind the real sandbox server, driven by real simple-salesforce."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest
from simple_salesforce.format import format_soql

from sandbox.salesforce import SalesforceEmulator
from sandbox.server import Sandbox

from .conftest import MakeSandbox, https_session


def token(sb: Sandbox, session: requests.Session) -> dict[str, Any]:
    """Refresh-token grant against the sandbox's token endpoint."""
    creds = sb.info["credentials"]["salesforce"]
    resp = session.post(
        f"{sb.info['salesforce']}/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "refresh_token": creds["refresh_token"],
        },
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def client(sb: Sandbox) -> Any:
    """A real simple-salesforce client on a fresh token (typed Any: its stubs are loose)."""
    session = https_session(sb)
    tok = token(sb, session)
    return Salesforce(
        instance_url=tok["instance_url"], session_id=tok["access_token"], session=session
    )


@pytest.fixture
def sb(make_sandbox: MakeSandbox) -> Sandbox:
    return make_sandbox(systems=("salesforce",))


def emulator(sb: Sandbox) -> SalesforceEmulator:
    emu = sb.emulators["salesforce"]
    assert isinstance(emu, SalesforceEmulator)
    return emu


def test_query_all_iter_pages_through_real_client(sb: Sandbox) -> None:
    emu = emulator(sb)
    for i in range(2300):
        emu.add("Contact", {"LastName": f"Paged {i:04d}", "Email": f"p{i}@paged.example"})
    sf = client(sb)
    soql = "SELECT Id, LastName, Email FROM Contact WHERE Email LIKE '%@paged.example' ORDER BY LastName"
    names = [r["LastName"] for r in sf.query_all_iter(soql)]
    assert names == [f"Paged {i:04d}" for i in range(2300)]
    total = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    assert total == emu.counts()["Contact"]
    usage = sf.api_usage["api-usage"]
    assert usage.total == 5_000_000 and usage.used >= 3  # tier "off": counted, never refused
    stats = sb.ctx.stats.snapshot()["salesforce"]
    assert stats["by_endpoint"]["queryMore"] == 1  # 2,000 + 300


def test_generated_seed_data_is_served(sb: Sandbox) -> None:
    sf = client(sb)
    accounts = sf.query_all("SELECT Id, Name, Owner.Email, SystemModstamp FROM Account")["records"]
    assert len(accounts) == emulator(sb).counts()["Account"] > 0
    assert all(r["attributes"]["type"] == "Account" for r in accounts)
    assert any(r["Owner"] and "@" in r["Owner"]["Email"] for r in accounts)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Bogus FROM Account")
    content: Any = info.value.content
    assert content[0]["errorCode"] == "INVALID_FIELD"
    desc = sf.Opportunity.describe()
    assert "StageName" in {f["name"] for f in desc["fields"]}


def test_collections_and_upsert_through_real_client(sb: Sandbox) -> None:
    sf = client(sb)
    result = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Name": "Collected One",
                    "Revsync_Id__c": "col-1",
                },
                {"attributes": {"type": "Account"}, "Industry": "Finance"},
            ],
        },
    )
    assert [r["success"] for r in result] == [True, False]
    assert result[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Account.upsert("Revsync_Id__c/up-1", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert("Revsync_Id__c/up-1", {"Name": "Upserted again"}) == 200
    rec = sf.Account.get_by_custom_id("Revsync_Id__c", "up-1")
    assert rec["Name"] == "Upserted again"
    assert sf.Account.get(result[0]["id"])["Revsync_Id__c"] == "col-1"


def test_bulk2_round_trip(sb: Sandbox) -> None:
    sf = client(sb)
    rows = [{"Revsync_Id__c": f"bulk-{i}", "Name": f"Bulk {i}"} for i in range(50)]
    rows.append({"Revsync_Id__c": "bulk-bad", "Name": "x" * 300})
    res = sf.bulk2.Account.upsert(records=rows, external_id_field="Revsync_Id__c", wait=0)
    assert res[0]["numberRecordsProcessed"] == 51 and res[0]["numberRecordsFailed"] == 1
    failed = list(
        csv.DictReader(io.StringIO(sf.bulk2.Account.get_failed_records(res[0]["job_id"])))
    )
    assert failed[0]["Revsync_Id__c"] == "bulk-bad" and failed[0]["sf__Error"].startswith(
        "STRING_TOO_LONG"
    )
    pages = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name, Revsync_Id__c FROM Account WHERE Revsync_Id__c LIKE 'bulk-%'",
            max_records=20,
            wait=0,
        )
    )
    assert len(pages) == 3
    got = [r for page in pages for r in csv.DictReader(io.StringIO(str(page)))]
    assert sorted(r["Revsync_Id__c"] for r in got) == sorted(f"bulk-{i}" for i in range(50))
    res = sf.bulk2.Account.insert(records=[{"Name": "Inserted by bulk"}], wait=0)
    assert res[0]["numberRecordsFailed"] == 0
    res = sf.bulk2.Account.delete(records=[{"Id": got[0]["Id"]}], wait=0)
    assert res[0]["numberRecordsProcessed"] == 1 and res[0]["numberRecordsFailed"] == 0
    assert emulator(sb).get("Account", got[0]["Id"])["IsDeleted"] is True  # type: ignore[index]


def test_expired_token_then_refresh(sb: Sandbox) -> None:
    sf = client(sb)
    sb.ctx.faults.set_spec(
        {
            "script": [
                {"system": "salesforce", "endpoint": "query", "nth": 1, "kind": "expired_token"}
            ]
        }
    )
    try:
        with pytest.raises(SalesforceExpiredSession) as info:
            sf.query("SELECT Id FROM Account LIMIT 1")
        assert info.value.status == 401
        expired: Any = info.value.content
        assert expired[0]["errorCode"] == "INVALID_SESSION_ID"
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM Account LIMIT 1")  # the old token stays dead
        fresh = client(sb)  # refresh_token grant → new access token
        assert fresh.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    finally:
        sb.ctx.faults.set_spec(None)
    assert sb.ctx.stats.snapshot()["salesforce"]["faults"]["expired_token"] == 1


def test_updated_and_deleted_through_real_client(sb: Sandbox) -> None:
    sf = client(sb)
    rid = sf.Contact.create({"LastName": "Temp", "Email": "temp@example.com"})["id"]
    sf.Contact.update(rid, {"Title": "Interim"})
    sb.ctx.clock.advance(120)  # getUpdated covers whole minutes up to now
    now = sb.ctx.clock.now()
    updated = sf.Contact.updated(now - timedelta(days=1), now + timedelta(minutes=2))
    assert rid in updated["ids"]
    sf.Contact.delete(rid)
    sb.ctx.clock.advance(120)
    now = sb.ctx.clock.now()
    deleted = sf.Contact.deleted(now - timedelta(days=1), now + timedelta(minutes=2))
    assert rid in [d["id"] for d in deleted["deletedRecords"]]
    soql = format_soql("SELECT Id, IsDeleted FROM Contact WHERE Id = {}", rid)
    gone = sf.query_all(soql, include_deleted=True)
    assert gone["records"][0]["IsDeleted"] is True


def test_control_edits_show_up_in_incremental_queries(sb: Sandbox) -> None:
    sf = client(sb)
    session = https_session(sb)
    before = sb.ctx.clock.now()
    sb.ctx.clock.advance(5)
    resp = session.post(
        f"{sb.info['salesforce']}/__sandbox/edits",
        json={"system": "salesforce", "n": 12, "kinds": ["update", "create", "merge"], "seed": 3},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    edits = resp.json()
    assert edits and all(e["system"] == "salesforce" for e in edits)
    changed = {(e["object"], e["id"]) for e in edits}
    seen: set[tuple[str, str]] = set()
    for obj in {o for o, _ in changed}:
        mergeable = obj in ("Account", "Contact")
        soql = format_soql(
            "SELECT {:literal} FROM {:literal} WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
            "Id, IsDeleted, MasterRecordId" if mergeable else "Id, IsDeleted",
            obj,
            before,
        )
        for rec in sf.query_all_iter(soql, include_deleted=True):
            seen.add((obj, rec["Id"]))
            if rec["IsDeleted"] and mergeable:
                assert rec["MasterRecordId"]  # only merges delete here
    assert changed <= seen
    stats = session.get(f"{sb.info['salesforce']}/__sandbox/stats", timeout=10).json()
    assert stats["salesforce"]["by_endpoint"]["query"] >= 1


def test_server_drawn_lock_fault_fails_some_collection_items(sb: Sandbox) -> None:
    sf = client(sb)
    sb.ctx.faults.set_spec(
        {
            "script": [
                {
                    "system": "salesforce",
                    "endpoint": "composite/sobjects",
                    "nth": 1,
                    "kind": "lock",
                    "params": {"fraction": 0.5},
                }
            ]
        }
    )
    try:
        records = [{"attributes": {"type": "Account"}, "Name": f"Locked {i}"} for i in range(4)]
        result = sf.restful("composite/sobjects", method="POST", json={"records": records})
    finally:
        sb.ctx.faults.set_spec(None)
    codes = [r["errors"][0]["statusCode"] for r in result if not r["success"]]
    assert codes == ["UNABLE_TO_LOCK_ROW", "UNABLE_TO_LOCK_ROW"]
    assert sum(r["success"] for r in result) == 2


def test_soap_merge_reparents_and_reports_errors_per_request(sb: Sandbox) -> None:
    from connectors.salesforce_soap import (
        MergeRequest,
        merge_envelope,
        parse_fault,
        parse_merge_response,
    )

    session = https_session(sb)
    tok = token(sb, session)
    sf = Salesforce(instance_url=tok["instance_url"], session_id=tok["access_token"], session=session)
    url = f"{tok['instance_url']}/services/Soap/u/59.0"
    a = sf.Account.create({"Name": "Merge Master"})["id"]
    b = sf.Account.create({"Name": "Merge Victim"})["id"]
    c = sf.Account.create({"Name": "Merge Gone"})["id"]
    kid = sf.Contact.create({"LastName": "Child", "AccountId": b})["id"]
    sf.Account.delete(c)
    reqs = [MergeRequest("Account", a, (b,)), MergeRequest("Account", a, (c,)),
            MergeRequest("Account", a, ("001000000000000AAA",)), MergeRequest("Opportunity", a, (b,)),
            MergeRequest("Account", a, (a,))]
    resp = session.post(url, data=merge_envelope(tok["access_token"], reqs), headers={"Content-Type": "text/xml"})
    assert resp.status_code == 200, resp.text
    results = parse_merge_response(resp.text)
    assert results[0].success and results[0].merged == (b,) and results[0].related == (kid,)
    assert [r.errors[0][0] for r in results[1:]] == [
        "ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "INVALID_TYPE", "INVALID_OPERATION"]
    victim = sf.query_all(f"SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '{b}'",
                          include_deleted=True)["records"][0]
    assert victim["IsDeleted"] is True and victim["MasterRecordId"] == a
    assert sf.Contact.get(kid)["AccountId"] == a
    # a bad session is a SOAP fault, as Salesforce sends it
    resp = session.post(url, data=merge_envelope("not-a-session", reqs[:1]), headers={"Content-Type": "text/xml"})
    fault = parse_fault(resp.text, resp.status_code)
    assert resp.status_code == 500 and fault.code == "INVALID_SESSION_ID"
    assert emulator(sb).ctx.stats.snapshot()["salesforce"]["by_endpoint"]["soap.merge"] >= 2
