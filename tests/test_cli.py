"""The revsync command: init, db upgrade, status (human and --json), errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from sync.migrate import head_revision

SECRET = "tok-VERY-secret-123"
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_help_lists_the_commands(workdir: Path) -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("init", "db", "status"):
        assert cmd in r.output


def test_init_upgrade_status_json(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSYNC_HUBSPOT_TOKEN", SECRET)
    r = runner.invoke(app, ["init"])
    assert r.exit_code == 0, r.output
    assert (workdir / "revsync.toml").exists()
    r = runner.invoke(app, ["init"])
    assert r.exit_code == 2 and "already exists" in r.output

    r = runner.invoke(app, ["status", "--json"])
    data = json.loads(r.stdout)
    assert data["schema_revision"] is None

    r = runner.invoke(app, ["db", "upgrade", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["revision"] == head_revision()
    assert (workdir / "revsync.db").exists()

    r = runner.invoke(app, ["status", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema_revision"] == data["schema_head"] == head_revision()
    assert data["entities"] == {"account": 0, "contact": 0, "opportunity": 0}
    hubspot = next(c for c in data["connections"] if c["name"] == "hubspot")
    assert hubspot["secrets_set"] == ["access_token"]
    assert SECRET not in r.stdout

    r = runner.invoke(app, ["status"])
    assert r.exit_code == 0
    assert head_revision() in r.output and SECRET not in r.output


def test_broken_config_is_one_readable_error_not_a_traceback(workdir: Path) -> None:
    (workdir / "revsync.toml").write_text("[connections.crm]\nkind = 'nope'\n")
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 2
    assert "connections.crm.kind: unknown connector 'nope'" in r.output
    assert "Traceback" not in r.output


def test_explicit_missing_config_path(workdir: Path) -> None:
    r = runner.invoke(app, ["--config", "nowhere.toml", "status"])
    assert r.exit_code == 2 and "no such config file" in r.output


def test_errors_rejects_an_unknown_category_and_accepts_every_ledger_category(workdir: Path) -> None:
    from connectors.base import ErrorCategory

    (workdir / "revsync.toml").write_text(f"[database]\nurl = 'sqlite:///{workdir / 'x.db'}'\n")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    r = runner.invoke(app, ["errors", "--category", "validaton"])
    assert r.exit_code == 2
    assert "--category: unknown category 'validaton'" in r.output and "bad_value" in r.output
    assert "Traceback" not in r.output
    for cat in ErrorCategory:
        r = runner.invoke(app, ["errors", "--category", cat.value, "--json"])
        assert r.exit_code == 0, (cat, r.output)
        assert json.loads(r.stdout) == {"errors": []}


def test_unknown_connection_key_and_unknown_policy_system_are_one_line_exit_2(workdir: Path) -> None:
    (workdir / "revsync.toml").write_text(
        "[connections.hubspot]\nkind = 'hubspot'\nhost = 'https://127.0.0.1:1'\ntimout = 5\n")
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "connections.hubspot.timout: unknown key" in r.output
    assert len([x for x in r.stderr.splitlines() if x.strip()]) == 1
    (workdir / "revsync.toml").write_text("[policies.account.fields]\nhealth = 'prefer:plnhat'\n")
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 2 and "policies.account.fields.health: unknown system 'plnhat'" in r.output
