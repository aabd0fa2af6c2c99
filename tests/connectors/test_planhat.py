"""Recorded-API tests of the Planhat connector: strict replay with ``responses``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    ErrorCategory,
    FatalError,
    OpKind,
    RetriableError,
    RetryPolicy,
    Unreachable,
    WriteOp,
)
from connectors.planhat import PLANHAT_BULK, PlanhatConnector, parse_modstamp
from connectors.planhat_client import PlanhatClient, retry_after_seconds
from mapping.canonical import ObjectType

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "planhat"
BASE = "https://planhat.test"
TOKEN = "ph-recorded-token"  # not a real token


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def connector(sleeps: Sleeps, *, page_size: int | None = 2, bulk_size: int = PLANHAT_BULK,
              budget: ApiBudget | None = None) -> PlanhatConnector:
    client = PlanhatClient(TOKEN, base_url=BASE, timeout=5)
    return PlanhatConnector(
        client, budget=budget or ApiBudget(), retry=RetryPolicy(attempts=4, sleep=sleeps),
        page_size=page_size, bulk_size=bulk_size,
    )


def list_query(limit: int, offset: int, select: str | None = None) -> Any:
    params = {"limit": str(limit), "offset": str(offset), "sort": "_id"}
    if select:
        params["select"] = select
    return matchers.query_param_matcher(params)


def add_users(api: responses.RequestsMock) -> None:
    api.get(f"{BASE}/users", json=fixture("users.json"), match=[list_query(2000, 0, "_id,email")])


def add_companies(api: responses.RequestsMock) -> None:
    api.get(f"{BASE}/companies", json=fixture("companies_page1.json"), match=[list_query(2, 0)])
    api.get(f"{BASE}/companies", json=fixture("companies_page2.json"), match=[list_query(2, 2)])


# ------------------------------------------------------------------ reads


def test_given_two_pages_when_read_then_every_company_once_with_owner_email_and_modstamp(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    add_companies(api)
    add_users(api)
    budget = ApiBudget()
    pages = list(connector(sleeps, budget=budget).read_pages(ObjectType.ACCOUNT))
    assert [len(p) for p in pages] == [2, 1]
    recs = [r for p in pages for r in p]
    assert [r.remote_id for r in recs] == [
        "64b7f1d3b2e5f4c3d2b10001", "64b7f1d3b2e5f4c3d2b10002", "64b7f1d3b2e5f4c3d2b10003",
    ]
    first, second, third = recs
    assert first.system == "planhat" and first.native_type == "companies"
    assert first.object_type is ObjectType.ACCOUNT
    assert first.modstamp == datetime(2026, 10, 30, 14, 5, 12, 345000, tzinfo=UTC)
    assert first.fields["arr"] == 24000 and first.fields["renewalDate"] == "2027-03-31"
    assert first.fields["_owner_email"] == "dana.csm@example-vendor.com"
    assert second.fields["_owner_email"] == "lee.csm@example-vendor.com"  # owner as {_id, nickName}
    assert third.fields["_owner_email"] is None  # unknown owner id
    assert first.associations == {}
    assert budget.calls("planhat") == 3
    assert api.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_given_500_then_200_when_read_then_returns_records(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    api.get(f"{BASE}/endusers", status=500, json=fixture("error_500.json"), match=[list_query(2000, 0)])
    api.get(f"{BASE}/endusers", json=fixture("endusers_page1.json"), match=[list_query(2000, 0)])
    recs = list(connector(sleeps, page_size=None).read(ObjectType.CONTACT))
    assert len(recs) == 2
    assert len(sleeps) == 1


def test_given_429_with_retry_after_then_200_when_read_then_waits_that_long(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    api.get(f"{BASE}/endusers", status=429, json=fixture("error_429.json"),
            headers={"Retry-After": "7"}, match=[list_query(2000, 0)])
    api.get(f"{BASE}/endusers", json=fixture("endusers_page1.json"), match=[list_query(2000, 0)])
    budget = ApiBudget()
    recs = list(connector(sleeps, page_size=None, budget=budget).read(ObjectType.CONTACT))
    assert len(recs) == 2
    assert sleeps == [7.0]
    assert budget.calls("planhat") == 2  # every attempt is an API call


def test_given_connection_reset_then_200_when_read_then_retried(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    api.get(f"{BASE}/endusers", body=requests.ConnectionError("reset by peer"), match=[list_query(2000, 0)])
    api.get(f"{BASE}/endusers", json=fixture("endusers_page1.json"), match=[list_query(2000, 0)])
    assert len(list(connector(sleeps, page_size=None).read(ObjectType.CONTACT))) == 2


def test_given_500_always_when_read_then_retriable_error_after_the_explicit_stop(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    for _ in range(4):
        api.get(f"{BASE}/endusers", status=503, json=fixture("error_500.json"), match=[list_query(2000, 0)])
    with pytest.raises(RetriableError, match="HTTP 503"):
        list(connector(sleeps, page_size=None).read(ObjectType.CONTACT))
    assert len(sleeps) == 3


def test_given_401_when_read_then_auth_error_without_retry(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    api.get(f"{BASE}/endusers", status=401, json=fixture("error_401.json"))
    with pytest.raises(AuthError) as exc:
        list(connector(sleeps).read(ObjectType.CONTACT))
    assert TOKEN not in str(exc.value)
    assert sleeps == []


def test_given_403_when_check_then_auth_error(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    """A 403 for the whole call: the token may not do this (ends Planhat's part of a run)."""
    api.get(f"{BASE}/companies", status=403, json=fixture("error_403.json"))
    with pytest.raises(AuthError, match="permission"):
        connector(sleeps).check()
    assert sleeps == []


def test_given_server_repeats_a_page_when_read_then_paging_loop_is_refused(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    page = fixture("companies_page1.json")
    add_users(api)
    api.get(f"{BASE}/companies", json=page, match=[list_query(2, 0)])
    api.get(f"{BASE}/companies", json=page, match=[list_query(2, 2)])
    with pytest.raises(FatalError, match="previous page"):
        list(connector(sleeps).read(ObjectType.ACCOUNT))


def test_given_opportunity_when_read_then_fatal_error_planhat_has_none(sleeps: Sleeps) -> None:
    with pytest.raises(FatalError):
        list(connector(sleeps).read(ObjectType.OPPORTUNITY))


# ------------------------------------------------------------------ writes

K1, K2, K3 = ("3b1e8a0c-0000-4000-8000-000000000001", "3b1e8a0c-0000-4000-8000-000000000002",
              "3b1e8a0c-0000-4000-8000-000000000003")


def test_given_206_when_write_then_each_op_gets_its_own_result(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    add_users(api)
    expected_body = [
        {"name": "Globex", "phone": "+1 555 0101", "owner": "64b7f0c2a1e4d3b2c1a00001", "sourceId": K1},
        {"phone": "+1 555 0102", "sourceId": K2},
        {"name": "Northwind Traders Inc", "_id": "64b7f1d3b2e5f4c3d2b10001"},
        {"externalId": "nw-001", "_id": "64b7f1d3b2e5f4c3d2b10002"},
        {"name": "Fabrikam", "sourceId": K3},
    ]
    api.put(f"{BASE}/companies", status=206, json=fixture("bulk_companies_206.json"),
            match=[matchers.json_params_matcher(expected_body)])
    api.delete(f"{BASE}/companies/64b7f1d3b2e5f4c3d2b10009", json=fixture("delete_ok.json"))
    api.delete(f"{BASE}/companies/64b7f1d3b2e5f4c3d2b10008", status=404, json=fixture("error_404.json"))
    ops = [
        WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K1,
                fields={"name": "Globex", "phone": "+1 555 0101", "_owner_email": "Dana.CSM@example-vendor.com"}),
        WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K2, fields={"phone": "+1 555 0102"}),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-1", fields={"name": "Northwind Traders Inc",
                "_owner_email": "nobody@example-vendor.com"}, remote_id="64b7f1d3b2e5f4c3d2b10001"),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-2", fields={"externalId": "nw-001"},
                remote_id="64b7f1d3b2e5f4c3d2b10002"),
        WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, K3, fields={"name": "Fabrikam"}),
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, "c-9", remote_id="64b7f1d3b2e5f4c3d2b10009"),
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, "c-8", remote_id="64b7f1d3b2e5f4c3d2b10008"),
        WriteOp(OpKind.MERGE, ObjectType.ACCOUNT, "c-7", remote_id="64b7f1d3b2e5f4c3d2b10007",
                merge_from=("64b7f1d3b2e5f4c3d2b10006",)),
    ]
    res = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert [r.op for r in res] == ops
    assert [r.success for r in res] == [True, False, True, False, True, True, True, False]
    assert (res[0].remote_id, res[0].created) == ("64b7f1d3b2e5f4c3d2b10100", True)
    assert (res[1].category, res[1].field, res[1].message) == (ErrorCategory.VALIDATION, "name", "name is required")
    assert (res[2].remote_id, res[2].created) == ("64b7f1d3b2e5f4c3d2b10001", False)
    assert (res[3].category, res[3].field) == (ErrorCategory.DUPLICATE, "externalId")
    assert res[3].remote_id == "64b7f1d3b2e5f4c3d2b10002"
    # a retried create matched its sourceId: updated, not duplicated
    assert (res[4].remote_id, res[4].created) == ("64b7f1d3b2e5f4c3d2b10003", False)
    assert res[6].message == "already deleted"
    assert res[7].category == ErrorCategory.UNKNOWN and "merge" in (res[7].message or "")


def test_given_enduser_create_when_write_then_company_id_from_association(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    key = "9d2c4f10-0000-4000-8000-000000000010"
    api.put(f"{BASE}/endusers", json=fixture("bulk_endusers_200.json"), match=[matchers.json_params_matcher([
        {"email": "new@northwind.example", "companyId": "64b7f1d3b2e5f4c3d2b10001", "sourceId": key},
    ])])
    op = WriteOp(OpKind.CREATE, ObjectType.CONTACT, key, fields={"email": "new@northwind.example"},
                 associations={"account": ("64b7f1d3b2e5f4c3d2b10001",)})
    [res] = connector(sleeps).write(ObjectType.CONTACT, [op])
    assert res.success and res.created and res.remote_id == "64b7f2e4c3f6a5d4e3c20100"


def test_given_create_not_echoed_when_write_then_found_by_srcid(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    key = "9d2c4f10-0000-4000-8000-000000000020"
    api.put(f"{BASE}/endusers", json=fixture("bulk_no_keys_200.json"))
    api.get(f"{BASE}/endusers/srcid-{key}", json=fixture("enduser_by_srcid.json"))
    op = WriteOp(OpKind.CREATE, ObjectType.CONTACT, key, fields={"email": "new@northwind.example"},
                 associations={"account": ("64b7f1d3b2e5f4c3d2b10001",)})
    [res] = connector(sleeps).write(ObjectType.CONTACT, [op])
    assert res.success and res.remote_id == "64b7f2e4c3f6a5d4e3c20200"


def test_given_500_then_206_when_write_then_retried_once_and_mapped(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    key = "9d2c4f10-0000-4000-8000-000000000010"
    api.put(f"{BASE}/endusers", status=500, json=fixture("error_500.json"))
    api.put(f"{BASE}/endusers", json=fixture("bulk_endusers_200.json"))
    [res] = connector(sleeps).write(ObjectType.CONTACT, [WriteOp(OpKind.CREATE, ObjectType.CONTACT, key,
                                                                 fields={"email": "x@y.example"})])
    assert res.success and res.remote_id == "64b7f2e4c3f6a5d4e3c20100"
    assert len(sleeps) == 1


def test_given_bad_record_400_on_single_item_batch_when_write_then_record_failure(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    api.put(f"{BASE}/companies", status=400, json=fixture("error_400_name.json"))
    [res] = connector(sleeps).write(ObjectType.ACCOUNT, [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K1,
                                                                 fields={"phone": "1"})])
    assert not res.success and res.category == ErrorCategory.VALIDATION
    assert "name is required" in (res.message or "")


def test_given_400_without_detail_on_batch_when_write_then_split_until_the_bad_item_is_alone(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    good = {"created": 1, "createdErrors": [], "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "insertsKeys": [{"_id": "64b7f1d3b2e5f4c3d2b10100", "sourceId": K1}],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": []}
    api.put(f"{BASE}/companies", status=400, json=fixture("error_400_name.json"))  # [K1, K2]
    api.put(f"{BASE}/companies", json=good, match=[matchers.json_params_matcher([{"name": K1, "sourceId": K1}])])
    api.put(f"{BASE}/companies", status=400, json=fixture("error_400_name.json"),
            match=[matchers.json_params_matcher([{"phone": "1", "sourceId": K2}])])
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K1, fields={"name": K1}),
           WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K2, fields={"phone": "1"})]
    ok, bad = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert ok.success and ok.created and ok.remote_id == "64b7f1d3b2e5f4c3d2b10100"
    assert not bad.success and bad.category == ErrorCategory.VALIDATION and "name is required" in (bad.message or "")


def test_given_every_item_failed_400_when_write_then_per_record_results_not_an_abort(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    """Planhat answers 400 when every item of a bulk upsert failed, with the entries in
    createdErrors / updatedErrors: each op gets its own failure, nothing is raised."""
    api.put(f"{BASE}/companies", status=400, json=fixture("bulk_companies_400_all_failed.json"))
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K2, fields={"phone": "+1 555 0102"}),
           WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-2", fields={"externalId": "nw-001"},
                   remote_id="64b7f1d3b2e5f4c3d2b10002")]
    create, update = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert (create.success, create.category, create.field) == (False, ErrorCategory.VALIDATION, "name")
    assert (update.success, update.category, update.field) == (False, ErrorCategory.DUPLICATE, "externalId")
    assert update.remote_id == "64b7f1d3b2e5f4c3d2b10002"
    assert sleeps == []


def test_given_403_with_permission_errors_when_write_then_only_those_ops_fail(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    api.put(f"{BASE}/companies", status=403, json=fixture("bulk_companies_403_permission.json"))
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, K1, fields={"name": "Globex"}),
           WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-1", fields={"name": "Northwind"},
                   remote_id="64b7f1d3b2e5f4c3d2b10001")]
    created, denied = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert created.success and created.created and created.remote_id == "64b7f1d3b2e5f4c3d2b10100"
    assert not denied.success and denied.category == ErrorCategory.PERMISSION
    assert "permission" in (denied.message or "")


def test_given_two_ops_with_the_same_key_when_write_then_never_in_one_request(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    """Planhat refuses a request carrying a sourceId twice: the second op goes in the next call."""
    def echo(ks: list[str]) -> dict[str, Any]:
        return {"created": 0, "createdErrors": [], "updated": len(ks), "updatedErrors": [], "insertsKeys": [],
                "updatesKeys": [{"_id": f"{n:024x}", "sourceId": k} for n, k in enumerate(ks, 1)],
                "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": []}

    api.put(f"{BASE}/companies", json=echo([K1, K2]), match=[matchers.json_params_matcher(
        [{"name": "A", "sourceId": K1}, {"name": "B", "sourceId": K2}])])
    api.put(f"{BASE}/companies", json=echo([K1]), match=[matchers.json_params_matcher(
        [{"name": "A2", "sourceId": K1}])])
    ops = [WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, K1, fields={"name": "A"}),
           WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, K1, fields={"name": "A2"}),
           WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, K2, fields={"name": "B"})]
    res = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert [r.success for r in res] == [True, True, True]
    assert [r.op for r in res] == ops


def test_given_more_ops_than_bulk_size_when_write_then_chunked_calls(api: responses.RequestsMock, sleeps: Sleeps) -> None:
    keys = [f"k-{i}" for i in range(3)]

    def body(ks: list[str]) -> dict[str, Any]:
        return {"created": len(ks), "createdErrors": [], "updated": 0, "updatedErrors": [], "updatesKeys": [],
                "insertsKeys": [{"_id": f"{i:024x}", "sourceId": k} for i, k in enumerate(ks, start=int(ks[0][2:]) + 1)],
                "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": []}

    api.put(f"{BASE}/companies", json=body(keys[:2]),
            match=[matchers.json_params_matcher([{"name": "n", "sourceId": k} for k in keys[:2]])])
    api.put(f"{BASE}/companies", json=body(keys[2:]),
            match=[matchers.json_params_matcher([{"name": "n", "sourceId": keys[2]}])])
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, k, fields={"name": "n"}) for k in keys]
    res = connector(sleeps, bulk_size=2).write(ObjectType.ACCOUNT, ops)
    assert [r.remote_id for r in res] == [f"{i:024x}" for i in (1, 2, 3)]
    assert all(r.created for r in res)


# ------------------------------------------------------------------ settings and helpers


def test_given_settings_when_from_settings_then_client_uses_options_and_token(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used by this test")
    settings = ConnectionSettings(
        name="cs", kind="planhat",
        options={"base_url": "https://api-eu.planhat.test/", "ca_bundle": str(ca), "timeout": 12, "page_size": 100},
        secrets={"api_token": TOKEN},
    )
    conn = PlanhatConnector.from_settings(settings, budget=ApiBudget())
    assert conn.client.base_url == "https://api-eu.planhat.test"
    assert conn.client.session.verify == str(ca)
    assert conn.client.timeout == 12.0 and conn.page_size == 100
    assert TOKEN not in repr(conn.client) and TOKEN not in repr(settings)
    with pytest.raises(FatalError, match="api_token"):
        PlanhatConnector.from_settings(ConnectionSettings(name="cs", kind="planhat"), budget=ApiBudget())


def test_retry_after_and_modstamp_parsing() -> None:
    now = datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Mon, 02 Nov 2026 10:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert parse_modstamp("2026-11-02T10:15:30.123Z") == datetime(2026, 11, 2, 10, 15, 30, 123000, tzinfo=UTC)
    assert parse_modstamp(None) is None and parse_modstamp("garbage") is None


def test_given_206_with_errors_without_keys_when_write_then_only_unconfirmed_ops_fail(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    api.put(f"{BASE}/companies", status=206, json=fixture("bulk_unattributed_206.json"))
    ops = [
        WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, "k-a", fields={"name": "A"}),
        WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, "k-b", fields={"name": "B"}),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-1", fields={"name": "N"}, remote_id="64b7f1d3b2e5f4c3d2b10001"),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-2", fields={"name": "M"}, remote_id="64b7f1d3b2e5f4c3d2b10002"),
    ]
    res = connector(sleeps).write(ObjectType.ACCOUNT, ops)
    assert [r.success for r in res] == [True, False, True, False]
    assert res[0].remote_id == "64b7f1d3b2e5f4c3d2b10200"
    assert res[1].category == ErrorCategory.UNKNOWN and res[1].message == "Validation failed"
    assert res[3].remote_id == "64b7f1d3b2e5f4c3d2b10002"


def test_given_connection_refused_when_read_then_unreachable_after_fewer_tries(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    """A host that refuses connections is deferred after ``unreachable_attempts`` tries,
    not after the full retry budget meant for 429/5xx."""
    refused = requests.ConnectionError("Failed to establish a new connection: [Errno 111] Connection refused")
    for _ in range(3):
        api.get(f"{BASE}/endusers", body=refused)
    with pytest.raises(Unreachable, match="connection refused"):
        list(connector(sleeps).read(ObjectType.CONTACT))
    assert len(api.calls) == 3 and len(sleeps) == 2


def test_unreachable_cause_reads_wrapped_errors() -> None:
    from connectors.base import unreachable_cause

    dns = requests.ConnectionError(OSError("[Errno -2] Name or service not known"))
    assert unreachable_cause(dns) == "unknown host"
    assert unreachable_cause(requests.ConnectionError(ConnectionRefusedError(111, "refused"))) == "connection refused"
    assert unreachable_cause(requests.ReadTimeout("read timed out")) is None
    assert unreachable_cause(requests.ConnectionError("Connection reset by peer")) is None


# Moved onto recordings (tests/connectors/test_recorded.py): endusers with their company,
# list_ids selecting _id only.


def test_licenses_are_read_by_one_listing_walk_and_kept_by_external_id(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    """A batch of handoffs reads its licenses in one walk of ``GET /licenses`` (only the
    compared fields selected), whatever the number of external ids asked for."""
    select = "_id,externalId,companyId,product,_currency,fromDate,toDate,fixedPeriod,mrr"
    lic = [{"_id": f"65a0c0ffee00000000000{n:03d}", "companyId": "64b7f1d3b2e5f4c3d2b10001", "_currency": "EUR",
            "fromDate": "2026-01-01T00:00:00.000Z", "toDate": "2026-12-31T00:00:00.000Z", "fixedPeriod": True,
            "mrr": 250.5, "product": "Seats", **({"externalId": f"ERP-{n}"} if n != 1 else {})} for n in range(3)]
    api.get(f"{BASE}/licenses", json=lic[:2], match=[list_query(2, 0, select)])
    api.get(f"{BASE}/licenses", json=lic[2:], match=[list_query(2, 2, select)])
    budget = ApiBudget()
    got = connector(sleeps, budget=budget).licenses(["ERP-2", "ERP-0", "ERP-9"])
    assert sorted(got) == ["ERP-0", "ERP-2"]  # ERP-9 is not there; a license without externalId is skipped
    assert got["ERP-2"]["_id"] == "65a0c0ffee00000000000002" and got["ERP-0"]["mrr"] == 250.5
    assert budget.calls("planhat") == 2
    assert connector(sleeps).licenses([]) == {}  # nothing asked: no call


# ------------------------------------------------------------------ company groups (parent)


def test_given_companies_in_a_group_when_read_then_the_parent_is_a_parent_association(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    """The parent is the parent's ``_id`` (``PARENT_FIELD``); the calculated org fields
    (root, path, level) are Planhat's and read as they are, never as the parent."""
    api.get(f"{BASE}/companies", json=[
        {"_id": "651a00000000000000000001", "name": "Holmgren AB", "orgRootId": "651a00000000000000000001",
         "orgLevel": 1, "lastUpdated": "2026-11-02T08:00:00.000Z"},
        {"_id": "651a00000000000000000002", "name": "Holmgren Norge AS", "parentId": "651a00000000000000000001",
         "orgRootId": "651a00000000000000000001", "orgPath": "651a00000000000000000001", "orgLevel": 2},
        {"_id": "651a00000000000000000003", "name": "Solo GmbH", "parentId": None},
    ], match=[list_query(5000, 0)])  # no owners: the users are never read
    recs = [r for p in connector(sleeps, page_size=None).read_pages(ObjectType.ACCOUNT) for r in p]
    # the root has no parent field (says nothing); Solo's is null (read: none)
    assert [r.associations for r in recs] == [{}, {"parent": ("651a00000000000000000001",)}, {"parent": ()}]


def test_given_a_parent_set_and_one_removed_when_write_then_parent_id_and_null_are_sent(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    api.put(f"{BASE}/companies", json={
        "created": 0, "createdErrors": [], "insertsKeys": [], "updated": 2, "updatedErrors": [],
        "updatesKeys": [{"_id": "651a00000000000000000002"}, {"_id": "651a00000000000000000003"}],
        "nonupdates": 0, "modified": ["651a00000000000000000002", "651a00000000000000000003"],
        "upsertedIds": [], "permissionErrors": []},
        match=[matchers.json_params_matcher([
            {"parentId": "651a00000000000000000001", "_id": "651a00000000000000000002"},
            {"parentId": None, "_id": "651a00000000000000000003"},
        ])])
    ops = [
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-2", remote_id="651a00000000000000000002",
                associations={"parent": ("651a00000000000000000001",)}),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-3", remote_id="651a00000000000000000003",
                associations={"parent": ()}),  # an empty parent: the parent was removed
    ]
    assert all(r.success for r in connector(sleeps).write(ObjectType.ACCOUNT, ops))


def test_given_a_configured_parent_field_when_read_and_written_then_that_field_is_used(
    api: responses.RequestsMock, sleeps: Sleeps
) -> None:
    from connectors.base import ConnectionSettings

    settings = ConnectionSettings(name="planhat", kind="planhat", options={"base_url": BASE, "parent_field": "parentOrg"},
                                  secrets={"api_token": TOKEN})
    conn = PlanhatConnector.from_settings(settings, budget=ApiBudget(), retry=RetryPolicy(attempts=1, sleep=sleeps))
    api.put(f"{BASE}/companies", json={"created": 0, "createdErrors": [], "insertsKeys": [], "updated": 1,
                                       "updatedErrors": [], "updatesKeys": [{"_id": "651a00000000000000000002"}],
                                       "modified": ["651a00000000000000000002"], "permissionErrors": []},
            match=[matchers.json_params_matcher([{"parentOrg": "651a00000000000000000001",
                                                  "_id": "651a00000000000000000002"}])])
    op = WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, "c-2", remote_id="651a00000000000000000002",
                 associations={"parent": ("651a00000000000000000001",)})
    assert conn.write(ObjectType.ACCOUNT, [op])[0].success
    assert conn.parent_field == "parentOrg"
