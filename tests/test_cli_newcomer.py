"""What a new admin meets first, on a store built by hand (no sandbox): help that reads
right, short ids and search, errors that name the source record, review decisions that
say what they did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from sync import store as st
from sync.migrate import upgrade

runner = CliRunner()
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(db)
    path = tmp_path / "revsync.toml"
    path.write_text(f'[database]\nurl = "{db}"\n', encoding="utf-8")
    return path


def _store(cfg: Path) -> st.Store:
    url = cfg.read_text(encoding="utf-8").split('"')[1]
    return st.Store.from_url(url)


def _ref(s: object, ot: str, cid: str, system: str, native: str, rid: str) -> None:
    s.add(st.ExternalRefRow(canonical_id=cid, object_type=ot, system=system, native_type=native,  # type: ignore[attr-defined]
                            remote_id=rid, link_rule="new", first_seen_at=NOW, last_seen_at=NOW))


def invoke(cfg: Path, *args: str) -> object:
    return runner.invoke(app, ["--config", str(cfg), *args])


def test_help_shows_no_value_type_for_flags_and_one_line_per_command() -> None:
    r = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0
    assert "<bool>" not in r.output
    assert "--verbose" in r.output
    demo = [line for line in r.output.splitlines() if "│ demo " in line]
    assert len(demo) == 1 and demo[0].rstrip(" │").endswith("quiet second cycle.")
    sub = runner.invoke(app, ["sync", "--help"], env={"COLUMNS": "120"})
    assert "--dry-run" in sub.output and "<bool>" not in sub.output
    # a value-taking option still shows its type
    assert "list[str]" in sub.output


@pytest.fixture
def filled(cfg: Path) -> dict[str, str]:
    ids = {
        "acme": "aaaa1111-0000-4000-8000-000000000001",
        "acme2": "aaaa1111-0000-4000-8000-000000000002",  # shares the first 8 characters
        "zed": "bbbb2222-0000-4000-8000-000000000003",
        "ann": "cccc3333-0000-4000-8000-000000000004",
        "opp": "dddd4444-0000-4000-8000-000000000005",
    }
    with _store(cfg).session() as s:
        st.add_entity(s, "account", ids["acme"], NOW, name="Acme Robotics", domain="acme-robotics.io")
        st.add_entity(s, "account", ids["acme2"], NOW, name="Zenith Labs", domain="zenith.dev")
        st.add_entity(s, "account", ids["zed"], NOW, name="Old Co", domain="oldco.com", deleted_at=NOW)
        st.add_entity(s, "contact", ids["ann"], NOW, first_name="Ann", last_name="Lee", email="ann.lee@zenith.dev")
        st.add_entity(s, "opportunity", ids["opp"], NOW, name="Zenith - Renewal 2027")
        s.flush()
        _ref(s, "account", ids["acme"], "salesforce", "Account", "001AAAAAAAAAAAAAAA")
        _ref(s, "account", ids["acme"], "hubspot", "companies", "5000001")
        _ref(s, "contact", ids["ann"], "hubspot", "contacts", "901")
        st.record_error(s, system="hubspot", object_type="account", native_type="companies", remote_id=None,
                        canonical_id=ids["acme"], direction="write", category="validation",
                        message="Property values were not valid", field="industry", payload=None, now=NOW,
                        run_id=None)
    return ids


def test_explain_takes_the_short_id_plan_prints(cfg: Path, filled: dict[str, str]) -> None:
    r = invoke(cfg, "explain", filled["ann"][:8], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["entity"] == filled["ann"]
    # a prefix shared by two entities: one line naming both, exit 2
    r = invoke(cfg, "explain", "aaaa1111")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "2 ids" in r.output and "give more characters" in r.output
    # too short to be a prefix, or unknown: one line, exit 2
    for bad in ("aa", "ffff9999", "hubspot:nope"):
        r = invoke(cfg, "explain", bad)
        assert r.exit_code == 2 and "revsync find" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(("text", "expect"), [
    ("robotics", "acme"),  # part of a name
    ("ACME-ROBOTICS.IO", "acme"),  # a domain, any case
    ("ann.lee@zenith.dev", "ann"),  # an email
    ("ann lee", "ann"),  # a contact's full name
    ("001AAAAAAAAAAAAAAA", "acme"),  # a remote record id
    ("renewal 2027", "opp"),
])
def test_find_by_name_email_domain_or_remote_id(cfg: Path, filled: dict[str, str], text: str, expect: str) -> None:
    r = invoke(cfg, "find", text, "--json")
    assert r.exit_code == 0, r.output
    found = json.loads(r.stdout)["found"]
    assert filled[expect] in [f["entity"] for f in found]
    if expect == "acme":
        hit = next(f for f in found if f["entity"] == filled["acme"])
        assert sorted(hit["records"]) == ["hubspot:5000001", "salesforce:001AAAAAAAAAAAAAAA"]


def test_find_skips_deleted_and_filters_by_object(cfg: Path, filled: dict[str, str]) -> None:
    assert json.loads(invoke(cfg, "find", "oldco", "--json").stdout)["found"] == []
    found = json.loads(invoke(cfg, "find", "zenith", "--object", "contact", "--json").stdout)["found"]
    assert [f["entity"] for f in found] == [filled["ann"]]
    r = invoke(cfg, "find", "zenith", "--object", "lead")
    assert r.exit_code == 2 and "--object" in r.output
    r = invoke(cfg, "find", "zenith")
    assert r.exit_code == 0 and filled["ann"][:8] in r.output and filled["acme2"][:8] in r.output


def test_a_failed_create_names_its_source_records_not_the_canonical_id(cfg: Path, filled: dict[str, str]) -> None:
    rows = json.loads(invoke(cfg, "errors", "--json").stdout)["errors"]
    assert len(rows) == 1
    assert rows[0]["source"].startswith("salesforce:001AAAAAAAAAAAAAAA")
    assert "Acme Robotics" in rows[0]["source"]
    r = invoke(cfg, "errors")
    assert r.exit_code == 0 and "Acme" in r.output
    assert filled["acme"] not in r.output  # the admin sees the source record, not our internal id


def _review(cfg: Path, left: str, right: str) -> int:
    with _store(cfg).session() as s:
        row = st.MatchReviewRow(object_type="account", left_id=left, right_id=right, probability=0.9,
                                evidence={}, state="open", created_at=NOW)
        s.add(row)
        s.flush()
        return row.id


def test_accepting_a_pair_whose_side_was_linked_elsewhere_links_what_it_belongs_to(
    cfg: Path, filled: dict[str, str],
) -> None:
    third = "eeee5555-0000-4000-8000-000000000006"
    with _store(cfg).session() as s:
        st.add_entity(s, "account", third, NOW, name="Zenith Laboratories")
        s.flush()
        # acme2 has since been linked into third
        st.link_entities(s, "account", [third, filled["acme2"]], survivor_id=third, evidence={}, run_id=None, now=NOW)
    rid = _review(cfg, filled["acme"], filled["acme2"])
    r = invoke(cfg, "dedupe", "review", "--accept", str(rid))
    assert r.exit_code == 0, r.output
    assert f"{filled['acme2']} is now part of {third}" in r.output.replace("\n", "")
    with _store(cfg).session() as s:
        assert st.current_entity(s, "account", filled["acme"]) == st.current_entity(s, "account", third)
    # both sides already one entity: accepted, and it says nothing was linked
    rid = _review(cfg, filled["acme"], third)
    out = json.loads(invoke(cfg, "dedupe", "review", "--accept", str(rid), "--json").stdout)["decided"][0]
    assert out["state"] == "accepted" and out["merge_id"] is None and "already one entity" in out["note"]
    # a side that was deleted cannot be linked: one line, exit 2, the pair stays open
    rid = _review(cfg, filled["acme"], filled["zed"])
    r = invoke(cfg, "dedupe", "review", "--accept", str(rid))
    assert r.exit_code == 2 and "no longer exists" in r.output
    with _store(cfg).session() as s:
        assert s.get(st.MatchReviewRow, rid).state == "open"


def test_plan_names_the_revsync_id_written_into_a_linked_record(cfg: Path, filled: dict[str, str]) -> None:
    """A write that only stamps the entity's id into a record it linked shows that field
    and value, not an empty "(associations) → {}" line."""
    with _store(cfg).session() as s:
        s.add(st.OutboxRow(system="salesforce", object_type="account", native_type="Account", kind="update",
                           canonical_id=filled["acme"], remote_id="001AAAAAAAAAAAAAAA",
                           payload={"fields": {"Revsync_Id__c": filled["acme"]}, "associations": {}, "changes": []},
                           state="pending", attempts=0, created_at=NOW, updated_at=NOW))
    r = invoke(cfg, "plan")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "aaaa1111" in ln)
    assert "Revsync_Id__c (revsync id)" in line and filled["acme"] in line and "identity" in line
    assert "(associations)" not in r.output
