"""End-to-end: RevOps governance through the sandbox with the real clients (issue 15).

- required fields: a blocking rule holds an incomplete account's create in Planhat
  (ledger entry naming the field), the rest of the plan goes on, and the create goes
  through the cycle after the data arrives;
- schema pre-flight: a field deleted and a picklist value removed in Salesforce between
  cycles hold the ops that write them, with the field and the reason; the rest is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.base import OpKind, WriteOp
from mapping.canonical import ObjectType
from sandbox.server import Sandbox
from sync import store as st
from sync.config import parse
from sync.governance import HELD, HELD_REQUIRED, HELD_SCHEMA
from sync.quality import quality_report
from tests.integration import e2e_support as E


def _world(sb: Sandbox, tmp: Path, governance: dict[str, Any], policies: dict[str, Any] | None = None) -> E.World:
    world = E.open_world(sb, tmp)
    names = tuple(world.runner.settings.connections)
    extra = parse({"policies": policies or {}, "governance": governance,
                   "connections": {n: {"kind": n} for n in names}}, resolve_secrets=False)
    world.runner.settings = dataclasses.replace(world.runner.settings, governance=extra.governance,
                                                policies=extra.policies)
    return world


def _planhat_names(sb: Sandbox) -> set[str]:
    emu: Any = sb.emulators["planhat"]
    return {str(d.get("name")) for d in emu.list_page("companies", limit=5000)}


def _sf_create_account(world: E.World, **values: Any) -> str:
    sf: Any = world.runner.connections["salesforce"].connector
    return str(sf._sobject("Account").create(values)["id"])


def _entity_of(world: E.World, system: str, remote_id: str) -> str:
    with world.store.session() as s:
        return str(s.scalar(select(st.ExternalRefRow.canonical_id).where(
            st.ExternalRefRow.system == system, st.ExternalRefRow.remote_id == remote_id)))


def _held(world: E.World) -> list[st.OutboxRow]:
    with world.store.session() as s:
        rows = list(s.scalars(select(st.OutboxRow).where(st.OutboxRow.state == HELD)))
        s.expunge_all()
        return rows


def _ledger(world: E.World, category: str, state: str = "open") -> list[st.ErrorLedgerRow]:
    with world.store.session() as s:
        rows = list(s.scalars(select(st.ErrorLedgerRow).where(st.ErrorLedgerRow.category == category,
                                                              st.ErrorLedgerRow.state == state)))
        s.expunge_all()
        return rows


def test_blocking_rule_holds_an_incomplete_account_out_of_planhat_until_the_data_arrives(
    make_sandbox: E.Any, tmp_path: Path, monkeypatch: E.Any,
) -> None:
    sb = make_sandbox(accounts=8, seed=21)
    world = _world(sb, tmp_path, {
        "required": [{"object": "account", "fields": ["owner_email", "industry"], "block": True,
                      "systems": ["planhat"]}],
    }, {"account": {"create_in": ["salesforce", "hubspot", "planhat"]}})
    # a rep creates an account in Salesforce without an industry (hostile name, no website)
    sf_emu: Any = sb.emulators["salesforce"]
    owner = next(u for u in sf_emu.org.records["User"].values() if u.get("Email") and u.get("IsActive"))
    rid = _sf_create_account(world, Name="Gäp & Söhne «Holding» GmbH", OwnerId=owner["Id"])
    before = _planhat_names(sb)
    r1 = world.runner.run_cycle(force=True)
    assert r1.status in ("ok", "partial"), E.summarize([r1])
    cid = _entity_of(world, "salesforce", rid)

    # held in Planhat, with a ledger entry naming the field; written to HubSpot (no block there)
    held = [h for h in _held(world) if h.canonical_id == cid]
    assert [(h.system, h.kind) for h in held] == [("planhat", "create")]
    assert "industry" in (held[0].last_error or "")
    entries = [e for e in _ledger(world, HELD_REQUIRED) if e.canonical_id == cid]
    assert [(e.system, e.field) for e in entries] == [("planhat", "industry")]
    assert "Gäp & Söhne «Holding» GmbH" not in _planhat_names(sb)
    with world.store.session() as s:
        assert s.scalar(select(st.ExternalRefRow.remote_id).where(
            st.ExternalRefRow.canonical_id == cid, st.ExternalRefRow.system == "hubspot")) is not None
    # the rest of the plan went on: complete accounts were created in Planhat
    assert len(_planhat_names(sb) - before) >= 1
    assert not [h.last_error for h in _held(world) if h.canonical_id != cid], "pre-flight false positives"
    assert r1.held == {HELD_REQUIRED: len([h for h in _held(world) if h.system == "planhat"])}
    # revsync quality lists the gap
    with world.store.session() as s:
        q = quality_report(s, now=world.runner.now(), governance=world.runner.settings.governance)
    rule = next(r for r in q["required_rules"] if r["object"] == "account")
    assert rule["block"] is True and rule["missing_by_field"]["industry"] >= 1
    assert cid in rule["sample"] or rule["incomplete"] > len(rule["sample"])
    assert q["held_writes"]["by_reason"]["planhat/required_field"] >= 1
    # revsync plan shows the held op and why
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVSYNC_DATABASE_URL", world.db_url)
    out = CliRunner().invoke(app, ["plan", "--json"])
    assert out.exit_code == 0, out.output
    shown = {h["entity"]: h for h in E.json.loads(out.output)["held"]}
    assert shown[cid]["system"] == "planhat" and "missing industry" in shown[cid]["reason"]
    text = CliRunner().invoke(app, ["plan"]).output
    assert f"account {cid[:8]}\tplanhat\theld create\trequired account: missing industry" in text

    # the industry arrives in Salesforce: the next cycle creates the company in Planhat
    sf: Any = world.runner.connections["salesforce"].connector
    sf._sobject("Account").update(rid, {"Industry": "Biotechnology"})
    r2 = world.runner.run_cycle()
    assert r2.status in ("ok", "partial"), E.summarize([r2])
    assert "Gäp & Söhne «Holding» GmbH" in _planhat_names(sb)
    assert not [h for h in _held(world) if h.canonical_id == cid]
    assert [e.canonical_id for e in _ledger(world, HELD_REQUIRED, "resolved")].count(cid) == 1
    assert not [e for e in _ledger(world, HELD_REQUIRED) if e.canonical_id == cid]


def _hs_update(world: E.World, native: str, remote_id: str, obj: ObjectType, **props: Any) -> None:
    hs: Any = world.runner.connections["hubspot"].connector
    [res] = hs.write(obj, [WriteOp(kind=OpKind.UPDATE, object_type=obj, key="edit", fields=props,
                                   remote_id=remote_id, native_type=native)])
    assert res.success, res.message


def test_preflight_holds_ops_on_a_deleted_field_and_a_removed_picklist_value(
    make_sandbox: E.Any, tmp_path: Path,
) -> None:
    sb = make_sandbox(accounts=10, seed=5)
    world = _world(sb, tmp_path, {})
    E.sync_until_quiet(world)
    # three contacts that live in Salesforce and HubSpot
    with world.store.session() as s:
        refs = list(s.execute(select(st.ExternalRefRow.canonical_id, st.ExternalRefRow.system,
                                     st.ExternalRefRow.remote_id, st.ExternalRefRow.native_type).where(
            st.ExternalRefRow.object_type == "contact", st.ExternalRefRow.deleted_at.is_(None))))
    by_entity: dict[str, dict[str, tuple[str, str]]] = {}
    for cid, system, rid, native in refs:
        by_entity.setdefault(cid, {})[system] = (rid, native)
    both = [c for c, m in sorted(by_entity.items())
            if "hubspot" in m and m.get("salesforce", ("", ""))[1] == "Contact"]
    assert len(both) >= 3, "the seed has too few contacts in both systems"
    a, b, c = both[:3]
    sf_emu: Any = sb.emulators["salesforce"]
    # 1. a Salesforce admin deactivates the "Evangelist" lifecycle value; HubSpot users
    # set b's lifecycle stage to evangelist and c's phone
    with sf_emu.lock:
        sf_emu.org.remove_picklist_value("Contact", "Lifecycle_Stage__c", "Evangelist")
    _hs_update(world, "contacts", by_entity[b]["hubspot"][0], ObjectType.CONTACT, lifecyclestage="evangelist")
    _hs_update(world, "contacts", by_entity[c]["hubspot"][0], ObjectType.CONTACT, phone="+44 20 7946 0958")
    r = world.runner.run_cycle()
    held = {h.canonical_id: h for h in _held(world) if h.system == "salesforce"}
    assert set(held) == {b}, (r.messages, r.planned)
    assert "Lifecycle_Stage__c: picklist value Evangelist missing" in (held[b].last_error or "")
    entries = {e.canonical_id: e for e in _ledger(world, HELD_SCHEMA)}
    assert entries[b].field == "Lifecycle_Stage__c" and entries[b].system == "salesforce"
    assert r.held == {HELD_SCHEMA: 1}
    # the rest of the plan went on: c's phone reached Salesforce, b's other systems too
    rec = sf_emu.org.live("Contact", by_entity[c]["salesforce"][0])
    assert "7946" in str(rec.get("Phone")), rec
    # the admin restores the value: the held op is released and written the next cycle
    with sf_emu.lock:
        sf_emu.org.picklists[("Contact", "Lifecycle_Stage__c")].append("Evangelist")
    world.runner.run_cycle()
    assert sf_emu.org.live("Contact", by_entity[b]["salesforce"][0]).get("Lifecycle_Stage__c") == "Evangelist"
    assert not _held(world)
    assert not _ledger(world, HELD_SCHEMA)

    # 2. the admin deletes Contact.Title; a HubSpot user changes a's job title
    with sf_emu.lock:
        sf_emu.org.delete_field("Contact", "Title")
    _hs_update(world, "contacts", by_entity[a]["hubspot"][0], ObjectType.CONTACT, jobtitle="Chief Ürban Planner")
    r = world.runner.run_cycle()
    assert r.status != "failed" and "salesforce" not in r.failed_systems, r.messages
    held = {h.canonical_id: h for h in _held(world) if h.system == "salesforce"}
    assert a in held, (r.messages, r.planned)
    assert "Contact.Title: field deleted: salesforce Contact has no field Title" in (held[a].last_error or "")
    assert {e.canonical_id: e.field for e in _ledger(world, HELD_SCHEMA)}[a] == "Title"

    # 3. the admin makes Contact.Phone read-only (field-level security): a phone written there is held
    from sandbox.schema import FieldSpec

    with sf_emu.lock:
        sf_emu.org.set_field("Contact", FieldSpec("Phone", "phone", label="Phone", length=40, updateable=False))
    _hs_update(world, "contacts", by_entity[c]["hubspot"][0], ObjectType.CONTACT, phone="+1 (415) 555-0142")
    world.runner.run_cycle()
    held = {h.canonical_id: h for h in _held(world) if h.system == "salesforce"}
    assert c in held
    assert "Contact.Phone: read-only: salesforce Contact.Phone cannot be written" in (held[c].last_error or "")
    assert "7946" in str(sf_emu.org.live("Contact", by_entity[c]["salesforce"][0]).get("Phone"))

def _licenses_of(sb: Sandbox, company_id: str) -> list[dict[str, Any]]:
    emu: Any = sb.emulators["planhat"]
    return [d for d in emu.list_page("licenses", limit=2000) if str(d.get("companyId")) == company_id]


def test_closed_won_handoff_waits_for_missing_data_then_completes_with_planhat_licenses(
    make_sandbox: E.Any, tmp_path: Path, monkeypatch: E.Any,
) -> None:
    from typer.testing import CliRunner

    from cli import app
    from sync.handoff import list_handoffs

    sb = make_sandbox(accounts=10, seed=21)
    world = _world(sb, tmp_path, {"handoff": {"default_csm": "cs.pod-emea@example.org"}},
                   {"account": {"create_in": ["salesforce", "hubspot", "planhat"]}})
    org: Any = sb.emulators["salesforce"].org
    roles = {r["OpportunityId"] for r in org.records["OpportunityContactRole"].values()}
    open_opps = sorted(o["Id"] for o in org.records["Opportunity"].values()
                       if o.get("AccountId") and o["Id"] in roles and not o.get("IsClosed"))
    assert len(open_opps) >= 2, "the seed has too few open deals with contact roles"
    x, y = open_opps[:2]
    sf: Any = world.runner.connections["salesforce"].connector
    # x is won with its contract term and products (a multi-product deal, ';' and ',' mixed)
    sf._sobject("Opportunity").update(x, {"StageName": "Closed Won", "Amount": 120000,
                                          "Contract_Start__c": "2026-01-01", "Renewal_Date__c": "2026-12-31",
                                          "Products__c": "Analytics Cloud; Data Pipeline"})
    # y is won too, but nobody filled in the contract term yet
    sf._sobject("Opportunity").update(y, {"StageName": "Closed Won", "Amount": 60000})
    r1 = world.runner.run_cycle(force=True)
    assert r1.status in ("ok", "partial"), E.summarize([r1])
    ex, ey = _entity_of(world, "salesforce", x), _entity_of(world, "salesforce", y)
    with world.store.session() as s:
        hs = {h["opportunity"]: h for h in list_handoffs(s)}
        acct_y = s.get(st.OpportunityRow, ey).account_id
        owner_y = s.get(st.AccountRow, acct_y).owner_email
    hx, hy = hs[ex], hs[ey]
    assert hx["state"] == "complete", hx
    assert hx["first_completeness"] == 1.0 and hx["hours_to_complete"] == 0.0
    assert hx["data"]["csm"] == "cs.pod-emea@example.org" and hx["data"]["key_contacts"]
    lic = _licenses_of(sb, hx["data"]["company_id"])
    ours = sorted((d for d in lic if str(d.get("externalId", "")).startswith("revsync-")), key=lambda d: d["product"])
    assert [(d["product"], d["fromDate"], d["toDate"], d["mrr"], d["_currency"]) for d in ours] == [
        ("Analytics Cloud", "2026-01-01", "2026-12-31", 5000.0, hx["data"]["currency"]),
        ("Data Pipeline", "2026-01-01", "2026-12-31", 5000.0, hx["data"]["currency"])]
    assert sorted(hx["data"]["licenses"]) == sorted(d["_id"] for d in ours)
    # y waits, listing what is missing and who owns it
    assert hy["state"] == "waiting"
    # (its renewal date falls back to the account's, which Planhat has)
    assert "contract_start" in hy["missing"], hy
    assert hy["owners"]["contract_start"] == owner_y and 0 < hy["completeness"] < 1
    assert r1.handoffs["completed"] >= 1 and r1.handoffs["waiting"] >= 1

    # `revsync handoffs --json` lists the waiting one with its gaps
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVSYNC_DATABASE_URL", world.db_url)
    out = CliRunner().invoke(app, ["handoffs", "--json"])
    assert out.exit_code == 0, out.output
    listed = E.json.loads(out.output)
    assert ey in {h["opportunity"] for h in listed["handoffs"]}
    assert ex not in {h["opportunity"] for h in listed["handoffs"]}  # complete: only with --all
    assert listed["summary"]["completed"] >= 1
    assert CliRunner().invoke(app, ["handoffs", "--state", "bogus"]).exit_code == 2

    # a quiet cycle writes no license (complete handoffs are not looked at again)
    before = E.write_calls_by_endpoint(E.fetch_stats(sb)).get("planhat", {})
    world.runner.run_cycle()
    after = E.write_calls_by_endpoint(E.fetch_stats(sb)).get("planhat", {})
    assert {k: v for k, v in after.items() if k.startswith("licenses")} == \
        {k: v for k, v in before.items() if k.startswith("licenses")}

    # the contract term arrives: the next cycle completes y by itself
    sf._sobject("Opportunity").update(y, {"Contract_Start__c": "2026-03-01", "Renewal_Date__c": "2027-02-28"})
    world.runner.run_cycle()
    with world.store.session() as s:
        hy = {h["opportunity"]: h for h in list_handoffs(s)}[ey]
    assert hy["state"] == "complete" and hy["missing"] == []
    assert hy["first_completeness"] < 1.0 and hy["completed_at"] > hy["detected_at"]
    ours = [d for d in _licenses_of(sb, hy["data"]["company_id"]) if d.get("externalId") == f"revsync-{ey}-0"]
    assert [(d["product"], d["fromDate"], d["toDate"], d["mrr"]) for d in ours] == [
        ("Subscription", "2026-03-01", "2027-02-28", 5000.0)]


def test_live_schemas_read_through_the_real_clients(sandbox: Sandbox, tmp_path: Path) -> None:
    """What the pre-flight compares against: Salesforce describe and HubSpot properties,
    in one shape (type, writability, picklist values)."""
    world = E.open_world(sandbox, tmp_path)
    sf: Any = world.runner.connections["salesforce"].connector
    hs: Any = world.runner.connections["hubspot"].connector
    opp = sf.live_schema("Opportunity")
    assert opp["StageName"]["type"] == "picklist" and "Closed Won" in opp["StageName"]["picklist"]
    assert opp["IsWon"]["updateable"] is False and opp["Amount"]["type"] == "currency"
    assert opp["Contract_Start__c"]["type"] == "date" and opp["Name"]["picklist"] is None
    deals = hs.live_schema("deals")
    assert deals["dealstage"]["type"] == "picklist" and "closedwon" in deals["dealstage"]["picklist"]
    assert deals["amount"]["type"] == "double" and deals["closedate"]["type"] == "datetime"
    assert deals["hs_is_closed_won"]["updateable"] is False and deals["dealname"]["updateable"] is True
    assert not hasattr(world.runner.connections["planhat"].connector, "live_schema")


def _license_calls(sb: Sandbox) -> dict[str, int]:
    by_ep = E.fetch_stats(sb).get("planhat", {}).get("by_endpoint", {})
    return {ep: int(n) for ep, n in by_ep.items() if ep.startswith("licenses.")}


def test_fifty_handoffs_cost_a_constant_number_of_license_calls(make_sandbox: E.Any, tmp_path: Path) -> None:
    """The handoffs of a cycle are batched: one listing walk reads the licenses already
    there, one bulk upsert writes the missing ones, one walk reads them back. About fifty
    handoffs (some seventy licenses) cost three calls, not three per handoff."""
    from sync.handoff import list_handoffs

    sb = make_sandbox(accounts=110, seed=5)
    required = ["owner", "csm", "arr", "contract_start", "renewal_date", "products"]
    world = _world(sb, tmp_path, {"handoff": {"default_csm": "cs@example.org", "required": required}},
                   {"account": {"create_in": ["salesforce", "hubspot", "planhat"]}})
    r0 = world.runner.run_cycle(force=True)
    assert r0.status in ("ok", "partial"), E.summarize([r0])
    org: Any = sb.emulators["salesforce"].org
    owned = {a["Id"] for a in org.records["Account"].values() if a.get("OwnerId")}
    one_per_account: dict[str, str] = {}
    for o in sorted(org.records["Opportunity"].values(), key=lambda o: o["Id"]):
        if o.get("AccountId") in owned and not o.get("IsClosed"):
            one_per_account.setdefault(o["AccountId"], o["Id"])
    picked = sorted(one_per_account.values())[:50]
    assert len(picked) == 50, f"the seed has only {len(picked)} accounts with an open deal"
    sf: Any = world.runner.connections["salesforce"].connector
    for n, opp in enumerate(picked):  # every second deal sells two products
        sf._sobject("Opportunity").update(opp, {
            "StageName": "Closed Won", "Amount": 12000 + n, "Contract_Start__c": "2026-02-01",
            "Renewal_Date__c": "2027-01-31", "Products__c": "Core; Add-on" if n % 2 else "Core"})
    before = _license_calls(sb)
    r1 = world.runner.run_cycle()
    calls = E.delta(_license_calls(sb), before)
    assert r1.status in ("ok", "partial"), E.summarize([r1])
    won = {_entity_of(world, "salesforce", o) for o in picked}
    with world.store.session() as s:
        # one handoff per account: deals whose accounts the match merged share one
        accounts = {s.get(st.OpportunityRow, o).account_id for o in won}
        ours = [h for h in list_handoffs(s) if h["account"] in accounts]
    assert len(accounts) >= 45 and len(ours) == len(accounts)
    assert all(h["state"] == "complete" for h in ours), [h["missing"] for h in ours if h["missing"]]
    n_licenses = sum(len(h["data"]["products"]) for h in ours)
    assert sum(len(h["data"]["licenses"]) for h in ours) == n_licenses > len(ours)
    # licenses in the sandbox fit one page: read, write, read back
    assert calls == {"licenses.list": 2, "licenses.bulk": 1}, calls
    emu: Any = sb.emulators["planhat"]
    there = {d["_id"]: d for d in emu.list_page("licenses", limit=2000)}
    for h in ours:
        assert [there[i]["externalId"] for i in h["data"]["licenses"]] == [
            f"revsync-{h['opportunity']}-{n}" for n in range(len(h["data"]["products"]))]
