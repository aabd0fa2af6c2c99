"""revsync quality: the figures computed from a hand-made store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sync.quality import quality_report
from tests.sync.quality_seed import NOW, seed


def test_quality_report_counts_completeness_conflicts_and_stale(tmp_path):
    store = seed(f"sqlite:///{tmp_path / 'q.db'}")
    with store.session() as s:
        r = quality_report(s, now=NOW)
    acc = r["objects"]["account"]
    assert acc["canonical"]["records"] == 2
    assert acc["canonical"]["completeness"]["industry"] == {"filled": 1, "rate": 0.5}
    assert acc["canonical"]["stale"] == 1
    sf = acc["systems"]["salesforce"]
    assert sf["records"] == 2 and sf["stale"] == 1
    assert sf["completeness"]["owner_email"]["filled"] == 1
    # Planhat's record does not carry industry at all: "not mapped", not 0 %
    assert acc["systems"]["planhat"]["completeness"]["industry"]["note"] == "not mapped"
    assert acc["systems"]["planhat"]["completeness"]["owner_email"]["filled"] == 0
    # names differ between Salesforce and Planhat; the domain agrees
    assert set(acc["conflicts"]["by_field"]) == {"name"}
    assert acc["duplicates"]["review_open"] == 1
    opp = r["objects"]["opportunity"]["conflicts"]
    assert set(opp["by_field"]) == {"amount", "stage", "close_date"}
    assert opp["by_field"]["stage"]["decided_by"] == {"source_priority": 1}
    assert opp["by_field"]["amount"]["decided_by"] == {"latest": 1}
    assert r["unreadable_values"]["by_field"] == {"hubspot/contact.phone": 1}
    assert r["unmapped_picklist_values"]["by_field"] == {"salesforce/opportunity.StageName": 1}
    assert r["unmapped_picklist_values"]["open"] == 1
    assert r["errors"]["open_by_category"] == {"bad_value": 2, "validation": 1}
    # no cycle ran here, so no handoff is recorded; the default required-field rules are listed
    assert r["handoff_completeness"]["handoffs"] == 0
    assert [(x["object"], x["stage"]) for x in r["required_rules"]] == [("account", None),
                                                                     ("opportunity", "closed_won")]


def test_revenue_view_shows_each_system_beside_the_canonical(tmp_path):
    store = seed(f"sqlite:///{tmp_path / 'q.db'}")
    with store.session() as s:
        r = quality_report(s, now=NOW, renewal_days=30)["revenue"]
    can, sf, hs = r["canonical"], r["systems"]["salesforce"], r["systems"]["hubspot"]
    assert can["open_pipeline"]["by_stage"] == {"negotiation": {"count": 1, "amount": 50000.0}}
    assert can["closed_won"] == {"2026-Q1": {"count": 1, "amount": 8000.0}}
    assert sf["open_pipeline"]["amount"] == 50000.0
    # HubSpot says the Zephyr deal was won in Q2 for 45k: its own report disagrees
    assert hs["open_pipeline"]["count"] == 0
    assert hs["closed_won"] == {"2026-Q2": {"count": 1, "amount": 45000.0}}
    assert can["arr"] == 150000.0 and r["systems"]["planhat"]["arr"] == 150000.0
    assert can["renewals_due"] == {"days": 30, "count": 1, "arr": 120000.0}
    conv = {c["from"]: c for c in can["stage_conversion"]}
    assert conv["prospecting"]["reached_from"] == 2 and conv["contract"]["reached_to"] == 1


def test_quality_cli_json_and_stale_days_option(tmp_path, monkeypatch):
    import cli

    url = f"sqlite:///{tmp_path / 'q.db'}"
    seed(url)
    monkeypatch.setenv("REVSYNC_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli.app, ["quality", "--json", "--stale-days", "10000"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["stale_days"] == 10000 and data["objects"]["account"]["canonical"]["stale"] == 0
    bad = CliRunner().invoke(cli.app, ["quality", "--stale-days", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_quality_config_keys_are_validated():
    import pytest

    from sync.config import ConfigError, parse

    s = parse({"quality": {"stale_days": 30, "required": {"account": ["name", "industry"]}}})
    assert s.quality["stale_days"] == 30
    with pytest.raises(ConfigError, match=r"quality\.required"):
        parse({"quality": {"required": {"lead": ["x"]}}})
    with pytest.raises(ConfigError, match=r"quality\.stale_days"):
        parse({"quality": {"stale_days": 0}})
