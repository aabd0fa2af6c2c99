"""Unit tests of the HubSpot emulator through werkzeug's test environment (no sockets):
objects, paging, archived listing, batch 207/409/400, upsert, merge, owners,
properties, OAuth, rate limits and fault rendering."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from sandbox.core import Clock, Fault, FaultInjector, SandboxContext, Stats
from sandbox.hubspot import BATCH_MAX, HubSpotEmulator
from sandbox.values import STAGES, native_values

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAT = "pat-na1-test"
CREDS = {
    "hubspot": {
        "access_token": PAT,
        "client_id": "client-1",
        "client_secret": "secret-1",
        "refresh_token": "na1-refresh-1",
    }
}


def make(tier: str = "off", seed: int = 1) -> HubSpotEmulator:
    ctx = SandboxContext(
        clock=Clock(fixed=T0),
        faults=FaultInjector(None, seed=0),
        stats=Stats(),
        tier=tier,
        credentials=CREDS,
        seed=seed,
    )
    return HubSpotEmulator(ctx)


class Resp:
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status, self.body, self.headers = status, body, headers


def call(
    emu: HubSpotEmulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, Any] | None = None,
    token: str | None = PAT,
    fault: Fault | None = None,
    form: dict[str, str] | None = None,
) -> Resp:
    headers = [("Authorization", f"Bearer {token}")] if token else []
    builder = EnvironBuilder(
        method=method,
        path=path,
        query_string=query,
        json=body if form is None else None,
        data=form,
        headers=headers,
        base_url="https://127.0.0.1:9443",
    )
    resp = emu.handle(Request(builder.get_environ()), fault)
    text = resp.get_data(as_text=True)
    return Resp(resp.status_code, json.loads(text) if text else None, resp.headers)


def add_contacts(emu: HubSpotEmulator, n: int, start: int = 0) -> list[str]:
    return [
        emu.add(
            "contacts",
            {
                "properties": {"email": f"user{i}@example.com", "firstname": f"F{i}", "lastname": f"L{i}"},
                "createdAt": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            },
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def emu() -> HubSpotEmulator:
    return make()


# ----------------------------------------------------------------- list / get


def test_list_pages_by_ten_with_opaque_cursor_and_no_paging_at_the_end(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 25)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        r = call(emu, "GET", "/crm/v3/objects/contacts", query={"after": after} if after else None)
        assert r.status == 200
        pages += 1
        seen += [x["id"] for x in r.body["results"]]
        if "paging" not in r.body:
            break
        after = r.body["paging"]["next"]["after"]
        assert not after.isdigit()  # opaque, base64
        assert r.body["paging"]["next"]["link"].endswith("after=" + after.replace("=", "%3D"))
    assert pages == 3 and seen == ids
    assert [len(x) for x in (seen[:10], seen[10:20], seen[20:])] == [10, 10, 5]


def test_list_limit_is_capped_at_100(emu: HubSpotEmulator) -> None:
    add_contacts(emu, 130)
    r = call(emu, "GET", "/crm/v3/objects/contacts", query={"limit": 500})
    assert len(r.body["results"]) == 100 and "paging" in r.body


def test_default_and_requested_properties_every_value_a_string(emu: HubSpotEmulator) -> None:
    r = call(emu, "POST", "/crm/v3/objects/deals", {"properties": {"dealname": "D", "amount": 1500, "dealstage": "closedwon"}})
    assert r.status == 201
    deal_id = r.body["id"]
    listed = call(emu, "GET", "/crm/v3/objects/deals").body["results"][0]
    assert set(listed["properties"]) == {
        "dealname", "amount", "closedate", "pipeline", "dealstage",
        "createdate", "hs_lastmodifieddate", "hs_object_id",
    }  # fmt: skip
    assert listed["properties"]["amount"] == "1500"
    assert listed["properties"]["hs_object_id"] == deal_id
    assert all(v is None or isinstance(v, str) for v in listed["properties"].values())
    assert listed["createdAt"] == "2026-03-01T12:00:00.000Z" and listed["archived"] is False
    picked = call(emu, "GET", f"/crm/v3/objects/deals/{deal_id}", query={"properties": "dealstage,nosuch"}).body
    assert set(picked["properties"]) == {"dealstage", "createdate", "hs_lastmodifieddate", "hs_object_id"}


def test_archived_listing_returns_only_archived_with_archived_at(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 5)
    emu.ctx.clock.advance(60)
    assert call(emu, "DELETE", f"/crm/v3/objects/contacts/{ids[1]}").status == 204
    assert call(emu, "POST", "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": ids[3]}]}).status == 204
    live = call(emu, "GET", "/crm/v3/objects/contacts").body["results"]
    assert [x["id"] for x in live] == [ids[0], ids[2], ids[4]]
    gone = call(emu, "GET", "/crm/v3/objects/contacts", query={"archived": "true"}).body["results"]
    assert [x["id"] for x in gone] == [ids[1], ids[3]]
    assert all(x["archived"] is True and x["archivedAt"] == "2026-03-01T12:01:00.000Z" for x in gone)
    assert call(emu, "GET", f"/crm/v3/objects/contacts/{ids[1]}").status == 404
    assert call(emu, "GET", f"/crm/v3/objects/contacts/{ids[1]}", query={"archived": "true"}).status == 200


def test_get_by_email_id_property_and_404(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 3)
    r = call(emu, "GET", "/crm/v3/objects/contacts/USER2@example.com", query={"idProperty": "email"})
    assert r.status == 200 and r.body["id"] == ids[2]
    missing = call(emu, "GET", "/crm/v3/objects/contacts/999999")
    assert missing.status == 404 and missing.body["category"] == "OBJECT_NOT_FOUND"
    assert missing.body["status"] == "error" and missing.body["correlationId"]


# ----------------------------------------------------------------- writes


def test_update_sets_updated_at_and_last_modified_from_the_clock(emu: HubSpotEmulator) -> None:
    (cid,) = add_contacts(emu, 1)
    emu.ctx.clock.advance(90.5)
    r = call(emu, "PATCH", f"/crm/v3/objects/contacts/{cid}", {"properties": {"jobtitle": "CTO"}})
    assert r.status == 200
    assert r.body["updatedAt"] == "2026-03-01T12:01:30.500Z"
    assert r.body["properties"]["lastmodifieddate"] == r.body["updatedAt"]
    assert r.body["properties"]["jobtitle"] == "CTO"


def test_unknown_property_fails_the_whole_call(emu: HubSpotEmulator) -> None:
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "a@b.co"}}, {"properties": {"foo": "x"}}]})
    assert r.status == 400 and r.body["category"] == "VALIDATION_ERROR"
    assert 'Property \\"foo\\" does not exist' in r.body["message"]
    assert r.body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert emu.counts()["contacts"] == 0


def test_batch_over_100_inputs_is_a_400(emu: HubSpotEmulator) -> None:
    inputs = [{"properties": {"email": f"n{i}@example.com"}} for i in range(BATCH_MAX + 1)]
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": inputs})
    assert r.status == 400 and r.body["category"] == "VALIDATION_ERROR"
    assert emu.counts()["contacts"] == 0
    ok = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": inputs[:BATCH_MAX]})
    assert ok.status == 201 and len(ok.body["results"]) == BATCH_MAX


def test_batch_create_with_existing_email_is_a_409_for_the_whole_batch(emu: HubSpotEmulator) -> None:
    (cid,) = add_contacts(emu, 1)
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [
        {"properties": {"email": "fresh@example.com"}},
        {"properties": {"email": "User0@Example.com"}},
    ]})  # fmt: skip
    assert r.status == 409 and r.body["category"] == "CONFLICT"
    assert r.body["message"] == f"Contact already exists. Existing ID: {cid}"
    assert emu.counts()["contacts"] == 1


def test_batch_read_unknown_ids_give_207_with_object_not_found(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 2)
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": ids[0]}, {"id": "424242"}, {"id": ids[1]}], "properties": ["email"]})
    assert r.status == 207
    assert [x["id"] for x in r.body["results"]] == ids
    assert r.body["numErrors"] == 1
    err = r.body["errors"][0]
    assert err["category"] == "OBJECT_NOT_FOUND" and err["context"] == {"ids": ["424242"]}
    assert set(err) >= {"status", "category", "message", "context", "links", "errors"}


def test_batch_update_with_one_bad_amount_fails_the_whole_call_with_400(emu: HubSpotEmulator) -> None:
    """HubSpot: one invalid property value refuses the whole batch (400
    VALIDATION_ERROR), nothing is written; 207 is only for per-item outcomes."""
    d1 = emu.add("deals", {"properties": {"dealname": "A", "amount": "10"}})
    d2 = emu.add("deals", {"properties": {"dealname": "B", "amount": "20"}})
    r = call(emu, "POST", "/crm/v3/objects/deals/batch/update", {"inputs": [
        {"id": d1, "properties": {"amount": "12x"}},
        {"id": d2, "properties": {"amount": "25", "dealstage": "closedwon"}},
        {"id": "777777", "properties": {"amount": "1"}},
    ]})  # fmt: skip
    assert r.status == 400 and r.body["category"] == "VALIDATION_ERROR"
    assert set(r.body) >= {"status", "message", "correlationId", "category"}
    assert r.body["errors"][0]["code"] == "INVALID_FLOAT"
    assert r.body["errors"][0]["context"] == {"propertyName": ["amount"]}
    stage = call(emu, "POST", "/crm/v3/objects/deals/batch/update", {"inputs": [{"id": d1, "properties": {"dealstage": "nope"}}]})
    assert stage.status == 400 and stage.body["errors"][0]["code"] == "INVALID_OPTION"
    assert call(emu, "GET", f"/crm/v3/objects/deals/{d1}").body["properties"]["amount"] == "10"
    assert call(emu, "GET", f"/crm/v3/objects/deals/{d2}").body["properties"]["amount"] == "20"
    # valid values with an unknown id: 207 per item, the good one written
    r = call(emu, "POST", "/crm/v3/objects/deals/batch/update", {"inputs": [
        {"id": d2, "properties": {"amount": "25"}}, {"id": "777777", "properties": {"amount": "1"}},
    ]})  # fmt: skip
    assert r.status == 207 and [x["id"] for x in r.body["results"]] == [d2]
    (err,) = r.body["errors"]
    assert err["category"] == "OBJECT_NOT_FOUND" and set(err) >= {"links", "errors", "context"}


def test_batch_create_and_upsert_with_one_bad_value_are_refused_whole(emu: HubSpotEmulator) -> None:
    before = emu.counts()["deals"]
    for path, inputs in (
        ("create", [{"properties": {"dealname": "Good"}}, {"properties": {"dealname": "Bad", "amount": "lots"}}]),
        ("upsert", [{"id": "k1", "idProperty": "revsync_id", "properties": {"dealname": "Good"}},
                    {"id": "k2", "idProperty": "revsync_id", "properties": {"dealname": "Bad", "amount": "lots"}}]),
    ):
        r = call(emu, "POST", f"/crm/v3/objects/deals/batch/{path}", {"inputs": inputs})
        assert r.status == 400, path
        assert r.body["category"] == "VALIDATION_ERROR"
        assert r.body["context"] == {"propertyName": ["amount"]}
    assert emu.counts()["deals"] == before


def test_upsert_by_email_creates_and_updates_with_new_flags(emu: HubSpotEmulator) -> None:
    (cid,) = add_contacts(emu, 1)
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [
        {"id": "user0@example.com", "idProperty": "email", "properties": {"jobtitle": "CFO"}},
        {"id": "brand.new@example.com", "idProperty": "email", "properties": {"firstname": "Bo"}},
    ]})  # fmt: skip
    assert r.status == 200 and r.body["status"] == "COMPLETE"
    by_new = {x["new"]: x for x in r.body["results"]}
    assert by_new[False]["id"] == cid and by_new[False]["properties"]["jobtitle"] == "CFO"
    assert by_new[True]["properties"]["email"] == "brand.new@example.com"
    assert emu.counts()["contacts"] == 2
    dupes = call(emu, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [
        {"id": "x@example.com", "idProperty": "email", "properties": {}},
        {"id": "x@example.com", "idProperty": "email", "properties": {}},
    ]})  # fmt: skip
    assert dupes.status == 400
    not_unique = call(emu, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"id": "Bo", "idProperty": "firstname", "properties": {}}]})
    assert not_unique.status == 400


def test_upsert_by_revsync_id_on_companies(emu: HubSpotEmulator) -> None:
    body = {"inputs": [{"id": "rs-1", "idProperty": "revsync_id", "properties": {"name": "Acme"}}]}
    first = call(emu, "POST", "/crm/v3/objects/companies/batch/upsert", body)
    second = call(emu, "POST", "/crm/v3/objects/companies/batch/upsert", body)
    assert first.body["results"][0]["new"] is True and second.body["results"][0]["new"] is False
    assert first.body["results"][0]["id"] == second.body["results"][0]["id"]


# ----------------------------------------------------------------- merge


def test_merge_gives_a_new_id_that_both_old_ids_resolve_to(emu: HubSpotEmulator) -> None:
    a, b = add_contacts(emu, 2)
    co = emu.add("companies", {"properties": {"name": "Acme"}})
    emu.assoc.add("contacts", "companies", int(b), int(co), primary=True)
    r = call(emu, "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": a, "objectIdToMerge": b})
    assert r.status == 200
    new = r.body["id"]
    assert new not in (a, b)
    assert r.body["properties"]["hs_merged_object_ids"] == f"{a};{b}"
    assert r.body["properties"]["email"] == "user0@example.com"
    for old in (a, b):
        assert call(emu, "GET", f"/crm/v3/objects/contacts/{old}").body["id"] == new
    listed = [x["id"] for x in call(emu, "GET", "/crm/v3/objects/contacts").body["results"]]
    assert listed == [new]
    assert call(emu, "GET", "/crm/v3/objects/contacts", query={"archived": "true"}).body["results"] == []
    assoc = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": new}]})
    assert assoc.body["results"][0]["to"][0]["toObjectId"] == int(co)
    assert call(emu, "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": new, "objectIdToMerge": new}).status == 400


# ----------------------------------------------------------------- owners, properties


def test_owners_paged_and_filtered_by_email(tmp_path: Path) -> None:
    emu = make()
    (tmp_path / "hubspot").mkdir()
    owners = [{"id": str(100 + i), "email": f"o{i}@corp.example", "firstName": "O", "lastName": str(i), "archived": False} for i in range(3)]
    (tmp_path / "hubspot" / "owners.json").write_text(json.dumps(owners))
    emu.load(tmp_path)
    page1 = call(emu, "GET", "/crm/v3/owners", query={"limit": 2}).body
    assert [o["id"] for o in page1["results"]] == ["100", "101"]
    page2 = call(emu, "GET", "/crm/v3/owners", query={"limit": 2, "after": page1["paging"]["next"]["after"]}).body
    assert [o["id"] for o in page2["results"]] == ["102"] and "paging" not in page2
    one = call(emu, "GET", "/crm/v3/owners", query={"email": "O1@corp.example"}).body["results"]
    assert [o["id"] for o in one] == ["101"]


def test_properties_describe_picklists_uniques_and_read_only(emu: HubSpotEmulator) -> None:
    deals = {p["name"]: p for p in call(emu, "GET", "/crm/v3/properties/deals").body["results"]}
    assert [o["value"] for o in deals["dealstage"]["options"]] == native_values(STAGES, "hubspot")
    assert deals["dealstage"]["type"] == "enumeration" and deals["amount"]["type"] == "number"
    assert deals["hs_object_id"]["modificationMetadata"]["readOnlyValue"] is True
    contacts = {p["name"]: p for p in call(emu, "GET", "/crm/v3/properties/contacts").body["results"]}
    assert contacts["email"]["hasUniqueValue"] is True and contacts["jobtitle"]["hasUniqueValue"] is False


# ----------------------------------------------------------------- auth


def test_oauth_refresh_then_expiry_and_bad_tokens(emu: HubSpotEmulator) -> None:
    form = {"grant_type": "refresh_token", "client_id": "client-1", "client_secret": "secret-1", "refresh_token": "na1-refresh-1"}
    r = call(emu, "POST", "/oauth/v1/token", form=form, token=None)
    assert r.status == 200 and r.body["expires_in"] == 1800 and r.body["token_type"] == "bearer"
    token = r.body["access_token"]
    assert call(emu, "GET", "/crm/v3/objects/contacts", token=token).status == 200
    emu.ctx.clock.advance(1807)
    expired = call(emu, "GET", "/crm/v3/objects/contacts", token=token)
    assert expired.status == 401 and expired.body["category"] == "EXPIRED_AUTHENTICATION"
    assert expired.body["message"] == "The OAuth token used to make this call expired 7 second(s) ago."
    bad = call(emu, "POST", "/oauth/v1/token", form={**form, "refresh_token": "nope"}, token=None)
    assert bad.status == 400 and bad.body["status"] == "BAD_REFRESH_TOKEN" and bad.body["error"] == "invalid_grant"
    unknown = call(emu, "GET", "/crm/v3/objects/contacts", token="who-knows")
    assert unknown.status == 401 and unknown.body["category"] == "INVALID_AUTHENTICATION"
    assert call(emu, "GET", "/crm/v3/objects/contacts", token=None).status == 401


def test_expired_token_fault_revokes_the_oauth_token(emu: HubSpotEmulator) -> None:
    form = {"grant_type": "refresh_token", "client_id": "client-1", "client_secret": "secret-1", "refresh_token": "na1-refresh-1"}
    token = call(emu, "POST", "/oauth/v1/token", form=form, token=None).body["access_token"]
    r = call(emu, "GET", "/crm/v3/objects/contacts", token=token, fault=Fault("expired_token"))
    assert r.status == 401 and r.body["category"] == "EXPIRED_AUTHENTICATION"
    assert call(emu, "GET", "/crm/v3/objects/contacts", token=token).status == 401
    fresh = call(emu, "POST", "/oauth/v1/token", form=form, token=None).body["access_token"]
    assert call(emu, "GET", "/crm/v3/objects/contacts", token=fresh).status == 200
    # the private-app token survives the fault (one 401, then fine)
    assert call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("expired_token")).status == 401
    assert call(emu, "GET", "/crm/v3/objects/contacts").status == 200
    assert emu.ctx.stats.snapshot()["hubspot"]["faults"]["expired_token"] == 2


# ----------------------------------------------------------------- rate limits


def test_ten_second_window_headers_and_429_body() -> None:
    emu = make(tier="free")
    first = call(emu, "GET", "/crm/v3/objects/contacts")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    assert first.headers["X-HubSpot-RateLimit-Secondly"] == "10"
    for _ in range(99):
        last = call(emu, "GET", "/crm/v3/objects/contacts")
    assert last.status == 200 and last.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    over = call(emu, "GET", "/crm/v3/objects/contacts")
    assert over.status == 429
    assert over.body["policyName"] == "TEN_SECONDLY_ROLLING" and over.body["errorType"] == "RATE_LIMIT"
    assert over.body["message"] == "You have reached your ten_secondly_rolling limit."
    assert int(over.headers["Retry-After"]) >= 1
    emu.ctx.clock.advance(10.5)
    assert call(emu, "GET", "/crm/v3/objects/contacts").status == 200


def test_search_has_its_own_limit_and_no_rate_headers() -> None:
    emu = make(tier="pro")
    for _ in range(5):
        ok = call(emu, "POST", "/crm/v3/objects/contacts/search", {})
        assert ok.status == 200
        assert not [h for h in ok.headers.keys() if h.lower().startswith("x-hubspot-ratelimit")]
    over = call(emu, "POST", "/crm/v3/objects/contacts/search", {})
    assert over.status == 429 and over.body["policyName"] == "SECONDLY"
    # the ten-second window was not spent by search
    listed = call(emu, "GET", "/crm/v3/objects/contacts")
    assert listed.headers["X-HubSpot-RateLimit-Remaining"] == "189"
    emu.ctx.clock.advance(1.1)
    assert call(emu, "POST", "/crm/v3/objects/contacts/search", {}).status == 200


def test_off_tier_has_no_limits_or_headers(emu: HubSpotEmulator) -> None:
    for _ in range(300):
        r = call(emu, "GET", "/crm/v3/objects/contacts")
    assert r.status == 200 and "X-HubSpot-RateLimit-Max" not in r.headers


# ----------------------------------------------------------------- faults


def test_rate_limit_server_error_and_unavailable_faults(emu: HubSpotEmulator) -> None:
    r = call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("rate_limit", {"retry_after": 3}))
    assert r.status == 429 and r.body["policyName"] == "TEN_SECONDLY_ROLLING" and r.headers["Retry-After"] == "3"
    daily = call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("rate_limit", {"policy": "DAILY"}))
    assert daily.body["policyName"] == "DAILY" and daily.body["message"] == "You have reached your daily limit."
    err = call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("server_error"))
    assert err.status == 500 and err.body["category"] == "INTERNAL_ERROR"
    down = call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("unavailable", {"retry_after": 2}))
    assert down.status == 503 and down.headers["Retry-After"] == "2"
    lock = call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("lock"))
    assert lock.status == 200  # Salesforce-only fault
    faults = emu.ctx.stats.snapshot()["hubspot"]["faults"]
    assert faults == {"rate_limit": 2, "server_error": 1, "unavailable": 1}


def test_partial_fault_fails_a_fraction_of_a_batch_with_207(emu: HubSpotEmulator) -> None:
    inputs = [{"id": f"p{i}@example.com", "idProperty": "email", "properties": {"firstname": "P"}} for i in range(20)]
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}, fault=Fault("partial", {"fraction": 0.25}))
    assert r.status == 207
    assert r.body["numErrors"] == 5 and len(r.body["results"]) == 15
    failed = {e["context"]["ids"][0] for e in r.body["errors"]}
    done = {x["properties"]["email"] for x in r.body["results"]}
    assert failed.isdisjoint(done) and len(failed | done) == 20
    assert emu.counts()["contacts"] == 15
    # reads ignore it
    assert call(emu, "GET", "/crm/v3/objects/contacts", fault=Fault("partial")).status == 200


def test_validation_fault_fails_matching_items(emu: HubSpotEmulator) -> None:
    fault = Fault("validation", {"field": "firstname", "value": "Bad"})
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [
        {"properties": {"email": "a@example.com", "firstname": "Bad"}},
        {"properties": {"email": "b@example.com", "firstname": "Good"}},
    ]}, fault=fault)  # fmt: skip
    # like a real invalid value: the whole batch is refused with a 400
    assert r.status == 400 and r.body["category"] == "VALIDATION_ERROR"
    assert emu.counts()["contacts"] == 0
    alone = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [
        {"properties": {"email": "b@example.com", "firstname": "Good"}}]}, fault=fault)  # fmt: skip
    assert alone.status == 201 and alone.body["results"][0]["properties"]["email"] == "b@example.com"
    single = call(emu, "POST", "/crm/v3/objects/contacts", {"properties": {"email": "c@example.com", "firstname": "Bad"}}, fault=fault)
    assert single.status == 400


# ----------------------------------------------------------------- load, edits, stats


def _seed_dir(tmp_path: Path) -> Path:
    hs = tmp_path / "hubspot"
    hs.mkdir(parents=True)
    companies = [
        {"id": "10", "properties": {"name": "Acme", "domain": "acme.example", "hs_lastmodifieddate": "2026-01-02T00:00:00.000Z"},
         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-02T00:00:00.000Z", "archived": False},
        {"id": "11", "properties": {"name": "Globex", "domain": "globex.example"},
         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-03T00:00:00.000Z", "archived": False},
    ]  # fmt: skip
    contacts = [
        {"id": str(20 + i), "properties": {"email": f"c{i}@acme.example", "firstname": "C", "lastname": str(i)},
         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": f"2026-01-0{i + 1}T00:00:00.000Z", "archived": i == 3}
        for i in range(4)
    ]  # fmt: skip
    deals = [{"id": "30", "properties": {"dealname": "Big", "amount": "5000"}, "createdAt": "2026-01-01T00:00:00.000Z",
              "updatedAt": "2026-01-01T00:00:00.000Z", "archived": False}]  # fmt: skip
    assocs = [
        {"fromType": "contacts", "fromId": "20", "toType": "companies", "toId": "10", "typeId": 279, "category": "HUBSPOT_DEFINED"},
        {"fromType": "contacts", "fromId": "20", "toType": "companies", "toId": "10", "typeId": 1, "category": "HUBSPOT_DEFINED"},
        {"fromType": "contacts", "fromId": "21", "toType": "companies", "toId": "10", "typeId": 279, "category": "HUBSPOT_DEFINED"},
        {"fromType": "deals", "fromId": "30", "toType": "companies", "toId": "10", "typeId": 341, "category": "HUBSPOT_DEFINED"},
        {"fromType": "deals", "fromId": "30", "toType": "contacts", "toId": "20", "typeId": 3, "category": "HUBSPOT_DEFINED"},
    ]  # fmt: skip
    for name, rows in (("companies", companies), ("contacts", contacts), ("deals", deals), ("associations", assocs)):
        (hs / f"{name}.json").write_text(json.dumps(rows))
    return tmp_path


def test_load_reads_seed_files(tmp_path: Path) -> None:
    emu = make()
    emu.load(_seed_dir(tmp_path))
    assert emu.counts() == {"contacts": 3, "companies": 2, "deals": 1, "owners": 0, "associations": 4}
    archived = call(emu, "GET", "/crm/v3/objects/contacts", query={"archived": "true"}).body["results"]
    assert [x["id"] for x in archived] == ["23"]
    c = call(emu, "GET", "/crm/v3/objects/companies/11").body
    assert c["properties"]["hs_lastmodifieddate"] == "2026-01-03T00:00:00.000Z" == c["updatedAt"]
    new = call(emu, "POST", "/crm/v3/objects/companies", {"properties": {"name": "N"}}).body
    assert int(new["id"]) > 30  # ids continue after the loaded ones
    make().load(tmp_path / "nothing-here")  # a missing dir is empty data


def test_apply_edits_are_seeded_and_real(tmp_path: Path) -> None:
    runs: list[list[tuple[str, str, str]]] = []
    for _ in range(2):
        emu = make()
        emu.load(_seed_dir(tmp_path / str(len(runs))))
        edits = emu.apply_edits(random.Random(5), 12, ["update", "create", "delete", "merge", "association"])
        runs.append([(e["kind"], e["object"], e["id"]) for e in edits])
        assert len(edits) == 12 and {e["system"] for e in edits} == {"hubspot"}
        for e in edits:
            if e["kind"] == "update":
                obj, rid = e["object"], e["id"]
                props = call(emu, "GET", f"/crm/v3/objects/{obj}/{rid}", query={"properties": ",".join(e["fields"])}).body
                if props.get("id") == rid:  # not merged away later in the run
                    for k, v in e["fields"].items():
                        assert props["properties"][k] == v
            if e["kind"] == "merge":
                assert len(e["merged_ids"]) == 2
    assert runs[0] == runs[1]


def test_apply_edits_each_kind(tmp_path: Path) -> None:
    emu = make()
    emu.load(_seed_dir(tmp_path))
    before = emu.counts()
    (created,) = emu.apply_edits(random.Random(1), 1, ["create"])
    assert emu.counts()[created["object"]] == before[created["object"]] + 1
    (deleted,) = emu.apply_edits(random.Random(2), 1, ["delete"])
    gone = call(emu, "GET", f"/crm/v3/objects/{deleted['object']}/{deleted['id']}", query={"archived": "true"})
    assert gone.status == 200 and gone.body["archived"] is True
    (moved,) = emu.apply_edits(random.Random(3), 1, ["association"])
    targets = emu.assoc.targets("contacts", "companies", int(moved["id"]))
    assert targets == [(int(moved["fields"]["company_id"]), True)]
    (merged,) = emu.apply_edits(random.Random(4), 1, ["merge"])
    for old in merged["merged_ids"]:
        assert call(emu, "GET", f"/crm/v3/objects/{merged['object']}/{old}").body["id"] == merged["id"]


def test_stats_count_calls_served_and_written(emu: HubSpotEmulator) -> None:
    add_contacts(emu, 3)
    call(emu, "GET", "/crm/v3/objects/contacts")
    call(emu, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"id": "z@example.com", "idProperty": "email", "properties": {}}]})
    call(emu, "POST", "/crm/v3/objects/contacts/search", {"limit": 2})
    call(emu, "GET", "/nope")
    snap = emu.ctx.stats.snapshot()["hubspot"]
    assert snap["by_endpoint"] == {"crm.list": 1, "crm.batch.upsert": 1, "crm.search": 1, "unknown": 1}
    assert snap["records_served"] == 5 and snap["records_written"] == 1
    assert snap["by_status"] == {"200": 3, "404": 1}


def test_endpoint_names(emu: HubSpotEmulator) -> None:
    def name(method: str, path: str) -> str:
        return emu.endpoint_name(Request(EnvironBuilder(method=method, path=path).get_environ()))

    assert name("GET", "/crm/v3/objects/contacts") == "crm.list"
    assert name("GET", "/crm/v3/objects/deals/12") == "crm.get"
    assert name("POST", "/crm/v3/objects/companies/batch/upsert") == "crm.batch.upsert"
    assert name("POST", "/crm/v3/objects/contacts/search") == "crm.search"
    assert name("POST", "/crm/v4/associations/contacts/companies/batch/read") == "assoc.batch.read"
    assert name("POST", "/oauth/v1/token") == "oauth"


def test_cursor_is_base64_of_the_next_id(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 3)
    after = call(emu, "GET", "/crm/v3/objects/contacts", query={"limit": 1}).body["paging"]["next"]["after"]
    assert base64.b64decode(after).decode().strip() == ids[1]
    assert call(emu, "GET", "/crm/v3/objects/contacts", query={"after": "%%%"}).status == 400


def test_gdpr_delete_removes_the_contact_for_good(emu: HubSpotEmulator) -> None:
    a, b = add_contacts(emu, 2)
    r = call(emu, "POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "user1@example.com", "idProperty": "email"})
    assert r.status == 204
    assert call(emu, "GET", f"/crm/v3/objects/contacts/{b}").status == 404
    assert call(emu, "GET", f"/crm/v3/objects/contacts/{b}", query={"archived": "true"}).status == 404
    assert [x["id"] for x in call(emu, "GET", "/crm/v3/objects/contacts", query={"archived": "true"}).body["results"]] == []
    assert [x["id"] for x in call(emu, "GET", "/crm/v3/objects/contacts").body["results"]] == [a]
    # the email is free again
    assert call(emu, "POST", "/crm/v3/objects/contacts", {"properties": {"email": "user1@example.com"}}).status == 201


def test_batch_read_with_property_history(emu: HubSpotEmulator) -> None:
    ids = add_contacts(emu, 60)
    r = call(emu, "POST", "/crm/v3/objects/contacts/batch/read",
             {"inputs": [{"id": i} for i in ids[:2]], "properties": ["email"], "propertiesWithHistory": ["firstname", "jobtitle"]})  # fmt: skip
    assert r.status == 200
    hist = r.body["results"][0]["propertiesWithHistory"]
    assert hist["firstname"][0]["value"] == "F0" and hist["firstname"][0]["sourceType"] == "API"
    assert hist["jobtitle"] == []
    over = call(emu, "POST", "/crm/v3/objects/contacts/batch/read",
                {"inputs": [{"id": i} for i in ids[:51]], "propertiesWithHistory": ["firstname"]})  # fmt: skip
    assert over.status == 400 and "property histories is 50" in over.body["message"]


def test_oauth_calls_get_the_public_app_burst_and_no_daily_headers() -> None:
    emu = make(tier="pro")
    form = {"grant_type": "refresh_token", "client_id": "client-1", "client_secret": "secret-1", "refresh_token": "na1-refresh-1"}
    token = call(emu, "POST", "/oauth/v1/token", form=form, token=None).body["access_token"]
    r = call(emu, "GET", "/crm/v3/objects/contacts", token=token)
    assert r.headers["X-HubSpot-RateLimit-Max"] == "110" and r.headers["X-HubSpot-RateLimit-Remaining"] == "109"
    assert "X-HubSpot-RateLimit-Daily" not in r.headers
    private = call(emu, "GET", "/crm/v3/objects/contacts")
    assert private.headers["X-HubSpot-RateLimit-Max"] == "190" and private.headers["X-HubSpot-RateLimit-Remaining"] == "189"
    assert private.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "624999"  # OAuth calls spent no daily quota
    for _ in range(109):
        call(emu, "GET", "/crm/v3/objects/contacts", token=token)
    over = call(emu, "GET", "/crm/v3/objects/contacts", token=token)
    assert over.status == 429 and over.body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert call(emu, "GET", "/crm/v3/objects/contacts").status == 200  # the private app has its own window


def test_daily_limit_429() -> None:
    emu = make(tier="free")
    assert emu._daily is not None
    for _ in range(emu._daily.limit - 1):
        emu._daily.hit()
    assert call(emu, "GET", "/crm/v3/objects/contacts").status == 200
    emu.ctx.clock.advance(11)
    over = call(emu, "GET", "/crm/v3/objects/contacts")
    assert over.status == 429 and over.body["policyName"] == "DAILY"
    assert over.body["message"] == "You have reached your daily limit."
    assert over.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_a_deal_stage_write_recalculates_hubspots_stage_properties(emu: HubSpotEmulator) -> None:
    """``hs_deal_stage_probability``, ``hs_is_closed`` and ``hs_is_closed_won`` are
    calculated by HubSpot from the stage: a write of ``dealstage`` (single or batch)
    moves them, as it does in a portal (the sandbox kept the seeded values)."""
    props = "dealstage,hs_deal_stage_probability,hs_is_closed,hs_is_closed_won"

    def stage_props(deal_id: str) -> tuple[Any, ...]:
        p = call(emu, "GET", f"/crm/v3/objects/deals/{deal_id}", query={"properties": props}).body["properties"]
        return p["dealstage"], p["hs_deal_stage_probability"], p["hs_is_closed"], p["hs_is_closed_won"]

    deal_id = call(emu, "POST", "/crm/v3/objects/deals",
                   {"properties": {"dealname": "D", "dealstage": "appointmentscheduled"}}).body["id"]
    assert stage_props(deal_id) == ("appointmentscheduled", "0.1", "false", "false")
    r = call(emu, "PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"dealstage": "presentationscheduled"}})
    assert r.status == 200
    assert stage_props(deal_id) == ("presentationscheduled", "0.4", "false", "false")
    r = call(emu, "POST", "/crm/v3/objects/deals/batch/update",
             {"inputs": [{"id": deal_id, "properties": {"dealstage": "closedwon"}}]})
    assert r.status == 200
    assert stage_props(deal_id) == ("closedwon", "1", "true", "true")
    call(emu, "PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"dealname": "D2"}})
    assert stage_props(deal_id) == ("closedwon", "1", "true", "true")  # other writes leave them
    r = call(emu, "PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"hs_deal_stage_probability": "0.5"}})
    assert r.status == 400  # read only: HubSpot calculates it
