"""Shared definitions (issue 15.1): the connectors' defaults equal the old tables; the
admin's ``[definitions]`` add, rename and retire values; mistakes are one line naming
the key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mapping import definitions
from mapping.fieldmap import read_entity
from mapping.transforms import Context, get_transform
from mapping.values import CANONICAL
from sync import config as cfg
from tests.mapping import values_before as before

OLD_TABLES = {
    "stage": before.STAGES,
    "lifecycle_stage": before.LIFECYCLE,
    "industry": before.INDUSTRIES,
    "customer_status": before.CUSTOMER_STATUS,
    "lead_source": before.LEAD_SOURCES,
    "type": before.OPPORTUNITY_TYPES,
}
SYSTEMS = ("salesforce", "hubspot", "planhat")


def _old_read(name: str, system: str, native: str) -> str | None:
    """How mapping.transforms read a native value before the move."""
    folded = native.strip().casefold()
    alias = before.READ_ALIASES.get((name, system), {}).get(folded)
    if alias:
        return alias
    for canonical, row in OLD_TABLES[name].items():
        if row.get(system, "\0").casefold() == folded:
            return canonical
    return None


def _variants(native: str) -> tuple[str, ...]:
    return native, native.upper(), native.lower(), f"  {native} "


def test_default_writes_equal_the_old_tables() -> None:
    defs = definitions.defaults()
    for name, table in OLD_TABLES.items():
        vs = defs[name]
        assert vs.values == tuple(table) == CANONICAL[name]
        for system in SYSTEMS:
            want = {c: row[system] for c, row in table.items() if system in row}
            assert dict(vs.writes.get(system, {})) == want, (name, system)


def test_default_reads_equal_the_old_reading_both_ways() -> None:
    defs = definitions.defaults()
    checked = 0
    for name, table in OLD_TABLES.items():
        for system in SYSTEMS:
            natives = {row[system] for row in table.values() if system in row}
            natives |= set(before.READ_ALIASES.get((name, system), {}))
            natives |= {"Unheard Of", "Pilot"}
            for native in natives:
                for text in _variants(native):
                    assert defs[name].to_canonical(system, text) == _old_read(name, system, text), (name, text)
                    checked += 1
            # and every read native table entry is one the old code read the same way
            for folded, canonical in defs[name].reads.get(system, {}).items():
                assert _old_read(name, system, folded) == canonical
    assert checked > 300


def test_default_lead_status_equals_the_old_table() -> None:
    vs = definitions.defaults()["lead_status"]
    for native, canonical in before.LEAD_STATUS.items():
        assert vs.to_canonical("salesforce", native) == canonical
    back = {v: k for k, v in before.LEAD_STATUS.items() if v != "sql"}
    assert dict(vs.writes["salesforce"]) == back
    assert vs.to_native("salesforce", "sql") is None  # "Closed - Converted" is set by conversion only


def test_mapping_names_no_vendor() -> None:
    root = Path(__file__).resolve().parents[2] / "mapping"
    for path in ("values.py", "definitions.py", "transforms.py"):
        text = (root / path).read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        # vendor values (a stage id, a picklist label) never appear in the mapping layer
        for native in ("Closed Won", "appointmentscheduled", "COMPUTER_SOFTWARE", "Customer - Direct", "canceled"):
            assert native not in code, (path, native)
        assert not re.search(r'"(salesforce|hubspot|planhat)"', code), path


def test_a_plugin_connector_ships_its_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors import registry

    class Plugin:  # what a plugin connector declares (the Connector contract's attributes)
        picklists = {"lifecycle_stage": {"lead": "Fresh", "customer": "Paying", "champion": "Fan"}}
        picklist_reads = {"lifecycle_stage": {"Paid": "customer"}}
        pipelines: dict[str, str] = {}

    classes = {**registry.connector_classes(), "mycrm": Plugin}
    monkeypatch.setattr(registry, "connector_classes", lambda: classes)
    vs = definitions.defaults()["lifecycle_stage"]
    assert vs.to_native("mycrm", "customer") == "Paying"
    assert vs.to_canonical("mycrm", "paid") == "customer"
    assert vs.to_canonical("mycrm", "Fan") == "champion"  # a plugin's own canonical value
    assert vs.values[-1] == "champion"
    assert vs.to_native("hubspot", "customer") == "customer"  # the others untouched


# --------------------------------------------------------------------------- the admin's definitions

ADMIN = {
    "stage": {
        "rename": {"negotiation": "negotiating"},
        "retire": ["contract"],
        "values": {"pilot": {"salesforce": ["Pilot", "Trial"], "hubspot": "pilot"}},
    },
    "industry": {"values": {"software": {"hubspot": ["INFORMATION_TECHNOLOGY_AND_SERVICES", "COMPUTER_SOFTWARE"]}}},
}


def _ctx(system: str, native_type: str, field: str) -> Context:
    return Context(system=system, native_type=native_type, field=field)


def test_admin_adds_renames_and_retires_canonical_values() -> None:
    defs = definitions.build(ADMIN, SYSTEMS)
    stage = get_transform("stage")
    with definitions.using(defs):
        # added: written one way, read from every listed native value
        assert stage.write("pilot", _ctx("salesforce", "Opportunity", "StageName")) == "Pilot"
        assert stage.write("pilot", _ctx("hubspot", "deals", "dealstage")) == "pilot"
        assert stage.read("trial", _ctx("salesforce", "Opportunity", "StageName")) == "pilot"
        # renamed: the same native values, a new canonical name
        assert stage.read("Negotiation/Review", _ctx("salesforce", "Opportunity", "StageName")) == "negotiating"
        assert stage.write("negotiating", _ctx("hubspot", "deals", "dealstage")) == "decisionmakerboughtin"
        with pytest.raises(Exception, match="renamed to 'negotiating'"):
            stage.write("negotiation", _ctx("hubspot", "deals", "dealstage"))
        # retired: its native value is unmapped (never read, never written)
        with pytest.raises(Exception, match=r"unknown stage value 'Value Proposition'.*'contract' is retired"):
            stage.read("Value Proposition", _ctx("salesforce", "Opportunity", "StageName"))
        with pytest.raises(Exception, match="retired"):
            stage.write("contract", _ctx("salesforce", "Opportunity", "StageName"))
        # a system's value changed: the new one is written, both read
        industry = get_transform("industry")
        assert industry.write("software", _ctx("hubspot", "companies", "industry")) == \
            "INFORMATION_TECHNOLOGY_AND_SERVICES"
        assert industry.read("COMPUTER_SOFTWARE", _ctx("hubspot", "companies", "industry")) == "software"
        # an unmapped value leaves the field unread, with the value and reason recorded
        result = read_entity("hubspot", "deals", {"dealname": "X", "dealstage": "contractsent"})
        assert result.entity.stage is None
        assert [(u.native, u.raw) for u in result.unreadable] == [("dealstage", "'contractsent'")]
    # outside the block the connectors' defaults are back
    assert stage.read("Value Proposition", _ctx("salesforce", "Opportunity", "StageName")) == "contract"


def test_renamed_lifecycle_stage_reaches_lead_status() -> None:
    defs = definitions.build({"lifecycle_stage": {"rename": {"mql": "marketing_qualified"}}}, SYSTEMS)
    assert defs["lead_status"].to_canonical("salesforce", "Working - Contacted") == "marketing_qualified"
    assert defs["lifecycle_stage"].to_native("hubspot", "marketing_qualified") == "marketingqualifiedlead"


BASE = """
[connections.salesforce]
kind = "salesforce"
instance_url = "https://127.0.0.1:1"
[connections.hubspot]
kind = "hubspot"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[definitions.stage.values.pilot]\nsalesforce = "Prospecting"\nhubspot = "pilot"\n',
         "definitions.stage.values.pilot.salesforce: salesforce value 'Prospecting' is already written for "
         "'prospecting'"),
        ('[definitions.stage.values.pilot]\nsalesforce = "Pilot"\n',
         "definitions.stage.values.pilot: new stage value 'pilot' has no value for hubspot"),
        ('[definitions.stage.values.pilot]\nsalesforce = "Pilot"\nhubspot = "pilot"\nplanhat = "pilot"\n',
         "definitions.stage.values.pilot.planhat: system 'planhat' is not configured (configured: hubspot, "
         "salesforce)"),
        ('[definitions.stage]\nretire = ["contract"]\n[[governance.required]]\nobject = "opportunity"\n'
         'stage = "contract"\nfields = ["amount"]\n',
         "governance.required[0].stage: stage value 'contract' is retired (definitions.stage.retire)"),
        ('[definitions.stage]\nrename = {contract = "signing"}\n[mapping."salesforce.Opportunity".values]\n'
         'StageName = {Contracting = "contract"}\n',
         "mapping.StageName: StageName: 'Contracting' → 'contract': the canonical value must be one of"),
        ('[definitions.stage]\nretire = ["closed_won"]\n',
         "definitions.stage.retire[0]: 'closed_won' cannot be retired"),
        ('[definitions.stage]\nretire = ["pilot"]\n', "definitions.stage.retire[0]: unknown stage value 'pilot'"),
        ('[definitions.stage]\nrename = {negotiation = "proposal"}\n',
         "definitions.stage.rename.negotiation: 'proposal' is already a stage value"),
        ('[definitions.stage.values.Pilot]\nsalesforce = "Pilot"\nhubspot = "pilot"\n',
         "definitions.stage.values.Pilot: 'Pilot' is not a canonical value name"),
        ('[definitions.stage.values.pilot]\nsalesforce = 3\nhubspot = "pilot"\n',
         "definitions.stage.values.pilot.salesforce: must be a native value or a non-empty list"),
        ('[definitions.stages]\n', "definitions.stages: unknown value set"),
        ('[definitions.stage]\nadd = ["pilot"]\n', "definitions.stage.add: unknown key"),
        ('[definitions.lead_status]\nretire = ["mql"]\n',
         "definitions.lead_status: lead_status uses lifecycle_stage's canonical values"),
        ('[definitions.customer_status.values.prospect]\nhubspot = "x"\n',
         "definitions.customer_status.values.prospect.hubspot: hubspot maps no customer_status field"),
        ('[definitions.industry.values.software]\nsalesforce = ["Technology", "Banking"]\n',
         "definitions.industry.values.software.salesforce: salesforce value 'Banking' is written for 'banking'"),
    ],
)
def test_bad_definitions_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "revsync.toml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path, resolve_secrets=False)
    text_out = str(err.value)
    assert "\n" not in text_out
    assert message in text_out, text_out


def test_cli_refuses_bad_definitions_with_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "revsync.toml"
    path.write_text(BASE + '[definitions.stage]\nretire = ["closed_lost"]\n', encoding="utf-8")
    out = subprocess.run([str(Path(sys.executable).with_name("revsync")), "--config", str(path), "status"],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode == 2, out.stderr
    assert "definitions.stage.retire[0]: 'closed_lost' cannot be retired" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_readme_example_loads_and_means_what_it_says(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Shared definitions", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "revsync.toml"
    path.write_text(BASE + example, encoding="utf-8")
    s = cfg.load(path, resolve_secrets=False)
    assert s.definitions is not None
    stage, industry = s.definitions["stage"], s.definitions["industry"]
    assert "contract" not in stage.values and "negotiating" in stage.values and "pilot" in stage.values
    assert stage.to_canonical("hubspot", "trial") == "pilot" and stage.to_native("hubspot", "pilot") == "pilot"
    assert stage.pipelines["hubspot"] == "default" and stage.pipeline("hubspot", "pilot") == "renewals"
    assert industry.to_native("hubspot", "software") == "INFORMATION_TECHNOLOGY_AND_SERVICES"
    assert industry.to_canonical("hubspot", "COMPUTER_SOFTWARE") == "software"


def test_the_starter_config_sets_the_handoff_csm_like_the_sandbox_settings(tmp_path: Path) -> None:
    from cli import sandbox_settings

    path = tmp_path / "revsync.toml"
    path.write_text(cfg.STARTER, encoding="utf-8")
    starter = cfg.load(path, resolve_secrets=False)
    info = {"ca_cert": "ca.pem", "salesforce": "https://127.0.0.1:1", "hubspot": "https://127.0.0.1:2",
            "planhat": "https://127.0.0.1:3",
            "credentials": {"salesforce": {"client_id": "a", "client_secret": "b", "refresh_token": "c"},
                            "hubspot": {"access_token": "d"}, "planhat": {"api_token": "e"}}}
    sandbox = sandbox_settings(info, "sqlite:///x.db")
    assert starter.governance.handoff.default_csm == sandbox.governance.handoff.default_csm == cfg.SANDBOX_CSM


def test_country_spellings_per_system_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "revsync.toml"
    # an org whose country picklist says "Turkey" and "Korea (South)"
    path.write_text(BASE + '[definitions.country.values.TR]\nsalesforce = "Turkey"\n'
                    '[definitions.country.values.KR]\nsalesforce = ["Republic of Korea", "Korea (South)"]\n'
                    '[definitions.country.values.US]\nhubspot = "USA"\n', encoding="utf-8")
    defs = cfg.load(path, resolve_secrets=False).definitions
    country = get_transform("country")
    sf, hs = _ctx("salesforce", "Account", "BillingCountry"), _ctx("hubspot", "companies", "country")
    with pytest.raises(Exception, match="as a country"):
        country.read("Korea (South)", sf)  # unknown without the definition
    with definitions.using(defs):
        assert country.write("TR", sf) == "Turkey" and country.write("KR", sf) == "Republic of Korea"
        assert country.read("Korea (South)", sf) == "KR" and country.read("republic of korea", sf) == "KR"
        assert country.write("US", hs) == "USA"
        # the other systems and codes keep the ISO English names
        assert country.write("TR", hs) == "Türkiye" and country.write("DE", sf) == "Germany"
        assert country.read("Deutschland", sf) == "DE"
    assert country.write("TR", sf) == "Türkiye"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[definitions.country.values.XK1]\nsalesforce = "Kosovo"\n',
         "definitions.country.values.XK1: 'XK1' is not an ISO 3166-1 alpha-2 country code"),
        ('[definitions.country.values.gb]\nsalesforce = "UK"\n', "definitions.country.values.gb: write the code in "
                                                                  "capitals ('GB')"),
        ('[definitions.country]\nretire = ["GB"]\n', "definitions.country.retire: country values are ISO"),
        ('[definitions.country.values.GB]\nsalesforce = "UK"\n[definitions.country.values.UA]\nsalesforce = "uk"\n',
         "definitions.country.values.UA.salesforce: salesforce value 'uk' already reads as 'GB'"),
    ],
)
def test_bad_country_definitions(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "revsync.toml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path, resolve_secrets=False)
    assert message in str(err.value), str(err.value)


def test_deal_stages_per_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "revsync.toml"
    path.write_text(BASE + '[definitions.stage.values.renewal_review]\nsalesforce = "Renewal Review"\n'
                    'hubspot = "90210417"\n[definitions.stage.pipelines.hubspot]\n'
                    'renewals = ["renewal_review", "closed_won"]\n', encoding="utf-8")
    defs = cfg.load(path, resolve_secrets=False).definitions
    pipeline, stage = get_transform("pipeline"), get_transform("stage")
    hs = _ctx("hubspot", "deals", "pipeline")
    with definitions.using(defs):
        assert pipeline.write("renewal_review", hs) == "renewals"
        assert pipeline.write("closed_won", hs) == "renewals"
        assert pipeline.write("proposal", hs) == "default"
        assert stage.read("90210417", _ctx("hubspot", "deals", "dealstage")) == "renewal_review"
        from mapping.canonical import Opportunity
        from mapping.fieldmap import from_entity

        out = from_entity("hubspot", "deals", Opportunity(id="x", name="Renewal", stage="renewal_review"))
        assert (out["dealstage"], out["pipeline"]) == ("90210417", "renewals")
    assert pipeline.write("closed_won", hs) == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[definitions.stage.pipelines.hubspot]\nrenewals = ["renewal"]\n',
         "definitions.stage.pipelines.hubspot.renewals: unknown stage value 'renewal'"),
        ('[definitions.stage.pipelines.hubspot]\nrenewals = ["proposal"]\nupsell = ["proposal"]\n',
         "definitions.stage.pipelines.hubspot.upsell: 'proposal' is already in pipeline 'renewals'"),
        ('[definitions.stage.pipelines.salesforce]\nrenewals = ["proposal"]\n',
         "definitions.stage.pipelines.salesforce: salesforce writes no pipeline with stage"),
        ('[definitions.stage]\nretire = ["contract"]\n[definitions.stage.pipelines.hubspot]\nx = ["contract"]\n',
         "definitions.stage.pipelines.hubspot.x: stage value 'contract' is retired"),
    ],
)
def test_bad_pipelines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "revsync.toml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path, resolve_secrets=False)
    assert message in str(err.value), str(err.value)


def test_the_quality_funnel_follows_the_definitions() -> None:
    from sync.quality import FUNNEL, funnel

    assert funnel() == FUNNEL
    with definitions.using(definitions.build(ADMIN, SYSTEMS)):
        assert funnel() == ("prospecting", "qualification", "proposal", "negotiating", "pilot", "closed_won")


def test_a_mapping_values_reading_may_name_an_added_value(tmp_path: Path) -> None:
    from mapping.fieldmap import build_field_maps

    path = tmp_path / "revsync.toml"
    path.write_text(BASE + '[definitions.stage.values.pilot]\nsalesforce = "Pilot"\nhubspot = "pilot"\n'
                    '[mapping."salesforce.Opportunity".values.StageName]\nDiscovery = "pilot"\n', encoding="utf-8")
    s = cfg.load(path, resolve_secrets=False)
    with definitions.using(s.definitions):
        fm = build_field_maps(s.mapping)[("salesforce", "Opportunity")]
        got = read_entity("salesforce", "Opportunity", {"Name": "X", "StageName": "Discovery"}, fieldmap=fm)
        assert got.entity.stage == "pilot" and not got.unreadable
    # without the definition, the same reading is refused naming the key
    path.write_text(BASE + '[mapping."salesforce.Opportunity".values.StageName]\nDiscovery = "pilot"\n',
                    encoding="utf-8")
    with pytest.raises(cfg.ConfigError, match="the canonical value must be one of"):
        cfg.load(path, resolve_secrets=False)
