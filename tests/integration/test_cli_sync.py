"""The admin CLI against the sandbox: config with secrets from the environment,
sync, plan, dry run, explain, errors, status, backfill — all with --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli import app
from tests.integration import e2e_support as E

runner = CliRunner()


def write_config(tmp: Path, info: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The starter config pointed at this sandbox, its secrets from the environment."""
    for k, v in E.secret_environment(info).items():
        monkeypatch.setenv(k, v)
    return E.write_config(info, tmp, database_url=f"sqlite:///{tmp / 'cli.db'}", limits={"max_creates": 100000},
                          secrets_file=False)


def run(cfg: Path, *args: str) -> dict:
    r = runner.invoke(app, ["--config", str(cfg), *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_cli_sync_plan_explain_status_against_the_sandbox(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=15, seed=11)
    cfg = write_config(tmp_path, sb.info, monkeypatch)

    r = runner.invoke(app, ["--config", str(cfg), "sync"])
    assert r.exit_code == 2 and "no schema" in r.output  # clear error before db upgrade
    assert run(cfg, "db", "upgrade", "--json")["revision"]

    first = run(cfg, "sync", "--json")
    assert first["status"] == "ok", first["messages"]
    assert sum(first["pulled"].values()) > 0 and sum(first["written"].values()) > 0
    assert first["entities"]["account"] > 0

    # after a full sync nothing is pending; a dry run after a remote edit shows the change
    assert run(cfg, "plan", "--json")["pending"] == 0
    hs = sb.emulators["hubspot"]
    edits = hs.apply_edits(__import__("random").Random(3), 3, ["update"])
    assert edits
    dry = run(cfg, "sync", "--dry-run", "--json")
    assert dry["written"] == {}
    pending = run(cfg, "plan", "--json")
    assert pending["pending"] == sum(n for per in dry["planned"].values() for n in per.values())
    for op in pending["ops"]:
        assert op["kind"] in ("create", "update", "delete")
        for ch in op["changes"]:
            assert ch["field"] and ch["rule"]

    # explain a record by SYSTEM:REMOTE_ID
    status = run(cfg, "status", "--json")
    assert status["cursors"] and status["api_usage"]
    assert not any("T_HS" in json.dumps(status) or v in json.dumps(status)
                   for v in (sb.info["credentials"]["hubspot"]["access_token"],))
    from sync import store as st

    store = st.Store.from_url(f"sqlite:///{tmp_path / 'cli.db'}")
    with store.session() as s:
        ref = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.system == "hubspot",
                                                           st.ExternalRefRow.object_type == "contact")).first()
        assert ref is not None
        system_ref = f"hubspot:{ref.remote_id}"
    ex = run(cfg, "explain", system_ref, "--json")
    assert ex["object"] == "contact" and ex["fields"]
    assert all(f["rule"] for f in ex["fields"])
    assert any(r["remote_id"] == ref.remote_id for r in ex["records"])
    one = run(cfg, "explain", system_ref, "email", "--json")
    assert [f["field"] for f in one["fields"]] == ["email"]

    # the real cycle writes the planned changes, then nothing is left
    second = run(cfg, "sync", "--json")
    assert second["status"] == "ok"
    assert run(cfg, "plan", "--json")["pending"] == 0
    assert run(cfg, "errors", "--json")["errors"] == []

    # a backfill re-pulls without moving the cursor backwards
    before = {(c["system"], c["object"]): c["modstamp"] for c in run(cfg, "status", "--json")["cursors"]}
    bf = run(cfg, "backfill", "--system", "salesforce", "--since", "2020-01-01", "--json")
    assert bf["kind"] == "backfill" and bf["pulled"]["salesforce"] > 0
    after = {(c["system"], c["object"]): c["modstamp"] for c in run(cfg, "status", "--json")["cursors"]}
    for key, value in before.items():
        if key[0] == "salesforce" and value:
            assert after[key] >= value


def test_cli_errors_for_bad_input(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=3, seed=2, systems=("planhat",))
    cfg = write_config(tmp_path, {**sb.info, "salesforce": "https://127.0.0.1:1", "hubspot": "https://127.0.0.1:1",
                                  "credentials": {"salesforce": {"client_id": "x", "client_secret": "y", "refresh_token": "z"},
                                                  "hubspot": {"access_token": "t"}, "planhat": sb.info["credentials"]["planhat"]}},
                       monkeypatch)
    run(cfg, "db", "upgrade", "--json")
    r = runner.invoke(app, ["--config", str(cfg), "sync", "--system", "nope"])
    assert r.exit_code == 2 and "no connection named 'nope'" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "sync", "--object", "lead"])
    assert r.exit_code == 2 and "unknown object 'lead'" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "backfill", "--system", "planhat", "--since", "yesterday"])
    assert r.exit_code == 2 and "is not a date" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "explain", "nothing-like-this"])
    assert r.exit_code == 2 and "no entity" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "retry"])
    assert r.exit_code == 2 and "--id N" in r.output


def test_cli_dedupe_review_undo(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=12, seed=5)
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    run(cfg, "db", "upgrade", "--json")
    run(cfg, "sync", "--json")
    dry = run(cfg, "dedupe", "--dry-run", "--json")
    assert dry["dry_run"] is True and {o["object_type"] for o in dry["objects"]} == {"account", "contact",
                                                                                   "opportunity"}
    assert all(o["records"] > 0 and o["merge_ids"] == [] and o["policy"] == "link" for o in dry["objects"])
    out = run(cfg, "dedupe", "--object", "contact", "--json")
    assert out["objects"][0]["records"] > 0
    assert out["objects"][0]["trained"] is False  # the sync kept a model: used as it is
    again = run(cfg, "dedupe", "--object", "contact", "--retrain", "--json")
    assert again["objects"][0]["trained"] is True and "--retrain" in again["objects"][0]["retrain_reason"]
    review = run(cfg, "dedupe", "review", "--json")
    assert review["open"] == len(review["pairs"])
    for p in review["pairs"]:
        assert p["evidence"] and 0 < p["probability"] < 1
    r = runner.invoke(app, ["--config", str(cfg), "dedupe", "undo", "999"])
    assert r.exit_code == 2 and "no merge 999" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "dedupe", "review", "--accept", "999"])
    assert r.exit_code == 2 and "no review entry 999" in r.output
    r = runner.invoke(app, ["--config", str(cfg), "dedupe", "--object", "deal"])
    assert r.exit_code == 2 and "has no match model" in r.output
    deals = run(cfg, "dedupe", "--object", "opportunity", "--json")
    assert deals["objects"][0]["object_type"] == "opportunity" and deals["objects"][0]["records"] > 0


def test_cli_merge_policy_plan_shows_the_merge_and_undo_reports_it(make_sandbox, tmp_path, monkeypatch) -> None:
    from tests.integration.test_e2e_merge import BOB, ROB, _create_contact, _link_pairs

    sb = make_sandbox(accounts=4, seed=5)
    rob, bob = _create_contact(sb, ROB), _create_contact(sb, BOB)
    _link_pairs(monkeypatch, [(ROB["email"], BOB["email"])])
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    cfg.write_text(cfg.read_text(encoding="utf-8") + '[policies.contact]\nmerges = "merge"\n', encoding="utf-8")
    run(cfg, "db", "upgrade", "--json")
    run(cfg, "sync", "--dry-run", "--json")
    plan = run(cfg, "plan", "--system", "hubspot", "--json")
    [merge] = [op for op in plan["ops"] if op["kind"] == "merge"]
    assert {merge["remote_id"], *merge["merge_from"]} == {rob, bob} and merge["merge_ids"]
    r = runner.invoke(app, ["--config", str(cfg), "plan", "--system", "hubspot"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and f"merged into {merge['remote_id']}" in r.output
    out = run(cfg, "sync", "--json")
    assert out["status"] == "ok" and out["written"]["hubspot"] >= 1
    undo = run(cfg, "dedupe", "undo", str(merge["merge_ids"][0]), "--json")
    assert undo["policy"] == "merge" and "cannot unmerge" in undo["remote"]["hubspot"][0]
