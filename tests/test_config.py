"""revsync.toml: validation messages name the key; secrets never leak."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sync import config as cfg

SECRET = "s3cr3t-VALUE-do-not-print"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "revsync.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_starter_file_parses_and_points_at_the_sandbox(tmp_path: Path) -> None:
    s = cfg.load(write(tmp_path, cfg.STARTER))
    assert set(s.connections) == {"salesforce", "hubspot", "planhat"}
    assert s.connections["hubspot"].options["host"].startswith("https://127.0.0.1:")
    assert s.database_url == "sqlite:///revsync.db"
    assert s.policies["account"]["fields"]["health"] == "prefer:planhat"


def test_missing_default_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = cfg.load()
    assert s.database_url == cfg.DEFAULT_DATABASE_URL and s.connections == {}


def test_environment_overrides_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSYNC_DATABASE_URL", "sqlite:///other.db")
    assert cfg.load(write(tmp_path, cfg.STARTER)).database_url == "sqlite:///other.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[database]\nurl = 42\n", "database.url: must be a database URL (got a number)"),
        ("[database]\nurl = 'revsync.db'\n", "database.url: 'revsync.db' is not a database URL"),
        ("[connections.crm]\ninstance_url = 'x'\n", "connections.crm.kind: missing"),
        ("[connections.crm]\nkind = 'salesfroce'\n", "connections.crm.kind: unknown connector 'salesfroce'"),
        ("[connections.crm]\nkind = 'salesforce'\nsecrets = 'x'\n", "connections.crm.secrets: must be a table"),
        ("[policies.account.fields]\nname = 'newest'\n", "policies.account.fields.name: unknown rule 'newest'"),
        ("[policies.lead]\ndefault = 'latest'\n", "policies.lead: unknown object"),
        ("[policies.contact]\ndeletes = 'destroy'\n", "policies.contact.deletes: must be 'flag' or 'propagate'"),
        ("[limits]\nmax_deletes = -1\n", "limits.max_deletes: must not be negative"),
        ("[limits]\nmax_delete = 5\n", "limits.max_delete: unknown key"),
        ("[schedule]\nsweep_cron = 'nightly'\n", "schedule.sweep_cron: 'nightly' is not a 5-field crontab"),
        ("[databse]\nurl = 'sqlite://'\n", "databse: unknown key"),
        ("[database\nurl = 'x'\n", "not valid TOML"),
        # an unknown key inside a connection names the key and what it may be
        ("[connections.hubspot]\nkind = 'hubspot'\nhots = 'https://x'\n", "connections.hubspot.hots: unknown key"),
        ("[connections.cs]\nkind = 'planhat'\nbase_ulr = 'https://x'\n", "connections.cs.base_ulr: unknown key"),
        ("[connections.crm]\nkind = 'salesforce'\ninstance_uri = 'https://x'\n",
         "connections.crm.instance_uri: unknown key"),
        ("[connections.crm]\nkind = 'salesforce'\nca_bundle = 3\n", "connections.crm.ca_bundle: must be a path"),
        # a rule or list naming a system that does not exist
        ("[policies.account.fields]\nhealth = 'prefer:plnhat'\n",
         "policies.account.fields.health: unknown system 'plnhat'"),
        ("[policies.account]\ndefault = 'always:hubspt'\n", "policies.account.default: unknown system 'hubspt'"),
        ("[policies.contact]\nsource_priority = ['salesforce', 'hubsopt']\n",
         "policies.contact.source_priority[1]: unknown system 'hubsopt'"),
        ("[policies.contact.direction.plnhat]\nemail = 'read'\n", "policies.contact.direction.plnhat: unknown system"),
        ("[policies.account]\ncreate_in = ['crm']\n", "policies.account.create_in[0]: unknown system 'crm'"),
    ],
)
def test_bad_config_gives_one_clear_message_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.load(p)
    assert message in str(exc.value)
    assert str(p) in str(exc.value)
    assert "Traceback" not in str(exc.value)


def _secret_config(tmp_path: Path) -> Path:
    return write(tmp_path, """
[database]
url = "postgresql+psycopg://revsync:dbpass-hidden@127.0.0.1:5432/revsync"
[connections.hubspot]
kind = "hubspot"
host = "https://127.0.0.1:1"
[connections.hubspot.secrets]
access_token = "REVSYNC_TEST_HS_TOKEN"
""")


def test_secrets_come_from_env_and_never_appear_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSYNC_TEST_HS_TOKEN", SECRET)
    s = cfg.load(_secret_config(tmp_path))
    assert s.connections["hubspot"].secret("access_token") == SECRET
    for text in (repr(s), repr(s.connections["hubspot"]), str(s.connections["hubspot"])):
        assert SECRET not in text
        assert "dbpass-hidden" not in text
    assert "access_token" in repr(s.connections["hubspot"])


def test_secrets_file_is_used_when_env_is_unset(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text(f'REVSYNC_TEST_HS_TOKEN = "{SECRET}"\n', encoding="utf-8")
    p = write(tmp_path, _secret_config(tmp_path).read_text() + '\n[secrets]\nfile = "secrets.toml"\n')
    s = cfg.load(p)
    assert s.connections["hubspot"].secrets["access_token"] == SECRET


def test_a_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    from connectors.base import FatalError

    s = cfg.load(_secret_config(tmp_path))
    with pytest.raises(FatalError, match="secret 'access_token' is not set"):
        s.connections["hubspot"].secret("access_token")


def test_secrets_are_redacted_from_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("REVSYNC_TEST_HS_TOKEN", SECRET)
    s = cfg.load(_secret_config(tmp_path))
    logger = logging.getLogger("revsync.test")
    redactor = cfg.SecretRedactor(s.secret_values())
    caplog.handler.addFilter(redactor)
    with caplog.at_level(logging.INFO):
        logger.info("calling with token %s", SECRET)
        logger.info(f"Authorization: Bearer {SECRET}")
    assert caplog.records, "nothing was logged"
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert all("***" in r.getMessage() for r in caplog.records)


def test_sandbox_secrets_file_feeds_the_starter_config(tmp_path: Path) -> None:
    from sandbox.cli import write_secrets_file
    from sandbox.server import make_credentials

    creds = make_credentials(5)
    write_secrets_file(tmp_path / ".revsync" / "sandbox" / "secrets.toml", creds)
    s = cfg.load(write(tmp_path, cfg.STARTER))
    assert s.connections["hubspot"].secrets["access_token"] == creds["hubspot"]["access_token"]
    assert s.connections["salesforce"].secrets["refresh_token"] == creds["salesforce"]["refresh_token"]
    assert s.connections["planhat"].options["ca_bundle"] == str(tmp_path / ".revsync/sandbox/sandbox-ca.pem")


def test_a_missing_secrets_file_is_not_fatal(tmp_path: Path) -> None:
    s = cfg.load(write(tmp_path, cfg.STARTER))
    assert s.connections["hubspot"].secrets == {}


def test_merge_policy_is_validated_and_create_in_is_validated(tmp_path: Path) -> None:
    s = cfg.load(write(tmp_path, "[policies.contact]\nmerges = 'merge'\n"))
    assert s.policies["contact"]["merges"] == "merge"
    assert s.policies["account"].get("merges", "link") == "link"
    with pytest.raises(cfg.ConfigError, match=r"policies\.opportunity\.merges: 'merge' is available for account and contact only"):
        cfg.load(write(tmp_path, "[policies.opportunity]\nmerges = 'merge'\n"))
    with pytest.raises(cfg.ConfigError, match=r"policies\.account\.merges: must be 'link' or 'merge' \(got 'fuse'\)"):
        cfg.load(write(tmp_path, "[policies.account]\nmerges = 'fuse'\n"))
    with pytest.raises(cfg.ConfigError, match=r"policies\.account\.merge_in: must be a list of connection names"):
        cfg.load(write(tmp_path, "[policies.account]\nmerge_in = 'salesforce'\n"))
    s = cfg.load(write(tmp_path, "[policies.account]\nmerges = 'merge'\nmerge_in = ['salesforce', 'hubspot']\n"))
    assert s.policies["account"]["merge_in"] == ["salesforce", "hubspot"]
    with pytest.raises(cfg.ConfigError, match=r"policies\.account\.create_in: must be a list"):
        cfg.load(write(tmp_path, "[policies.account]\ncreate_in = 'hubspot'\n"))
    s = cfg.load(write(tmp_path, "[policies.account]\ncreate_in = ['hubspot']\n"))
    assert s.policies["account"]["create_in"] == ["hubspot"]


def test_rules_may_name_a_connection_by_its_own_name(tmp_path: Path) -> None:
    p = write(tmp_path, """
[connections.crm]
kind = "salesforce"
[connections.marketing]
kind = "hubspot"
host = "https://127.0.0.1:1"
[policies.account]
source_priority = ["crm", "marketing"]
create_in = ["crm"]
[policies.account.fields]
name = "prefer:marketing"
phone = "always:crm"
""")
    settings = cfg.load(p, resolve_secrets=False)
    assert settings.policies["account"]["fields"]["name"] == "prefer:marketing"
    assert settings.policies["account"]["source_priority"] == ["crm", "marketing"]


def test_relative_ca_bundle_resolves_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    p = write(conf, """
[connections.hubspot]
kind = "hubspot"
ca_bundle = "certs/ca.pem"
""")
    monkeypatch.chdir(tmp_path)
    settings = cfg.load(Path("conf") / p.name, resolve_secrets=False)
    assert settings.connections["hubspot"].options["ca_bundle"] == str(conf / "certs" / "ca.pem")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unknown keys are rejected in every table, inside connection options too
        ("[connections.crm]\nkind = 'salesforce'\n[connections.crm.budget]\ncalls_per_dya = 5\n",
         "connections.crm.budget.calls_per_dya: unknown key (expected one of: calls_per_day, calls_per_second)"),
        ("[secrets]\nfiel = 'x.toml'\n", "secrets.fiel: unknown key (expected one of: file)"),
        ("[dedupe.contact]\nauto_lnk = 0.9\n", "dedupe.contact.auto_lnk: unknown key"),
        ("[quality.required]\nlead = ['x']\n", "quality.required.lead: unknown key"),
        # option values are typed, with the key path
        ("[connections.cs]\nkind = 'planhat'\ntimeout = 'fast'\n",
         "connections.cs.timeout: must be a number of seconds (got a string)"),
        ("[connections.cs]\nkind = 'planhat'\npage_size = 2.5\n",
         "connections.cs.page_size: must be a whole number (got a number)"),
        ("[connections.hs]\nkind = 'hubspot'\nhost = 8442\n", "connections.hs.host: must be a URL (got a number)"),
        ("[connections.crm]\nkind = 'salesforce'\nopportunity_contacts = 'no'\n",
         "connections.crm.opportunity_contacts: must be true or false (got a string)"),
        ("[connections.crm]\nkind = 'salesforce'\n[connections.crm.budget]\ncalls_per_day = '5k'\n",
         "connections.crm.budget.calls_per_day: must be a whole number (got a string)"),
        ("[connections.crm]\nkind = 'salesforce'\n[connections.crm.secrets]\nclient_id = 5\n",
         "connections.crm.secrets.client_id: must be the name of an environment variable (got a number)"),
        ("[limits]\nmax_creates = true\n", "limits.max_creates: must be a whole number (got true/false)"),
        ("[schedule]\ncycle_minutes = 0\n", "schedule.cycle_minutes: must be greater than 0 (got 0)"),
        ("[policies.contact.direction.hubspot]\nemail = 'sideways'\n",
         "policies.contact.direction.hubspot.email: must be one of read, write, both, none (got 'sideways')"),
        ("[dedupe]\nauto_link = 1.5\n", "dedupe.auto_link: must be in (0, 1] (got 1.5)"),
        ("[dedupe]\nauto_link = 0.5\n", "dedupe.review_from: must not be above dedupe.auto_link"),
        ("[dedupe]\nmax_cluster_size = 1\n", "dedupe.max_cluster_size: must be at least 2 (got 1)"),
        ("[quality]\nrenewal_days = 0\n", "quality.renewal_days: must be at least 1 (got 0)"),
        ("[connections.crm]\nkind = 3\n", "connections.crm.kind: must be a connector name (got a number)"),
        ("connections = 3\n", "connections: must be a table (got a number)"),
        ("[mapping.'salesforce.Nope']\nfields = {}\n", "mapping.salesforce.Nope: unknown mapping"),
    ],
)
def test_typed_models_reject_bad_values_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.load(p)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)  # one line, no pydantic dump
    assert "pydantic" not in str(exc.value)


def test_every_problem_of_a_file_is_named_on_one_line(tmp_path: Path) -> None:
    p = write(tmp_path, """
[limits]
max_deletes = -1
[schedule]
sweep_cron = "nightly"
[connections.crm]
kind = "salesforce"
instance_uri = "https://x"
""")
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.load(p)
    text = str(exc.value)
    assert "limits.max_deletes: must not be negative" in text
    assert "schedule.sweep_cron: 'nightly' is not a 5-field crontab" in text
    assert "connections.crm.instance_uri: unknown key" in text
    assert "\n" not in text


def test_documented_salesforce_options_are_accepted(tmp_path: Path) -> None:
    """README documents jwt_audience (JWT bearer) and permission_set (setup --apply)."""
    s = cfg.load(write(tmp_path, """
[connections.crm]
kind = "salesforce"
jwt_audience = "https://test.salesforce.com"
permission_set = "Revsync_Integration"
timeout = 30
[connections.crm.budget]
calls_per_day = 1000
"""), resolve_secrets=False)
    opts = s.connections["crm"].options
    assert opts["jwt_audience"] == "https://test.salesforce.com"
    assert opts["permission_set"] == "Revsync_Integration"
    assert opts["timeout"] == 30 and opts["budget"] == {"calls_per_day": 1000}
    # only the keys written are options (the connectors apply their own defaults)
    assert set(opts) == {"jwt_audience", "permission_set", "timeout", "budget"}


def test_a_connector_that_declares_no_options_accepts_any(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors import base

    class Open(base.Connector):
        name = "opencrm"
        objects = {}  # type: ignore[assignment]

    monkeypatch.setattr(base, "known_connectors", lambda: ["opencrm", *cfg.KNOWN_KINDS])
    monkeypatch.setattr(base, "load_connector_class",
                        lambda kind: Open if kind == "opencrm" else pytest.fail(kind))
    cfg.connection_model.cache_clear()
    try:
        s = cfg.parse({"connections": {"o": {"kind": "opencrm", "region": "eu", "budget": {"calls_per_day": 5}}}},
                      resolve_secrets=False)
        assert s.connections["o"].options == {"region": "eu", "budget": {"calls_per_day": 5}}
        with pytest.raises(cfg.ConfigError, match=r"connections\.o\.budget\.calls: unknown key"):
            cfg.parse({"connections": {"o": {"kind": "opencrm", "budget": {"calls": 5}}}}, resolve_secrets=False)
    finally:
        cfg.connection_model.cache_clear()


def test_secrets_file_problems_never_echo_its_values(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text(f'A = "{SECRET}"\nB = 5\n', encoding="utf-8")
    p = write(tmp_path, _secret_config(tmp_path).read_text() + '\n[secrets]\nfile = "secrets.toml"\n')
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.load(p)
    assert "B must be a string" in str(exc.value) and SECRET not in str(exc.value)


def test_parse_returns_the_tables_as_written() -> None:
    s = cfg.parse({"dedupe": {"auto_link": 0.995, "contact": {"review_from": 0.7}},
                   "quality": {"stale_days": 30, "required": {"account": ["name"]}},
                   "policies": {"contact": {"direction": {"hubspot": {"email": "read"}}, "fields": {"title": "latest"}}}})
    assert s.dedupe == {"auto_link": 0.995, "contact": {"review_from": 0.7}}
    assert s.quality == {"stale_days": 30, "required": {"account": ["name"]}}
    assert s.policies["contact"]["direction"] == {"hubspot": {"email": "read"}}
    # a field rule is laid over the defaults, not instead of them
    assert s.policies["contact"]["fields"]["lifecycle_stage"] == "latest"
    assert "direction" not in s.policies["account"]
