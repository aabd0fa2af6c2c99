"""`revsync explain` shows an account's hierarchy (root … parent … this account) and
`revsync errors` lists a refused parent. The store is filled by real sync cycles over
fake connectors (tests/sync/fakes.py) with the real mapping."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

runner = CliRunner()


def test_explain_shows_the_chain_and_errors_show_a_refused_parent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hier.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    root = sf.add("Account", {"Name": "Umbrella Holdings", "Website": "https://umbrella-holdings.com"})
    mid = sf.add("Account", {"Name": "Umbrella Pharma", "Website": "https://umbrella-pharma.com"},
                 assoc={"parent": (root,)})
    leaf = sf.add("Account", {"Name": "Umbrella Pharma Labs", "Website": "https://umbrella-labs.de"},
                  assoc={"parent": (mid,)})
    # HubSpot names a parent no company has: refused, with a ledger entry
    stray = hs.add("companies", {"name": "Stray Co", "domain": "stray-co.com"}, assoc={"parent": ("424242",)})
    conns = {"salesforce": Connection("salesforce", "salesforce", sf),
             "hubspot": Connection("hubspot", "hubspot", hs)}
    report = Runner(st.Store.from_url(url), conns, parse({}), now=clock).run_cycle()
    assert report.status == "ok", report
    cfg = tmp_path / "revsync.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")

    r = runner.invoke(app, ["--config", str(cfg), "explain", f"salesforce:{leaf}", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [c["name"] for c in data["chain"]] == ["Umbrella Holdings", "Umbrella Pharma", "Umbrella Pharma Labs"]
    assert data["chain"][-1]["id"] == data["entity"]
    parent = next(f for f in data["fields"] if f["field"] == "parent_id")
    assert parent["value"] == data["chain"][1]["id"] and parent["system"] == "salesforce"
    text = runner.invoke(app, ["--config", str(cfg), "explain", f"salesforce:{leaf}"]).stdout
    assert "hierarchy: Umbrella Holdings" in text and "Umbrella Pharma Labs" in text

    r = runner.invoke(app, ["--config", str(cfg), "errors", "--json"])
    assert r.exit_code == 0, r.output
    refused = [e for e in json.loads(r.stdout)["errors"] if e["direction"] == "hierarchy"]
    assert [(e["system"], e["remote_id"], e["field"], e["category"]) for e in refused] == [
        ("hubspot", stray, "parent_id", "validation")]
    assert "424242" in refused[0]["message"]
