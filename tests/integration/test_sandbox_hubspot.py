"""The REAL hubspot-api-client 12 against the sandbox's HubSpot emulator over verified TLS."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import ServiceException, UnauthorizedException
from hubspot.crm.deals import ApiException as DealsApiException
from hubspot.crm.deals import BatchInputSimplePublicObjectBatchInput as DealBatchInput
from hubspot.crm.deals import SimplePublicObjectBatchInput as DealBatchItem
from urllib3.util.retry import Retry

from sandbox.server import Sandbox

MakeSandbox = Callable[..., Sandbox]


def client(sb: Sandbox, token: str | None = None) -> HubSpot:
    """A real client, with urllib3's own retries off (as the connector runs it).

    Left on, urllib3's default ``Retry(3)`` honours ``Retry-After`` on a 429 and
    retries silently after sleeping, so the 429 would never reach the caller.
    """
    creds = sb.info["credentials"]["hubspot"]
    return HubSpot(
        access_token=token or creds["access_token"],
        host=sb.info["hubspot"],
        ssl_ca_cert=str(sb.info["ca_cert"]),
        retry=Retry(total=0, respect_retry_after_header=False),
    )


def seeded(make_sandbox: MakeSandbox, tmp_path: Path, **kwargs: Any) -> Sandbox:
    """A sandbox with a tiny hand-made HubSpot portal (no generator involved)."""
    hs = tmp_path / "hubspot"
    hs.mkdir(parents=True)
    contacts = [
        {"id": str(100 + i), "properties": {"email": f"p{i}@acme.example", "firstname": f"P{i}"},
         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": f"2026-01-01T00:00:{i:02d}.000Z", "archived": False}
        for i in range(12)
    ]  # fmt: skip
    deals = [{"id": "900", "properties": {"dealname": "D", "amount": "10"}, "createdAt": "2026-01-01T00:00:00.000Z",
              "updatedAt": "2026-01-01T00:00:00.000Z", "archived": False}]  # fmt: skip
    (hs / "contacts.json").write_text(json.dumps(contacts))
    (hs / "deals.json").write_text(json.dumps(deals))
    return make_sandbox(data_dir=tmp_path, **kwargs)


def test_get_page_pages_through_every_contact(sandbox: Sandbox) -> None:
    hs = client(sandbox)
    emu = sandbox.emulators["hubspot"]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = hs.crm.contacts.basic_api.get_page(limit=7, after=after, properties=["email", "jobtitle"])
        pages += 1
        for rec in page.results:
            assert all(v is None or isinstance(v, str) for v in rec.properties.values())
            assert set(rec.properties) == {"email", "jobtitle", "createdate", "lastmodifieddate", "hs_object_id"}
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) == emu.counts()["contacts"] > 7
    assert pages == -(-len(seen) // 7)


def test_search_gte_lastmodifieddate_sorted_ascending(sandbox: Sandbox) -> None:
    hs = client(sandbox)
    everyone = hs.crm.contacts.get_all(properties=["email"])
    stamps = sorted(r.updated_at for r in everyone)
    since = stamps[len(stamps) // 2]
    since_ms = str(int(since.timestamp() * 1000))
    expected = sum(1 for s in stamps if s >= since)
    got: list[datetime] = []
    after = None
    while True:
        req = PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since_ms}]}],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["email"],
            limit=5,
            after=after,
        )
        page = hs.crm.contacts.search_api.do_search(public_object_search_request=req)
        assert page.total == expected
        got += [r.updated_at for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(got) == expected and got == sorted(got) and got[0] >= since


def test_batch_upsert_by_email_new_and_existing(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path)
    hs = client(sb)
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(id="p1@acme.example", id_property="email", properties={"jobtitle": "CTO"}),
            SimplePublicObjectBatchInputUpsert(id="new@acme.example", id_property="email", properties={"firstname": "N"}),
        ]
    )
    resp = hs.crm.contacts.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=batch)
    assert resp.status == "COMPLETE"
    by_email = {r.properties["email"]: r for r in resp.results}
    assert by_email["p1@acme.example"].new is False and by_email["p1@acme.example"].id == "101"
    assert by_email["new@acme.example"].new is True
    assert hs.crm.contacts.basic_api.get_by_id("101", properties=["jobtitle"]).properties["jobtitle"] == "CTO"
    assert sb.emulators["hubspot"].counts()["contacts"] == 13


def test_207_is_returned_normally_with_errors(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path)
    hs = client(sb)
    read = hs.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="100"), SimplePublicObjectId(id="555555")], properties=["email"]
        )
    )
    # The client deserialises a 207 as the *WithErrors model and does not raise.
    assert type(read).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert [r.id for r in read.results] == ["100"]
    assert read.num_errors == 1 and read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context == {"ids": ["555555"]}
    with pytest.raises(DealsApiException) as bad_value:  # one invalid value fails the call
        hs.crm.deals.batch_api.update(
            batch_input_simple_public_object_batch_input=DealBatchInput(
                inputs=[DealBatchItem(id="900", properties={"amount": "lots"})]
            )
        )
    assert bad_value.value.status == 400 and '"VALIDATION_ERROR"' in bad_value.value.body
    with pytest.raises(DealsApiException) as info:  # an unknown property fails the call
        hs.crm.deals.batch_api.update(
            batch_input_simple_public_object_batch_input=DealBatchInput(inputs=[DealBatchItem(id="900", properties={"nope": "1"})])
        )
    assert info.value.status == 400


def test_429_raises_api_exception_with_the_body(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path, tier="free")
    api = client(sb).crm.contacts.basic_api  # one api object: one kept-alive connection
    for _ in range(100):
        api.get_page(limit=1)
    with pytest.raises(ApiException) as info:
        api.get_page(limit=1)
    exc = info.value
    assert exc.status == 429 and type(exc) is ApiException
    body = json.loads(exc.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert exc.headers["X-HubSpot-RateLimit-Max"] == "100" and int(exc.headers["Retry-After"]) >= 1


def test_oauth_refresh_and_expired_token_fault(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path)
    creds = sb.info["credentials"]["hubspot"]
    anon = client(sb)
    tokens = anon.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        refresh_token=creds["refresh_token"],
    )
    assert tokens.expires_in == 1800 and tokens.refresh_token == creds["refresh_token"]
    oauth = client(sb, tokens.access_token)
    assert len(oauth.crm.contacts.basic_api.get_page(limit=3).results) == 3
    sb.ctx.faults.set_spec(
        {"script": [{"system": "hubspot", "endpoint": "crm.list", "nth": 1, "kind": "expired_token"}]}
    )
    with pytest.raises(UnauthorizedException) as info:
        oauth.crm.contacts.basic_api.get_page(limit=3)
    assert json.loads(info.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    sb.ctx.faults.set_spec(None)
    with pytest.raises(UnauthorizedException):  # the token stays revoked
        oauth.crm.contacts.basic_api.get_page(limit=3)
    fresh = anon.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        refresh_token=creds["refresh_token"],
    )
    assert len(client(sb, fresh.access_token).crm.contacts.basic_api.get_page(limit=3).results) == 3


def test_merge_and_associations_through_the_client(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path)
    hs = client(sb)
    merged = hs.crm.contacts.basic_api.merge(
        public_merge_input=PublicMergeInput(primary_object_id="100", object_id_to_merge="101")
    )
    assert merged.id not in ("100", "101")
    assert merged.properties["hs_merged_object_ids"] == "100;101"
    assert hs.crm.contacts.basic_api.get_by_id("101").id == merged.id
    hs.crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=merged.id, properties={"jobtitle": "CEO"})]
        )
    )
    v4 = hs.crm.associations.v4
    v4.basic_api.create_default("deals", "900", "contacts", merged.id)
    page = v4.batch_api.get_page(
        "contacts", "deals", batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": merged.id}])
    )
    assert page.results[0].to[0].to_object_id == "900"  # the SDK types toObjectId as str
    assert page.results[0].to[0].association_types[0].type_id == 4


def test_generated_seed_loads_with_manifest_counts(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(accounts=12, seed=11)
    counts = sb.emulators["hubspot"].counts()
    assert sb.manifest is not None and counts == sb.manifest["counts"]["hubspot"]
    hs = client(sb)
    owners = hs.crm.owners.owners_api.get_page(limit=500).results
    assert len(owners) == counts["owners"] and all("@" in o.email for o in owners)


def test_control_edits_show_up_in_an_incremental_search(
    make_sandbox: MakeSandbox, sandbox_http: Callable[[Sandbox], Any]
) -> None:
    sb = make_sandbox(accounts=12, seed=5)
    hs = client(sb)
    latest = max(r.updated_at for obj in ("contacts", "companies", "deals") for r in getattr(hs.crm, obj).get_all())
    since_ms = str(int(latest.timestamp() * 1000) + 1)
    edits = sandbox_http(sb).post(
        f"{sb.info['hubspot']}/__sandbox/edits", json={"system": "hubspot", "n": 6, "kinds": ["update"], "seed": 2}
    ).json()
    assert len(edits) == 6 and all(e["kind"] == "update" for e in edits)
    changed = {(e["object"], e["id"]) for e in edits}
    found = set()
    for obj, prop in (("contacts", "lastmodifieddate"), ("companies", "hs_lastmodifieddate"), ("deals", "hs_lastmodifieddate")):
        api = getattr(hs.crm, obj).search_api
        mod = __import__(f"hubspot.crm.{obj}", fromlist=["PublicObjectSearchRequest"])
        req = mod.PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": prop, "operator": "GTE", "value": since_ms}]}],
            sorts=[{"propertyName": prop, "direction": "ASCENDING"}],
            limit=100,
        )
        found |= {(obj, r.id) for r in api.do_search(public_object_search_request=req).results}
    assert found == changed


def test_fault_spec_reaches_the_client(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = seeded(make_sandbox, tmp_path, faults="hubspot/crm.batch.upsert:partial=1;fraction=0.5, hubspot/crm.get:server_error=1")
    hs = client(sb)
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[SimplePublicObjectBatchInputUpsert(id=f"f{i}@acme.example", id_property="email", properties={}) for i in range(4)]
    )
    resp = hs.crm.contacts.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=batch)
    assert len(resp.results) == 2 and resp.num_errors == 2
    with pytest.raises(ServiceException) as info:
        hs.crm.contacts.basic_api.get_by_id("100")
    assert info.value.status == 500 and json.loads(info.value.body)["category"] == "INTERNAL_ERROR"
    faults = sb.ctx.stats.snapshot()["hubspot"]["faults"]
    assert faults == {"partial": 1, "server_error": 1}


def test_company_hierarchy_links_through_the_v4_batch_endpoints(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    """Company → company links: type 14 "child to parent company", 13 the reverse; one
    parent per company; a link made or removed moves the child's last-modified time."""
    hs_dir = tmp_path / "hubspot"
    hs_dir.mkdir(parents=True)
    companies = [{"id": str(300 + i), "properties": {"name": f"Holding {i}", "domain": f"holding{i}.example"},
                  "createdAt": "2025-06-01T00:00:00.000Z", "updatedAt": "2025-06-01T00:00:00.000Z",
                  "archived": False} for i in range(4)]  # fmt: skip
    (hs_dir / "companies.json").write_text(json.dumps(companies))
    (hs_dir / "associations.json").write_text(json.dumps([
        {"fromType": "companies", "fromId": "301", "toType": "companies", "toId": "300", "typeId": 14,
         "category": "HUBSPOT_DEFINED"}]))
    hs = client(make_sandbox(data_dir=tmp_path))
    v4 = hs.crm.associations.v4.batch_api

    def links(*ids: str) -> dict[str, list[tuple[str, int, str | None]]]:
        page = v4.get_page("companies", "companies", batch_input_public_fetch_associations_batch_request=(
            BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in ids])))
        return {str(r._from.id): [(str(t.to_object_id), a.type_id, a.label) for t in r.to
                                  for a in t.association_types] for r in page.results}

    def link(frm: str, to: str, type_id: int) -> Any:
        return v4.create("companies", "companies", batch_input_public_association_multi_post=(
            BatchInputPublicAssociationMultiPost(inputs=[{"from": {"id": frm}, "to": {"id": to}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}])))

    assert links("300", "301") == {"300": [("301", 13, "Child Company")], "301": [("300", 14, "Parent Company")]}
    before = hs.crm.companies.basic_api.get_by_id("302").updated_at
    link("300", "302", 13)  # from the parent: 302 becomes its child
    assert links("302") == {"302": [("300", 14, "Parent Company")]}
    assert hs.crm.companies.basic_api.get_by_id("302").updated_at > before
    second = link("302", "303", 14)  # a second parent: refused per item
    assert second.errors and "already has a parent" in second.errors[0].message
    mine = link("303", "303", 14)
    assert mine.errors and "own parent" in mine.errors[0].message
    v4.archive("companies", "companies", batch_input_public_association_multi_archive=(
        BatchInputPublicAssociationMultiArchive(inputs=[{"from": {"id": "301"}, "to": [{"id": "300"}]}])))
    assert links("300") == {"300": [("302", 13, "Child Company")]}
