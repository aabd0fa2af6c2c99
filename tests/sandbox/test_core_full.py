"""The whole sandbox: generator + the three real emulators + the real clients over TLS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce

from sandbox.server import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("salesforce", "hubspot", "planhat")


@pytest.fixture(scope="module")
def full() -> Iterator[Sandbox]:
    with Sandbox(accounts=20, seed=3, tier="off") as sb:
        yield sb


def _http(sb: Sandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override session.verify
    session.verify = str(sb.info["ca_cert"])
    return session


def test_all_three_systems_start_on_their_own_ports_with_generated_data(full: Sandbox) -> None:
    info = full.info
    assert len({info[s] for s in SYSTEMS}) == 3
    assert full.manifest is not None and full.manifest["seed"] == 3
    truth = Path(info["ground_truth"])
    assert truth.is_file() and isinstance(json.loads(truth.read_text()), dict)
    health = _http(full).get(f"{info['planhat']}/__sandbox/health").json()
    for system in SYSTEMS:
        counts = health["counts"][system]
        expected = full.manifest["counts"][system]
        shared = set(counts) & set(expected)
        assert shared, (system, counts, expected)
        assert {k: counts[k] for k in shared} == {k: expected[k] for k in shared}


def test_real_clients_read_over_verified_tls(full: Sandbox) -> None:
    info, creds = full.info, full.info["credentials"]
    http = _http(full)

    sf_creds = creds["salesforce"]
    token = http.post(
        f"{info['salesforce']}/services/oauth2/token",
        data={"grant_type": "password", "client_id": sf_creds["client_id"],
              "client_secret": sf_creds["client_secret"], "username": sf_creds["username"],
              "password": sf_creds["password"]},
    ).json()
    sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=http)
    accounts = sf.query("SELECT Id, Name FROM Account")
    assert accounts["totalSize"] == full.manifest["counts"]["salesforce"]["Account"]  # type: ignore[index]

    hs = HubSpot(access_token=creds["hubspot"]["access_token"], host=info["hubspot"],
                 ssl_ca_cert=info["ca_cert"])
    page = hs.crm.companies.basic_api.get_page(limit=5, properties=["name", "domain"])
    assert len(page.results) == 5 and all(c.properties.get("name") for c in page.results)

    companies = http.get(f"{info['planhat']}/companies?limit=5",
                         headers={"Authorization": f"Bearer {creds['planhat']['api_token']}"}).json()
    assert len(companies) == 5 and all(c["_id"] for c in companies)

    stats = http.get(info["stats"]).json()
    assert all(stats[s]["calls"] >= 1 for s in SYSTEMS)
    assert stats["hubspot"]["records_served"] >= 5


def test_a_server_error_fault_reaches_the_real_client(full: Sandbox) -> None:
    http = _http(full)
    try:
        full.ctx.faults.set_spec({"script": [{"system": "planhat", "nth": 1, "kind": "server_error"}]})
        headers = {"Authorization": f"Bearer {full.info['credentials']['planhat']['api_token']}"}
        assert http.get(f"{full.info['planhat']}/companies", headers=headers).status_code == 500
        assert http.get(f"{full.info['planhat']}/companies", headers=headers).status_code == 200
    finally:
        full.ctx.faults.set_spec(None)


def test_edits_are_seeded_and_touch_each_system(full: Sandbox) -> None:
    http = _http(full)
    for system in SYSTEMS:
        edits = http.post(f"{full.info[system]}/__sandbox/edits",
                          json={"system": system, "n": 4, "kinds": ["update"], "seed": 11}).json()
        assert len(edits) == 4, system
        assert all(e["system"] == system and e["kind"] == "update" and e["id"] for e in edits)


def test_same_seed_sandboxes_make_the_same_edits() -> None:
    runs = []
    for _ in range(2):
        with Sandbox(accounts=10, seed=5, tier="off", systems=("planhat",)) as sb:
            runs.append(_http(sb).post(f"{sb.info['planhat']}/__sandbox/edits",
                                       json={"n": 5, "kinds": ["update"], "seed": 2}).json())
    assert runs[0] == runs[1]


def test_cli_generate_is_deterministic_and_serve_reads_the_data(tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        proc = subprocess.run(
            [sys.executable, "-m", "sandbox.cli", "generate", "--accounts", "5", "--seed", "9", "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads(proc.stdout)
        assert manifest["seed"] == 9 and manifest["accounts"] == 5
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.json"))
    assert files and files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*.json"))
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)

    with Sandbox(outs[0], tier="off") as sb:
        assert sb.info["ground_truth"] == str(outs[0] / "ground_truth.json")
        assert sb.manifest is not None and sb.manifest["accounts"] == 5
        assert sb.emulators["planhat"].counts()["companies"] == sb.manifest["counts"]["planhat"]["companies"]
