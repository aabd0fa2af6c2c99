"""Salesforce emulator REST API through werkzeug's test client (no sockets)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from sandbox.core import Clock, Fault, FaultInjector, SandboxContext, Stats
from sandbox.salesforce import SF_COLLECTION, SOQL_PAGE, SalesforceEmulator

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V = "/services/data/v59.0"
CREDS = {
    "client_id": "cid",
    "client_secret": "csecret",
    "refresh_token": "rtoken",
    "username": "admin@example.com",
    "password": "pw",
}


def make(tier: str = "off", clock: Clock | None = None) -> SalesforceEmulator:
    ctx = SandboxContext(
        clock=clock or Clock(fixed=T0),
        faults=FaultInjector(None, seed=0),
        stats=Stats(),
        tier=tier,
        credentials={"salesforce": dict(CREDS)},
        seed=11,
    )
    return SalesforceEmulator(ctx)


class Harness:
    """A WSGI wrapper around one emulator; ``fault`` is handed to the next call only."""

    def __init__(self, emu: SalesforceEmulator) -> None:
        self.emu = emu
        self.fault: Fault | None = None
        self.token = emu.issue_token()
        self.client = Client(self._app)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fault, self.fault = self.fault, None
        return self.emu.handle(Request(environ), fault)(environ, start_response)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        fault: Fault | None = None,
    ) -> tuple[int, Any, Any]:
        self.fault = fault
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        url = path if path.startswith("/services") else f"{V}{path}"
        resp = self.client.open(url, method=method, json=body, headers=hdrs, query_string=query)
        data = resp.get_data(as_text=True)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return resp.status_code, parsed, resp.headers


@pytest.fixture
def h() -> Harness:
    return Harness(make())


def seed_accounts(
    emu: SalesforceEmulator, n: int, *, start: datetime = T0 - timedelta(days=2)
) -> list[str]:
    ids = []
    for i in range(n):
        stamp = (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        rec = emu.add(
            "Account",
            {
                "Name": f"Account {i:05d}",
                "SystemModstamp": stamp,
                "LastModifiedDate": stamp,
                "CreatedDate": stamp,
            },
        )
        ids.append(rec["Id"])
    return ids


# --------------------------------------------------------------------------- auth


def test_token_endpoint_grants_and_refusals(h: Harness) -> None:
    c = h.client
    ok = c.post(
        "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            **{k: CREDS[k] for k in ("client_id", "client_secret", "refresh_token")},
        },
    )
    assert ok.status_code == 200
    body = ok.get_json()
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == "https://localhost"
    assert {"access_token", "id", "issued_at", "signature"} <= set(body)
    status, _, _ = h.call(
        "GET", "/limits", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert status == 200
    pw = c.post(
        "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "cid",
            "client_secret": "csecret",
            "username": CREDS["username"],
            "password": "pw",
        },
    )
    assert pw.status_code == 200
    bad = c.post(
        "/services/oauth2/token",
        data={"grant_type": "refresh_token", "client_id": "cid", "refresh_token": "nope"},
    )
    assert bad.status_code == 400
    assert bad.get_json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }
    bad_client = c.post(
        "/services/oauth2/token",
        data={"grant_type": "refresh_token", "client_id": "x", "refresh_token": "rtoken"},
    )
    assert bad_client.status_code == 400
    assert bad_client.get_json()["error"] == "invalid_client_id"


def test_unknown_token_is_401_invalid_session(h: Harness) -> None:
    status, body, _ = h.call("GET", "/limits", headers={"Authorization": "Bearer nope"})
    assert status == 401
    assert body == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_expired_token_fault_invalidates_the_token(h: Harness) -> None:
    status, body, _ = h.call("GET", "/limits", fault=Fault("expired_token"))
    assert status == 401
    assert body[0]["errorCode"] == "INVALID_SESSION_ID"
    status, _, _ = h.call("GET", "/limits")
    assert status == 401  # the token stays dead: the client must refresh
    assert h.emu.ctx.stats.snapshot()["salesforce"]["faults"] == {"expired_token": 1}


def test_server_faults_render_salesforce_shapes(h: Harness) -> None:
    status, body, _ = h.call("GET", "/limits", fault=Fault("server_error"))
    assert status == 500
    assert body[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    status, body, headers = h.call("GET", "/limits", fault=Fault("unavailable", {"retry_after": 3}))
    assert status == 503
    assert headers["Retry-After"] == "3"
    status, _, _ = h.call("GET", "/limits", fault=Fault("rate_limit"))
    assert status == 200  # no burst 429 in Salesforce
    status, body, _ = h.call("GET", "/limits", fault=Fault("rate_limit", {"daily": True}))
    assert status == 403
    assert body == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]


# --------------------------------------------------------------------------- limits


def test_limits_and_usage_header_count_calls() -> None:
    h = Harness(make(tier="free"))
    _, body, headers = h.call("GET", "/limits")
    assert body["DailyApiRequests"]["Max"] == 15000
    assert headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    _, body, headers = h.call("GET", "/limits")
    assert body["DailyApiRequests"]["Remaining"] == 15000 - 2
    assert headers["Sforce-Limit-Info"] == "api-usage=2/15000"


def test_daily_allocation_exhausted_is_403() -> None:
    h = Harness(make(tier="free"))
    assert h.emu.daily is not None
    for _ in range(15000):
        h.emu.daily.hit()
    status, body, headers = h.call("GET", "/limits")
    assert status == 403
    assert body[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert headers["Sforce-Limit-Info"] == "api-usage=15000/15000"


# --------------------------------------------------------------------------- query


def test_paging_4500_records(h: Harness) -> None:
    seed_accounts(h.emu, 4500)
    status, page, _ = h.call(
        "GET", "/query", query={"q": "SELECT Id, Name FROM Account ORDER BY SystemModstamp, Id"}
    )
    assert status == 200
    assert page["totalSize"] == 4500
    assert page["done"] is False
    assert len(page["records"]) == SOQL_PAGE
    assert page["records"][0]["attributes"]["type"] == "Account"
    assert page["records"][0]["Name"] == "Account 00000"
    url = page["nextRecordsUrl"]
    assert url.startswith("/services/data/v59.0/query/01g") and url.endswith("-2000")
    sizes = [len(page["records"])]
    seen = [r["Name"] for r in page["records"]]
    while not page["done"]:
        status, page, _ = h.call("GET", page["nextRecordsUrl"])
        assert status == 200
        sizes.append(len(page["records"]))
        seen += [r["Name"] for r in page["records"]]
    assert sizes == [2000, 2000, 500]
    assert seen == [f"Account {i:05d}" for i in range(4500)]
    assert "nextRecordsUrl" not in page
    assert h.emu.ctx.stats.snapshot()["salesforce"]["records_served"] == 4500


def test_batch_size_header_is_clamped(h: Harness) -> None:
    seed_accounts(h.emu, 700)
    _, page, _ = h.call(
        "GET",
        "/query",
        query={"q": "SELECT Id FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=300"},
    )
    assert len(page["records"]) == 300
    _, page, _ = h.call(
        "GET",
        "/query",
        query={"q": "SELECT Id FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=10"},
    )
    assert len(page["records"]) == 200  # minimum 200


def test_incremental_query_uses_modstamp_and_sees_updates(h: Harness) -> None:
    ids = seed_accounts(h.emu, 50)
    since = "2026-02-27T12:00:30Z"
    q = f"SELECT Id, Name FROM Account WHERE SystemModstamp > {since} ORDER BY SystemModstamp, Id"
    _, page, _ = h.call("GET", "/query", query={"q": q})
    assert [r["Name"] for r in page["records"]] == [f"Account {i:05d}" for i in range(31, 50)]
    status, _, _ = h.call("PATCH", f"/sobjects/Account/{ids[3]}", {"Name": "Renamed"})
    assert status == 204
    _, page, _ = h.call("GET", "/query", query={"q": q})
    names = [r["Name"] for r in page["records"]]
    assert names[-1] == "Renamed" and len(names) == 20  # moved to the end, not duplicated
    rec = h.emu.get("Account", ids[3])
    assert rec is not None and rec["SystemModstamp"] == "2026-03-01T12:00:00.000+0000"
    assert rec["LastModifiedDate"] == rec["SystemModstamp"]


def test_query_vs_query_all_and_count(h: Harness) -> None:
    ids = seed_accounts(h.emu, 5)
    assert h.call("DELETE", f"/sobjects/Account/{ids[0]}")[0] == 204
    _, page, _ = h.call("GET", "/query", query={"q": "SELECT Id FROM Account"})
    assert page["totalSize"] == 4
    _, page, _ = h.call(
        "GET", "/queryAll", query={"q": "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true"}
    )
    assert [r["Id"] for r in page["records"]] == [ids[0]]
    _, page, _ = h.call("GET", "/query", query={"q": "SELECT COUNT() FROM Account"})
    assert page == {"totalSize": 4, "done": True, "records": []}


def test_bad_queries_are_400(h: Harness) -> None:
    status, body, _ = h.call("GET", "/query", query={"q": "SELECT Foo FROM Account"})
    assert status == 400
    assert body[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo' on entity 'Account'" in body[0]["message"]
    status, body, _ = h.call("GET", "/query", query={"q": "SELEC Id FROM Account"})
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_QUERY"
    status, body, _ = h.call("GET", f"{V}/query/01gXXXXXXXXXXXXXXX-2000")
    assert status == 400 and body[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_cursor_expires_after_15_minutes() -> None:
    clock = Clock(fixed=T0)
    h = Harness(make(clock=clock))
    seed_accounts(h.emu, 2100)
    _, page, _ = h.call("GET", "/query", query={"q": "SELECT Id FROM Account"})
    clock.advance(16 * 60)
    status, body, _ = h.call("GET", page["nextRecordsUrl"])
    assert status == 400 and body[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_at_most_ten_open_cursors(h: Harness) -> None:
    seed_accounts(h.emu, 2001)
    urls = [
        h.call("GET", "/query", query={"q": "SELECT Id FROM Account"})[1]["nextRecordsUrl"]
        for _ in range(11)
    ]
    assert h.call("GET", urls[0])[0] == 400  # the oldest was released
    assert h.call("GET", urls[10])[0] == 200


# --------------------------------------------------------------------------- describe


def test_describe_global_and_object(h: Harness) -> None:
    _, body, _ = h.call("GET", "/sobjects/")
    names = {o["name"] for o in body["sobjects"]}
    assert {"Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole", "User"} <= names
    _, desc, _ = h.call("GET", "/sobjects/Opportunity/describe/")
    fields = {f["name"]: f for f in desc["fields"]}
    stage = fields["StageName"]
    assert stage["type"] == "picklist" and not stage["nillable"]
    assert "Closed Won" in [p["value"] for p in stage["picklistValues"]]
    assert (
        fields["Revsync_Id__c"]["externalId"]
        and fields["Revsync_Id__c"]["unique"]
        and fields["Revsync_Id__c"]["custom"]
    )
    assert (
        fields["AccountId"]["referenceTo"] == ["Account"]
        and fields["AccountId"]["relationshipName"] == "Account"
    )
    assert not fields["SystemModstamp"]["updateable"]
    _, lead, _ = h.call("GET", "/sobjects/Lead/describe")
    status_values = [
        p["value"]
        for p in next(f for f in lead["fields"] if f["name"] == "Status")["picklistValues"]
    ]
    assert status_values == [
        "Open - Not Contacted",
        "Working - Contacted",
        "Closed - Converted",
        "Closed - Not Converted",
    ]
    _, contact, _ = h.call("GET", "/sobjects/Contact/describe")
    life = next(f for f in contact["fields"] if f["name"] == "Lifecycle_Stage__c")
    assert "Marketing Qualified Lead" in [p["value"] for p in life["picklistValues"]]
    assert h.call("GET", "/sobjects/Widget/describe")[0] == 404


def test_drop_field_simulates_schema_drift(h: Harness) -> None:
    h.emu.drop_field("Account", "Industry")
    _, desc, _ = h.call("GET", "/sobjects/Account/describe")
    assert "Industry" not in {f["name"] for f in desc["fields"]}
    status, body, _ = h.call("GET", "/query", query={"q": "SELECT Industry FROM Account"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    status, body, _ = h.call("POST", "/sobjects/Account", {"Name": "X", "Industry": "Finance"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"


# --------------------------------------------------------------------------- single records


def test_create_get_update_delete(h: Harness) -> None:
    status, body, _ = h.call(
        "POST",
        "/sobjects/Opportunity",
        {"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2026-06-30", "Amount": 5000},
    )
    assert status == 201 and body["success"] and body["errors"] == []
    oid = body["id"]
    assert oid.startswith("006") and len(oid) == 18
    status, rec, _ = h.call("GET", f"/sobjects/Opportunity/{oid}")
    assert status == 200
    assert rec["IsClosed"] is True and rec["IsWon"] is True and rec["Probability"] == 100
    assert rec["attributes"]["url"] == f"{V}/sobjects/Opportunity/{oid}"
    assert rec["CreatedDate"] == "2026-03-01T12:00:00.000+0000"
    assert h.call("PATCH", f"/sobjects/Opportunity/{oid}", {"StageName": "Prospecting"})[0] == 204
    _, rec, _ = h.call(
        "GET", f"/sobjects/Opportunity/{oid}", query={"fields": "IsClosed,IsWon,Probability"}
    )
    assert (rec["IsClosed"], rec["IsWon"], rec["Probability"]) == (False, False, 10)
    assert set(rec) == {"attributes", "IsClosed", "IsWon", "Probability"}
    assert h.call("DELETE", f"/sobjects/Opportunity/{oid}")[0] == 204
    assert h.call("GET", f"/sobjects/Opportunity/{oid}")[0] == 404
    status, body, _ = h.call("PATCH", f"/sobjects/Opportunity/{oid}", {"Name": "again"})
    assert status == 404 and body[0]["errorCode"] == "ENTITY_IS_DELETED"


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        ({"Industry": "Finance"}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"Name": "x", "Foo__c": 1}, "INVALID_FIELD", ["Foo__c"]),
        ({"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        (
            {"Name": "x", "Industry": "Crypto"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Industry"],
        ),
        (
            {"Name": "x", "NumberOfEmployees": "many"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            ["NumberOfEmployees"],
        ),
        (
            {"Name": "x", "CreatedDate": "2020-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        ({"Name": "x", "OwnerId": "001000000000000AAA"}, "FIELD_INTEGRITY_EXCEPTION", ["OwnerId"]),
    ],
)
def test_single_create_validation(
    h: Harness, body: dict[str, Any], code: str, fields: list[str]
) -> None:
    status, resp, _ = h.call("POST", "/sobjects/Account", body)
    assert status == 400
    assert resp[0]["errorCode"] == code
    assert resp[0]["fields"] == fields
    assert h.emu.counts()["Account"] == 0


def test_duplicate_external_id_is_refused(h: Harness) -> None:
    assert h.call("POST", "/sobjects/Account", {"Name": "A", "Revsync_Id__c": "ext-1"})[0] == 201
    status, body, _ = h.call("POST", "/sobjects/Account", {"Name": "B", "Revsync_Id__c": "EXT-1"})
    assert status == 400 and body[0]["errorCode"] == "DUPLICATE_VALUE"
    assert "duplicates value on record with id: 001" in body[0]["message"]


def test_upsert_by_external_id(h: Harness) -> None:
    status, body, _ = h.call("PATCH", "/sobjects/Account/Revsync_Id__c/abc-1", {"Name": "New Co"})
    assert status == 201
    assert body["created"] is True and body["success"] is True and body["errors"] == []
    rid = body["id"]
    status, body, _ = h.call("PATCH", "/sobjects/Account/Revsync_Id__c/abc-1", {"Name": "New Co 2"})
    assert status == 200 and body == {"id": rid, "success": True, "errors": [], "created": False}
    assert h.emu.get("Account", rid)["Name"] == "New Co 2"  # type: ignore[index]
    status, _, _ = h.call(
        "PATCH", "/services/data/v45.0/sobjects/Account/Revsync_Id__c/abc-1", {"Name": "Old API"}
    )
    assert status == 204
    status, body, _ = h.call("PATCH", "/sobjects/Account/Name/abc-1", {"Name": "x"})
    assert status == 404 and body[0]["errorCode"] == "NOT_FOUND"
    status, _, _ = h.call(
        "PATCH", "/sobjects/Account/Revsync_Id__c/zzz", {"Name": "x"}, query={"updateOnly": "true"}
    )
    assert status == 404
    # Two records sharing the key (seeded data can hold such duplicates): 300 with both URLs.
    a = h.emu.add("Account", {"Name": "Dup 1", "Revsync_Id__c": "dup"})
    b = h.emu.add("Account", {"Name": "Dup 2", "Revsync_Id__c": "dup"})
    status, body, _ = h.call("PATCH", "/sobjects/Account/Revsync_Id__c/dup", {"Name": "x"})
    assert status == 300
    assert sorted(body) == sorted(f"{V}/sobjects/Account/{r['Id']}" for r in (a, b))
    status, rec, _ = h.call("GET", "/sobjects/Account/Revsync_Id__c/abc-1")
    assert status == 200 and rec["Id"] == rid


def test_single_lock_and_validation_faults(h: Harness) -> None:
    status, body, _ = h.call("POST", "/sobjects/Account", {"Name": "x"}, fault=Fault("lock"))
    assert status == 400 and body[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    status, body, _ = h.call(
        "POST",
        "/sobjects/Account",
        {"Name": "bad"},
        fault=Fault("validation", {"field": "Name", "value": "bad"}),
    )
    assert status == 400 and body[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert (
        h.call(
            "POST",
            "/sobjects/Account",
            {"Name": "good"},
            fault=Fault("validation", {"field": "Name", "value": "bad"}),
        )[0]
        == 201
    )


# --------------------------------------------------------------------------- collections


def test_collection_create_with_partial_failures(h: Harness) -> None:
    records = [
        {"attributes": {"type": "Account"}, "Name": "One"},
        {"attributes": {"type": "Account"}, "Industry": "Finance"},
        {"attributes": {"type": "Contact"}, "LastName": "Two", "Email": "two@example.com"},
    ]
    status, body, _ = h.call(
        "POST", "/composite/sobjects", {"allOrNone": False, "records": records}
    )
    assert status == 200
    assert [r["success"] for r in body] == [True, False, True]
    assert body[0]["id"].startswith("001") and body[2]["id"].startswith("003")
    assert body[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert "id" not in body[1]
    assert h.emu.counts()["Account"] == 1 and h.emu.counts()["Contact"] == 1


def test_collection_all_or_none_rolls_back(h: Harness) -> None:
    records = [
        {"attributes": {"type": "Account"}, "Name": "One"},
        {"attributes": {"type": "Account"}, "Name": "x" * 300},
    ]
    status, body, _ = h.call("POST", "/composite/sobjects", {"allOrNone": True, "records": records})
    assert status == 200
    assert body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert body[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert h.emu.counts()["Account"] == 0


def test_collection_over_200_is_refused(h: Harness) -> None:
    records = [
        {"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(SF_COLLECTION + 1)
    ]
    status, body, _ = h.call("POST", "/composite/sobjects", {"records": records})
    assert status == 400
    assert body == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    status, body, _ = h.call("POST", "/composite/sobjects", {"records": records[:200]})
    assert status == 200 and all(r["success"] for r in body)


def test_collection_update_upsert_delete(h: Harness) -> None:
    ids = seed_accounts(h.emu, 3)
    upd = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Phone": "+1 555"},
        {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Phone": "x"},
    ]
    status, body, _ = h.call("PATCH", "/composite/sobjects", {"records": upd})
    assert status == 200 and [r["success"] for r in body] == [True, False]
    assert h.emu.get("Account", ids[0])["Phone"] == "+1 555"  # type: ignore[index]
    ups = [
        {"attributes": {"type": "Account"}, "Revsync_Id__c": "u-1", "Name": "Up 1"},
        {"attributes": {"type": "Account"}, "Revsync_Id__c": "u-2", "Name": "Up 2"},
        {"attributes": {"type": "Account"}, "Revsync_Id__c": "u-1", "Name": "Up 1 again"},
    ]
    status, body, _ = h.call("PATCH", "/composite/sobjects/Account/Revsync_Id__c", {"records": ups})
    assert status == 200
    assert [r["created"] for r in body[:2]] == [True, True]
    assert body[2]["success"] is False and body[2]["id"] is None  # same key twice in one call
    status, body, _ = h.call(
        "PATCH", "/composite/sobjects/Account/Revsync_Id__c", {"records": ups[:1]}
    )
    assert body[0]["created"] is False and body[0]["success"] is True
    status, body, _ = h.call("PATCH", "/composite/sobjects/Account/Name", {"records": ups[:1]})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    status, body, _ = h.call(
        "DELETE",
        "/composite/sobjects",
        query={"ids": f"{ids[1]},{ids[2]},{ids[1]}", "allOrNone": "false"},
    )
    assert status == 200
    assert [r["success"] for r in body] == [True, True, False]
    assert body[2]["errors"][0]["statusCode"] == "INVALID_ID_FIELD" and body[2]["id"] == ids[1]
    status, body, _ = h.call("DELETE", "/composite/sobjects", query={"ids": ids[1]})
    assert body[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def test_collection_lock_and_partial_faults(h: Harness) -> None:
    records = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(20)]
    status, body, _ = h.call(
        "POST", "/composite/sobjects", {"records": records}, fault=Fault("lock", {"fraction": 0.25})
    )
    assert status == 200
    failed = [r for r in body if not r["success"]]
    assert len(failed) == 5
    assert all(r["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW" for r in failed)
    assert failed[0]["errors"][0]["message"].startswith(
        "unable to obtain exclusive access to this record"
    )
    assert h.emu.counts()["Account"] == 15
    status, body, _ = h.call(
        "POST",
        "/composite/sobjects",
        {"records": records},
        fault=Fault("partial", {"fraction": 0.1}),
    )
    assert sum(1 for r in body if not r["success"]) == 2
    status, body, _ = h.call(
        "POST",
        "/composite/sobjects",
        {"records": records},
        fault=Fault("validation", {"field": "Name", "value": "A3"}),
    )
    assert [i for i, r in enumerate(body) if not r["success"]] == [3]
    assert body[3]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"


def test_account_delete_cascades_to_contacts(h: Harness) -> None:
    acc = h.emu.add("Account", {"Name": "Parent"})
    con = h.emu.add("Contact", {"LastName": "Child", "AccountId": acc["Id"]})
    assert h.call("DELETE", f"/sobjects/Account/{acc['Id']}")[0] == 204
    assert h.emu.get("Contact", con["Id"])["IsDeleted"] is True  # type: ignore[index]


# --------------------------------------------------------------------------- getUpdated / getDeleted


def test_get_updated_and_deleted() -> None:
    clock = Clock(fixed=T0)
    h = Harness(make(clock=clock))
    ids = seed_accounts(h.emu, 3, start=T0 - timedelta(days=40))
    clock.advance(3600)
    h.call("PATCH", f"/sobjects/Account/{ids[0]}", {"Phone": "1"})
    h.call("DELETE", f"/sobjects/Account/{ids[1]}")
    clock.advance(3600)
    start = (T0 - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    end = (T0 + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    status, body, _ = h.call(
        "GET", "/sobjects/Account/updated/", query={"start": start, "end": end}
    )
    assert status == 200
    assert body["ids"] == [ids[0]]
    assert body["latestDateCovered"] == "2026-03-01T14:00:00.000+0000"  # capped at now
    status, body, _ = h.call(
        "GET", "/sobjects/Account/deleted/", query={"start": start, "end": end}
    )
    assert body["deletedRecords"] == [{"id": ids[1], "deletedDate": "2026-03-01T13:00:00.000+0000"}]
    # nothing purged: the log reaches back over the whole 15-day retention window
    assert body["earliestDateAvailable"] == "2026-02-14T14:00:00.000+0000"
    h.emu.set_earliest_deleted("Account", T0 + timedelta(minutes=90))
    _, body, _ = h.call("GET", "/sobjects/Account/deleted/", query={"start": start, "end": end})
    assert (
        body["earliestDateAvailable"] == "2026-03-01T13:30:00.000+0000"
    )  # later than start: resync
    old = (T0 - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    status, body, _ = h.call("GET", "/sobjects/Account/updated/", query={"start": old, "end": end})
    assert status == 400 and body[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    old15 = (T0 - timedelta(days=16)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert h.call("GET", "/sobjects/Account/updated/", query={"start": old15, "end": end})[0] == 200
    # getDeleted further back than the log: 200 with a later earliestDateAvailable …
    h.emu.set_earliest_deleted("Account", T0 - timedelta(days=30))
    status, body, _ = h.call("GET", "/sobjects/Account/deleted/", query={"start": old15, "end": end})
    assert status == 200
    assert body["earliestDateAvailable"] == "2026-02-14T14:00:00.000+0000"  # now - 15 days > start
    assert [r["id"] for r in body["deletedRecords"]] == [ids[1]]
    assert set(body) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    # … or, as some orgs answer, INVALID_REPLICATION_DATE
    h.emu.deleted_too_old = "error"
    status, body, _ = h.call("GET", "/sobjects/Account/deleted/", query={"start": old15, "end": end})
    assert status == 400 and body[0]["errorCode"] == "INVALID_REPLICATION_DATE"


# --------------------------------------------------------------------------- loading, edits, stats


def test_load_reads_the_seed_files(tmp_path: Path) -> None:
    sf = tmp_path / "salesforce"
    sf.mkdir()
    acc = {
        "Id": "001Rs0000000001AAA", "IsDeleted": False, "CreatedDate": "2026-01-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-01-01T00:00:00.000+0000", "SystemModstamp": "2026-01-01T00:00:00.000+0000",
        "MasterRecordId": None, "Name": "Seeded", "Revsync_Id__c": "seed-1",
    }  # fmt: skip
    gone = {
        **acc,
        "Id": "001Rs0000000002AAA",
        "IsDeleted": True,
        "Name": "Gone",
        "Revsync_Id__c": None,
    }
    (sf / "Account.json").write_text(json.dumps([acc, gone]))
    emu = make()
    emu.load(tmp_path)
    emu.load(tmp_path / "missing")  # a missing directory is no data
    assert emu.counts()["Account"] == 1 and emu.counts()["Contact"] == 0
    assert emu.org.find_by_ext("Account", "Revsync_Id__c", "SEED-1") == ["001Rs0000000001AAA"]
    assert emu.org.delete_log["Account"] == [("2026-01-01T00:00:00.000+0000", "001Rs0000000002AAA")]


def test_apply_edits_are_realistic_and_repeatable() -> None:
    def run() -> list[dict[str, Any]]:
        emu = make()
        emu.add("User", {"Email": "u@example.com", "Name": "U", "IsActive": True})
        for i in range(30):
            acc = emu.add("Account", {"Name": f"A{i}"})
            emu.add("Contact", {"LastName": f"C{i}", "AccountId": acc["Id"]})
            emu.add(
                "Opportunity",
                {
                    "Name": f"O{i}",
                    "AccountId": acc["Id"],
                    "StageName": "Prospecting",
                    "CloseDate": "2026-05-01",
                },
            )
        rng = random.Random(5)
        edits: list[dict[str, Any]] = []
        for _ in range(40):  # one at a time, so each edit is checked before the next
            for e in emu.apply_edits(
                rng, 1, ["update", "create", "delete", "merge", "association"]
            ):
                edits.append(e)
                rec = emu.get(e["object"], e["id"])
                assert rec is not None
                if e["kind"] == "merge":
                    assert rec["IsDeleted"] is True and rec["MasterRecordId"] == e["winner"]
                elif e["kind"] == "delete":
                    assert rec["IsDeleted"] is True
                else:
                    assert all(rec[k] == v for k, v in e["fields"].items())
        return edits

    first = run()
    assert {e["kind"] for e in first} == {"update", "create", "delete", "merge", "association"}
    assert all(e["system"] == "salesforce" for e in first)
    assert [(e["kind"], e["object"]) for e in first] == [(e["kind"], e["object"]) for e in run()]


def test_endpoint_names_and_stats(h: Harness) -> None:
    h.call("GET", "/query", query={"q": "SELECT Id FROM Account"})
    h.call(
        "POST",
        "/composite/sobjects",
        {"records": [{"attributes": {"type": "Account"}, "Name": "A"}]},
    )
    h.call("PATCH", "/sobjects/Account/Revsync_Id__c/k", {"Name": "B"})
    h.call("GET", "/sobjects/Account/describe")
    snap = h.emu.ctx.stats.snapshot()["salesforce"]
    assert snap["by_endpoint"] == {"query": 1, "composite/sobjects": 1, "upsert": 1, "describe": 1}
    assert snap["by_status"] == {"200": 3, "201": 1}
    assert snap["records_written"] == 2


def test_last_page_can_be_fetched_again(h: Harness) -> None:
    seed_accounts(h.emu, 2100)
    _, page, _ = h.call("GET", "/queryAll", query={"q": "SELECT Id FROM Account"})
    url = page["nextRecordsUrl"]
    first = h.call("GET", url)[1]
    again = h.call("GET", url)[1]
    assert first == again and first["done"] is True and len(first["records"]) == 100


def test_retrieve_many_and_fifteen_char_ids(h: Harness) -> None:
    ids = seed_accounts(h.emu, 2)
    status, body, _ = h.call(
        "GET",
        "/composite/sobjects/Account",
        query={"ids": f"{ids[0]},001000000000000AAA", "fields": "Name"},
    )
    assert status == 200
    assert body[0]["Name"] == "Account 00000" and set(body[0]) == {"attributes", "Name"}
    assert body[1] is None
    status, rec, _ = h.call("GET", f"/sobjects/Account/{ids[1][:15]}")
    assert status == 200 and rec["Id"] == ids[1]


def test_new_ids_are_valid_salesforce_ids(h: Harness) -> None:
    from sandbox.salesforce_store import with_checksum

    _, body, _ = h.call("POST", "/sobjects/Lead", {"LastName": "L", "Company": "C"})
    rid = body["id"]
    assert rid.startswith("00Q") and len(rid) == 18
    assert with_checksum(rid[:15]) == rid
    assert with_checksum("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # a documented example id


def test_versions_list_needs_no_token(h: Harness) -> None:
    status, body, _ = h.call("GET", "/services/data/", headers={"Authorization": ""})
    assert status == 200
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in body


def test_compound_name_of_contact_and_lead_is_queryable_and_read_only(h: Harness) -> None:
    """Salesforce SOQL selects any field of the object: Contact's and Lead's compound
    ``Name`` (FirstName + LastName) included, in SELECT, WHERE, ORDER BY and parent paths."""
    acc = h.emu.add("Account", {"Name": "Acme"})["Id"]
    ada = h.emu.add("Contact", {"FirstName": "Ada", "LastName": "Lovelace", "AccountId": acc})["Id"]
    h.emu.add("Contact", {"LastName": "Solo"})
    h.emu.add("Lead", {"FirstName": "Grace", "LastName": "Hopper", "Company": "Navy"})
    status, body, _ = h.call("GET", "/query", query={"q": "SELECT Id, Name FROM Contact ORDER BY Name"})
    assert status == 200, body
    assert [r["Name"] for r in body["records"]] == ["Ada Lovelace", "Solo"]
    _, body, _ = h.call("GET", "/query", query={"q": "SELECT Id FROM Contact WHERE Name = 'Ada Lovelace'"})
    assert [r["Id"] for r in body["records"]] == [ada]
    _, body, _ = h.call("GET", "/query", query={"q": "SELECT Name FROM Lead"})
    assert body["records"][0]["Name"] == "Grace Hopper"
    status, body, _ = h.call("GET", f"/sobjects/Contact/{ada}")
    assert status == 200 and body["Name"] == "Ada Lovelace"
    _, desc, _ = h.call("GET", "/sobjects/Contact/describe")
    name = next(f for f in desc["fields"] if f["name"] == "Name")
    assert name["updateable"] is False and name["createable"] is False
    status, body, _ = h.call("PATCH", f"/sobjects/Contact/{ada}", {"Name": "Someone Else"})
    assert status == 400, body
    status, body, _ = h.call("GET", "/query", query={"q": "SELECT Id, Nickname FROM Contact"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"


def test_describe_carries_mergeable_child_relationships_and_name_field(h: Harness) -> None:
    _, acc, _ = h.call("GET", "/sobjects/Account/describe")
    assert acc["mergeable"] is True
    children = {(c["childSObject"], c["field"]) for c in acc["childRelationships"]}
    assert {("Contact", "AccountId"), ("Opportunity", "AccountId")} <= children
    assert [f["name"] for f in acc["fields"] if f["nameField"]] == ["Name"]
    _, opp, _ = h.call("GET", "/sobjects/Opportunity/describe")
    assert opp["mergeable"] is False
    assert ("OpportunityContactRole", "OpportunityId") in {(c["childSObject"], c["field"]) for c in opp["childRelationships"]}
    _, con, _ = h.call("GET", "/sobjects/Contact/describe")
    assert [f["name"] for f in con["fields"] if f["nameField"]] == ["Name"]
