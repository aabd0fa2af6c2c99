"""Salesforce connector writes: sObject Collections and Bulk API 2.0, strict replay."""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
import responses
from responses import matchers

from connectors.base import ErrorCategory, OpKind, RetryPolicy, WriteOp
from mapping.canonical import ObjectType
from tests.connectors.test_salesforce_support import (
    API,
    add_describe,
    add_query,
    add_users,
    json_body,
    load,
    make_connector,
    mock,
    no_sleep,
)

UPSERT_CONTACT = f"{API}/composite/sobjects/Contact/Revsync_Id__c"
COLLECTION = f"{API}/composite/sobjects"


def _key(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def test_given_mixed_item_results_when_upsert_then_results_mapped_op_by_op(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = make_connector()
    ops = [
        WriteOp(OpKind.CREATE, ObjectType.CONTACT, key=_key(i),
                fields={"LastName": f"Smith{i}", "Email": f"c{i}@example.com"})
        for i in range(1, 6)
    ]
    ops[0] = WriteOp(
        OpKind.CREATE, ObjectType.CONTACT, key=_key(1),
        fields={"LastName": "Smith1", "_owner_email": "GRACE@example.com",
                "Lifecycle_Stage__c": "customer"},  # not in this org's describe: dropped
        associations={"account": ("0015g00000Acc001AAA",)},
    )
    ops[1] = WriteOp(OpKind.UPSERT, ObjectType.CONTACT, key=_key(2),
                     fields={"LastName": "Smith2", "_owner_email": "nobody@example.com"})
    with caplog.at_level(logging.WARNING, logger="connectors.salesforce"), mock() as rsps:
        add_describe(rsps, "Contact")
        add_users(rsps)
        rsps.add(responses.PATCH, UPSERT_CONTACT, json=load("collections_upsert_mixed.json"))
        results = conn.write(ObjectType.CONTACT, ops)
        sent = json_body(rsps.calls[-1])

    assert sent["allOrNone"] is False
    assert sent["records"][0] == {
        "attributes": {"type": "Contact"},
        "LastName": "Smith1",
        "OwnerId": "005000000000002AAA",
        "AccountId": "0015g00000Acc001AAA",
        "Revsync_Id__c": _key(1),
    }
    assert "OwnerId" not in sent["records"][1]  # unknown owner email: owner left unchanged
    assert [r["Revsync_Id__c"] for r in sent["records"]] == [_key(i) for i in range(1, 6)]

    assert [r.op for r in results] == ops
    assert [(r.success, r.remote_id, r.created) for r in results[:2]] == [
        (True, "0035g00000Con101AAA", True), (True, "0035g00000Con102AAA", False),
    ]
    assert [(r.success, r.category, r.field) for r in results[2:]] == [
        (False, ErrorCategory.DUPLICATE, "Email"),
        (False, ErrorCategory.TOO_LONG, "Title"),
        (False, ErrorCategory.VALIDATION, None),
    ]
    assert results[2].message is not None and results[2].message.startswith("DUPLICATE_VALUE")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "Lifecycle_Stage__c" in logged and "owner left unchanged" in logged


def test_given_450_ops_when_write_then_three_collection_calls_of_at_most_200() -> None:
    conn = make_connector()
    ops = [
        WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, key=_key(i), fields={"Name": f"Acme {i}"})
        for i in range(450)
    ]
    sizes: list[int] = []

    def collection(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        # Server side of sObject Collections upsert: one UpsertResult per record, in order.
        body = json.loads(request.body or b"{}")
        records = body["records"]
        if len(records) > 200:
            return 400, {}, json.dumps([{"message": "record limit reached", "errorCode": "EXCEEDED_ID_LIMIT"}])
        sizes.append(len(records))
        out = [{"id": "001" + r["Revsync_Id__c"][-12:], "success": True, "errors": [], "created": True}
               for r in records]
        return 200, {}, json.dumps(out)

    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        add_describe(rsps, "Account")
        rsps.add_callback(responses.PATCH, f"{API}/composite/sobjects/Account/Revsync_Id__c",
                          callback=collection, content_type="application/json")
        results = conn.write(ObjectType.ACCOUNT, ops)

    assert sizes == [200, 200, 50]
    assert len(results) == 450
    assert all(r.success and r.created for r in results)
    assert [r.remote_id for r in results] == ["001" + _key(i)[-12:] for i in range(450)]


def test_given_unable_to_lock_row_items_when_update_then_only_locked_records_resent() -> None:
    sleeps: list[float] = []
    conn = make_connector(retry=RetryPolicy(sleep=sleeps.append))
    ops = [
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, key=_key(i), remote_id=f"0015g00000Acc00{i}AAA",
                fields={"Industry": "Retail"})
        for i in (1, 2, 3)
    ]
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.PATCH, COLLECTION, json=load("collections_update_lock.json"))
        rsps.add(responses.PATCH, COLLECTION, json=load("collections_update_lock_retry.json"))
        results = conn.write(ObjectType.ACCOUNT, ops)
        first, second = json_body(rsps.calls[1]), json_body(rsps.calls[2])

    assert [r["id"] for r in first["records"]] == [op.remote_id for op in ops]
    assert first["records"][0] == {
        "attributes": {"type": "Account"}, "id": "0015g00000Acc001AAA", "Industry": "Retail",
    }
    assert [r["id"] for r in second["records"]] == ["0015g00000Acc002AAA"]
    assert [(r.success, r.category) for r in results] == [
        (True, None), (True, None), (False, ErrorCategory.NOT_FOUND),
    ]
    assert len(sleeps) == 1


def test_given_row_stays_locked_when_update_then_locked_category_after_retries() -> None:
    conn = make_connector(retry=RetryPolicy(attempts=2, sleep=no_sleep))
    ops = [
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, key=_key(i), remote_id=f"0015g00000Acc00{i}AAA",
                fields={"Industry": "Retail"})
        for i in (1, 2, 3)
    ]
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.PATCH, COLLECTION, json=load("collections_update_lock.json"))
        rsps.add(responses.PATCH, COLLECTION, json=load("collections_update_still_locked.json"))
        results = conn.write(ObjectType.ACCOUNT, ops)
    assert results[1].success is False
    assert results[1].category is ErrorCategory.LOCKED
    assert results[0].success is True


def test_given_delete_merge_and_idless_ops_when_write_then_one_result_each_in_order() -> None:
    conn = make_connector()
    ops = [
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, key=_key(1), remote_id="0015g00000Acc001AAA"),
        WriteOp(OpKind.MERGE, ObjectType.ACCOUNT, key=_key(2), remote_id="0015g00000Acc002AAA",
                merge_from=("0015g00000Acc003AAA",)),
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, key=_key(3)),
        WriteOp(OpKind.DELETE, ObjectType.ACCOUNT, key=_key(4), remote_id="0015g00000Acc099AAA"),
    ]
    with mock() as rsps:
        rsps.add(responses.DELETE, COLLECTION, json=load("collections_delete.json"),
                 match=[matchers.query_param_matcher(
                     {"ids": "0015g00000Acc001AAA,0015g00000Acc099AAA", "allOrNone": "false"})])
        # merges go after the collections, over SOAP (tests/connectors/test_salesforce_merge.py)
        rsps.add(responses.POST, f"{API.split('/services/data')[0]}/services/Soap/u/59.0",
                 body=load("soap_merge_one.xml"), content_type="text/xml")
        results = conn.write(ObjectType.ACCOUNT, ops)
    assert [r.op for r in results] == ops
    assert [(r.success, r.category) for r in results] == [
        (True, None),
        (True, None),  # merged (SOAP merge())
        (False, ErrorCategory.NOT_FOUND),  # nothing to delete without an Id
        (False, ErrorCategory.NOT_FOUND),  # ENTITY_IS_DELETED
    ]


def test_given_contact_op_on_a_lead_id_when_update_then_written_as_lead() -> None:
    conn = make_connector()
    op = WriteOp(OpKind.UPDATE, ObjectType.CONTACT, key=_key(1), remote_id="00Q5g00000Led001AAA",
                 fields={"Email": "lee@example.org", "Title": "CTO"},
                 associations={"account": ("0015g00000Acc001AAA",)})
    with mock() as rsps:
        add_describe(rsps, "Lead")
        rsps.add(responses.PATCH, COLLECTION,
                 json=[{"id": "00Q5g00000Led001AAA", "success": True, "errors": []}])
        results = conn.write(ObjectType.CONTACT, [op])
        sent = json_body(rsps.calls[1])
    # Lead has no Title or AccountId in this org's describe: both are left out.
    assert sent["records"] == [
        {"attributes": {"type": "Lead"}, "id": "00Q5g00000Led001AAA", "Email": "lee@example.org"}
    ]
    assert results[0].success and results[0].remote_id == "00Q5g00000Led001AAA"


def test_given_native_type_lead_when_create_then_upserted_as_lead() -> None:
    conn = make_connector()
    op = WriteOp(OpKind.CREATE, ObjectType.CONTACT, key=_key(9), native_type="Lead",
                 fields={"LastName": "Ng", "Company": "Ng Corp"})
    with mock() as rsps:
        add_describe(rsps, "Lead")
        rsps.add(responses.PATCH, f"{API}/composite/sobjects/Lead/Revsync_Id__c",
                 json=[{"id": "00Q5g00000Led009AAA", "success": True, "errors": [], "created": True}])
        results = conn.write(ObjectType.CONTACT, [op])
        sent = json_body(rsps.calls[1])
    assert sent["records"] == [{"attributes": {"type": "Lead"}, "LastName": "Ng",
                                "Company": "Ng Corp", "Revsync_Id__c": _key(9)}]
    assert (results[0].success, results[0].created, results[0].remote_id) == (
        True, True, "00Q5g00000Led009AAA")


def test_given_whole_collection_call_refused_when_write_then_each_op_failed_not_raised() -> None:
    conn = make_connector()
    ops = [WriteOp(OpKind.CREATE, ObjectType.ACCOUNT, key=_key(i), fields={"Name": "X"}) for i in (1, 2)]
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.PATCH, f"{API}/composite/sobjects/Account/Revsync_Id__c", status=400,
                 json=[{"message": "Unable to find Revsync_Id__c", "errorCode": "INVALID_FIELD"}])
        results = conn.write(ObjectType.ACCOUNT, ops)
    assert [(r.success, r.category) for r in results] == [
        (False, ErrorCategory.VALIDATION), (False, ErrorCategory.VALIDATION),
    ]


def _bulk_ops() -> list[WriteOp]:
    return [
        WriteOp(OpKind.CREATE, ObjectType.CONTACT, key=_key(i),
                fields={"LastName": f"Bulk{i}",
                        "Email": "not-an-email" if i == 4 else f"bulk{i}@example.com",
                        "Title": None if i == 1 else "Buyer"})
        for i in range(1, 9)
    ]


def test_given_write_above_threshold_when_write_then_bulk_upsert_rows_mapped_by_external_id() -> None:
    conn = make_connector(bulk_threshold=5)
    ops = _bulk_ops()
    job = "7505g00000BulkJ01AAA"
    ingest = f"{API}/jobs/ingest"
    with mock() as rsps:
        add_describe(rsps, "Contact")
        rsps.add(responses.POST, ingest, json=load("bulk_ingest_create.json"),
                 match=[matchers.json_params_matcher({
                     "operation": "upsert", "object": "Contact", "contentType": "CSV",
                     "externalIdFieldName": "Revsync_Id__c", "columnDelimiter": "COMMA",
                     "lineEnding": "LF"})])
        rsps.add(responses.PUT, f"{ingest}/{job}/batches", status=201)
        rsps.add(responses.PATCH, f"{ingest}/{job}", json=load("bulk_ingest_upload_complete.json"),
                 match=[matchers.json_params_matcher({"state": "UploadComplete"})])
        rsps.add(responses.GET, f"{ingest}/{job}", json=load("bulk_ingest_complete.json"))
        rsps.add(responses.GET, f"{ingest}/{job}", json=load("bulk_ingest_complete.json"))
        rsps.add(responses.GET, f"{ingest}/{job}/successfulResults",
                 body=load("bulk_upsert_successful.csv"), content_type="text/csv")
        rsps.add(responses.GET, f"{ingest}/{job}/failedResults",
                 body=load("bulk_upsert_failed.csv"), content_type="text/csv")
        rsps.add(responses.GET, f"{ingest}/{job}/unprocessedRecords",
                 body=load("bulk_upsert_unprocessed.csv"), content_type="text/csv")
        results = conn.write(ObjectType.CONTACT, ops)
        uploaded = rsps.calls[2].request.body

    text = uploaded.decode() if isinstance(uploaded, bytes) else str(uploaded)
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["Revsync_Id__c"] for r in rows) == [_key(i) for i in range(1, 9)]
    assert rows[0]["Title"] == "#N/A"  # None sets the field to null in Bulk CSV

    assert [r.op for r in results] == ops
    assert [(r.success, r.remote_id, r.created) for r in results if r.success] == [
        (True, "0035g00000Blk001AAA", False),
        (True, "0035g00000Blk002AAA", True),
        (True, "0035g00000Blk003AAA", True),
        (True, "0035g00000Blk005AAA", False),
        (True, "0035g00000Blk006AAA", True),
        (True, "0035g00000Blk008AAA", True),
    ]
    assert (results[3].success, results[3].category) == (False, ErrorCategory.VALIDATION)
    assert (results[6].success, results[6].category) == (False, ErrorCategory.DUPLICATE)
    assert results[6].message is not None and "DUPLICATE_VALUE" in results[6].message


def test_given_opportunity_contact_links_when_write_then_missing_contact_roles_created() -> None:
    conn = make_connector()
    ops = [
        # fields + two contacts: Con003 already has a role (query_ocr.json), Con005 does not
        WriteOp(OpKind.UPDATE, ObjectType.OPPORTUNITY, key=_key(1), remote_id="0065g00000Opp001AAA",
                fields={"StageName": "Closed Won"},
                associations={"contact": ("0035g00000Con003AAA", "0035g00000Con005AAA")}),
        # only a link: no field update is sent for it
        WriteOp(OpKind.UPDATE, ObjectType.OPPORTUNITY, key=_key(2), remote_id="0065g00000Opp002AAA",
                associations={"contact": ("0035g00000Con404AAA",)}),
    ]
    ocr = (
        "SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole WHERE OpportunityId "
        "IN ('0065g00000Opp001AAA','0065g00000Opp002AAA') ORDER BY OpportunityId, IsPrimary DESC, ContactId"
    )
    with mock() as rsps:
        add_describe(rsps, "Opportunity")
        rsps.add(responses.PATCH, COLLECTION,
                 json=[{"id": "0065g00000Opp001AAA", "success": True, "errors": []}])
        add_query(rsps, load("query_ocr.json"), ocr)
        rsps.add(responses.POST, COLLECTION, json=[
            {"id": "00K5g00000Ocr010AAA", "success": True, "errors": []},
            {"success": False, "errors": [{"statusCode": "INVALID_CROSS_REFERENCE_KEY",
                                           "message": "invalid cross reference id", "fields": []}]},
        ])
        results = conn.write(ObjectType.OPPORTUNITY, ops)
        patched = json_body(rsps.calls[1])
        created = json_body(rsps.calls[3])

    assert [r["id"] for r in patched["records"]] == ["0065g00000Opp001AAA"]
    assert created == {"allOrNone": False, "records": [
        {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": "0065g00000Opp001AAA",
         "ContactId": "0035g00000Con005AAA"},
        {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": "0065g00000Opp002AAA",
         "ContactId": "0035g00000Con404AAA"},
    ]}
    assert results[0].success is True
    assert (results[1].success, results[1].category, results[1].field) == (
        False, ErrorCategory.VALIDATION, "ContactId")
    assert results[1].remote_id == "0065g00000Opp002AAA"


def test_given_bulk_update_row_locked_when_write_then_row_retried_through_collections() -> None:
    conn = make_connector(bulk_threshold=1)
    ops = [
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, key=_key(i), remote_id=f"0015g00000Acc00{i}AAA",
                fields={"Industry": "Retail"})
        for i in (1, 2)
    ]
    job = "7505g00000BulkJ01AAA"
    ingest = f"{API}/jobs/ingest"
    created = {**load("bulk_ingest_create.json"), "operation": "update", "object": "Account"}
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.POST, ingest, json=created, match=[matchers.json_params_matcher({
            "operation": "update", "object": "Account", "contentType": "CSV",
            "columnDelimiter": "COMMA", "lineEnding": "LF"})])
        rsps.add(responses.PUT, f"{ingest}/{job}/batches", status=201)
        rsps.add(responses.PATCH, f"{ingest}/{job}", json={**created, "state": "UploadComplete"})
        rsps.add(responses.GET, f"{ingest}/{job}", json=load("bulk_ingest_complete.json"))
        rsps.add(responses.GET, f"{ingest}/{job}", json=load("bulk_ingest_complete.json"))
        rsps.add(responses.GET, f"{ingest}/{job}/successfulResults",
                 body=load("bulk_update_successful.csv"), content_type="text/csv")
        rsps.add(responses.GET, f"{ingest}/{job}/failedResults",
                 body=load("bulk_update_failed.csv"), content_type="text/csv")
        rsps.add(responses.GET, f"{ingest}/{job}/unprocessedRecords", body="", content_type="text/csv")
        rsps.add(responses.PATCH, COLLECTION, json=load("collections_update_lock_retry.json"))
        results = conn.write(ObjectType.ACCOUNT, ops)
        resent = json_body(rsps.calls[-1])
    assert [r["id"] for r in resent["records"]] == ["0015g00000Acc002AAA"]
    assert [(r.success, r.remote_id) for r in results] == [
        (True, "0015g00000Acc001AAA"), (True, "0015g00000Acc002AAA"),
    ]


def test_given_700_opportunity_links_when_write_then_existing_roles_read_in_2_queries_not_3() -> None:
    conn = make_connector()
    opps = [f"0065g{i:010d}AAA" for i in range(700)]
    # link-only updates: no field PATCH, one contact role each (the even ones exist already)
    ops = [WriteOp(OpKind.UPDATE, ObjectType.OPPORTUNITY, key=_key(i), remote_id=opp,
                   associations={"contact": ("003" + opp[3:],)}) for i, opp in enumerate(opps)]
    queried: list[int] = []

    def roles(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        soql = unquote_plus(str(request.url))
        ids = [i for i in soql.split("'") if i.startswith("006")]
        queried.append(len(ids))
        rows = [{"OpportunityId": i, "ContactId": "003" + i[3:], "IsPrimary": True}
                for i in ids if int(i[5:15]) % 2 == 0]
        return 200, {}, json.dumps({"totalSize": len(rows), "done": True, "records": rows})

    def created(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body or "{}")["records"]
        return 200, {}, json.dumps([{"id": f"00K{i}", "success": True, "errors": []} for i, _ in enumerate(records)])

    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        add_describe(rsps, "Opportunity")
        rsps.add_callback(responses.GET, f"{API}/query/", callback=roles)
        rsps.add_callback(responses.POST, COLLECTION, callback=created)
        results = conn.write(ObjectType.OPPORTUNITY, ops)
        posted = [json_body(c) for c in rsps.calls if c.request.method == "POST"]

    assert len(queried) == 2 and sum(queried) == 700  # 300 Ids a query took 3
    assert all(r.success for r in results)
    sent = [(r["OpportunityId"], r["ContactId"]) for body in posted for r in body["records"]]
    assert sent == [(o, "003" + o[3:]) for o in opps if int(o[5:15]) % 2 == 1]
    assert [len(b["records"]) for b in posted] == [200, 150]
