"""Unit tests of the Planhat emulator through werkzeug's test client (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from sandbox.core import Clock, Fault, FaultInjector, SandboxContext, Stats
from sandbox.planhat import BULK_MAX, LIST_DEFAULT, PlanhatEmulator

TOKEN = "ph-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make(tier: str = "off") -> PlanhatEmulator:
    ctx = SandboxContext(
        clock=Clock(fixed=T0),
        faults=FaultInjector(None, seed=0),
        stats=Stats(),
        tier=tier,
        credentials={"planhat": {"api_token": TOKEN}},
        seed=7,
    )
    return PlanhatEmulator(ctx)


class Harness:
    """A WSGI wrapper around one emulator; ``fault`` is handed to the next call only."""

    def __init__(self, emu: PlanhatEmulator) -> None:
        self.emu = emu
        self.fault: Fault | None = None
        self.client = Client(self._app)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fault, self.fault = self.fault, None
        return self.emu.handle(Request(environ), fault)(environ, start_response)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        resp = self.client.open(path, method=method, json=body, headers=headers if headers is not None else AUTH)
        data = resp.get_data(as_text=True)
        return resp.status_code, (json.loads(data) if data else None), resp.headers


@pytest.fixture
def h() -> Harness:
    return Harness(make())


def got(emu: PlanhatEmulator, model: str, remote_id: str) -> dict[str, Any]:
    doc = emu.get(model, remote_id)
    assert doc is not None, f"{model}/{remote_id} is missing"
    return doc


def seed_companies(emu: PlanhatEmulator, n: int) -> list[str]:
    return [emu.add("companies", {"name": f"Co {i}", "sourceId": f"src-{i}", "externalId": f"ext-{i}"})["_id"] for i in range(n)]


def test_given_no_token_when_list_then_401(h: Harness) -> None:
    status, body, _ = h.call("GET", "/companies", headers={})
    assert status == 401
    assert "error" in body
    status, _, _ = h.call("GET", "/companies", headers={"Authorization": "Bearer wrong"})
    assert status == 401


def test_given_250_companies_when_paged_by_100_then_every_record_once_in_id_order(h: Harness) -> None:
    ids = seed_companies(h.emu, 250)
    seen: list[str] = []
    offset = 0
    while True:
        status, page, _ = h.call("GET", f"/companies?limit=100&offset={offset}")
        assert status == 200
        seen += [d["_id"] for d in page]
        if len(page) < 100:
            break
        offset += 100
    assert seen == sorted(ids)
    assert len(set(seen)) == 250
    snap = h.emu.ctx.stats.snapshot()["planhat"]
    assert snap["records_served"] == 250
    assert snap["by_endpoint"]["companies.list"] == 3


def test_given_no_limit_when_list_then_default_page_and_limit_clamped(h: Harness) -> None:
    seed_companies(h.emu, LIST_DEFAULT + 5)
    _, page, _ = h.call("GET", "/companies")
    assert len(page) == LIST_DEFAULT
    for i in range(2100):
        h.emu.add("users", {"email": f"u{i}@x.io"})
    _, page, _ = h.call("GET", "/users?limit=100000")
    assert len(page) == 2000


def test_given_select_and_sort_when_list_then_only_fields_in_order(h: Harness) -> None:
    for name in ("b", "c", "a"):
        h.emu.add("companies", {"name": name, "phone": "1"})
    _, page, _ = h.call("GET", "/companies?select=name&sort=-name")
    assert [d["name"] for d in page] == ["c", "b", "a"]
    assert all(set(d) == {"_id", "name"} for d in page)


def test_given_keyables_when_get_then_same_document(h: Harness) -> None:
    [cid] = seed_companies(h.emu, 1)
    for key in (cid, "srcid-src-0", "extid-ext-0"):
        status, doc, _ = h.call("GET", f"/companies/{key}")
        assert status == 200 and doc["_id"] == cid
    status, _, _ = h.call("GET", "/companies/srcid-nope")
    assert status == 404


def test_given_bulk_when_upsert_then_matches_id_then_source_then_external_else_inserts(h: Harness) -> None:
    a, b, c = seed_companies(h.emu, 3)
    items = [
        {"_id": a, "name": "A by id"},
        {"sourceId": "src-1", "name": "B by source"},
        {"externalId": "ext-2", "name": "C by external"},
        {"sourceId": "brand-new", "name": "D new"},
    ]
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 200
    assert body["created"] == 1 and body["updated"] == 3
    assert got(h.emu, "companies", a)["name"] == "A by id"
    assert got(h.emu, "companies", b)["name"] == "B by source"
    assert got(h.emu, "companies", c)["name"] == "C by external"
    [new_id] = body["upsertedIds"]
    assert body["insertsKeys"] == [{"_id": new_id, "sourceId": "brand-new"}]
    assert got(h.emu, "companies", new_id)["name"] == "D new"
    assert {k["_id"] for k in body["updatesKeys"]} == {a, b, c}
    # precedence, seen through uniqueness: the item matches by _id (then sourceId), so
    # the other keyable it carries would be taken from another record and fails
    status, body, _ = h.call("PUT", "/companies", [{"_id": a, "sourceId": "src-1"}])
    assert status == 400 and f"sourceId must be unique: src-1 is used by {b}" in body["updatedErrors"][0]["error"]
    status, body, _ = h.call("PUT", "/companies", [{"sourceId": "src-1", "externalId": "ext-2"}])
    assert status == 400 and f"externalId must be unique: ext-2 is used by {c}" in body["updatedErrors"][0]["error"]
    assert set(body) >= {"createdErrors", "updatedErrors", "nonupdates", "modified", "permissionErrors"}


def test_given_same_values_when_upsert_then_nonupdate_and_lastupdated_kept(h: Harness) -> None:
    [a] = seed_companies(h.emu, 1)
    before = got(h.emu, "companies", a)["lastUpdated"]
    h.emu.ctx.clock.advance(60)
    _, body, _ = h.call("PUT", "/companies", [{"_id": a, "name": "Co 0"}])
    assert body["nonupdates"] == 1 and body["updated"] == 0
    assert got(h.emu, "companies", a)["lastUpdated"] == before
    _, body, _ = h.call("PUT", "/companies", [{"_id": a, "name": "Renamed"}])
    assert body["updated"] == 1 and body["modified"] == [a]
    assert got(h.emu, "companies", a)["lastUpdated"] == "2026-03-01T12:01:00.000Z"


def test_given_invalid_items_when_bulk_then_206_with_errors_and_valid_items_saved(h: Harness) -> None:
    [a] = seed_companies(h.emu, 1)
    items = [
        {"sourceId": "ok-1", "name": "Fine"},
        {"sourceId": "bad-1"},  # no name
        {"email": "x@nowhere.example"},  # wrong model fields: no name
        {"_id": a, "name": ""},  # update that blanks a required field
    ]
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 206
    assert body["created"] == 1
    assert [e["index"] for e in body["createdErrors"]] == [1, 2]
    assert body["createdErrors"][0]["item"] == {"sourceId": "bad-1"}
    assert "name" in body["createdErrors"][0]["error"]
    assert [e["item"]["_id"] for e in body["updatedErrors"]] == [a]
    assert got(h.emu, "companies", a)["name"] == "Co 0"


def test_given_enduser_rules_when_bulk_then_company_must_exist_or_match_domain(h: Harness) -> None:
    cid = h.emu.add("companies", {"name": "Acme", "domains": ["acme.com"]})["_id"]
    items = [
        {"email": "ann@acme.com", "sourceId": "e1"},  # placed by domain
        {"email": "bob@other.com", "sourceId": "e2"},  # no company, no domain match
        {"email": "cy@acme.com", "companyId": "0" * 24},  # unknown company
        {"firstName": "nobody"},
    ]
    status, body, _ = h.call("PUT", "/endusers", items)
    assert status == 206
    assert body["created"] == 1
    assert [e["index"] for e in body["createdErrors"]] == [1, 2, 3]
    [uid] = body["upsertedIds"]
    assert got(h.emu, "endusers", uid)["companyId"] == cid
    # a unique email matches an existing enduser
    _, body, _ = h.call("PUT", "/endusers", [{"email": "ann@acme.com", "position": "CTO"}])
    assert body["updated"] == 1 and body["updatesKeys"][0]["_id"] == uid


def test_given_more_than_5000_items_when_bulk_then_400_and_nothing_written(h: Harness) -> None:
    items = [{"sourceId": f"s{i}", "name": f"n{i}"} for i in range(BULK_MAX + 1)]
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 400 and "5000" in body["error"]
    assert h.emu.counts()["companies"] == 0
    status, body, _ = h.call("PUT", "/companies", items[:BULK_MAX])
    assert status == 200 and body["created"] == BULK_MAX


def test_given_licenses_when_written_then_company_arr_mrr_renewal_derived(h: Harness) -> None:
    cid = h.emu.add("companies", {"name": "Acme"})["_id"]
    lic = [
        {"companyId": cid, "_currency": "USD", "fromDate": "2026-01-01", "toDate": "2026-12-31", "mrr": 100, "sourceId": "l1"},
        {"companyId": cid, "_currency": "USD", "fromDate": "2025-01-01", "toDate": "2025-12-31", "mrr": 50, "sourceId": "l2"},  # expired
        {"companyId": cid, "_currency": "USD", "fromDate": "2026-02-01", "toDate": "2027-06-30", "mrr": 25.5, "sourceId": "l3"},
        {"companyId": cid, "mrr": 10},  # missing _currency / fromDate
    ]
    status, body, _ = h.call("PUT", "/licenses", lic)
    assert status == 206 and body["created"] == 3
    assert "_currency" in body["createdErrors"][0]["error"]
    company = got(h.emu, "companies", cid)
    assert company["mrr"] == 125.5
    assert company["arr"] == 1506.0
    assert company["renewalDate"] == "2027-06-30"
    # arr is read-only on the company
    h.call("PUT", f"/companies/{cid}", {"arr": 1, "name": "Acme Inc"})
    assert got(h.emu, "companies", cid)["arr"] == 1506.0
    # deleting a license re-derives
    status, body, _ = h.call("DELETE", "/licenses/srcid-l3")
    assert status == 200 and body == {"n": 1, "ok": 1, "deletedCount": 1}
    company = got(h.emu, "companies", cid)
    assert company["arr"] == 1200.0 and company["renewalDate"] == "2026-12-31"


def test_given_create_update_delete_single_then_documented_bodies(h: Harness) -> None:
    status, doc, _ = h.call("POST", "/companies", {"name": "Solo", "externalId": "x1"})
    assert status == 200 and len(doc["_id"]) == 24 and doc["lastUpdated"] == "2026-03-01T12:00:00.000Z"
    status, doc2, _ = h.call("PUT", "/companies/extid-x1", {"phone": "+1 555"})
    assert status == 200 and doc2["_id"] == doc["_id"] and doc2["phone"] == "+1 555"
    status, _, _ = h.call("POST", "/companies", {"phone": "no name"})
    assert status == 400
    status, body, _ = h.call("DELETE", f"/companies/{doc['_id']}")
    assert body == {"n": 1, "ok": 1, "deletedCount": 1}
    status, _, _ = h.call("DELETE", f"/companies/{doc['_id']}")
    assert status == 404
    status, _, _ = h.call("PUT", "/users", [{"email": "a@b.c"}])
    assert status == 405


def test_given_pro_tier_when_201_calls_in_a_minute_then_429_with_retry_after() -> None:
    h = Harness(make("pro"))
    for _ in range(200):
        status, _, _ = h.call("GET", "/companies?limit=1")
        assert status == 200
    status, body, headers = h.call("GET", "/companies?limit=1")
    assert status == 429 and "error" in body
    assert int(headers["Retry-After"]) >= 1
    h.emu.ctx.clock.advance(61)
    status, _, _ = h.call("GET", "/companies?limit=1")
    assert status == 200


def test_given_faults_when_called_then_vendor_shaped_errors(h: Harness) -> None:
    seed_companies(h.emu, 3)
    h.fault = Fault("rate_limit", {"retry_after": 3})
    status, _, headers = h.call("GET", "/companies")
    assert status == 429 and headers["Retry-After"] == "3"
    h.fault = Fault("server_error")
    assert h.call("GET", "/companies")[0] == 500
    h.fault = Fault("unavailable", {"retry_after": 2})
    status, _, headers = h.call("GET", "/companies")
    assert status == 503 and headers["Retry-After"] == "2"
    h.fault = Fault("expired_token")
    assert h.call("GET", "/companies")[0] == 401
    assert h.call("GET", "/companies")[0] == 200  # Planhat tokens do not expire
    h.fault = Fault("lock")  # Salesforce only: ignored
    assert h.call("GET", "/companies")[0] == 200
    faults = h.emu.ctx.stats.snapshot()["planhat"]["faults"]
    assert faults == {"rate_limit": 1, "server_error": 1, "unavailable": 1, "expired_token": 1}


def test_given_partial_fault_when_bulk_then_206_and_failed_items_not_saved(h: Harness) -> None:
    items = [{"sourceId": f"s{i}", "name": f"n{i}"} for i in range(200)]
    h.fault = Fault("partial", {"fraction": 0.25})
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 206
    failed = {e["item"]["sourceId"] for e in body["createdErrors"]}
    assert 20 < len(failed) < 80
    assert body["created"] == 200 - len(failed)
    assert h.emu.counts()["companies"] == 200 - len(failed)
    assert all(got(h.emu, "companies", k["_id"])["sourceId"] not in failed for k in body["insertsKeys"])


def test_given_validation_fault_when_bulk_then_matching_items_fail(h: Harness) -> None:
    items = [{"sourceId": "a", "name": "ok", "phone": "1"}, {"sourceId": "b", "name": "x", "phone": "bad"}]
    h.fault = Fault("validation", {"field": "phone", "value": "bad"})
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 206
    assert [e["item"]["sourceId"] for e in body["createdErrors"]] == ["b"]
    assert body["createdErrors"][0]["field"] == "phone"


def test_given_seed_dir_when_load_then_counts_and_edits(tmp_path: Path) -> None:
    d = tmp_path / "planhat"
    d.mkdir()
    comps = [{"_id": f"{i:024x}", "name": f"C{i}", "lastUpdated": "2026-01-01T00:00:00.000Z"} for i in range(1, 6)]
    users = [{"_id": f"{i:024x}", "email": f"u{i}@p.io", "companyId": f"{i % 5 + 1:024x}", "lastUpdated": "2026-01-01T00:00:00.000Z"} for i in range(10, 20)]
    (d / "companies.json").write_text(json.dumps(comps))
    (d / "endusers.json").write_text(json.dumps(users))
    emu = make()
    emu.load(tmp_path)
    emu.load(tmp_path / "missing")  # missing dir: nothing happens
    assert emu.counts() == {"companies": 5, "endusers": 10, "licenses": 0, "users": 0}
    import random

    edits = emu.apply_edits(random.Random(1), 20, ["update", "create", "delete", "association", "merge"])
    assert len(edits) == 20
    assert {e["kind"] for e in edits} <= {"update", "create", "delete", "association"}
    created = sum(e["kind"] == "create" for e in edits)
    deleted = sum(e["kind"] == "delete" for e in edits)
    assert emu.counts()["endusers"] == 10 + created - deleted
    for e in edits:
        assert e["system"] == "planhat"
        if e["kind"] == "update":
            doc = emu.get(e["object"], e["id"])
            assert doc is None or doc["lastUpdated"] == "2026-03-01T12:00:00.000Z"
        if e["kind"] == "delete":
            assert emu.get("endusers", e["id"]) is None or any(x["kind"] == "create" and x["id"] == e["id"] for x in edits)
    # same seed, same emulator state → same edits
    emu2 = make()
    emu2.load(tmp_path)
    assert emu2.apply_edits(random.Random(1), 20, ["update", "create", "delete", "association"]) == \
        make_and_edit(tmp_path)


def make_and_edit(tmp_path: Path) -> list[dict[str, Any]]:
    import random

    emu = make()
    emu.load(tmp_path)
    return emu.apply_edits(random.Random(1), 20, ["update", "create", "delete", "association"])


def test_given_unknown_id_when_bulk_then_updated_error_and_nothing_inserted(h: Harness) -> None:
    status, body, _ = h.call("PUT", "/companies", [{"_id": "f" * 24, "name": "Ghost"}])
    assert status == 400  # every item failed
    assert body["created"] == 0 and "not found" in body["updatedErrors"][0]["error"]
    assert h.emu.counts()["companies"] == 0


def test_given_every_item_fails_when_bulk_then_400_with_per_item_entries(h: Harness) -> None:
    """Planhat: 400 "usually a required key is missing or it's duplicated. Check the
    createdErrors/updatedErrors section" — the entries are inside those lists."""
    [a] = seed_companies(h.emu, 1)
    status, body, _ = h.call("PUT", "/companies", [{"sourceId": "n1"}, {"_id": a, "name": ""}])
    assert status == 400
    assert body["created"] == 0 and body["updated"] == 0
    assert [e["index"] for e in body["createdErrors"]] == [0]
    assert body["createdErrors"][0]["item"] == {"sourceId": "n1"}
    assert [e["item"]["_id"] for e in body["updatedErrors"]] == [a]
    assert "item" not in body and "index" not in body
    assert h.emu.counts()["companies"] == 1


def test_given_same_source_id_twice_when_bulk_then_400_and_nothing_saved(h: Harness) -> None:
    items = [{"sourceId": "dup", "name": "First"}, {"sourceId": "other", "name": "Fine"},
             {"sourceId": "dup", "name": "Second"}]
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 400
    assert sorted(e["index"] for e in body["createdErrors"]) == [0, 2]
    assert all(e["item"] == {"sourceId": "dup"} and e["field"] == "sourceId" for e in body["createdErrors"])
    assert h.emu.counts()["companies"] == 0


def test_given_items_without_permission_when_bulk_then_403_and_the_others_saved(h: Harness) -> None:
    a, b = seed_companies(h.emu, 2)
    h.emu.deny("companies", b)
    items = [{"_id": a, "name": "A renamed"}, {"_id": b, "name": "B renamed"}, {"sourceId": "s-new", "name": "New"}]
    status, body, _ = h.call("PUT", "/companies", items)
    assert status == 403
    assert [e["index"] for e in body["permissionErrors"]] == [1]
    assert body["permissionErrors"][0]["item"]["_id"] == b
    assert body["updated"] == 1 and body["created"] == 1
    assert got(h.emu, "companies", a)["name"] == "A renamed"
    assert got(h.emu, "companies", b)["name"] == "Co 1"
    h.emu.deny("companies")  # no creates at all
    status, body, _ = h.call("PUT", "/companies", [{"sourceId": "s-2", "name": "Two"}])
    assert status == 403 and body["created"] == 0 and len(body["permissionErrors"]) == 1
    # single-record calls on a denied record are a plain 403
    status, body, _ = h.call("PUT", f"/companies/{b}", {"name": "B again"})
    assert status == 403 and "permission" in body["error"]
    status, _, _ = h.call("DELETE", f"/companies/{b}")
    assert status == 403 and got(h.emu, "companies", b)["name"] == "Co 1"
    status, _, _ = h.call("POST", "/companies", {"name": "Nope"})
    assert status == 403
