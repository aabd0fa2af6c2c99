"""Associations v4 emulation: type ids both ways, primary labels, create/default/archive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from sandbox.core import Clock, Fault, FaultInjector, SandboxContext, Stats
from sandbox.hubspot import HubSpotEmulator

PAT = "pat-test"


def make() -> HubSpotEmulator:
    ctx = SandboxContext(
        clock=Clock(fixed=datetime(2026, 3, 1, tzinfo=UTC)),
        faults=FaultInjector(None),
        stats=Stats(),
        tier="off",
        credentials={"hubspot": {"access_token": PAT}},
        seed=3,
    )
    return HubSpotEmulator(ctx)


def call(emu: HubSpotEmulator, method: str, path: str, body: Any = None, fault: Fault | None = None) -> tuple[int, Any]:
    env = EnvironBuilder(method=method, path=path, json=body, headers=[("Authorization", f"Bearer {PAT}")]).get_environ()
    resp = emu.handle(Request(env), fault)
    text = resp.get_data(as_text=True)
    return resp.status_code, json.loads(text) if text else None


@pytest.fixture
def world() -> tuple[HubSpotEmulator, dict[str, str]]:
    emu = make()
    ids = {
        "co": emu.add("companies", {"properties": {"name": "Acme"}}),
        "co2": emu.add("companies", {"properties": {"name": "Globex"}}),
        "c": emu.add("contacts", {"properties": {"email": "a@acme.example"}}),
        "d": emu.add("deals", {"properties": {"dealname": "Big"}}),
    }
    return emu, ids


def types_of(result: dict[str, Any]) -> dict[int, list[tuple[int, str | None]]]:
    return {t["toObjectId"]: sorted((a["typeId"], a["label"]) for a in t["associationTypes"]) for t in result["to"]}


def test_create_with_type_ids_and_read_both_directions(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/create", {"inputs": [
        {"from": {"id": i["c"]}, "to": {"id": i["co"]}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]},
    ]})  # fmt: skip
    assert status == 201 and body["results"][0]["labels"] == ["Primary"]
    assert body["results"][0]["fromObjectTypeId"] == "0-1" and body["results"][0]["toObjectId"] == int(i["co"])
    status, body = call(emu, "POST", "/crm/v4/associations/deals/companies/batch/create", {"inputs": [
        {"from": {"id": i["d"]}, "to": {"id": i["co"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]})  # fmt: skip
    assert status == 201
    status, _ = call(emu, "POST", "/crm/v4/associations/deals/contacts/batch/create", {"inputs": [
        {"from": {"id": i["d"]}, "to": {"id": i["c"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]})  # fmt: skip
    assert status == 201

    def read(frm: str, to: str, rid: str) -> dict[int, list[tuple[int, str | None]]]:
        status, body = call(emu, "POST", f"/crm/v4/associations/{frm}/{to}/batch/read", {"inputs": [{"id": rid}]})
        assert status == 200 and body["status"] == "COMPLETE"
        assert body["results"][0]["from"] == {"id": rid}
        return types_of(body["results"][0])

    co, c, d = int(i["co"]), int(i["c"]), int(i["d"])
    assert read("contacts", "companies", i["c"]) == {co: [(1, "Primary"), (279, None)]}
    assert read("companies", "contacts", i["co"]) == {c: [(2, "Primary"), (280, None)]}
    assert read("deals", "companies", i["d"]) == {co: [(5, "Primary"), (341, None)]}
    assert read("companies", "deals", i["co"]) == {d: [(6, "Primary"), (342, None)]}
    assert read("deals", "contacts", i["d"]) == {c: [(3, None)]}
    assert read("contacts", "deals", i["c"]) == {d: [(4, None)]}
    status, body = call(emu, "POST", "/crm/v4/associations/0-1/0-2/batch/read", {"inputs": [{"id": i["c"]}]})
    assert status == 200  # object type ids work as names


def test_a_new_primary_demotes_the_old_one(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    for co in (i["co"], i["co2"]):
        call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/create", {"inputs": [
            {"from": {"id": i["c"]}, "to": {"id": co}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]})  # fmt: skip
    _, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": i["c"]}]})
    assert types_of(body["results"][0]) == {int(i["co"]): [(279, None)], int(i["co2"]): [(1, "Primary"), (279, None)]}


def test_unknown_ids_and_ids_without_associations_are_207_errors(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    call(emu, "PUT", f"/crm/v4/objects/contacts/{i['c']}/associations/default/companies/{i['co']}")
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/read",
                        {"inputs": [{"id": i["c"]}, {"id": "99999"}]})  # fmt: skip
    assert status == 207 and body["numErrors"] == 1 and len(body["results"]) == 1
    assert body["errors"][0]["context"] == {"fromObjectId": ["99999"]}
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/create", {"inputs": [
        {"from": {"id": i["c"]}, "to": {"id": "424242"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]})  # fmt: skip
    assert status == 207 and body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/create", {"inputs": [
        {"from": {"id": i["c"]}, "to": {"id": i["co"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}]}]})  # fmt: skip
    assert status == 400  # deal→company type id used for contact→company


def test_over_1000_read_inputs_is_a_400(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, _ = world
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": str(n)} for n in range(1001)]})
    assert status == 400 and body["category"] == "VALIDATION_ERROR"


def test_default_put_batch_default_and_archive(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    status, body = call(emu, "PUT", f"/crm/v4/objects/deals/{i['d']}/associations/default/companies/{i['co']}")
    assert status == 200 and body["results"][0]["associationSpec"] == {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/associate/default",
                        {"inputs": [{"from": {"id": i["c"]}, "to": {"id": i["co2"]}}]})  # fmt: skip
    assert status == 200 and body["results"][0]["associationSpec"]["associationTypeId"] == 279
    status, body = call(emu, "GET", f"/crm/v4/objects/companies/{i['co2']}/associations/contacts")
    assert [r["toObjectId"] for r in body["results"]] == [int(i["c"])]
    assert body["results"][0]["associationTypes"][0]["typeId"] == 280
    status, _ = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/archive",
                     {"inputs": [{"from": {"id": i["c"]}, "to": [{"id": i["co2"]}]}]})  # fmt: skip
    assert status == 204
    assert emu.assoc.targets("companies", "contacts", int(i["co2"])) == []


def test_create_object_with_associations_and_v3_association_listing(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    status, body = call(emu, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [{
        "properties": {"email": "new@acme.example"},
        "associations": [{"to": {"id": i["co"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}],
    }]})  # fmt: skip
    assert status == 201
    new = body["results"][0]["id"]
    assert emu.assoc.targets("contacts", "companies", int(new)) == [(int(i["co"]), True)]
    status, body = call(emu, "GET", f"/crm/v3/objects/contacts/{new}?associations=companies")
    assert body["associations"]["companies"]["results"] == [
        {"id": i["co"], "type": "contact_to_company"},
        {"id": i["co"], "type": "contact_to_company_unlabeled"},
    ]


def test_partial_fault_on_association_create(world: tuple[HubSpotEmulator, dict[str, str]]) -> None:
    emu, i = world
    inputs = [{"from": {"id": i["c"]}, "to": {"id": co}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}
              for co in (i["co"], i["co2"])]  # fmt: skip
    status, body = call(emu, "POST", "/crm/v4/associations/contacts/companies/batch/create", {"inputs": inputs},
                        fault=Fault("partial", {"fraction": 0.5}))  # fmt: skip
    assert status == 207 and len(body["results"]) == 1 and body["numErrors"] == 1
