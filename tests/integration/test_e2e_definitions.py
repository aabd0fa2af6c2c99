"""End-to-end: shared definitions through the sandbox with the real clients (issue 15.1).

The admin adds a canonical deal stage ``pilot`` (a new Salesforce picklist value and a
new HubSpot pipeline stage), renames ``negotiation`` to ``negotiating`` and retires
``contract``:

- before HubSpot has the new stage, ``revsync check`` reports the definition and the
  write of it is held with its reason (``revsync plan`` shows it); once the HubSpot
  admin adds the stage, the next cycle writes it;
- the renamed value reads and writes under its new name with the same native values;
- a value the definitions do not map (the retired stage's, an org's own new value) is
  recorded (system, record, field, value), shown by ``revsync quality --json``, and
  never copied to the other system.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sandbox.server import Sandbox
from sync import store as st
from sync.config import parse
from sync.golive import definition_findings
from sync.governance import HELD, HELD_SCHEMA
from sync.quality import quality_report
from tests.integration import e2e_support as E

DEFINITIONS = {
    "stage": {
        "values": {"pilot": {"salesforce": "Pilot", "hubspot": "pilot"}},
        "rename": {"negotiation": "negotiating"},
        "retire": ["contract"],
    },
}


def _world(sb: Sandbox, tmp: Path) -> E.World:
    world = E.open_world(sb, tmp)
    names = tuple(world.runner.settings.connections)
    extra = parse({"definitions": DEFINITIONS, "connections": {n: {"kind": n} for n in names}},
                  resolve_secrets=False)
    world.runner.settings = dataclasses.replace(world.runner.settings, definitions=extra.definitions)
    return world


def _ref(world: E.World, canonical_id: str, system: str) -> str:
    with world.store.session() as s:
        return str(s.scalar(select(st.ExternalRefRow.remote_id).where(
            st.ExternalRefRow.canonical_id == canonical_id, st.ExternalRefRow.system == system,
            st.ExternalRefRow.deleted_at.is_(None))))


def _entity_of(world: E.World, system: str, remote_id: str) -> str:
    with world.store.session() as s:
        return str(s.scalar(select(st.ExternalRefRow.canonical_id).where(
            st.ExternalRefRow.system == system, st.ExternalRefRow.remote_id == remote_id)))


def _deal_stage(sb: Sandbox, rid: str) -> tuple[str | None, str | None]:
    emu: Any = sb.emulators["hubspot"]
    table = emu.tables["deals"]
    rec = table.resolve(int(rid))
    return table.value(rec, "dealstage"), table.value(rec, "pipeline")


def _stage(world: E.World, canonical_id: str) -> str | None:
    with world.store.session() as s:
        return s.get(st.OpportunityRow, canonical_id).stage  # type: ignore[union-attr]


def test_admin_adds_renames_and_retires_deal_stages_across_salesforce_and_hubspot(
    make_sandbox: E.Any, tmp_path: Path, monkeypatch: E.Any,
) -> None:
    sb = make_sandbox(accounts=10, seed=7)
    world = _world(sb, tmp_path)
    org: Any = sb.emulators["salesforce"].org
    hs_emu: Any = sb.emulators["hubspot"]
    conns = world.runner.connections

    # revsync check, before either admin added the new stage: both are reported
    for name, missing in (("salesforce", "'Pilot'"), ("hubspot", "'pilot'")):
        found = definition_findings(world.runner.settings, conns[name])
        lines = [f.message for f in found if f.level == "warn"]
        assert any("definitions.stage value 'pilot'" in m and missing in m for m in lines), found
    E.sync_until_quiet(world)

    # opportunities in Salesforce and HubSpot, open
    with world.store.session() as s:
        both = sorted(cid for cid, in s.execute(select(st.OpportunityRow.id).where(
            st.OpportunityRow.is_closed.is_not(True), st.OpportunityRow.deleted_at.is_(None))))
    both = [c for c in both if _ref(world, c, "salesforce") != "None" and _ref(world, c, "hubspot") != "None"]
    assert len(both) >= 4, "the seed has too few open deals in both systems"
    x, y, z, w = both[:4]
    sf = conns["salesforce"].connector._sobject("Opportunity")

    # 1. Salesforce's admin adds "Pilot"; a rep moves x to it. HubSpot lacks the stage:
    #    the write there is held with its reason, the rest goes on
    with sb.emulators["salesforce"].lock:
        org.add_picklist_value("Opportunity", "StageName", "Pilot")
    assert not [f for f in definition_findings(world.runner.settings, conns["salesforce"]) if f.level == "warn"]
    sf.update(_ref(world, x, "salesforce"), {"StageName": "Pilot"})
    world.runner.run_cycle()
    assert _stage(world, x) == "pilot"
    with world.store.session() as s:
        held = [r for r in s.scalars(select(st.OutboxRow).where(st.OutboxRow.state == HELD))]
        s.expunge_all()
    assert [(h.canonical_id, h.system) for h in held] == [(x, "hubspot")]
    reason = held[0].last_error or ""
    assert "picklist value pilot missing: hubspot deals.dealstage" in reason
    assert "definitions.stage value 'pilot'" in reason
    assert _deal_stage(sb, _ref(world, x, "hubspot"))[0] != "pilot"
    # revsync plan shows it, with the reason
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVSYNC_DATABASE_URL", world.db_url)
    out = CliRunner().invoke(app, ["plan", "--json"])
    assert out.exit_code == 0, out.output
    shown = {h["entity"]: h for h in json.loads(out.output)["held"]}
    assert shown[x]["system"] == "hubspot" and "definitions.stage value 'pilot'" in shown[x]["reason"]

    # 2. HubSpot's admin adds the stage: the held write goes through, with the pipeline
    hs_emu.add_option("deals", "dealstage", "pilot")
    assert not [f for f in definition_findings(world.runner.settings, conns["hubspot"]) if f.level == "warn"]
    world.runner.run_cycle()
    assert _deal_stage(sb, _ref(world, x, "hubspot")) == ("pilot", "default")
    with world.store.session() as s:
        assert not list(s.scalars(select(st.OutboxRow).where(st.OutboxRow.state == HELD)))
        assert not s.scalars(select(st.ErrorLedgerRow).where(
            st.ErrorLedgerRow.category == HELD_SCHEMA, st.ErrorLedgerRow.state == "open")).first()

    # 3. renamed: a HubSpot user moves y to "decisionmakerboughtin": canonical "negotiating",
    #    Salesforce gets the same native value as before the rename
    hs = conns["hubspot"].connector
    from connectors.base import OpKind, WriteOp
    from mapping.canonical import ObjectType

    [res] = hs.write(ObjectType.OPPORTUNITY, [WriteOp(
        kind=OpKind.UPDATE, object_type=ObjectType.OPPORTUNITY, key="edit", native_type="deals",
        remote_id=_ref(world, y, "hubspot"), fields={"dealstage": "decisionmakerboughtin", "pipeline": "default"})])
    assert res.success, res.message
    world.runner.run_cycle()
    assert _stage(world, y) == "negotiating"
    assert org.live("Opportunity", _ref(world, y, "salesforce"))["StageName"] == "Negotiation/Review"

    # 4. a retired value and a value nobody defined, set in Salesforce: recorded, shown,
    #    never copied to HubSpot
    with sb.emulators["salesforce"].lock:
        org.add_picklist_value("Opportunity", "StageName", "Discovery")
    before_z, before_w = _deal_stage(sb, _ref(world, z, "hubspot")), _deal_stage(sb, _ref(world, w, "hubspot"))
    sf.update(_ref(world, z, "salesforce"), {"StageName": "Value Proposition"})  # the retired contract's value
    sf.update(_ref(world, w, "salesforce"), {"StageName": "Discovery"})
    world.runner.run_cycle()
    assert _deal_stage(sb, _ref(world, z, "hubspot")) == before_z
    assert _deal_stage(sb, _ref(world, w, "hubspot")) == before_w
    assert "contractsent" not in {before_z[0], _deal_stage(sb, _ref(world, z, "hubspot"))[0]}
    with world.store.session() as s:
        q = quality_report(s, now=world.runner.now(), governance=world.runner.settings.governance)
    listed = {(v["system"], v["record"], v["field"], v["value"]) for v in q["unmapped_picklist_values"]["values"]}
    assert ("salesforce", _ref(world, z, "salesforce"), "StageName", "Value Proposition") in listed
    assert ("salesforce", _ref(world, w, "salesforce"), "StageName", "Discovery") in listed
    why = {v["record"]: v["reason"] for v in q["unmapped_picklist_values"]["values"]}
    assert "'contract' is retired" in why[_ref(world, z, "salesforce")]
    assert q["unmapped_picklist_values"]["by_field"]["salesforce/opportunity.StageName"] >= 2
    # and `revsync quality --json` carries them
    out = CliRunner().invoke(app, ["quality", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["unmapped_picklist_values"]["values"]
    assert {"system": "salesforce", "record": _ref(world, w, "salesforce"), "field": "StageName",
            "value": "Discovery"}.items() <= next(r for r in rows if r["value"] == "Discovery").items()
    assert _entity_of(world, "salesforce", _ref(world, w, "salesforce")) == w
