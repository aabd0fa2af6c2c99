"""HubSpot connector writes: batch upsert/update/archive, 207 partials, 409 link, owners."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import ApiBudget, ErrorCategory, OpKind, RetryPolicy, WriteOp
from connectors.hubspot import HubSpotConnector
from mapping.canonical import ObjectType
from tests.connectors.urllib3_replay import Replay, Request

BATCH = r"/crm/v3/objects/{}/batch/{}"
OWNERS = r"/crm/v3/owners/?"


@pytest.fixture
def replay() -> Iterator[Replay]:
    r = Replay()
    yield r
    r.assert_done()


def make(replay: Replay) -> HubSpotConnector:
    return HubSpotConnector(replay.client(), budget=ApiBudget(), retry=RetryPolicy(sleep=lambda s: None))


def upsert(obj: ObjectType, key: str, **fields: Any) -> WriteOp:
    return WriteOp(kind=OpKind.UPSERT, object_type=obj, key=key, fields=fields)


def test_given_207_partial_when_upserting_companies_then_results_map_op_by_op(replay: Replay) -> None:
    replay.add("POST", BATCH.format("companies", "upsert"), 207, "companies_upsert_207.json")
    conn = make(replay)
    ops = [
        upsert(ObjectType.ACCOUNT, "key-a", name="Acme", numberofemployees=120),
        upsert(ObjectType.ACCOUNT, "key-b", name="Initech", numberofemployees="not-a-number"),
        upsert(ObjectType.ACCOUNT, "key-c", name="Globex"),
    ]

    results = conn.write(ObjectType.ACCOUNT, ops)

    assert [r.op.key for r in results] == ["key-a", "key-b", "key-c"]
    assert (results[0].success, results[0].remote_id, results[0].created) == (True, "9101", True)
    assert (results[2].success, results[2].remote_id, results[2].created) == (True, "9102", False)
    bad = results[1]
    assert not bad.success and bad.category == ErrorCategory.VALIDATION
    assert bad.field == "numberofemployees"
    sent = replay.requests[0].body["inputs"]
    assert sent[0] == {"id": "key-a", "idProperty": "revsync_id", "objectWriteTraceId": "rs-0",
                       "properties": {"name": "Acme", "numberofemployees": "120"}}


def test_given_validation_error_without_trace_ids_when_upserting_deals_then_failed_result_names_property(
    replay: Replay,
) -> None:
    replay.add("POST", BATCH.format("deals", "upsert"), 207, "deals_upsert_207_no_trace.json")
    conn = make(replay)
    ops = [upsert(ObjectType.OPPORTUNITY, "deal-good", dealname="Good deal", amount="100"),
           upsert(ObjectType.OPPORTUNITY, "deal-bad", dealname="Bad deal", amount="potato")]

    good, bad = conn.write(ObjectType.OPPORTUNITY, ops)

    assert good.success and good.remote_id == "7101" and good.created
    assert not bad.success
    assert bad.category == ErrorCategory.VALIDATION and bad.field == "amount"
    assert "potato" in (bad.message or "")


def test_given_409_duplicate_in_batch_when_upserting_contacts_then_links_existing_and_writes_the_rest(
    replay: Replay,
) -> None:
    # one conflict fails the whole call; the batch is split and the conflicting op linked
    replay.add("POST", BATCH.format("contacts", "upsert"), 409, "error_409_contact_exists.json")
    replay.add("POST", BATCH.format("contacts", "upsert"), body="contacts_upsert_one_ok.json")
    replay.add("POST", BATCH.format("contacts", "upsert"), 409, "error_409_contact_exists.json")
    replay.add("POST", BATCH.format("contacts", "update"), body="contacts_update_501.json")
    conn = make(replay)
    ops = [upsert(ObjectType.CONTACT, "key-new", email="new@acme.example", firstname="New"),
           upsert(ObjectType.CONTACT, "key-dup", email="dup@acme.example", firstname="Dup")]

    new, dup = conn.write(ObjectType.CONTACT, ops)

    assert (new.success, new.remote_id, new.created) == (True, "601", True)
    assert (dup.success, dup.remote_id, dup.created) == (True, "501", False)
    first = replay.requests[0].body["inputs"]
    assert [i["id"] for i in first] == ["new@acme.example", "dup@acme.example"]
    assert first[0]["idProperty"] == "email"
    assert first[0]["properties"] == {"firstname": "New", "revsync_id": "key-new"}
    assert replay.requests[3].body["inputs"] == [
        {"id": "501", "objectWriteTraceId": "rs-0", "properties": {"firstname": "Dup", "revsync_id": "key-dup"}}]


def test_given_update_of_unknown_id_when_writing_then_not_found_for_that_op_only(replay: Replay) -> None:
    replay.add("POST", BATCH.format("contacts", "update"), 207, "contacts_update_207_not_found.json")
    conn = make(replay)
    ops = [WriteOp(kind=OpKind.UPDATE, object_type=ObjectType.CONTACT, key="k1", remote_id="101",
                   fields={"jobtitle": "CTO"}),
           WriteOp(kind=OpKind.UPDATE, object_type=ObjectType.CONTACT, key="k2", remote_id="999",
                   fields={"jobtitle": "CEO"})]

    ok, missing = conn.write(ObjectType.CONTACT, ops)

    assert ok.success and ok.remote_id == "101" and not ok.created
    assert not missing.success and missing.category == ErrorCategory.NOT_FOUND
    assert missing.remote_id == "999"


def test_given_400_for_whole_batch_when_updating_then_bisects_to_the_bad_record(replay: Replay) -> None:
    def ok(req: Request) -> dict[str, Any]:
        return {"status": "COMPLETE", "results": [
            {"id": i["id"], "properties": i["properties"], "objectWriteTraceId": i["objectWriteTraceId"],
             "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-06-05T00:00:00Z", "archived": False}
            for i in req.body["inputs"]]}

    upd = BATCH.format("deals", "update")
    replay.add("POST", upd, 400, "error_400_validation_amount.json")  # [1,2,3,4]
    replay.add("POST", upd, body=ok)                                  # [1,2]
    replay.add("POST", upd, 400, "error_400_validation_amount.json")  # [3,4]
    replay.add("POST", upd, 400, "error_400_validation_amount.json")  # [3]
    replay.add("POST", upd, body=ok)                                  # [4]
    conn = make(replay)
    ops = [WriteOp(kind=OpKind.UPDATE, object_type=ObjectType.OPPORTUNITY, key=f"k{i}", remote_id=str(i),
                   fields={"amount": "potato" if i == 3 else "10"}) for i in range(1, 5)]

    results = conn.write(ObjectType.OPPORTUNITY, ops)

    assert [r.success for r in results] == [True, True, False, True]
    assert results[2].field == "amount" and results[2].remote_id == "3"


def test_given_150_ops_when_writing_then_batches_of_100(replay: Replay) -> None:
    def ok(req: Request) -> dict[str, Any]:
        return {"status": "COMPLETE", "results": [
            {"id": str(5000 + int(i["id"].split("-")[1])), "new": True, "properties": {"revsync_id": i["id"]},
             "createdAt": "2024-06-05T00:00:00Z", "updatedAt": "2024-06-05T00:00:00Z", "archived": False}
            for i in req.body["inputs"]]}

    replay.add("POST", BATCH.format("companies", "upsert"), body=ok)
    replay.add("POST", BATCH.format("companies", "upsert"), body=ok)
    conn = make(replay)
    ops = [upsert(ObjectType.ACCOUNT, f"k-{i}", name=f"Co {i}") for i in range(150)]

    results = conn.write(ObjectType.ACCOUNT, ops)

    assert [len(q.body["inputs"]) for q in replay.requests] == [100, 50]
    assert [r.remote_id for r in results] == [str(5000 + i) for i in range(150)]
    assert all(r.success and r.created for r in results)


def test_given_delete_ops_when_writing_then_batch_archive(replay: Replay) -> None:
    replay.add("POST", BATCH.format("contacts", "archive"), 204, None)
    conn = make(replay)
    ops = [WriteOp(kind=OpKind.DELETE, object_type=ObjectType.CONTACT, key="k1", remote_id="101"),
           WriteOp(kind=OpKind.DELETE, object_type=ObjectType.CONTACT, key="k2")]

    archived, no_id = conn.write(ObjectType.CONTACT, ops)

    assert archived.success and archived.remote_id == "101"
    assert not no_id.success and no_id.category == ErrorCategory.NOT_FOUND
    assert replay.requests[0].body == {"inputs": [{"id": "101"}]}


def test_given_owner_email_and_account_when_writing_contact_then_owner_id_and_default_association(
    replay: Replay, caplog: pytest.LogCaptureFixture
) -> None:
    replay.add("GET", OWNERS, body="owners_p1.json")
    replay.add("POST", BATCH.format("contacts", "update"), body="contacts_update_501.json")
    replay.add("POST", BATCH.format("contacts", "upsert"), body="contacts_upsert_one_ok.json")
    replay.add("POST", r"/crm/v4/associations/contacts/companies/batch/associate/default",
               body="assoc_create_default_ok.json")
    conn = make(replay)
    ops = [
        WriteOp(kind=OpKind.UPSERT, object_type=ObjectType.CONTACT, key="key-new",
                fields={"email": "new@acme.example", "_owner_email": "Owner.Two@revsync.example"},
                associations={"account": ("9001",)}),
        WriteOp(kind=OpKind.UPDATE, object_type=ObjectType.CONTACT, key="key-dup", remote_id="501",
                fields={"firstname": "Dup", "_owner_email": "stranger@elsewhere.example"}),
    ]

    with caplog.at_level(logging.WARNING, logger="connectors.hubspot"):
        new, upd = conn.write(ObjectType.CONTACT, ops)

    assert new.success and upd.success
    # updates by id go first, then upserts, then associations
    upsert_body = replay.requests[2].body["inputs"][0]
    assert upsert_body["properties"]["hubspot_owner_id"] == "41629780"
    update_body = replay.requests[1].body["inputs"][0]
    assert "hubspot_owner_id" not in update_body["properties"]  # unknown owner: left unchanged
    assert "key-dup" in caplog.text and "stranger" not in caplog.text
    assert replay.requests[3].body == {"inputs": [{"from": {"id": "601"}, "to": {"id": "9001"}}]}


def test_given_conflict_item_in_207_when_upserting_contacts_then_links_existing_record(replay: Replay) -> None:
    replay.add("POST", BATCH.format("contacts", "upsert"), 207, "contacts_upsert_207_conflict.json")
    replay.add("POST", BATCH.format("contacts", "update"), body="contacts_update_501.json")
    conn = make(replay)
    ops = [upsert(ObjectType.CONTACT, "key-new", email="new@acme.example"),
           upsert(ObjectType.CONTACT, "key-dup", email="Dup@acme.example", firstname="Dup")]

    new, dup = conn.write(ObjectType.CONTACT, ops)

    assert (new.success, new.remote_id, new.created) == (True, "601", True)
    assert (dup.success, dup.remote_id, dup.created) == (True, "501", False)
    assert replay.requests[1].body["inputs"][0]["id"] == "501"
    assert replay.requests[1].body["inputs"][0]["properties"]["revsync_id"] == "key-dup"


def test_given_update_with_only_associations_when_writing_then_no_object_call(replay: Replay) -> None:
    replay.add("POST", r"/crm/v4/associations/deals/contacts/batch/associate/default",
               body={"status": "COMPLETE", "results": []})
    replay.add("POST", r"/crm/v4/associations/deals/companies/batch/associate/default",
               body={"status": "COMPLETE", "results": []})
    conn = make(replay)
    op = WriteOp(kind=OpKind.UPDATE, object_type=ObjectType.OPPORTUNITY, key="d1", remote_id="7001",
                 associations={"contact": ("101", "102"), "account": ("9001",)})

    [res] = conn.write(ObjectType.OPPORTUNITY, [op])

    assert res.success and res.remote_id == "7001"
    assert replay.requests[0].body == {"inputs": [{"from": {"id": "7001"}, "to": {"id": "101"}},
                                                  {"from": {"id": "7001"}, "to": {"id": "102"}}]}
    assert replay.requests[1].body == {"inputs": [{"from": {"id": "7001"}, "to": {"id": "9001"}}]}


def test_given_association_rejected_when_writing_then_op_fails_on_associations_with_its_id(replay: Replay) -> None:
    replay.add("POST", BATCH.format("contacts", "upsert"), body="contacts_upsert_one_ok.json")
    replay.add("POST", r"/crm/v4/associations/contacts/companies/batch/associate/default", 400,
               {"status": "error", "category": "VALIDATION_ERROR",
                "message": "One or more associations are invalid: company 424242 does not exist",
                "correlationId": "c7f4a3e2-0000-4000-8000-00000000000b"})
    conn = make(replay)
    op = upsert(ObjectType.CONTACT, "key-new", email="new@acme.example")
    op = WriteOp(kind=op.kind, object_type=op.object_type, key=op.key, fields=op.fields,
                 associations={"account": ("424242",)})

    [res] = conn.write(ObjectType.CONTACT, [op])

    assert not res.success and res.remote_id == "601" and res.created
    assert res.field == "associations" and res.category == ErrorCategory.VALIDATION
    assert "424242" in (res.message or "")


def test_sdk_returns_a_model_not_an_exception_for_207(replay: Replay) -> None:
    """Why the connector maps 207 bodies itself: the SDK does not raise for 207, it
    deserialises ``BatchResponse…WithErrors`` (errors' ``context`` kept as a dict)."""
    from hubspot.crm.contacts import BatchResponseSimplePublicUpsertObjectWithErrors

    replay.add("POST", BATCH.format("contacts", "upsert"), 207, "contacts_upsert_207_conflict.json")
    api = replay.client().crm.contacts.batch_api

    out = api.upsert({"inputs": [{"id": "dup@acme.example", "idProperty": "email", "properties": {}}]})

    assert isinstance(out, BatchResponseSimplePublicUpsertObjectWithErrors)
    assert out.errors[0].category == "CONFLICT"
    assert out.errors[0].context == {"ids": ["dup@acme.example"]}
    assert out.results[0].new is True
