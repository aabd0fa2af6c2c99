"""Going live (#18): `revsync check` / `revsync setup` against the sandbox's fresh-org
mode with the real clients, the refused first sync, and the Salesforce JWT bearer flow."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from cli import app, sandbox_settings
from connectors.base import ApiBudget, AuthError, ConnectionSettings
from connectors.readiness import FAIL, OK, Finding
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_setup import SalesforceReadiness
from sandbox import hubspot_setup as hs_sandbox
from sandbox.salesforce_jwt import register
from sync import golive
from sync.config import STARTER, Settings
from tests.integration import e2e_support as E

runner = CliRunner()
SF, HS = ("salesforce",), ("hubspot",)


def cli(cfg: Path, *args: str) -> Any:
    return runner.invoke(app, ["--config", str(cfg), *args])


def starter_config(tmp: Path, sb: Any) -> Path:
    """`revsync init`'s starter file pointed at this sandbox's ports, with the secrets
    file `revsync sandbox serve --secrets-file` writes (the README's path)."""
    cfg = tmp / "revsync.toml"
    r = runner.invoke(app, ["init", "--path", str(cfg)])
    assert r.exit_code == 0, r.output
    assert cfg.read_text() == STARTER
    return E.write_config(sb.info, tmp, database_url=f"sqlite:///{tmp / 'golive.db'}")


def fails(findings: list[Finding]) -> list[str]:
    return [f.line() for f in findings if f.level == FAIL]


@pytest.mark.slow
def test_connect_your_org_path_through_a_fresh_org(make_sandbox, tmp_path, monkeypatch) -> None:
    """README "Connect your org": init → secrets → check → setup --apply → sync --dry-run →
    plan → sync, against a sandbox whose external-id fields do not exist yet."""
    for var in ("REVSYNC_DATABASE_URL", "REVSYNC_SECRETS_FILE", "REVSYNC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    sb = make_sandbox(accounts=8, seed=3, fresh_org=True)
    cfg = starter_config(tmp_path, sb)
    assert cli(cfg, "db", "upgrade").exit_code == 0

    # check: every missing piece is one line, fixable by setup; exit 2
    r = cli(cfg, "check", "--json")
    assert r.exit_code == 2, r.output
    report = json.loads(r.stdout)
    missing = [f for f in report["findings"] if f["level"] == "fail"]
    assert {f["message"].split(" ")[0] for f in missing} == {
        "Account.Revsync_Id__c", "Contact.Revsync_Id__c", "Lead.Revsync_Id__c", "Opportunity.Revsync_Id__c",
        "companies.revsync_id", "contacts.revsync_id", "deals.revsync_id"}
    assert all(f["fixable"] and f["check"] == "external_id" and "revsync setup --apply" in f["message"]
               for f in missing)
    assert not report["ok"]

    # the first sync refuses to write: one line pointing to setup, nothing written anywhere
    before = E.records_written(E.fetch_stats(sb))
    r = cli(cfg, "sync")
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "revsync setup" in lines[0] and "Traceback" not in r.output
    assert E.records_written(E.fetch_stats(sb)) == before
    r = cli(cfg, "serve")  # the scheduler would write too: it does not start
    assert r.exit_code == 2 and "revsync setup --apply" in r.output

    # setup shows what is missing, --apply creates it, a second --apply changes nothing
    shown = json.loads(cli(cfg, "setup", "--json").stdout)
    assert sorted(c["state"] for c in shown["changes"]) == ["exists"] + ["missing"] * 8
    applied = cli(cfg, "setup", "--apply", "--json")
    assert applied.exit_code == 0, applied.output
    assert [c["what"] for c in json.loads(applied.stdout)["changes"] if c["state"] == "created"] == [
        "field Account.Revsync_Id__c", "field Contact.Revsync_Id__c", "field Lead.Revsync_Id__c",
        "field Opportunity.Revsync_Id__c", "field access in permission set Revsync_Integration",
        "property companies.revsync_id", "property contacts.revsync_id", "property deals.revsync_id"]
    stats = E.fetch_stats(sb)
    again = cli(cfg, "setup", "--apply")
    assert again.exit_code == 0 and "nothing to do" in again.output
    after = E.fetch_stats(sb)
    for system, endpoint in (("salesforce", "soap.metadata"), ("hubspot", "properties.create")):
        # the second run only read (readMetadata is never needed: describe shows the fields)
        assert after[system]["by_endpoint"].get(endpoint, 0) == stats[system]["by_endpoint"].get(endpoint, 0)

    r = cli(cfg, "check")
    assert r.exit_code == 0, r.output
    assert "ready: a sync can run" in r.output

    # dry run, plan (caps on: the starter's [limits]), then the real sync
    dry = json.loads(cli(cfg, "sync", "--dry-run", "--json").stdout)
    assert dry["status"] == "ok" and dry["written"] == {}
    plan = cli(cfg, "plan", "--json")
    assert plan.exit_code == 0 and json.loads(plan.stdout)["pending"] > 0
    first = cli(cfg, "sync", "--json")
    assert first.exit_code == 0, first.output
    done = json.loads(first.stdout)
    assert done["status"] == "ok" and sum(done["written"].values()) > 0 and done["errors"] == 0
    # every record revsync created was upserted on the new field, and the records it
    # linked were stamped with their entity's id (identity lives in the systems): each
    # id once per object, and at least as many as the creates
    org = sb.emulators["salesforce"].org
    stamped = {obj: [r["Revsync_Id__c"] for r in org.records[obj].values() if r.get("Revsync_Id__c")]
               for obj in ("Account", "Contact", "Lead", "Opportunity")}
    assert sum(map(len, stamped.values())) >= dry["planned"]["salesforce"]["create"] > 0
    assert all(len(ids) == len(set(ids)) for ids in stamped.values())
    assert all(len(v) == 36 for ids in stamped.values() for v in ids)


def _check(sb: Any, tmp: Path, only: tuple[str, ...] | None = None,
           **secrets: dict[str, str | None]) -> list[Finding]:
    """``golive.check`` on the sandbox's settings, some secrets replaced (None: removed)."""
    settings: Settings = sandbox_settings(sb.info, f"sqlite:///{tmp / 'x.db'}")
    for name, values in secrets.items():
        cs = settings.connections[name]
        merged = {k: v for k, v in {**cs.secrets, **values}.items() if v is not None}
        settings.connections[name] = ConnectionSettings(cs.name, cs.kind, cs.options, merged)
    return golive.check(settings, systems=only)


def test_check_names_a_missing_field_and_missing_field_access(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(accounts=3, seed=5, fresh_org=True)
    assert [ln for ln in fails(_check(sb, tmp_path, SF)) if "Account." in ln] == [
        "salesforce: external_id: Account.Revsync_Id__c does not exist: run `revsync setup --apply` "
        "(Text 36, External ID, Unique, case-sensitive)"]
    # an admin created the fields but granted no field-level security: describe hides them
    settings = sandbox_settings(sb.info, "sqlite://")
    ready = SalesforceReadiness(SalesforceConnector.from_settings(settings.connections["salesforce"],
                                                                  budget=ApiBudget()))
    assert ready._create_fields(["Account", "Contact", "Lead", "Opportunity"]) == {}
    assert ready.external_id_state() == dict.fromkeys(("Account", "Contact", "Lead", "Opportunity"), "hidden")
    lines = fails(_check(sb, tmp_path, SF))
    assert len(lines) == 4 and all("exists but the integration user cannot see it" in ln for ln in lines)
    # field access granted, but read-only: still not writable
    from sandbox.salesforce_metadata import INTEGRATION_PERMISSION_SET, refresh_visibility, state

    st = state(sb.emulators["salesforce"])
    st.permission_sets[INTEGRATION_PERMISSION_SET]["fields"]["Account.Revsync_Id__c"] = (True, False)
    refresh_visibility(sb.emulators["salesforce"])
    assert [ln for ln in fails(_check(sb, tmp_path, SF)) if "Account." in ln] == [
        "salesforce: external_id: Account.Revsync_Id__c is read-only for the integration user: run "
        "`revsync setup --apply` (grants Edit in Revsync_Integration)"]


def test_check_names_a_mapped_field_the_user_cannot_see(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(accounts=3, seed=5)
    assert fails(_check(sb, tmp_path)) == []  # the normal sandbox is ready
    sb.emulators["salesforce"].drop_field("Account", "Industry")  # no field-level access
    assert fails(_check(sb, tmp_path, SF)) == [
        "salesforce: access: Account: mapped field(s) not visible to the integration user: Industry; grant Read "
        "(and Edit) field access in its permission set, or unmap them under [mapping]"]


def test_check_names_missing_hubspot_scopes(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(accounts=3, seed=5)
    emu = sb.emulators["hubspot"]
    hs_sandbox.set_scopes(emu, set(hs_sandbox.ALL_SCOPES) - {"crm.objects.deals.read"})
    # private app: found by reading each object
    assert fails(_check(sb, tmp_path, HS)) == [
        "hubspot: scopes: private app lacks scope(s) crm.objects.deals.read: add them in the app's settings "
        "(Auth > Scopes)"]
    # OAuth app: the token's scopes, from the access-token info endpoint
    hs_sandbox.set_scopes(emu, set(hs_sandbox.ALL_SCOPES) - {"crm.objects.deals.write"})
    creds = sb.info["credentials"]["hubspot"]
    oauth: dict[str, str | None] = {k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}
    oauth["access_token"] = None
    found = _check(sb, tmp_path, HS, hubspot=oauth)
    assert fails(found) == ["hubspot: scopes: OAuth token lacks scope(s) crm.objects.deals.write: add them to "
                            "the app's scopes and re-authorize it"]
    assert any(f.check == "headroom" and f.level == OK and "no daily API cap" in f.message for f in found)


def test_check_names_bad_credentials_in_one_line(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=2, seed=5)
    found = _check(sb, tmp_path, salesforce={"refresh_token": "5Aep-revoked"}, hubspot={"access_token": "pat-wrong"},
                   planhat={"api_token": "ph-wrong"})
    lines = fails(found)
    assert len(lines) == 3 and all(": credentials: " in ln for ln in lines), lines
    assert "refused the refresh_token grant (invalid_grant" in lines[0]
    assert lines[1].startswith("hubspot: credentials: HubSpot rejected the token")
    assert lines[2].startswith("planhat: credentials: Planhat rejected the API token")
    for secret in ("5Aep-revoked", "pat-wrong", "ph-wrong"):
        assert secret not in "\n".join(lines)
    # the CLI: exit 2, no traceback, one line per finding
    cfg = tmp_path / "revsync.toml"
    cfg.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'c.db'}"
[connections.salesforce]
kind = "salesforce"
instance_url = "{sb.info['salesforce']}"
token_url = "{sb.info['salesforce']}/services/oauth2/token"
ca_bundle = "{sb.info['ca_cert']}"
[connections.salesforce.secrets]
client_id = "T_ID"
client_secret = "T_SECRET"
refresh_token = "T_REFRESH"
""")
    monkeypatch.setenv("T_ID", sb.info["credentials"]["salesforce"]["client_id"])
    monkeypatch.setenv("T_SECRET", sb.info["credentials"]["salesforce"]["client_secret"])
    monkeypatch.setenv("T_REFRESH", "5Aep-revoked")
    r = cli(cfg, "check")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert re.search(r"FAIL salesforce: credentials: .*invalid_grant", r.output)


def _rsa_pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_salesforce_jwt_bearer_flow(make_sandbox, caplog) -> None:
    sb = make_sandbox(accounts=2, seed=5)
    creds = sb.info["credentials"]["salesforce"]
    private, public = _rsa_pem()
    register(sb.emulators["salesforce"], creds["client_id"], public)
    base = sandbox_settings(sb.info, "sqlite://").connections["salesforce"]
    jwt_secrets = {"client_id": creds["client_id"], "username": creds["username"], "private_key": private}
    cs = ConnectionSettings("salesforce", "salesforce", base.options, jwt_secrets)
    conn = SalesforceConnector.from_settings(cs, budget=ApiBudget())
    assert conn.auth is not None and conn.auth.grant_type == "jwt-bearer"
    assert "PRIVATE KEY" not in repr(conn.auth) and "PRIVATE KEY" not in repr(cs)
    assert conn.check()["daily_api_max"]  # the token works for data calls
    # a new token after the session expires: a fresh assertion is signed
    conn._refresh()
    assert sb.emulators["salesforce"].tokens and conn.describe("Account")

    # a key the connected app does not know: refused, and the key never shows
    other, _ = _rsa_pem()
    bad = ConnectionSettings("salesforce", "salesforce", base.options, {**jwt_secrets, "private_key": other})
    with pytest.raises(AuthError) as exc:
        SalesforceConnector.from_settings(bad, budget=ApiBudget())
    assert "invalid_grant" in str(exc.value) and "PRIVATE KEY" not in str(exc.value)
    # a user who is not the connected app's: refused
    stranger = ConnectionSettings("salesforce", "salesforce", base.options, {**jwt_secrets, "username": "x@y.z"})
    with pytest.raises(AuthError):
        SalesforceConnector.from_settings(stranger, budget=ApiBudget())
    assert "PRIVATE KEY" not in caplog.text


@pytest.mark.parametrize("source", ["secrets_file", "env"])
def test_jwt_key_from_the_secrets_file_or_env_through_check(make_sandbox, tmp_path, monkeypatch, source) -> None:
    sb = make_sandbox(accounts=2, seed=5)
    creds = sb.info["credentials"]["salesforce"]
    private, public = _rsa_pem()
    register(sb.emulators["salesforce"], creds["client_id"], public)
    values = {"T_JWT_ID": creds["client_id"], "T_JWT_USER": creds["username"], "T_JWT_KEY": private}
    secrets = tmp_path / "secrets.toml"
    if source == "env":
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        secrets.write_text("")
    else:
        secrets.write_text("".join(f'{k} = """{v}"""\n' for k, v in values.items()))
    cfg = tmp_path / "revsync.toml"
    cfg.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'j.db'}"
[secrets]
file = "{secrets}"
[connections.salesforce]
kind = "salesforce"
instance_url = "{sb.info['salesforce']}"
token_url = "{sb.info['salesforce']}/services/oauth2/token"
ca_bundle = "{sb.info['ca_cert']}"
[connections.salesforce.secrets]
client_id = "T_JWT_ID"
username = "T_JWT_USER"
private_key = "T_JWT_KEY"
""")
    r = cli(cfg, "--verbose", "check", "--json")
    assert r.exit_code == 0, r.output
    found = json.loads(r.stdout)["findings"]
    assert found[0]["check"] == "credentials" and found[0]["level"] == "ok"
    assert "PRIVATE KEY" not in r.output
