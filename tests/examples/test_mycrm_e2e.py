"""The example plugin syncs end to end with the sandbox's three systems.

revsync knows nothing about MyCRM but its ``revsync.connectors`` entry point: the
config names ``kind = "mycrm"``, a ``[mapping."mycrm.Person"]`` table overrides the
plugin's field map, and ``revsync sync`` (the real CLI, real clients, the HTTPS
sandbox, the MyCRM REST stub) links, creates and writes records both ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from sandbox.server import Sandbox
from tests.integration import e2e_support as E

from .mycrm_stub import CLIENT, MyCrmStub

pytestmark = pytest.mark.slow
runner = CliRunner()


def _config(tmp: Path, sb: Sandbox, stub: MyCrmStub, monkeypatch: pytest.MonkeyPatch) -> Path:
    env = {"T_MY_ID": CLIENT[0], "T_MY_SECRET": CLIENT[1]}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # the product's starter config for the built-ins, plus the plugin's connection
    return E.write_config(sb.info, tmp, database_url=f"sqlite:///{tmp / 'e2e.db'}", limits={"max_creates": 100000},
                          extra=f"""
[connections.crm2]
kind = "mycrm"
base_url = "{stub.url}"
page_size = 25
[connections.crm2.secrets]
client_id = "T_MY_ID"
client_secret = "T_MY_SECRET"
[mapping."mycrm.Person".fields]
job = "extras.mycrm_job"
""")


def _cli(cfg: Path, *args: str) -> Any:
    r = runner.invoke(app, ["--config", str(cfg), *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout) if "--json" in args else r.output


def test_given_the_plugin_installed_when_sync_then_mycrm_records_flow_both_ways(
    mycrm_installed: Any, mycrm_stub: MyCrmStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = mycrm_stub
    with Sandbox(accounts=8, seed=11, tier="off", systems=("salesforce", "hubspot", "planhat")) as sb:
        org = sb.emulators["salesforce"].org  # type: ignore[attr-defined]
        sf_accounts = [r for r in org.records["Account"].values() if not r.get("IsDeleted")]
        twin = sf_accounts[0]
        twin_domain = twin["Website"].split("://", 1)[-1].removeprefix("www.").rstrip("/")
        # MyCRM's own data: one org only it knows, with a person; one org Salesforce
        # also has (same web domain: tier 1 links them, nothing is duplicated)
        only = stub.add("orgs", {"name": "Kleinwerk Österreich GmbH", "web_domain": "kleinwerk.at",
                                 "headcount": 14, "country_code": "AT"})
        stub.add("people", {"org_id": only, "email": "Mira.Huber@Kleinwerk.at", "given_name": "Mira",
                            "family_name": "Huber", "job": "Einkauf"})
        stub.add("orgs", {"name": twin["Name"].upper(), "web_domain": twin_domain})

        cfg = _config(tmp_path, sb, stub, monkeypatch)
        _cli(cfg, "db", "upgrade")
        reports = [_cli(cfg, "sync", "--json") for _ in range(3)]
        assert all(r["status"] == "ok" for r in reports), reports
        assert reports[0]["pulled"].get("crm2", 0) >= 3
        assert sum(reports[0]["written"].values()) > 0

        # MyCRM's own org and person now live in Salesforce (and HubSpot)
        sf_now = [r for r in org.records["Account"].values() if not r.get("IsDeleted")]
        created = [r for r in sf_now if r["Name"] == "Kleinwerk Österreich GmbH"]
        assert len(created) == 1 and created[0]["Revsync_Id__c"]
        people = [r for obj in ("Contact", "Lead") for r in org.records[obj].values()
                  if (r.get("Email") or "").lower() == "mira.huber@kleinwerk.at"]
        assert len(people) == 1
        # the [mapping."mycrm.Person"] override sent 'job' to extras, so it fed no title
        assert not people[0].get("Title")
        hs_names = {rec["name"] for rec in _hubspot_companies(sb)}
        assert "Kleinwerk Österreich GmbH" in hs_names

        # Salesforce's accounts reached MyCRM, each once, carrying its revsync id
        my_orgs = stub.live("orgs")
        by_revsync: dict[str, list[dict[str, Any]]] = {}
        for rec in my_orgs:
            by_revsync.setdefault(rec.get("revsync_id") or "", []).append(rec)
        assert "" not in by_revsync, [(e.get("system"), e.get("message")) for e in _cli(cfg, "errors", "--json")["errors"]]
        assert all(len(v) == 1 for v in by_revsync.values()), "an org was created twice in MyCRM"
        # one MyCRM org per entity Salesforce has (duplicates Salesforce keeps linked
        # carry the id on one record only)
        assert set(by_revsync) == {a["Revsync_Id__c"] for a in sf_now if a.get("Revsync_Id__c")}
        # the twin was linked, not copied: its MyCRM org carries the Salesforce account's id
        twin_now = org.records["Account"][twin["Id"]]
        assert by_revsync[twin_now["Revsync_Id__c"]][0]["web_domain"] == twin_domain

        # contacts reached MyCRM as people under their org
        my_people = stub.live("people")
        assert len(my_people) > 1 and all(p.get("revsync_id") for p in my_people)
        org_ids = {o["id"] for o in my_orgs}
        assert all(p.get("org_id") in org_ids for p in my_people if p.get("org_id"))
        # lifecycle stages went out through the picklist the plugin declares
        stages = {p["stage"] for p in my_people if p.get("stage")}
        assert stages and stages <= {"Newsletter", "Lead", "Marketing qualified", "Sales qualified",
                                     "In deal", "Client", "Champion", "Other"}

        # agreement reached: the third cycle writes nothing anywhere (echoes suppressed)
        assert sum(reports[-1]["written"].values()) == 0, reports[-1]


def _hubspot_companies(sb: Sandbox) -> list[dict[str, Any]]:
    emu = sb.emulators["hubspot"]
    table = emu.tables["companies"]  # type: ignore[attr-defined]
    idx = table.schema.index
    return [{"name": r.vals[idx["name"]]} for r in table.recs.values() if r.live]
