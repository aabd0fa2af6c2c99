"""HubSpot connector reads against recorded API bodies (strict urllib3 replay)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from connectors.base import ApiBudget, Cursor, RetryPolicy
from connectors.hubspot import (
    HUBSPOT_SEARCH_CAP,
    HUBSPOT_SEARCH_PAGE,
    HubSpotConnector,
    needs_reanchor,
)
from connectors.hubspot_http import to_ms
from mapping.canonical import ObjectType
from tests.connectors.urllib3_replay import Replay

PROPS = r"/crm/v3/properties/(contacts|companies|deals)"
OBJECTS = r"/crm/v3/objects/{}"
SEARCH = r"/crm/v3/objects/{}/search"
ASSOC = r"/crm/v4/associations/{}/{}/batch/read"
OWNERS = r"/crm/v3/owners/?"


@pytest.fixture
def replay() -> Iterator[Replay]:
    r = Replay()
    yield r
    r.assert_done()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(replay: Replay, cls: type[HubSpotConnector] = HubSpotConnector, **kw: Any) -> tuple[HubSpotConnector, Sleeps]:
    sleeps = Sleeps()
    conn = cls(replay.client(), budget=ApiBudget(), retry=RetryPolicy(sleep=sleeps),
               clock=lambda: 1000.0, **kw)
    return conn, sleeps


class SmallSearch(HubSpotConnector):
    SEARCH_PAGE: ClassVar[int] = 2
    SEARCH_CAP: ClassVar[int] = 4


def test_given_three_list_pages_when_full_read_then_yields_each_record_once_with_owner_and_company(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_contacts.json")
    replay.add("GET", OBJECTS.format("contacts"), body="contacts_list_p1.json",
               query={"limit": "100", "archived": "False"})
    replay.add("GET", OBJECTS.format("contacts"), body="contacts_list_p2.json", query={"after": "NTI1Cg%3D%3D"})
    replay.add("GET", OBJECTS.format("contacts"), body="contacts_list_p3.json", query={"after": "MTA0Cg%3D%3D"})
    # the three pages' 5 ids fit one association read (≤ 1,000 inputs)
    replay.add("POST", ASSOC.format("contacts", "companies"), body="assoc_contacts_companies.json")
    replay.add("GET", OWNERS, body="owners_p1.json")
    conn, _ = make(replay)

    pages = list(conn.read_pages(ObjectType.CONTACT))

    assert [[r.remote_id for r in p] for p in pages] == [["101", "102"], ["104", "103"], ["105"]]
    recs = {r.remote_id: r for p in pages for r in p}
    assert recs["101"].fields["_owner_email"] == "owner.one@revsync.example"
    assert recs["103"].fields["_owner_email"] == "owner.two@revsync.example"
    assert "_owner_email" not in recs["102"].fields
    assert recs["102"].associations == {"account": ("9001", "9002")}
    assert recs["104"].associations == {}  # 207: no company associated
    assert recs["102"].modstamp == datetime(2024, 5, 2, 11, 30, 0, 500000, tzinfo=UTC)
    assert recs["101"].native_type == "contacts" and recs["101"].system == "hubspot"
    assert recs["101"].fields["email"] == "ada@acme.example"
    # the schema's properties were requested, and the SDK's own get_all was never used
    list_req = next(q for q in replay.requests if q.path.endswith("/objects/contacts"))
    assert "email" in list_req.query["properties"] and "lastmodifieddate" in list_req.query["properties"]
    assoc_req = next(q for q in replay.requests if q.path.endswith("/batch/read"))
    assert assoc_req.body == {"inputs": [{"id": i} for i in ("101", "102", "103", "104", "105")]}
    assert conn.budget.calls("hubspot") == 6


def test_given_configured_property_missing_from_portal_when_read_then_skipped_with_warning(
    replay: Replay, caplog: pytest.LogCaptureFixture
) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", OBJECTS.format("companies"), body="companies_list_single.json")
    conn, _ = make(replay, properties={"companies": ["name", "domain", "legacy_tier__c"]})

    with caplog.at_level(logging.WARNING, logger="connectors.hubspot"):
        recs = list(conn.read(ObjectType.ACCOUNT))

    assert [r.remote_id for r in recs] == ["9001"]
    asked = replay.requests[1].query["properties"]
    assert "legacy_tier__c" not in asked
    assert {"name", "domain", "hs_lastmodifieddate"} <= set(asked)
    assert "legacy_tier__c" in caplog.text


def test_given_more_than_cap_when_incremental_read_then_reanchors_and_yields_each_once(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_anchor_p1.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_anchor_p2.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_anchor_p3.json")
    conn, sleeps = make(replay, SmallSearch)
    since = Cursor(datetime(2024, 6, 1, tzinfo=UTC))

    pages = list(conn.read_pages(ObjectType.ACCOUNT, since=since))

    ids = [r.remote_id for p in pages for r in p]
    assert ids == ["1", "2", "3", "4", "5", "6"]
    searches = [q.body for q in replay.requests if q.path.endswith("/search")]
    first, second, third = searches
    assert first["filterGroups"] == [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(to_ms(since.modstamp))}]}]
    assert first["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert first["limit"] == 2 and "after" not in first
    assert second["after"] == "2"
    # the next page (after 4) would pass the cap of 4: a new search from the last timestamp
    anchor = to_ms(datetime(2024, 6, 1, 0, 0, 3, tzinfo=UTC))
    assert third["filterGroups"][0]["filters"][0] == {
        "propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(anchor)}
    assert "after" not in third
    # search is paced (5 req/s): every search after the first waited
    assert sleeps == [pytest.approx(0.2), pytest.approx(0.2)]


def test_given_window_of_one_timestamp_when_reanchoring_then_walks_ties_by_object_id(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_p1.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_p2.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_walk_p1.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_walk_p2.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_walk_p3.json")
    replay.add("POST", SEARCH.format("companies"), body="companies_search_tie_after.json")
    conn, _ = make(replay, SmallSearch)
    t = datetime(2024, 7, 1, 12, tzinfo=UTC)

    ids = [r.remote_id for r in conn.read(ObjectType.ACCOUNT, since=Cursor(t, "11"))]

    assert ids == ["11", "12", "13", "14", "15", "16"]
    bodies = [q.body for q in replay.requests if q.path.endswith("/search")]
    walk = bodies[2]
    assert walk["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    assert walk["filterGroups"][0]["filters"] == [
        {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(to_ms(t))}]
    assert bodies[4]["filterGroups"][0]["filters"][1] == {
        "propertyName": "hs_object_id", "operator": "GT", "value": "14"}
    assert bodies[5]["filterGroups"][0]["filters"] == [
        {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": str(to_ms(t))}]


def test_default_search_cap_math() -> None:
    assert (HubSpotConnector.SEARCH_PAGE, HubSpotConnector.SEARCH_CAP) == (200, 10_000)
    assert (HUBSPOT_SEARCH_PAGE, HUBSPOT_SEARCH_CAP) == (200, 10_000)
    # after 9,800 results the page at offset 9,800 is the last allowed one
    assert not needs_reanchor(9_600)
    assert not needs_reanchor(9_800)
    assert needs_reanchor(10_000)
    assert needs_reanchor(9_801)


def test_given_archived_and_merged_when_read_deleted_then_reports_both(replay: Replay) -> None:
    replay.add("GET", OBJECTS.format("contacts"), body="contacts_archived_p1.json", query={"archived": "True"})
    replay.add("POST", SEARCH.format("contacts"), body="contacts_search_merged.json")
    conn, _ = make(replay)
    since = Cursor(datetime(2024, 5, 1, tzinfo=UTC))

    recs = list(conn.read_deleted(ObjectType.CONTACT, since=since))

    assert [(r.remote_id, r.deleted, r.merged_into) for r in recs] == [
        ("202", True, None), ("205", True, "202"), ("311", True, "301"), ("312", True, "301")]
    assert recs[0].modstamp == datetime(2024, 6, 2, tzinfo=UTC)  # archivedAt
    merged_search = replay.requests[1].body["filterGroups"][0]["filters"]
    assert {"propertyName": "hs_merged_object_ids", "operator": "HAS_PROPERTY"} in merged_search
    assert merged_search[0]["operator"] == "GTE"


def test_given_deals_when_read_then_associations_follow_paging_per_record(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_deals.json")
    replay.add("GET", OBJECTS.format("deals"), body="deals_list_p1.json")
    replay.add("POST", ASSOC.format("deals", "companies"), body="assoc_deals_companies.json")
    replay.add("POST", ASSOC.format("deals", "contacts"), body="assoc_deals_contacts_p1.json")
    replay.add("POST", ASSOC.format("deals", "contacts"), body="assoc_deals_contacts_p2.json")
    conn, _ = make(replay)

    recs = {r.remote_id: r for r in conn.read(ObjectType.OPPORTUNITY)}

    assert recs["7001"].associations == {"account": ("9001",), "contact": ("101", "102", "105")}
    assert recs["7002"].associations == {"account": ("9003",), "contact": ("103",)}
    assert replay.requests[4].body == {"inputs": [{"id": "7001", "after": "MTAy"}]}
    assert recs["7002"].fields["amount"] == "5000.50"


def test_list_ids_asks_for_ids_only(replay: Replay) -> None:
    replay.add("GET", OBJECTS.format("contacts"), body="contacts_list_p3.json")
    conn, _ = make(replay)

    assert list(conn.list_ids(ObjectType.CONTACT)) == ["105"]
    assert replay.requests[0].query["properties"] == ["hs_object_id"]


# --------------------------------------------------------------------------- association batching


def _contact(i: int) -> dict[str, Any]:
    rid = str(5000 + i)
    stamp = f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
    return {"id": rid, "properties": {"hs_object_id": rid, "email": f"c{i}@example.com",
                                      "lastmodifieddate": stamp, "hs_lastmodifieddate": stamp},
            "createdAt": stamp, "updatedAt": stamp, "archived": False}


def _list_page(total: int, size: int) -> Any:
    """A server-side list page: ``after`` is the offset, the last page has no paging."""
    def body(req: Any) -> dict[str, Any]:
        start = int(req.query.get("after", ["0"])[0])
        out: dict[str, Any] = {"results": [_contact(i) for i in range(start, min(start + size, total))]}
        if start + size < total:
            out["paging"] = {"next": {"after": str(start + size)}}
        return out
    return body


def _search_page(total: int, size: int) -> Any:
    def body(req: Any) -> dict[str, Any]:
        start = int(req.body.get("after", "0"))
        out: dict[str, Any] = {"total": total,
                               "results": [_contact(i) for i in range(start, min(start + size, total))]}
        if start + size < total:
            out["paging"] = {"next": {"after": str(start + size)}}
        return out
    return body


def _assoc_read(offset: int) -> Any:
    """Every input id gets one association: the id plus ``offset``."""
    def body(req: Any) -> dict[str, Any]:
        return {"status": "COMPLETE", "results": [
            {"from": {"id": i["id"]}, "to": [{"toObjectId": int(i["id"]) + offset,
                                              "associationTypes": []}]}
            for i in req.body["inputs"]]}
    return body


def _assoc_inputs(replay: Replay) -> list[int]:
    return [len(q.body["inputs"]) for q in replay.requests if q.path.endswith("/batch/read")]


def test_given_1000_contacts_when_full_read_then_one_association_call_for_ten_list_pages(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_contacts.json")
    for _ in range(10):
        replay.add("GET", OBJECTS.format("contacts"), body=_list_page(1000, 100))
    replay.add("POST", ASSOC.format("contacts", "companies"), body=_assoc_read(1))
    conn, _ = make(replay)

    pages = list(conn.read_pages(ObjectType.CONTACT))

    assert [len(p) for p in pages] == [100] * 10
    assert _assoc_inputs(replay) == [1000]  # page by page it took 10 calls
    recs = [r for p in pages for r in p]
    assert len({r.remote_id for r in recs}) == 1000
    assert all(r.associations == {"account": (str(int(r.remote_id) + 1),)} for r in recs)
    # pages still come in listing order, each one sorted by (modstamp, id)
    assert [p[0].remote_id for p in pages] == [str(5000 + 100 * k) for k in range(10)]


def test_given_1001_contacts_when_full_read_then_groups_stay_within_1000_and_yield_lazily(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_contacts.json")
    for _ in range(10):
        replay.add("GET", OBJECTS.format("contacts"), body=_list_page(1001, 100))
    replay.add("POST", ASSOC.format("contacts", "companies"), body=_assoc_read(7))
    replay.add("GET", OBJECTS.format("contacts"), body=_list_page(1001, 100), query={"after": "1000"})
    replay.add("POST", ASSOC.format("contacts", "companies"), body=_assoc_read(7))
    conn, _ = make(replay)

    pages = conn.read_pages(ObjectType.CONTACT)
    first = next(pages)
    # the first page is out before the 11th list page is fetched (memory stays ~1,000)
    assert len(replay.requests) == 1 + 10 + 1
    rest = list(pages)

    assert [len(p) for p in [first, *rest]] == [100] * 10 + [1]
    assert _assoc_inputs(replay) == [1000, 1]
    assert rest[-1][0].associations == {"account": (str(6000 + 7),)}


def test_given_1000_deals_when_incremental_read_then_one_call_per_association_pair(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_deals.json")
    for _ in range(5):
        replay.add("POST", SEARCH.format("deals"), body=_search_page(1000, 200))
    replay.add("POST", ASSOC.format("deals", "companies"), body=_assoc_read(1))
    replay.add("POST", ASSOC.format("deals", "contacts"), body=_assoc_read(2))
    conn, _ = make(replay)

    pages = list(conn.read_pages(ObjectType.OPPORTUNITY, since=Cursor(datetime(2024, 5, 1, tzinfo=UTC))))

    assert [len(p) for p in pages] == [200] * 5
    assert _assoc_inputs(replay) == [1000, 1000]  # page by page it took 10 calls
    rec = pages[3][17]
    assert rec.associations == {"account": (str(int(rec.remote_id) + 1),),
                                "contact": (str(int(rec.remote_id) + 2),)}


def test_given_companies_when_full_read_then_no_association_call(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    for _ in range(3):
        replay.add("GET", OBJECTS.format("companies"), body=_list_page(250, 100))
    conn, _ = make(replay)

    pages = conn.read_pages(ObjectType.ACCOUNT)
    assert len(next(pages)) == 100
    assert len(replay.requests) == 2  # companies are not grouped: page by page, lazily
    assert [len(p) for p in pages] == [100, 50]
