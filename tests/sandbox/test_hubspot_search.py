"""Search API emulation: operators, groups, sorting, paging, limits and the 10k cap."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from sandbox.core import Clock, FaultInjector, SandboxContext, Stats
from sandbox.hubspot import HubSpotEmulator
from sandbox.hubspot_search import SEARCH_CAP

PAT = "pat-test"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def make() -> HubSpotEmulator:
    ctx = SandboxContext(
        clock=Clock(fixed=T0),
        faults=FaultInjector(None),
        stats=Stats(),
        tier="off",
        credentials={"hubspot": {"access_token": PAT}},
        seed=3,
    )
    return HubSpotEmulator(ctx)


def search(emu: HubSpotEmulator, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
    env = EnvironBuilder(method="POST", path=f"/crm/v3/objects/{obj}/search", json=body,
                         headers=[("Authorization", f"Bearer {PAT}")]).get_environ()  # fmt: skip
    resp = emu.handle(Request(env), None)
    return resp.status_code, json.loads(resp.get_data(as_text=True))


def ids(body: Any) -> list[str]:
    return [r["id"] for r in body["results"]]


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@pytest.fixture
def deals() -> tuple[HubSpotEmulator, list[str]]:
    """Six deals, updated one minute apart (oldest first), with assorted values."""
    emu = make()
    rows = [
        {"dealname": "Alpha renewal", "amount": "100", "dealstage": "closedwon", "pipeline": "default"},
        {"dealname": "Beta expansion", "amount": "2500", "dealstage": "appointmentscheduled"},
        {"dealname": "Gamma new-logo", "amount": "900.5", "dealstage": "closedlost"},
        {"dealname": "Delta", "amount": None, "dealstage": "closedwon"},
        {"dealname": "Epsilon renewal", "amount": "40000", "dealstage": "contractsent"},
        {"dealname": "Zeta", "amount": "7", "dealstage": "qualifiedtobuy", "closedate": "2026-06-30T00:00:00.000Z"},
    ]
    # updated in a shuffled order so id order and modstamp order differ
    minutes = [3, 0, 5, 1, 4, 2]
    out = []
    for props, minute in zip(rows, minutes, strict=True):
        ms = T0_MS + minute * 60_000
        out.append(emu.add("deals", {"properties": props, "createdAt": stamp(T0_MS - 1000), "updatedAt": stamp(ms)}))
    return emu, out


def f(prop: str, op: str, **kw: Any) -> dict[str, Any]:
    return {"propertyName": prop, "operator": op, **kw}


def test_gte_on_lastmodified_sorted_ascending_uses_modstamp_order(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, d = deals
    body = {
        "filterGroups": [{"filters": [f("hs_lastmodifieddate", "GTE", value=str(T0_MS + 60_000))]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["dealname"],
        "limit": 2,
    }
    status, page = search(emu, "deals", body)
    assert status == 200 and page["total"] == 5
    assert ids(page) == [d[3], d[5]] and page["paging"]["next"]["after"] == "2"
    got = ids(page)
    while "paging" in page:
        status, page = search(emu, "deals", {**body, "after": page["paging"]["next"]["after"]})
        got += ids(page)
    assert got == [d[3], d[5], d[0], d[4], d[2]]
    assert set(page["results"][0]["properties"]) == {"dealname", "createdate", "hs_lastmodifieddate", "hs_object_id"}
    desc = {**body, "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}], "limit": 10}
    assert ids(search(emu, "deals", desc)[1]) == [d[2], d[4], d[0], d[5], d[3]]


def test_iso_values_and_between_on_modstamp(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, d = deals
    body = {"filterGroups": [{"filters": [f("hs_lastmodifieddate", "BETWEEN", value=stamp(T0_MS + 60_000), highValue=str(T0_MS + 180_000))]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}  # fmt: skip
    assert ids(search(emu, "deals", body)[1]) == [d[3], d[5], d[0]]
    gt = {"filterGroups": [{"filters": [f("hs_lastmodifieddate", "GT", value=str(T0_MS + 240_000))]}]}
    assert ids(search(emu, "deals", gt)[1]) == [d[2]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("dealstage", "EQ", value="closedwon"), [0, 3]),
        (f("dealstage", "NEQ", value="closedwon"), [1, 2, 4, 5]),
        (f("amount", "LT", value="100"), [5]),
        (f("amount", "LTE", value="100"), [0, 5]),
        (f("amount", "GT", value="900"), [1, 2, 4]),
        (f("amount", "BETWEEN", value="100", highValue="2500"), [0, 1, 2]),
        (f("dealstage", "IN", values=["closedlost", "contractsent"]), [2, 4]),
        (f("dealstage", "NOT_IN", values=["closedwon", "closedlost"]), [1, 4, 5]),
        (f("amount", "HAS_PROPERTY"), [0, 1, 2, 4, 5]),
        (f("amount", "NOT_HAS_PROPERTY"), [3]),
        (f("dealname", "CONTAINS_TOKEN", value="renewal"), [0, 4]),
        (f("dealname", "CONTAINS_TOKEN", value="exp*"), [1]),
        (f("dealname", "NOT_CONTAINS_TOKEN", value="renewal"), [1, 2, 3, 5]),
        (f("closedate", "GTE", value="2026-06-01T00:00:00Z"), [5]),
        (f("hs_object_id", "EQ", value="__ID2__"), [2]),
    ],
)
def test_operators(deals: tuple[HubSpotEmulator, list[str]], flt: dict[str, Any], expected: list[int]) -> None:
    emu, d = deals
    if flt.get("value") == "__ID2__":
        flt = {**flt, "value": d[2]}
    status, body = search(emu, "deals", {"filterGroups": [{"filters": [flt]}], "limit": 100})
    assert status == 200
    assert ids(body) == [d[i] for i in expected]  # default order: ascending id
    assert body["total"] == len(expected)


def test_groups_are_ored_and_filters_anded(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, d = deals
    body = {"filterGroups": [
        {"filters": [f("dealstage", "EQ", value="closedwon"), f("amount", "HAS_PROPERTY")]},
        {"filters": [f("amount", "GTE", value="40000")]},
    ]}  # fmt: skip
    assert ids(search(emu, "deals", body)[1]) == [d[0], d[4]]


def test_sort_by_a_number_and_free_text_query(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, d = deals
    body = {"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "limit": 10}
    assert ids(search(emu, "deals", body)[1]) == [d[4], d[1], d[2], d[0], d[5], d[3]]  # unset last
    assert ids(search(emu, "deals", {"query": "renewal"})[1]) == [d[0], d[4]]


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 201},
        {"filterGroups": [{"filters": [f("amount", "HAS_PROPERTY")]} for _ in range(6)]},
        {"filterGroups": [{"filters": [f("amount", "HAS_PROPERTY")] * 11}]},
        {"filterGroups": [{"filters": [f("amount", "HAS_PROPERTY")] * 9} for _ in range(3)]},
        {"filterGroups": [{"filters": [f("amount", "LIKE", value="1")]}]},
        {"filterGroups": [{"filters": [f("nosuch", "EQ", value="1")]}]},
        {"filterGroups": [{"filters": [f("amount", "GT", value="abc")]}]},
        {"after": "banana"},
    ],
)
def test_bad_requests_are_400_validation_errors(deals: tuple[HubSpotEmulator, list[str]], body: dict[str, Any]) -> None:
    status, err = search(deals[0], "deals", body)
    assert status == 400 and err["category"] == "VALIDATION_ERROR" and err["status"] == "error"


def test_filter_limits_at_the_boundary_are_fine(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, _ = deals
    five = {"filterGroups": [{"filters": [f("amount", "HAS_PROPERTY")] * 5} for _ in range(5)], "limit": 200}
    assert search(emu, "deals", five)[0] == 200


def test_paging_beyond_10000_is_a_400() -> None:
    emu = make()
    for i in range(SEARCH_CAP + 50):
        emu.add("contacts", {"properties": {"email": f"u{i}@example.com"}, "createdAt": stamp(T0_MS + i)})
    body = {"filterGroups": [{"filters": [f("lastmodifieddate", "GTE", value=str(T0_MS))]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200}  # fmt: skip
    status, page = search(emu, "contacts", {**body, "after": "9900"})
    assert status == 200 and page["total"] == SEARCH_CAP + 50
    assert len(page["results"]) == 100 and page["paging"]["next"]["after"] == "10000"
    status, err = search(emu, "contacts", {**body, "after": page["paging"]["next"]["after"]})
    assert status == 400 and err["category"] == "VALIDATION_ERROR"
    # re-anchoring on the sort key reaches the rest
    last = page["results"][-1]["properties"]["lastmodifieddate"]
    anchored = {**body, "filterGroups": [{"filters": [f("lastmodifieddate", "GT", value=last)]}]}
    status, rest = search(emu, "contacts", anchored)
    assert status == 200
    assert rest["total"] == 50 and len(rest["results"]) == 50


def test_writes_move_records_in_the_modstamp_index(deals: tuple[HubSpotEmulator, list[str]]) -> None:
    emu, d = deals
    emu.ctx.clock.advance(3600)
    env = EnvironBuilder(method="PATCH", path=f"/crm/v3/objects/deals/{d[1]}", json={"properties": {"amount": "1"}},
                         headers=[("Authorization", f"Bearer {PAT}")]).get_environ()  # fmt: skip
    assert emu.handle(Request(env), None).status_code == 200
    body = {"filterGroups": [{"filters": [f("hs_lastmodifieddate", "GTE", value=str(T0_MS + 3_600_000))]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}  # fmt: skip
    status, page = search(emu, "deals", body)
    assert status == 200
    assert ids(page) == [d[1]] and page["total"] == 1


def test_indexed_modstamp_path_agrees_with_a_brute_force_oracle() -> None:
    import random

    rng = random.Random(11)
    emu = make()
    stages = ["closedwon", "closedlost", "contractsent", "qualifiedtobuy"]
    docs = {}
    for _ in range(300):
        ms = T0_MS + rng.randrange(0, 50) * 1000  # many ties on purpose
        props = {"dealname": "D", "dealstage": rng.choice(stages), "amount": str(rng.randrange(0, 1000))}
        rid = emu.add("deals", {"properties": props, "createdAt": stamp(T0_MS), "updatedAt": stamp(ms)})
        docs[rid] = (ms, props)
    for _ in range(40):
        lo = T0_MS + rng.randrange(0, 50) * 1000
        hi = lo + rng.randrange(0, 20) * 1000
        op = rng.choice(["GTE", "GT", "LTE", "LT", "BETWEEN", "EQ"])
        flt = f("hs_lastmodifieddate", op, value=str(lo), **({"highValue": str(hi)} if op == "BETWEEN" else {}))
        extra = rng.random() < 0.5
        stage = rng.choice(stages)
        filters = [flt, f("dealstage", "EQ", value=stage)] if extra else [flt]
        descending = rng.random() < 0.3
        want = sorted(
            (
                (ms, int(rid))
                for rid, (ms, p) in docs.items()
                if _in_range(op, ms, lo, hi) and (not extra or p["dealstage"] == stage)
            ),
            reverse=descending,
        )
        got: list[str] = []
        after = None
        while True:
            body = {"filterGroups": [{"filters": filters}], "limit": 7,
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING" if descending else "ASCENDING"}]}  # fmt: skip
            if after:
                body["after"] = after
            status, page = search(emu, "deals", body)
            assert status == 200 and page["total"] == len(want)
            got += ids(page)
            if "paging" not in page:
                break
            after = page["paging"]["next"]["after"]
        assert got == [str(rid) for _, rid in want], (op, extra, descending)


def _in_range(op: str, ms: int, lo: int, hi: int) -> bool:
    return {
        "GTE": ms >= lo, "GT": ms > lo, "LTE": ms <= lo, "LT": ms < lo,
        "BETWEEN": lo <= ms <= hi, "EQ": ms == lo,
    }[op]  # fmt: skip


def test_hs_object_id_gt_zero_is_accepted_as_the_start_of_id_paging(
    deals: tuple[HubSpotEmulator, list[str]],
) -> None:
    """HubSpot's search guide pages by id from ``hs_object_id GT "0"``: every record."""
    emu, d = deals
    body = {
        "filterGroups": [{"filters": [f("hs_object_id", "GT", value="0")]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": ["dealname"],
        "limit": 100,
    }
    status, page = search(emu, "deals", body)
    assert status == 200
    assert page["total"] == len(d)
    assert ids(page) == sorted(d, key=int)
    # a negative bound is still refused
    status, err = search(emu, "deals", {"filterGroups": [{"filters": [f("hs_object_id", "GT", value="-1")]}]})
    assert status == 400 and err["category"] == "VALIDATION_ERROR"
