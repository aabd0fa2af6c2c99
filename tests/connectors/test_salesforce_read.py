"""Salesforce connector reads, replayed strictly from recorded API bodies."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus, urlsplit

import pytest
import requests
import responses
from responses import matchers

from connectors.base import Cursor, FatalError, ResyncRequired
from connectors.salesforce import MAX_URI_BYTES
from mapping.canonical import ObjectType
from tests.connectors.test_salesforce_support import (
    ACCOUNT_FIELDS,
    API,
    CONTACT_FIELDS,
    add_describe,
    add_query,
    add_users,
    load,
    make_connector,
    mock,
)

# The plain paging test (three pages, relative nextRecordsUrl, lazy) is a recording now:
# tests/connectors/test_recorded.py::test_salesforce_contacts_come_page_by_page_following_the_relative_next_url


def test_given_since_when_read_then_inclusive_bound_ordered_by_modstamp_and_id() -> None:
    conn = make_connector()
    since = Cursor(datetime(2024, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC), "0035g00000Con007AAA")
    expected = (
        f"SELECT {CONTACT_FIELDS} FROM Contact WHERE SystemModstamp >= 2024-06-01T12:00:00+00:00 "
        "ORDER BY SystemModstamp, Id"
    )
    with mock() as rsps:
        add_describe(rsps, "Contact")
        add_query(rsps, load("query_contact_boundary.json"), expected)  # no COUNT: incremental
        add_users(rsps)
        records = list(conn.read(ObjectType.CONTACT, since=since))

    # Both records on the boundary second come back, including the one whose Id sorts
    # before the cursor's: the engine dedupes ties by id and content hash.
    assert [r.remote_id for r in records] == [
        "0035g00000Con003AAA", "0035g00000Con007AAA", "0035g00000Con009AAA",
    ]
    assert records[0].modstamp == records[1].modstamp == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert records[0].associations == {"account": ("0015g00000Acc001AAA",)}
    assert records[2].associations == {}
    assert records[0].fields["_owner_email"] == "ada@example.com"


def test_given_configured_field_missing_from_describe_when_read_then_warns_and_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = make_connector(fields={"Contact": ["FirstName", "Email", "Lifecycle_Stage__c"]})
    since = Cursor(datetime(2024, 6, 1, 12, tzinfo=UTC))
    expected = (
        "SELECT FirstName, Email, Id, SystemModstamp, OwnerId, AccountId, Revsync_Id__c FROM Contact "
        "WHERE SystemModstamp >= 2024-06-01T12:00:00+00:00 ORDER BY SystemModstamp, Id"
    )
    with caplog.at_level(logging.WARNING, logger="connectors.salesforce"), mock() as rsps:
        add_describe(rsps, "Contact")
        add_query(rsps, load("query_contact_boundary.json"), expected)
        add_users(rsps)
        records = list(conn.read(ObjectType.CONTACT, since=since))
    assert len(records) == 3
    drift = [r for r in caplog.records if "Lifecycle_Stage__c" in r.getMessage()]
    assert len(drift) == 1 and drift[0].levelno == logging.WARNING


def test_given_deletes_and_merges_when_read_deleted_then_tombstones_with_master_id() -> None:
    conn = make_connector()
    since = Cursor(datetime(2024, 6, 1, tzinfo=UTC))
    expected = (
        "SELECT Id, SystemModstamp, MasterRecordId FROM Account WHERE IsDeleted = true AND "
        "SystemModstamp >= 2024-06-01T00:00:00+00:00 ORDER BY SystemModstamp, Id"
    )
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(
            responses.GET, f"{API}/sobjects/Account/deleted/",
            json=load("getdeleted_account.json"),
            match=[matchers.query_param_matcher(
                {"start": "2024-06-01T00:00:00+00:00", "end": "2024-06-03T12:00:00+00:00"}
            )],
        )
        add_query(rsps, load("queryall_account_deleted.json"), expected, include_deleted=True)
        gone = list(conn.read_deleted(ObjectType.ACCOUNT, since=since))
        queried_url = str(rsps.calls[2].request.url)

    assert [(r.remote_id, r.deleted, r.merged_into) for r in gone] == [
        ("0015g00000Acc010AAA", True, None),
        ("0015g00000Acc011AAA", True, "0015g00000Acc001AAA"),  # merge loser → master
        ("0015g00000Acc012AAA", True, None),  # only in the delete log (purged from the bin)
    ]
    assert gone[2].modstamp == datetime(2024, 6, 2, 8, tzinfo=UTC)
    assert "/queryAll/" in queried_url


def test_given_delete_log_starts_after_cursor_when_read_deleted_then_resync_required() -> None:
    conn = make_connector()
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.GET, f"{API}/sobjects/Account/deleted/",
                 json=load("getdeleted_account_purged.json"))
        with pytest.raises(ResyncRequired, match="delete log starts at 2024-06-02"):
            list(conn.read_deleted(ObjectType.ACCOUNT, since=Cursor(datetime(2024, 6, 1, tzinfo=UTC))))


def test_given_cursor_older_than_replication_window_when_read_deleted_then_resync_required() -> None:
    conn = make_connector()
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.GET, f"{API}/sobjects/Account/deleted/", status=400,
                 json=load("error_invalid_replication_date.json"))
        with pytest.raises(ResyncRequired, match="full resync"):
            list(conn.read_deleted(ObjectType.ACCOUNT, since=Cursor(datetime(2024, 1, 1, tzinfo=UTC))))


def test_given_more_records_than_threshold_when_full_read_then_bulk_query_pages() -> None:
    conn = make_connector(bulk_threshold=10_000)
    soql = f"SELECT {ACCOUNT_FIELDS} FROM Account ORDER BY SystemModstamp, Id"
    job = "7505g00000BulkQ01AAA"
    with mock() as rsps:
        add_describe(rsps, "Account")
        # the REST query's first batch says 12,000 records: its cursor is dropped (never
        # followed by queryMore) and a Bulk API 2.0 job reads everything
        add_query(rsps, load("query_account_big_page1.json"), soql)
        rsps.add(responses.POST, f"{API}/jobs/query", json=load("bulk_query_create.json"),
                 match=[matchers.json_params_matcher(
                     {"operation": "query", "query": soql, "columnDelimiter": "COMMA", "lineEnding": "LF"}
                 )])
        rsps.add(responses.GET, f"{API}/jobs/query/{job}", json=load("bulk_query_complete.json"))
        rsps.add(responses.GET, f"{API}/jobs/query/{job}/results", body=load("bulk_query_page1.csv"),
                 headers={"Sforce-Locator": "MTAwMDA", "Sforce-NumberOfRecords": "2"},
                 content_type="text/csv",
                 match=[matchers.query_param_matcher({"maxRecords": "10000"})])
        add_users(rsps)
        rsps.add(responses.GET, f"{API}/jobs/query/{job}/results", body=load("bulk_query_page2.csv"),
                 headers={"Sforce-Locator": "null", "Sforce-NumberOfRecords": "1"},
                 content_type="text/csv",
                 match=[matchers.query_param_matcher({"maxRecords": "10000", "locator": "MTAwMDA"})])
        pages = list(conn.read_pages(ObjectType.ACCOUNT))
        calls = list(rsps.calls)

    assert len(calls) == 7  # describe, query, create, poll, results, users, results
    assert not any("PIBULK" in str(c.request.url) for c in calls)
    assert [len(p) for p in pages] == [2, 1]
    first, second = pages[0][0], pages[0][1]
    assert first.remote_id == "0015g00000Acc001AAA"
    assert first.modstamp == datetime(2024, 5, 1, 10, tzinfo=UTC)
    # CSV text typed back the way the REST API returns it.
    assert first.fields["NumberOfEmployees"] == 10
    assert first.fields["AnnualRevenue"] == 1_000_000.0
    assert first.fields["IsDeleted"] is False
    assert first.fields["Health_Score__c"] == 7.5
    assert first.fields["_owner_email"] == "ada@example.com"
    assert second.fields["Name"] == 'Account, Two "Quoted"'
    assert second.fields["Website"] is None
    assert pages[1][0].fields["OwnerId"] is None


def test_given_describe_too_wide_for_a_url_when_read_then_fatal_error_names_fields_option() -> None:
    conn = make_connector()
    wide = load("describe_Account.json")
    wide["fields"] += [
        {"name": f"Custom_Field_Number_{i:04d}__c", "type": "string", "custom": True,
         "createable": True, "updateable": True}
        for i in range(800)
    ]
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/sobjects/Account/describe", json=wide)
        with pytest.raises(FatalError, match="'fields' option"):
            list(conn.read_pages(ObjectType.ACCOUNT))


# --------------------------------------------------------------------------- contact-role chunks


def _roles_responder(seen: list[list[str]]) -> Any:
    """OpportunityContactRole rows for every Id in the query's IN list (one contact each)."""
    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert len(str(request.url)) <= MAX_URI_BYTES, len(str(request.url))
        soql = parse_qs(urlsplit(str(request.url)).query)["q"][0]
        ids = re.findall(r"'(006[0-9A-Za-z]+)'", soql)
        seen.append(ids)
        rows = [{"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": i,
                 "ContactId": "003" + i[3:], "IsPrimary": True} for i in ids]
        return 200, {}, json.dumps({"totalSize": len(rows), "done": True, "records": rows})
    return reply


def _opp_ids(n: int) -> list[str]:
    return [f"0065g{i:010d}AAA" for i in range(n)]


def test_given_2000_opportunities_when_contact_roles_read_then_4_url_sized_queries_not_7() -> None:
    conn = make_connector()
    ids = _opp_ids(2000)
    seen: list[list[str]] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback(responses.GET, f"{API}/query/", callback=_roles_responder(seen))
        roles = conn._opportunity_contacts(ids)
        urls = [str(c.request.url) for c in rsps.calls]

    assert len(seen) == 4  # 300 Ids a query took 7
    assert [i for chunk in seen for i in chunk] == ids  # each Id once, in order
    # every query but the last is full: one more Id would pass the URL limit
    per_id = len(quote_plus("'0065g0000000000AAA',"))
    assert all(len(u) + per_id > MAX_URI_BYTES for u in urls[:-1])
    assert roles["0065g0000001999AAA"] == ["0035g0000001999AAA"]
    assert len(roles) == 2000


def test_given_a_2000_opportunity_page_when_read_then_contact_roles_take_4_queries() -> None:
    conn = make_connector(opportunity_contacts=True, fields={"Opportunity": ["Name"]})
    ids = _opp_ids(2000)
    page = {"totalSize": 2000, "done": True, "records": [
        {"attributes": {"type": "Opportunity"}, "Id": i, "Name": f"Opp {i}",
         "SystemModstamp": "2024-06-01T00:00:00.000+0000"} for i in ids]}
    seen: list[list[str]] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        add_describe(rsps, "Opportunity")
        rsps.add_callback(
            responses.GET, f"{API}/query/",
            callback=lambda req: (200, {}, json.dumps(page)) if "FROM Opportunity " in unquote_plus(
                str(req.url)) else _roles_responder(seen)(req),
        )
        opps = list(conn.read(ObjectType.OPPORTUNITY, since=Cursor(datetime(2024, 6, 1, tzinfo=UTC))))
        calls = len(rsps.calls)

    assert calls == 1 + 1 + 4  # describe, the page, contact roles
    assert len(opps) == 2000
    assert all(o.associations["contact"] == ("003" + o.remote_id[3:],) for o in opps)


def test_given_total_size_at_threshold_when_full_read_then_rest_pages_continue() -> None:
    conn = make_connector(bulk_threshold=5)  # query_account_page1.json: totalSize 5
    full_soql = f"SELECT {ACCOUNT_FIELDS} FROM Account ORDER BY SystemModstamp, Id"
    with mock() as rsps:
        add_describe(rsps, "Account")
        add_query(rsps, load("query_account_page1.json"), full_soql)
        add_users(rsps)
        rsps.add(responses.GET, f"{API}/query/01gRO0000016PIAYA2-2000", json=load("query_account_page2.json"))
        rsps.add(responses.GET, f"{API}/query/01gRO0000016PIAYA2-4000", json=load("query_account_page3.json"))
        records = list(conn.read(ObjectType.ACCOUNT))
    assert len(records) == 5


# Moved onto recordings (tests/connectors/test_recorded.py): unconverted leads as contacts,
# opportunities with their account and contact roles, list_ids.
