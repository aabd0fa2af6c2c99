"""Policy ``merge`` and merges made in the systems, end to end with the real clients.

- ``merges = "merge"``: a duplicate pair the matcher links is merged in HubSpot with
  its merge endpoint (the merged record gets a new id), the merge ledger keeps the
  remote before-images, later cycles write nothing more, and ``dedupe undo``
  separates the entities again without re-creating the merged-away record.
- A merge a user makes in HubSpot links the two entities in revsync (never undone
  by re-creating the merged-away record); Salesforce stays on ``link``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

import sync.dedupe as dd
from cli import make_runner, sandbox_settings
from sandbox.server import Sandbox
from sync import dedupe_opportunity
from sync import store as st
from sync.match import Deduper
from sync.migrate import upgrade
from tests.integration import e2e_support as E

ROB = {"email": "rob.smith@quillfeather-merge.com", "firstname": "Robert", "lastname": "Smith",
       "phone": "+14155550132", "company": "Quillfeather"}
BOB = {"email": "bsmith@quillfeather-merge.com", "firstname": "Bob", "lastname": "Smith",
       "phone": "+14155550132", "company": "Quillfeather", "jobtitle": "CFO"}
ANN = {"email": "ann.lee@quillfeather-merge.com", "firstname": "Ann", "lastname": "Lee"}
ANNE = {"email": "anne.lee@quillfeather-merge.com", "firstname": "Anne", "lastname": "Lee", "jobtitle": "CTO"}


def _hs(sb: Sandbox) -> requests.Session:
    session = E.https(sb)
    session.headers["Authorization"] = f"Bearer {sb.info['credentials']['hubspot']['access_token']}"
    return session


def _create_contact(sb: Sandbox, props: Mapping[str, str]) -> str:
    r = _hs(sb).post(f"{sb.info['hubspot']}/crm/v3/objects/contacts", json={"properties": dict(props)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _create_sf(sb: Sandbox, obj: str, fields: Mapping[str, Any]) -> str:
    session = E.https(sb)
    creds = sb.info["credentials"]["salesforce"]
    tok = session.post(f"{sb.info['salesforce']}/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": creds["client_id"], "client_secret": creds["client_secret"],
        "refresh_token": creds["refresh_token"]}).json()
    r = session.post(f"{tok['instance_url']}/services/data/v59.0/sobjects/{obj}",
                     headers={"Authorization": f"Bearer {tok['access_token']}"}, json=dict(fields))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _create_sf_contact(sb: Sandbox, props: Mapping[str, str]) -> str:
    return _create_sf(sb, "Contact", {"FirstName": props["firstname"], "LastName": props["lastname"],
                                      "Email": props["email"]})


def _contact(sb: Sandbox, rid: str) -> dict[str, Any]:
    r = _hs(sb).get(f"{sb.info['hubspot']}/crm/v3/objects/contacts/{rid}",
                    params={"properties": "email,firstname,lastname,jobtitle,hs_merged_object_ids"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _live_hubspot_emails(world: E.World) -> list[str]:
    remote = E.read_remote(world)
    return sorted(str(r.fields.get("email") or "") for r in remote[("hubspot", "contacts")])


def _entity(world: E.World, email: str) -> str:
    with world.store.session() as s:
        return s.scalars(select(st.ContactRow.id).where(st.ContactRow.email == email)).one()


def _link_pairs(monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[str, str]], *, key: str = "email",
                object_type: str = "contact") -> None:
    """The matcher links exactly these pairs of ``key`` values (the scoring is tested elsewhere)."""

    def fake(records: Any, spec: Any, *, options: Any = None, model_json: Any = None,
             train_records: Any = None) -> dd.MatchResult:
        ids = {str(r.get(key)): str(r["id"]) for r in records if spec.name == object_type}
        links = [dd.Pair(min(ids[a], ids[b]), max(ids[a], ids[b]), 0.999, {"name": "nickname", "phone": "exact"})
                 for a, b in pairs if a in ids and b in ids]
        clusters = [sorted((p.left, p.right)) for p in links]
        return dd.MatchResult(links=links, review=[], clusters=clusters, warnings=[], model_json='{"m": 1}')

    monkeypatch.setattr(dd, "match_records", fake)
    # … and no deal either (opportunities have their own scorer, sync.dedupe_opportunity)
    monkeypatch.setattr(dedupe_opportunity, "match_opportunities",
                        lambda records, **kw: dd.MatchResult([], [], [], [], '{"m": 1}'))


def _open(sb: Sandbox, tmp: Path, *, merges: str, object_type: str = "contact") -> E.World:
    tmp.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{tmp / 'merge.db'}"
    upgrade(db_url)
    settings = sandbox_settings(sb.info, db_url)
    settings.policies[object_type]["merges"] = merges
    return E.World(sb, db_url, make_runner(settings))


def _create(sb: Sandbox, obj: str, props: Mapping[str, str], assoc_company: str | None = None) -> str:
    body: dict[str, Any] = {"properties": dict(props)}
    if assoc_company:
        body["associations"] = [{"to": {"id": assoc_company},
                                 "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]
    r = _hs(sb).post(f"{sb.info['hubspot']}/crm/v3/objects/{obj}", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def merged(make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[E.World, dict[str, str]]]:
    sb = make_sandbox(accounts=6, seed=11)
    rids = {"rob": _create_contact(sb, ROB), "bob": _create_contact(sb, BOB)}
    for person in (ROB, BOB):  # both also in Salesforce, which stays on link
        _create_sf_contact(sb, person)
    _link_pairs(monkeypatch, [(ROB["email"], BOB["email"])])
    world = _open(sb, tmp_path, merges="merge")
    yield world, rids


def test_policy_merge_merges_the_duplicates_in_hubspot_and_keeps_before_images(merged: Any) -> None:
    world, rids = merged
    reports = E.sync_until_quiet(world)
    first = reports[0]
    assert first.status == "ok", E.summarize(reports)
    assert first.planned["hubspot"].get("merge") == 1 and first.matched_links == 1
    # Salesforce is not in the default merge_in (its merge cannot be undone): linked only
    assert "merge" not in first.planned["salesforce"]
    # HubSpot: both records merged into ONE new record, which revsync now follows
    for rid in rids.values():
        body = _contact(world.sb, rid)  # GET by an old id answers with the merged record
        assert body["id"] not in rids.values()
        assert set(body["properties"]["hs_merged_object_ids"].split(";")) == set(rids.values())
    into = _contact(world.sb, rids["rob"])["id"]
    emails = _live_hubspot_emails(world)
    assert emails.count(ROB["email"]) + emails.count(BOB["email"]) == 1, "one HubSpot record for the person"
    with world.store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        survivor = entry.survivor_id
        assert entry.policy == "merge" and s.get(st.ContactRow, entry.merged_ids[0]).merged_into == survivor
        [remote] = entry.remote_results["hubspot"]
        assert remote["into"] == into and {remote["primary"], *remote["merged"]} == set(rids.values())
        assert {v["fields"]["email"] for v in remote["before"].values()} == {ROB["email"], BOB["email"]}
        refs = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.system == "hubspot",
                                                         st.ExternalRefRow.canonical_id == survivor)).all()
        assert {r.remote_id for r in refs if r.deleted_at is None} == {into}
        assert {r.remote_id: r.merged_into for r in refs if r.deleted_at} == {rid: into for rid in rids.values()}
    # the run ends quiet: nothing re-created, nothing left to write
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0
    assert first.planned["hubspot"].get("merge") == 1
    assert all(r.planned.get("hubspot", {}).get("merge") is None for r in reports[1:])


def test_undo_of_a_remote_merge_restores_the_entities_without_recreating_the_merged_record(merged: Any) -> None:
    world, rids = merged
    E.sync_until_quiet(world)
    with world.store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        merge_id, loser = entry.id, entry.merged_ids[0]
    out = Deduper(world.store, {}, now=world.runner.now, policies=world.runner.settings.policies).undo(merge_id)
    assert out["restored"] == [loser] and out["policy"] == "merge"
    assert "cannot unmerge" in out["remote"]["hubspot"][0]
    hubspot_before = _live_hubspot_emails(world)
    into = _contact(world.sb, rids["rob"])
    reports = E.sync_until_quiet(world)
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0, E.summarize(reports)
    with world.store.session() as s:
        row = s.get(st.ContactRow, loser)
        assert row.merged_into is None and row.deleted_at is None, "the restored entity lives on"
        assert st.decided_pairs(s, "contact")[tuple(sorted((loser, entry.survivor_id)))] == "rejected"
    # HubSpot: no record re-created for the loser (it is merged away there for good),
    # and the merged record was not overwritten with the loser's values either
    assert _live_hubspot_emails(world) == hubspot_before
    after = _contact(world.sb, rids["rob"])
    assert after["id"] == into["id"]
    assert {k: after["properties"].get(k) for k in ("email", "firstname", "lastname", "jobtitle")} == {
        k: into["properties"].get(k) for k in ("email", "firstname", "lastname", "jobtitle")}
    with world.store.session() as s:
        assert not s.scalars(select(st.ExternalRefRow).where(
            st.ExternalRefRow.system == "hubspot", st.ExternalRefRow.canonical_id == loser,
            st.ExternalRefRow.deleted_at.is_(None))).all()
    assert sum(r.remote_merges for r in reports) == 0, "an undone pair is not re-linked by the remote merge"


def test_a_merge_made_in_hubspot_links_the_entities_and_nothing_is_recreated(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = make_sandbox(accounts=6, seed=12)
    ann, anne = _create_contact(sb, ANN), _create_contact(sb, ANNE)
    _link_pairs(monkeypatch, [])  # the matcher keeps them apart
    world = _open(sb, tmp_path, merges="link")
    E.sync_until_quiet(world)
    a, b = _entity(world, ANN["email"]), _entity(world, ANNE["email"])
    assert a != b
    sf_before = E.remote_counts(sb)["salesforce"]
    # a HubSpot user merges them
    r = _hs(sb).post(f"{sb.info['hubspot']}/crm/v3/objects/contacts/merge",
                     json={"primaryObjectId": ann, "objectIdToMerge": anne})
    assert r.status_code == 200, r.text
    into = str(r.json()["id"])
    reports = E.sync_until_quiet(world)
    assert reports[0].status == "ok", E.summarize(reports)
    assert reports[0].remote_merges == 1
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0
    with world.store.session() as s:
        rows = {x.id: x for x in s.scalars(select(st.ContactRow).where(st.ContactRow.id.in_([a, b])))}
        assert sorted(x.merged_into or "" for x in rows.values()).count("") == 1, "one entity now"
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        assert entry.policy == "link" and next(iter(entry.evidence.values()))["merged_in"] == "hubspot"
        survivor = entry.survivor_id
        live = s.scalars(select(st.ExternalRefRow.remote_id).where(
            st.ExternalRefRow.system == "hubspot", st.ExternalRefRow.canonical_id == survivor,
            st.ExternalRefRow.deleted_at.is_(None))).all()
        assert live == [into]
    emails = _live_hubspot_emails(world)
    assert ANNE["email"] not in emails or ANN["email"] not in emails, "the merged-away record was not re-created"
    # Salesforce is on link: its two records stay, both now carry the one entity's values
    assert E.remote_counts(sb)["salesforce"] == sf_before


def test_policy_merge_for_companies_keeps_the_contacts_on_the_merged_company(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = make_sandbox(accounts=6, seed=13)
    one = _create(sb, "companies", {"name": "Zephyr Gadgets Inc", "domain": "zephyr-gadgets.com"})
    two = _create(sb, "companies", {"name": "Zephyr Gadgets", "domain": "zephyrgadgets.io"})
    c1 = _create(sb, "contacts", {"email": "kim@zephyr-gadgets.com", "firstname": "Kim", "lastname": "Ode"}, one)
    c2 = _create(sb, "contacts", {"email": "lou@zephyrgadgets.io", "firstname": "Lou", "lastname": "Ray"}, two)
    _link_pairs(monkeypatch, [("Zephyr Gadgets Inc", "Zephyr Gadgets")], key="name", object_type="account")
    world = _open(sb, tmp_path, merges="merge", object_type="account")
    reports = E.sync_until_quiet(world)
    assert reports[0].planned["hubspot"].get("merge") == 1, E.summarize(reports)
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0
    r = _hs(sb).get(f"{sb.info['hubspot']}/crm/v3/objects/companies/{one}")
    into = str(r.json()["id"])
    assert into not in (one, two)
    # HubSpot moved both contacts to the merged company; revsync agrees
    for contact in (c1, c2):
        r = _hs(sb).get(f"{sb.info['hubspot']}/crm/v4/objects/contacts/{contact}/associations/companies")
        assert [str(x["toObjectId"]) for x in r.json()["results"]] == [into]
    with world.store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        accounts = {r.account_id for r in s.scalars(select(st.ContactRow).where(
            st.ContactRow.email.in_(["kim@zephyr-gadgets.com", "lou@zephyrgadgets.io"])))}
        assert accounts == {entry.survivor_id}
        assert entry.remote_results["hubspot"][0]["into"] == into


def test_a_merge_call_that_keeps_failing_is_deferred_then_done(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = make_sandbox(accounts=4, seed=14)
    _create_contact(sb, ROB)
    _create_contact(sb, BOB)
    _link_pairs(monkeypatch, [(ROB["email"], BOB["email"])])
    world = E.open_world(sb, tmp_path, retry=E.no_wait_retry())
    world.runner.settings.policies["contact"]["merges"] = "merge"
    sb.ctx.faults.set_spec({"script": [{"system": "hubspot", "endpoint": "crm.merge", "nth": 1, "count": 50,
                                        "kind": "server_error"}]})
    first = world.runner.run_cycle(force=True)
    assert first.written.get("hubspot", 0) > 0 and any("deferred" in m for m in first.messages)
    with world.store.session() as s:
        # only the merge waits: the other HubSpot writes went out in calls of their own
        assert [r.kind for r in st.list_pending(s)] == ["merge"]
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        assert entry.remote_results == {}
    sb.ctx.faults.set_spec(None)
    reports = E.sync_until_quiet(world)
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0, E.summarize(reports)
    with world.store.session() as s:
        assert s.scalars(select(st.MergeLedgerRow)).one().remote_results["hubspot"]
    emails = _live_hubspot_emails(world)
    assert emails.count(ROB["email"]) + emails.count(BOB["email"]) == 1


def test_salesforce_merge_when_opted_in_reparents_children_and_keeps_the_master(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = make_sandbox(accounts=6, seed=15)
    one = _create_sf(sb, "Account", {"Name": "Brightwater Labs Inc", "Website": "https://brightwater-labs.com"})
    two = _create_sf(sb, "Account", {"Name": "Brightwater Labs", "Website": "https://brightwaterlabs.io"})
    kid = _create_sf(sb, "Contact", {"LastName": "Ode", "FirstName": "Kim", "Email": "kim@brightwaterlabs.io",
                                     "AccountId": two})
    _link_pairs(monkeypatch, [("Brightwater Labs Inc", "Brightwater Labs")], key="name", object_type="account")
    world = _open(sb, tmp_path, merges="merge", object_type="account")
    world.runner.settings.policies["account"]["merge_in"] = ["salesforce"]
    reports = E.sync_until_quiet(world)
    assert reports[0].planned["salesforce"].get("merge") == 1, E.summarize(reports)
    assert "merge" not in reports[0].planned.get("hubspot", {})
    assert reports[-1].writes == 0 and E.pending_ops(world) == 0, E.summarize(reports)
    client = world.runner.connections["salesforce"].connector.client
    rows = {r["Id"]: r for r in client.query_all(
        f"SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id IN ('{one}', '{two}')",
        include_deleted=True)["records"]}
    with world.store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        [remote] = entry.remote_results["salesforce"]
        master, victim = remote["into"], remote["merged"][0]
        assert {master, victim} == {one, two} and remote["primary"] == master
        # the survivor's refs: the master live, the victim merged into it
        refs = {r.remote_id: r for r in s.scalars(select(st.ExternalRefRow).where(
            st.ExternalRefRow.system == "salesforce", st.ExternalRefRow.object_type == "account",
            st.ExternalRefRow.remote_id.in_([one, two])))}
        assert refs[master].deleted_at is None and refs[victim].merged_into == master
        assert {r.canonical_id for r in refs.values()} == {entry.survivor_id}
        contact = s.scalars(select(st.ContactRow).where(st.ContactRow.email == "kim@brightwaterlabs.io")).one()
        assert contact.account_id == entry.survivor_id
    assert rows[master]["IsDeleted"] is False
    assert rows[victim]["IsDeleted"] is True and rows[victim]["MasterRecordId"] == master
    kid_row = client.query(f"SELECT AccountId FROM Contact WHERE Id = '{kid}'")["records"][0]
    assert kid_row["AccountId"] == master, "Salesforce re-parented the victim's contact"
    # one company in HubSpot for the two Salesforce accounts
    names = [r.fields.get("name") for r in E.read_remote(world)[("hubspot", "companies")]]
    assert sum(1 for n in names if str(n).startswith("Brightwater Labs")) == 1
