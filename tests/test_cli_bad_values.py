"""`revsync errors --category bad_value` and `revsync explain` show unreadable values.

The store is filled by a real sync cycle over fake connectors (tests/sync/fakes.py)
with the real mapping; the CLI then reads it like an admin would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

runner = CliRunner()


@pytest.fixture
def synced(tmp_path: Path) -> tuple[Path, dict[str, str], FakeConnector, Runner]:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    ids = {
        "sf": sf.add("Contact", {"FirstName": "Ana", "LastName": "Lima", "Email": "ana@lima.example.com",
                                 "Phone": "+1 415 555 0100"}),
        # HubSpot's copy: a phone that is no number, a lone surrogate sent as a JSON escape
        "hs": hs.add("contacts", {"email": "Ana@Lima.example.com", "firstname": "Ana",
                                  "lastname": "Li\udc80ma", "phone": "ask [b]reception[/b]"}),
    }
    conns = {"salesforce": Connection("salesforce", "salesforce", sf),
             "hubspot": Connection("hubspot", "hubspot", hs)}
    run = Runner(st.Store.from_url(url), conns, parse({}), now=clock)
    report = run.run_cycle()
    assert report.status == "ok", report
    cfg = tmp_path / "revsync.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return cfg, ids, hs, run


def invoke(cfg: Path, *args: str) -> str:
    r = runner.invoke(app, ["--config", str(cfg), *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_errors_category_bad_value_lists_system_record_field_raw_and_reason(synced) -> None:
    cfg, ids, _, _ = synced
    rows = json.loads(invoke(cfg, "errors", "--category", "bad_value", "--json"))["errors"]
    got = {(e["system"], e["remote_id"], e["field"]): (e["raw"], e["reason"]) for e in rows}
    assert set(got) == {("hubspot", ids["hs"], "lastname"), ("hubspot", ids["hs"], "phone")}
    raw, reason = got[("hubspot", ids["hs"], "lastname")]
    assert raw == "'Li\\udc80ma'" and "lone surrogate" in reason
    raw, reason = got[("hubspot", ids["hs"], "phone")]
    assert raw == "'ask [b]reception[/b]'" and "phone number" in reason
    assert all(e["category"] == "bad_value" and e["direction"] == "read" for e in rows)
    # other categories hold none of them
    others = json.loads(invoke(cfg, "errors", "--category", "validation", "--json"))["errors"]
    assert others == []
    # the table shows the raw value as text (rich markup in it is not interpreted)
    text = invoke(cfg, "errors", "--category", "bad_value")
    assert "[b]" in text  # shown as text: rich markup would have eaten the tag


def test_explain_shows_the_unreadable_field_and_the_value_decided_without_it(synced) -> None:
    cfg, ids, _, _ = synced
    data = json.loads(invoke(cfg, "explain", f"hubspot:{ids['hs']}", "--json"))
    bad = {(u["field"], u["native"], u["system"], u["remote_id"]): u for u in data["unreadable"]}
    assert set(bad) == {("last_name", "lastname", "hubspot", ids["hs"]), ("phone", "phone", "hubspot", ids["hs"])}
    assert "lone surrogate" in bad[("last_name", "lastname", "hubspot", ids["hs"])]["reason"]
    decided = {f["field"]: f for f in data["fields"]}
    # the Salesforce values stand: the unreadable HubSpot values were no claim, not blanks
    assert decided["phone"]["value"] == "+14155550100" and decided["phone"]["system"] == "salesforce"
    assert decided["last_name"]["value"] == "Lima"
    one = json.loads(invoke(cfg, "explain", f"hubspot:{ids['hs']}", "phone", "--json"))
    assert [u["field"] for u in one["unreadable"]] == ["phone"]
    text = invoke(cfg, "explain", f"hubspot:{ids['hs']}")
    assert "unreadable values" in text and "lastname" in text


def test_a_later_readable_value_clears_the_entry(synced) -> None:
    cfg, ids, hs, run = synced
    hs.data["contacts"][ids["hs"]]["phone"] = "(415) 555-0199"
    hs.mod["contacts"][ids["hs"]] = hs.clock.tick(5)
    run.run_cycle()
    rows = json.loads(invoke(cfg, "errors", "--category", "bad_value", "--json"))["errors"]
    assert {(e["remote_id"], e["field"]) for e in rows} == {(ids["hs"], "lastname")}
    data = json.loads(invoke(cfg, "explain", f"hubspot:{ids['hs']}", "--json"))
    assert [u["field"] for u in data["unreadable"]] == ["last_name"]
