"""The Planhat emulator behind the real sandbox server: HTTPS, CA bundle, control routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import Sandbox

from .conftest import MakeSandbox, https_session

EPOCH = "2026-01-01T00:00:00.000Z"


def oid(kind: int, n: int) -> str:
    return f"{0x64000000 + kind:08x}{n:016x}"


def write_planhat_seed(root: Path, *, companies: int = 40, endusers_per: int = 2) -> Path:
    """A small data dir in the generator's format (planhat only)."""
    d = root / "planhat"
    d.mkdir(parents=True)
    users = [{"_id": oid(1, i), "email": f"csm{i}@vendor.example", "firstName": "C", "lastName": f"SM{i}"}
             for i in range(3)]
    comps: list[dict[str, Any]] = [{"_id": oid(2, i), "name": f"Company {i}", "externalId": f"ext-{i}", "domains": [f"c{i}.example"],
              "phase": "adoption", "status": "customer", "h": 5, "arr": 0, "mrr": 0, "renewalDate": None,
              "owner": users[i % 3]["_id"], "createDate": EPOCH, "lastUpdated": EPOCH, "custom": {}}
             for i in range(companies)]
    ends = [{"_id": oid(3, i * 10 + j), "email": f"p{j}@c{i}.example", "companyId": oid(2, i),
             "firstName": f"P{j}", "lastName": f"L{i}", "archived": False, "createDate": EPOCH, "lastUpdated": EPOCH}
            for i in range(companies) for j in range(endusers_per)]
    lic = [{"_id": oid(4, i), "companyId": oid(2, i), "_currency": "USD", "fromDate": "2026-01-01",
            "toDate": "2026-12-31", "mrr": 100 + i, "arr": (100 + i) * 12} for i in range(0, companies, 4)]
    for name, docs in (("users", users), ("companies", comps), ("endusers", ends), ("licenses", lic)):
        (d / f"{name}.json").write_text(json.dumps(docs, sort_keys=True, separators=(",", ":")))
    return root


@pytest.fixture
def ph(make_sandbox: MakeSandbox, tmp_path: Path) -> Sandbox:
    return make_sandbox(data_dir=write_planhat_seed(tmp_path), systems=("planhat",))


def client(sb: Sandbox) -> tuple[requests.Session, str]:
    s = https_session(sb)
    s.headers["Authorization"] = f"Bearer {sb.info['credentials']['planhat']['api_token']}"
    return s, sb.urls["planhat"]


def test_given_seeded_sandbox_when_paged_over_https_then_every_company_once(ph: Sandbox) -> None:
    s, url = client(ph)
    seen: list[str] = []
    offset = 0
    while True:
        page = s.get(f"{url}/companies", params={"limit": 15, "offset": offset}, timeout=10).json()
        seen += [d["_id"] for d in page]
        if len(page) < 15:
            break
        offset += 15
    assert len(seen) == len(set(seen)) == 40
    assert ph.emulators["planhat"].counts() == {"companies": 40, "endusers": 80, "licenses": 10, "users": 3}
    stats = s.get(f"{url}/__sandbox/stats", timeout=10).json()["planhat"]
    assert stats["by_endpoint"]["companies.list"] == 3 and stats["records_served"] == 40


def test_given_no_token_when_called_then_401(ph: Sandbox) -> None:
    s = https_session(ph)
    assert s.get(f"{ph.urls['planhat']}/companies", timeout=10).status_code == 401


def test_given_bulk_upsert_over_https_then_keyables_and_derived_arr(ph: Sandbox) -> None:
    s, url = client(ph)
    r = s.put(f"{url}/licenses", json=[{"sourceId": "lic-new", "companyId": oid(2, 1), "_currency": "USD",
                                       "fromDate": "2026-01-01", "toDate": "2099-12-31", "mrr": 50}], timeout=10)
    assert r.status_code == 200 and r.json()["created"] == 1
    company = s.get(f"{url}/companies/extid-ext-1", timeout=10).json()
    assert company["renewalDate"] == "2099-12-31"
    assert s.get(f"{url}/licenses/srcid-lic-new", timeout=10).json()["mrr"] == 50
    r = s.put(f"{url}/companies", json=[{"externalId": "ext-2", "phone": "+1 555"}, {"sourceId": "n1"}], timeout=10)
    assert r.status_code == 206
    body: dict[str, Any] = r.json()
    assert body["updated"] == 1 and body["createdErrors"][0]["item"] == {"sourceId": "n1"}


def test_given_edits_route_when_called_then_planhat_records_change(ph: Sandbox) -> None:
    s, url = client(ph)
    r = s.post(f"{url}/__sandbox/edits", json={"system": "planhat", "n": 5, "kinds": ["update", "create"], "seed": 3},
               timeout=10)
    assert r.status_code == 200
    edits = r.json()
    assert len(edits) == 5 and all(e["system"] == "planhat" for e in edits)
    created = [e for e in edits if e["kind"] == "create"]
    assert ph.emulators["planhat"].counts()["endusers"] == 80 + len(created)
