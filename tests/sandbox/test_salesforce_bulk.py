"""Bulk API 2.0 of the Salesforce emulator: ingest and query jobs, CSV in and out."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from sandbox.core import Fault
from tests.sandbox.test_salesforce_rest import Harness, V, make, seed_accounts


@pytest.fixture
def h() -> Harness:
    return Harness(make())


def put_csv(h: Harness, path: str, text: str, fault: Fault | None = None) -> int:
    h.fault = fault
    resp = h.client.put(
        f"{V}{path}",
        data=text.encode(),
        headers={"Authorization": f"Bearer {h.token}", "Content-Type": "text/csv; charset=UTF-8"},
    )
    return resp.status_code


def get_csv(
    h: Harness, path: str, query: dict[str, str] | None = None
) -> tuple[list[dict[str, str]], Any]:
    resp = h.client.get(
        f"{V}{path}", headers={"Authorization": f"Bearer {h.token}"}, query_string=query
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True)))), resp.headers


def run_ingest(
    h: Harness, body: dict[str, Any], data: str, fault: Fault | None = None
) -> dict[str, Any]:
    status, job, _ = h.call(
        "POST", "/jobs/ingest", {"contentType": "CSV", "lineEnding": "LF", **body}
    )
    assert status == 200 and job["state"] == "Open"
    assert put_csv(h, f"/jobs/ingest/{job['id']}/batches", data, fault) == 201
    status, closed, _ = h.call("PATCH", f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"})
    assert status == 200 and closed["state"] == "UploadComplete"
    status, info, _ = h.call("GET", f"/jobs/ingest/{job['id']}")
    assert status == 200 and info["state"] == "JobComplete"
    return dict(info)


def test_ingest_insert_with_failures(h: Harness) -> None:
    data = (
        "Name,Industry,NumberOfEmployees\nAlpha,Finance,10\nBeta,Crypto,20\n,Retail,5\nGamma,,7\n"
    )
    info = run_ingest(h, {"object": "Account", "operation": "insert"}, data)
    assert info["numberRecordsProcessed"] == 4
    assert info["numberRecordsFailed"] == 2
    ok, _ = get_csv(h, f"/jobs/ingest/{info['id']}/successfulResults/")
    assert sorted(r["Name"] for r in ok) == ["Alpha", "Gamma"]
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("001") for r in ok)
    bad, _ = get_csv(h, f"/jobs/ingest/{info['id']}/failedResults/")
    errors = {r["Industry"]: r["sf__Error"] for r in bad}
    assert errors["Crypto"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert errors["Retail"].startswith("REQUIRED_FIELD_MISSING:")
    unprocessed, _ = get_csv(h, f"/jobs/ingest/{info['id']}/unprocessedrecords/")
    assert unprocessed == []
    assert h.emu.counts()["Account"] == 2
    gamma = next(r for r in h.emu.org.records["Account"].values() if r["Name"] == "Gamma")
    assert gamma["Industry"] is None and gamma["NumberOfEmployees"] == 7


def test_ingest_upsert_update_delete(h: Harness) -> None:
    rows = "".join(f"k-{i},Name {i}\n" for i in range(30))
    info = run_ingest(
        h,
        {"object": "Account", "operation": "upsert", "externalIdFieldName": "Revsync_Id__c"},
        "Revsync_Id__c,Name\n" + rows,
    )
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (30, 0)
    ok, _ = get_csv(h, f"/jobs/ingest/{info['id']}/successfulResults/")
    assert [r["Revsync_Id__c"] for r in ok] != [f"k-{i}" for i in range(30)]  # not input order
    assert sorted(r["Revsync_Id__c"] for r in ok) == sorted(f"k-{i}" for i in range(30))
    info = run_ingest(
        h,
        {"object": "Account", "operation": "upsert", "externalIdFieldName": "Revsync_Id__c"},
        "Revsync_Id__c,Name\nk-1,Renamed\nk-new,Fresh\n",
    )
    ok, _ = get_csv(h, f"/jobs/ingest/{info['id']}/successfulResults/")
    assert {r["Revsync_Id__c"]: r["sf__Created"] for r in ok} == {"k-1": "false", "k-new": "true"}
    rid = next(r["sf__Id"] for r in ok if r["Revsync_Id__c"] == "k-1")
    assert h.emu.get("Account", rid)["Name"] == "Renamed"  # type: ignore[index]
    info = run_ingest(h, {"object": "Account", "operation": "update"}, f"Id,Phone\n{rid},+1 222\n")
    assert info["numberRecordsFailed"] == 0
    assert h.emu.get("Account", rid)["Phone"] == "+1 222"  # type: ignore[index]
    info = run_ingest(
        h, {"object": "Account", "operation": "delete"}, f"Id\n{rid}\n003000000000000AAA\n"
    )
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 1)
    assert h.emu.get("Account", rid)["IsDeleted"] is True  # type: ignore[index]


def test_ingest_partial_fault_fails_a_fraction(h: Harness) -> None:
    data = "Name\n" + "".join(f"N{i}\n" for i in range(40))
    info = run_ingest(
        h, {"object": "Account", "operation": "insert"}, data, Fault("lock", {"fraction": 0.25})
    )
    assert info["numberRecordsFailed"] == 10
    bad, _ = get_csv(h, f"/jobs/ingest/{info['id']}/failedResults/")
    assert all(r["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:") for r in bad)


def test_ingest_job_refusals(h: Harness) -> None:
    status, body, _ = h.call("POST", "/jobs/ingest", {"object": "Widget", "operation": "insert"})
    assert status == 400 and body[0]["errorCode"] == "INVALIDJOB"
    status, body, _ = h.call(
        "POST",
        "/jobs/ingest",
        {"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"},
    )
    assert status == 400
    _, job, _ = h.call("POST", "/jobs/ingest", {"object": "Account", "operation": "insert"})
    status, _, _ = h.call("PATCH", f"/jobs/ingest/{job['id']}", {"state": "Aborted"})
    assert status == 200
    assert put_csv(h, f"/jobs/ingest/{job['id']}/batches", "Name\nx\n") == 409
    assert h.call("GET", "/jobs/ingest/750000000000000AAA")[0] == 404


def test_query_job_pages_with_locator(h: Harness) -> None:
    seed_accounts(h.emu, 25)
    status, job, _ = h.call(
        "POST",
        "/jobs/query",
        {"operation": "query", "query": "SELECT Id, Name FROM Account ORDER BY Name"},
    )
    assert status == 200 and job["state"] == "UploadComplete"
    _, info, _ = h.call("GET", f"/jobs/query/{job['id']}")
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 25
    names: list[str] = []
    locator = ""
    pages = 0
    while True:
        query = {"maxRecords": "10", **({"locator": locator} if locator else {})}
        rows, headers = get_csv(h, f"/jobs/query/{job['id']}/results", query)
        pages += 1
        assert int(headers["Sforce-NumberOfRecords"]) == len(rows)
        names += [r["Name"] for r in rows]
        locator = headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == 3
    assert names == [f"Account {i:05d}" for i in range(25)]


def test_query_job_refusals_and_query_all(h: Harness) -> None:
    ids = seed_accounts(h.emu, 3)
    h.call("DELETE", f"/sobjects/Account/{ids[0]}")
    status, body, _ = h.call(
        "POST", "/jobs/query", {"operation": "query", "query": "SELECT Nope FROM Account"}
    )
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    status, _, _ = h.call(
        "POST", "/jobs/query", {"operation": "query", "query": "SELECT COUNT() FROM Account"}
    )
    assert status == 400
    _, job, _ = h.call(
        "POST",
        "/jobs/query",
        {"operation": "queryAll", "query": "SELECT Id, IsDeleted FROM Account"},
    )
    rows, _ = get_csv(h, f"/jobs/query/{job['id']}/results")
    assert sorted(r["IsDeleted"] for r in rows) == ["false", "false", "true"]
