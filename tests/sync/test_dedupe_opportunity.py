"""Opportunity tier 2: hostile pairs for the scorer, and links made, queued and undone
in the store (with contact roles following) by a sync against fake systems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sync import store as st
from sync.config import parse
from sync.dedupe_opportunity import (
    AccountIndex,
    Options,
    match_opportunities,
    name_words,
    score,
)
from sync.engine import Connection
from sync.jobs import Runner
from sync.match import Deduper
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

ACME = "acct-acme"


def deal(rid: str, name: str | None, *, account: str | None = ACME, account_name: str | None = "Acme Corp",
         amount: Any = "120000", close: str | None = "2026-06-30", stage: str | None = "proposal",
         type_: str | None = "new_business", owner: str | None = "jo@seller.com", currency: str | None = "USD",
         system: str = "salesforce") -> dict[str, Any]:
    return {"id": rid, "name": name, "account_id": account, "account_name": account_name, "amount": amount,
            "close_date": close, "stage": stage, "type": type_, "owner_email": owner, "currency": currency,
            "systems": [system]}


def linked(result: Any) -> set[frozenset[str]]:
    return {frozenset((p.left, p.right)) for p in result.links}


def queued(result: Any) -> set[frozenset[str]]:
    return {frozenset((p.left, p.right)) for p in result.review}


# --------------------------------------------------------------------------- the scorer


def test_the_account_name_and_punctuation_do_not_count_in_the_deal_name() -> None:
    base = name_words("Horizonbase - New Business", "Horizonbase Inc.")
    assert base == (frozenset({"new", "business"}), frozenset())
    for variant in ("Horizonbase New Business", "HORIZONBASE INC. \u2013 new business", "Horizon Base: New-Business",
                    "Horizonbse - New Business"):  # typo in the account part
        assert name_words(variant, "Horizonbase Inc.") == base, variant
    # a deal named after its account only carries no name evidence
    assert name_words("Horizonbase, Inc.", "Horizonbase Inc.") is None
    # periods are kept apart from the words
    assert name_words("Acme Renewal FY2026", "Acme") == (frozenset({"renewal"}), frozenset({"fy2026"}))


def test_the_same_deal_across_systems_links_despite_noise() -> None:
    sf = deal("sf1", "Horizonbase - New Business", account_name="Horizonbase Inc.")
    cases = {
        "punctuation": deal("hs1", "Horizonbase New Business", account_name="Horizonbase Inc.", system="hubspot"),
        "close moved a week": deal("hs2", "horizonbase: new business", account_name="Horizonbase Inc.",
                                   close="2026-07-07", system="hubspot"),
        "close moved a month": deal("hs3", "Horizonbase New Business", account_name="Horizonbase Inc.",
                                    close="2026-07-31", system="hubspot"),
        "amount changed a little": deal("hs4", "Horizonbase - New Business", account_name="Horizonbase Inc.",
                                        amount="121500", system="hubspot"),
        "stage moved on": deal("hs5", "Horizonbase - New Business", account_name="Horizonbase Inc.",
                               stage="negotiation", system="hubspot"),
    }
    for why, other in cases.items():
        pair = score(sf, other)
        assert pair.probability >= 0.99, (why, pair)
        assert linked(match_opportunities([sf, other])) == {frozenset(("sf1", other["id"]))}, why


def test_renewal_and_new_business_of_one_account_stay_apart() -> None:
    new = deal("sf1", "Acme - New Business", amount="50000", close="2026-03-31")
    renewal = deal("hs1", "Acme - Renewal", type_="renewal", amount="60000", close="2026-03-31", system="hubspot")
    assert score(new, renewal).probability < 0.5
    # even with the same amount and close date, a different deal name and type never link
    same_money = {**renewal, "amount": "50000"}
    assert score(new, same_money).probability < 0.99
    assert linked(match_opportunities([new, same_money])) == set()


def test_two_yearly_renewals_stay_apart() -> None:
    y1 = deal("sf1", "Acme - Renewal", type_="renewal", stage="closed_won", close="2025-06-30")
    y2 = deal("hs1", "Acme - Renewal", type_="renewal", stage="negotiation", close="2026-06-30", system="hubspot")
    assert score(y1, y2).probability < 0.5
    # same stage, same amount, still a year apart: not linked, not even queued
    y2_won = {**y2, "stage": "closed_won"}
    result = match_opportunities([y1, y2_won])
    assert linked(result) == set() and queued(result) == set()
    # the period in the name says so too, with close dates only a quarter apart
    fy = match_opportunities([deal("a", "Acme Renewal FY2025", close="2026-01-31"),
                              deal("b", "Acme Renewal FY2026", close="2026-04-30", system="hubspot")])
    assert linked(fy) == set() and queued(fy) == set()


def test_deals_of_different_accounts_never_match() -> None:
    a = deal("sf1", "Acme - New Business")
    b = deal("hs1", "Acme - New Business", account="acct-other", system="hubspot")
    assert score(a, b).probability == 0.0
    assert match_opportunities([a, b]).links == [] and match_opportunities([a, b]).review == []


def test_a_duplicate_within_one_system_links_only_when_near_certain() -> None:
    original = deal("sf1", "Acme - Expansion")
    copy = deal("sf2", "Acme - Expansion")
    assert linked(match_opportunities([original, copy])) == {frozenset(("sf1", "sf2"))}
    moved = deal("sf3", "Acme - Expansion", close="2026-07-14")
    result = match_opportunities([original, moved])
    assert linked(result) == set() and queued(result) == {frozenset(("sf1", "sf3"))}
    # the same pair across systems is linked
    assert linked(match_opportunities([original, {**moved, "systems": ["hubspot"]}])) == {frozenset(("sf1", "sf3"))}


def test_a_deal_entered_twice_in_one_system_links_by_its_records_not_its_reconciled_values() -> None:
    """The entity of a HubSpot deal and its Salesforce copy shows Salesforce's close date
    (moved two months); HubSpot also holds the deal a second time, an exact copy of its
    first record. Compared as their HubSpot records the two are one deal."""
    hs_first = {"system": "hubspot", "name": "Acme Expansion", "close_date": "2026-07-05", "amount": "133000"}
    both = {**deal("e1", "Acme - Expansion", close="2026-09-02", amount="133000"), "systems": ["hubspot", "salesforce"],
            "copies": [hs_first, {"system": "salesforce", "name": "Acme - Expansion", "close_date": "2026-09-02",
                                  "amount": "133000"}]}
    twice = {**deal("e2", "Acme Expansion", close="2026-07-05", amount="133000", system="hubspot"),
             "copies": [{**hs_first, "name": "Acme - Expansion"}]}
    result = match_opportunities([both, twice])
    assert linked(result) == {frozenset(("e1", "e2"))}
    assert result.links[0].evidence["copy"] == "the same deal twice in hubspot"
    # without the copies the reconciled close dates differ: doubtful, queued
    bare = [{k: v for k, v in r.items() if k != "copies"} for r in (both, twice)]
    assert linked(match_opportunities(bare)) == set()


def test_two_deals_of_one_name_and_day_in_one_system_are_not_copies() -> None:
    """Two Salesforce deals of one name closing the same day but of other amounts are
    two deals: however high their score, one system's records link only as copies."""
    a = deal("sf1", "Acme - Add-on Seats", amount="237000", close="2024-12-19")
    b = deal("sf2", "Acme - Add-on Seats", amount="272000", close="2024-12-19")
    pair = score(a, b)
    assert pair.probability >= 0.998  # near-certain by the score alone
    result = match_opportunities([a, b])
    assert linked(result) == set() and queued(result) == {frozenset(("sf1", "sf2"))}


def test_a_copy_whose_amount_is_blank_links_in_its_system_unless_something_else_differs() -> None:
    """Issue #19 at 1,000 and 10,000 accounts: most deals kept apart were one system's
    duplicates whose amount is blank in one copy or both (a Salesforce deal entered twice
    before its amount was known; a HubSpot copy whose amount was never typed). With the
    same name, close day, stage and owner they are one deal; another stage, owner or a
    present but different amount keeps them a question for a person."""
    def hs(rid: str, **kw: Any) -> dict[str, Any]:
        record = deal(rid, "Acme Expansion", system="hubspot", **kw)
        return {**record, "copies": [{"system": "hubspot", "name": record["name"],
                                      "close_date": record["close_date"], "amount": record["amount"]}]}

    both_blank = match_opportunities([hs("h1", amount=None), hs("h2", amount=None)])
    assert linked(both_blank) == {frozenset(("h1", "h2"))}
    assert both_blank.links[0].evidence["amount"] == "missing" and "copy" in both_blank.links[0].evidence
    one_blank = match_opportunities([hs("h1", amount="133000"), hs("h2", amount=None)])
    assert linked(one_blank) == {frozenset(("h1", "h2"))}
    for other in ({"stage": "negotiation"}, {"owner": "al@seller.com"}, {"close": "2026-07-01"},
                  {"type_": "renewal"}):
        result = match_opportunities([hs("h1", amount="133000"), hs("h2", amount=None, **other)])
        assert linked(result) == set() and queued(result) == {frozenset(("h1", "h2"))}, other
    # two amounts typed and different: two deals, as before
    differ = match_opportunities([hs("h1", amount="133000"), hs("h2", amount="97000")])
    assert linked(differ) == set()


def test_cross_system_pairs_link_from_0_90_when_their_names_agree() -> None:
    """Across systems the scorer is cautious: the same words, a month apart, one amount
    missing, another owner score below 0.99 and are one deal; other names need 0.99."""
    sf = deal("sf1", "Acme - Pilot", amount=None, close="2026-03-04", stage="proposal", owner="al@seller.com")
    hs = deal("hs1", "Acme Pilot", amount="220000", close="2026-02-02", stage="proposal", system="hubspot")
    pair = score(sf, hs)
    assert 0.90 <= pair.probability < 0.99, pair
    assert linked(match_opportunities([sf, hs])) == {frozenset(("sf1", "hs1"))}
    assert linked(match_opportunities([sf, hs], options=Options(auto_link=0.99))) == set()


def test_cross_system_links_never_put_two_records_of_one_system_together() -> None:
    sf_a = deal("sf-a", "Acme - Expansion", close="2026-06-30")
    sf_b = deal("sf-b", "Acme - Expansion", close="2026-07-10")  # a second Salesforce deal
    hs = deal("hs", "Acme Expansion", close="2026-07-03", system="hubspot")
    result = match_opportunities([sf_a, sf_b, hs], options=Options(auto_link=0.9))
    clusters = result.clusters
    assert len(clusters) == 1 and "hs" in clusters[0] and len(clusters[0]) == 2
    assert any({"hs", x} == set(p) for p in queued(result) for x in ("sf-a", "sf-b"))


def test_a_deal_without_an_account_is_placed_by_its_name() -> None:
    sf = deal("sf1", "Ember Industries - Pilot", account="acct-ember", account_name="Ember Industries Co.")
    hs = deal("hs1", "Ember Industries Pilot", account=None, account_name=None, system="hubspot")
    other = deal("sf2", "Ember Shipping - Pilot", account="acct-ship", account_name="Ember Shipping LLC")
    result = match_opportunities([sf, hs, other])
    assert linked(result) == {frozenset(("sf1", "hs1"))}
    assert result.links[0].evidence["account"] == "read from the deal name"
    index = AccountIndex()
    index.add("acct-ember", "Ember Industries Co.")
    index.add("acct-emb", "Ember")
    assert index.infer("Ember Industries - Pilot") == ["acct-ember"]  # the longest name wins
    assert index.infer("Ember") == []  # nothing left for the deal itself
    index.add("acct-mer", "Meridian Manufacturing S.A.")
    index.add("acct-mern", "Meridiannest Manufacturing AG")
    assert index.infer("Meridian Manufacturing - New Business") == ["acct-mer"]  # the closer name wins
    index.add("acct-lant", "Laaternyard Ltd")  # a typo in the first letters
    assert index.infer("Lanternyard - Services") == ["acct-lant"]
    assert index.infer("Lumen - Pilot") == []  # no such account


def test_a_deal_whose_name_fits_two_accounts_joins_neither_blindly() -> None:
    one = deal("sf1", "Vanguardmark - Renewal", account="acct-1", account_name="Vanguardmark", type_="renewal",
               amount="80000", close="2026-02-28")
    two = deal("sf2", "Vanguardmark - Renewal", account="acct-2", account_name="Vanguardmark Inc", type_="renewal",
               amount="80000", close="2026-02-28")
    orphan = deal("hs1", "Vanguardmark Renewal", account=None, account_name=None, type_="renewal",
                  amount="80000", close="2026-02-28", system="hubspot")
    result = match_opportunities([one, two, orphan])
    # it fits both accounts' deals equally: one link at most, never both accounts fused
    assert all(len(c) == 2 for c in result.clusters) and len(result.clusters) <= 1
    # when only one account's deal fits, it links there
    near = {**two, "amount": "15000", "close": "2025-01-31", "close_date": "2025-01-31"}
    assert linked(match_opportunities([one, near, orphan])) == {frozenset(("sf1", "hs1"))}


def test_rejected_pairs_and_incremental_scope() -> None:
    a, b = deal("sf1", "Acme - Pilot"), deal("hs1", "Acme Pilot", system="hubspot")
    c = deal("sf2", "Acme - Services", amount="9000", close="2025-01-31")
    assert match_opportunities([a, b], rejected=[("hs1", "sf1")]).links == []
    # incremental: only pairs with a new record are scored
    assert match_opportunities([a, b, c], new_ids=["sf2"]).links == []
    assert linked(match_opportunities([a, b, c], new_ids=["hs1"])) == {frozenset(("sf1", "hs1"))}


# --------------------------------------------------------------------------- in the store


@pytest.fixture
def world(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    store = st.Store.from_url(url)

    def runner() -> Runner:
        conns = {"salesforce": Connection("salesforce", "salesforce", sf),
                 "hubspot": Connection("hubspot", "hubspot", hs)}
        return Runner(store, conns, parse({}), now=clock)

    acct = sf.add("Account", {"Name": "Horizonbase Inc.", "Website": "horizonbase.com"})
    comp = hs.add("companies", {"name": "Horizonbase", "domain": "horizonbase.com"})
    ann = sf.add("Contact", {"FirstName": "Ann", "LastName": "Lee", "Email": "ann@horizonbase.com",
                             "AccountId": acct}, assoc={"account": (acct,)})
    ben = hs.add("contacts", {"firstname": "Ben", "lastname": "Ode", "email": "ben@horizonbase.com"},
                 assoc={"account": (comp,)})
    # one deal in both systems: the name differs beyond tier 1's exact key, the close
    # date moved a week; each system names a different contact role
    opp = sf.add("Opportunity", {"Name": "Horizonbase - New Business", "StageName": "Proposal/Price Quote",
                                 "CloseDate": "2026-06-30", "Amount": 120000, "Type": "New Customer",
                                 "AccountId": acct}, assoc={"account": (acct,), "contact": (ann,)})
    hs.add("deals", {"dealname": "Horizonbase Inc. New Business", "dealstage": "presentationscheduled",
                     "closedate": "2026-07-07T00:00:00Z", "amount": "120000", "dealtype": "newbusiness"},
           assoc={"account": (comp,), "contact": (ben,)})
    # two yearly renewals of the same account in Salesforce: two deals
    for close, stage in (("2025-03-31", "Closed Won"), ("2026-03-31", "Negotiation/Review")):
        sf.add("Opportunity", {"Name": "Horizonbase - Renewal", "StageName": stage, "CloseDate": close,
                               "Amount": 90000, "Type": "Existing Customer - Replacement", "AccountId": acct},
               assoc={"account": (acct,)})
    return store, clock, sf, hs, runner, opp


def _opportunity_entities(store: st.Store) -> dict[str, set[str]]:
    """canonical id → remote ids of its records."""
    with store.session() as s:
        out: dict[str, set[str]] = {}
        for ref in s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.object_type == "opportunity")):
            out.setdefault(ref.canonical_id, set()).add(ref.remote_id)
        return out


def _remote_ids(store: st.Store, contact_id: str, system: str) -> set[str]:
    with store.session() as s:
        return set(s.scalars(select(st.ExternalRefRow.remote_id).where(
            st.ExternalRefRow.canonical_id == contact_id, st.ExternalRefRow.system == system)))


def _contact_id(store: st.Store, email: str) -> str:
    with store.session() as s:
        return s.scalars(select(st.ContactRow.id).where(st.ContactRow.email == email)).one()


def test_a_sync_links_the_deal_across_systems_and_undo_restores_it(world) -> None:
    store, clock, sf, hs, runner, opp = world
    report = runner().run_cycle()
    assert report.status == "ok"
    assert report.entities["opportunity"] == 3  # the new-business deal once, the two renewals apart
    entities = _opportunity_entities(store)
    deal_id = next(cid for cid, rids in entities.items() if opp in rids)
    assert len(entities[deal_id]) == 2  # Salesforce's and HubSpot's records under one entity
    with store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow).where(st.MergeLedgerRow.object_type == "opportunity")).one()
        assert entry.survivor_id == deal_id and entry.policy == "link"
        pair = next(iter(entry.evidence.values()))
        assert pair["probability"] >= 0.99 and pair["close_date"] == "within a week"
        assert st.get_match_model(s, "opportunity") is not None
        # contact roles follow the link: both systems' roles on the one deal
        roles = st.opportunity_contacts(s, [deal_id])[deal_id]
    ann, ben = _contact_id(store, "ann@horizonbase.com"), _contact_id(store, "ben@horizonbase.com")
    assert set(roles) == {ann, ben}
    # … and the plan wrote them to both systems: each record now names both contacts
    sf_contact = next(iter(sf.live("Contact")))
    hs_contact = next(iter(hs.live("contacts")))
    hs_deal = next(iter(hs.live("deals")))
    assert set(sf.assoc["Opportunity"][opp]["contact"]) == {sf_contact, *_remote_ids(store, ben, "salesforce")}
    assert set(hs.assoc["deals"][hs_deal]["contact"]) == {hs_contact, *_remote_ids(store, ann, "hubspot")}

    # a quiet second cycle links nothing more
    clock.tick(60)
    again = runner().run_cycle()
    assert again.matched_links == 0 and again.entities["opportunity"] == 3

    out = Deduper(store, {}, now=clock).undo(entry.id)
    assert out["object"] == "opportunity" and out["restored"] == list(entry.merged_ids)
    loser = entry.merged_ids[0]
    with store.session() as s:
        assert s.get(st.OpportunityRow, loser).merged_into is None
        restored = st.opportunity_contacts(s, [deal_id, loser])
    # each deal keeps the roles its own records name (the systems were written to)
    assert restored == {deal_id: sorted([ann, ben]), loser: sorted([ann, ben])}
    assert len(_opportunity_entities(store)) == 4
    # never linked again: not by a batch run, not by the next cycle
    batch = Deduper(store, {}, now=clock).run_batch("opportunity")
    assert batch.links == 0 and batch.skipped_rejected == 0
    clock.tick(60)
    assert runner().run_cycle().entities["opportunity"] == 4


def test_deals_created_later_are_matched_incrementally(world) -> None:
    store, clock, sf, hs, runner, opp = world
    runner().run_cycle()  # every deal is now in both systems (created where missing)
    clock.tick(60)
    comp = next(iter(hs.live("companies")))
    with store.session() as s:
        deal_id = next(cid for cid, rids in _opportunity_entities(store).items() if opp in rids)
        agreed = s.get(st.OpportunityRow, deal_id).close_date.isoformat()
    # typed into HubSpot again later: an exact copy of the new-business deal, and a
    # renewal with its amount a little off
    copy = hs.add("deals", {"dealname": "Horizonbase - New Business", "dealstage": "presentationscheduled",
                            "closedate": f"{agreed}T00:00:00Z", "amount": "120000", "dealtype": "newbusiness"},
                  assoc={"account": (comp,)})
    hs.add("deals", {"dealname": "Horizonbase \u2013 Renewal", "dealstage": "decisionmakerboughtin",
                     "closedate": "2026-03-31T00:00:00Z", "amount": "90500", "dealtype": "renewal"},
           assoc={"account": (comp,)})
    report = runner().run_cycle()
    assert report.status == "ok" and report.matched_links == 1
    entities = _opportunity_entities(store)
    assert report.entities["opportunity"] == 4
    # the exact copy is near-certain: linked although HubSpot then holds two records of it
    assert any({opp, copy} <= rids for rids in entities.values())
    # the renewal copy shares a system with the open renewal: queued, never auto-linked
    open_renewal = next(rid for rid, rec in sf.live("Opportunity").items() if rec["CloseDate"] == "2026-03-31")
    open_id = next(cid for cid, rids in entities.items() if open_renewal in rids)
    with store.session() as s:
        queued_pairs = [(r.left_id, r.right_id) for r in st.review_rows(s, "opportunity")]
    assert len(queued_pairs) == 1 and open_id in queued_pairs[0]


def test_revsync_dedupe_object_opportunity(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app

    store, clock, sf, hs, runner, opp = world
    r = runner()
    r.settings = parse({"dedupe": {"enabled": False}})
    r.run_cycle(dry_run=True)  # entities in the store, nothing matched nor written yet
    assert len(_opportunity_entities(store)) == 4
    cfg = tmp_path / "revsync.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "o.db"}"\n', encoding="utf-8")
    cli = CliRunner()
    dry = cli.invoke(app, ["--config", str(cfg), "dedupe", "--object", "opportunity", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)["objects"][0]
    assert planned["object_type"] == "opportunity" and planned["links"] == 1 and planned["merge_ids"] == []
    done = cli.invoke(app, ["--config", str(cfg), "dedupe", "--object", "opportunity", "--json"])
    assert done.exit_code == 0, done.output
    made = json.loads(done.output)["objects"][0]
    assert made["links"] == 1 and len(made["merge_ids"]) == 1
    assert len(_opportunity_entities(store)) == 3
    ann, ben = _contact_id(store, "ann@horizonbase.com"), _contact_id(store, "ben@horizonbase.com")
    with store.session() as s:
        entry = s.get(st.MergeLedgerRow, made["merge_ids"][0])
        survivor, loser = entry.survivor_id, entry.merged_ids[0]
        # the contact roles follow the link at once, before any reconcile
        assert st.opportunity_contacts(s, [survivor, loser])[survivor] == sorted([ann, ben])
    undo = cli.invoke(app, ["--config", str(cfg), "dedupe", "undo", str(made["merge_ids"][0]), "--json"])
    assert undo.exit_code == 0, undo.output
    assert len(_opportunity_entities(store)) == 4
    with store.session() as s:
        roles = st.opportunity_contacts(s, [survivor, loser])
    # nothing was written to the systems: each deal is back to its own record's role
    sf_deal_is_survivor = opp in _opportunity_entities(store)[survivor]
    assert roles == ({survivor: [ann], loser: [ben]} if sf_deal_is_survivor else {survivor: [ben], loser: [ann]})


def test_a_later_deal_without_an_account_is_placed_by_its_name(world) -> None:
    store, clock, sf, hs, runner, opp = world
    runner().run_cycle(dry_run=True)  # matched and kept; nothing written: each deal in one system
    clock.tick(60)
    # a HubSpot deal with no company, pulled without matching
    rid = hs.add("deals", {"dealname": "HORIZONBASE INC - renewal", "dealstage": "decisionmakerboughtin",
                           "closedate": "2026-03-31T00:00:00Z", "amount": "90000", "dealtype": "renewal"})
    quiet = runner()
    quiet.settings = parse({"dedupe": {"enabled": False}})
    quiet.run_cycle(dry_run=True)
    new_id = next(cid for cid, rids in _opportunity_entities(store).items() if rid in rids)
    # incremental: only the new deal is scored, against every account its name may fit
    report = Deduper(store, {}, now=clock).run_incremental("opportunity", [new_id])
    assert report.mode == "incremental" and report.links == 1
    open_renewal = next(x for x, rec in sf.live("Opportunity").items() if rec["CloseDate"] == "2026-03-31")
    assert any({rid, open_renewal} <= rids for rids in _opportunity_entities(store).values())


def test_accepting_a_queued_deal_pair_links_it_with_its_contact_roles(world) -> None:
    store, clock, sf, hs, runner, opp = world
    quiet = runner()
    quiet.settings = parse({"dedupe": {"enabled": False}})
    quiet.run_cycle(dry_run=True)
    strict = Deduper(store, {"auto_link": 0.9999999, "review_from": 0.5}, now=clock)
    report = strict.run_batch("opportunity")
    assert report.links == 0 and report.review_added == 1  # the new-business pair, queued
    with store.session() as s:
        row = st.review_rows(s, "opportunity")[0]
        left, right, review_id = row.left_id, row.right_id, row.id
    done = strict.decide(review_id, True)
    assert done["state"] == "accepted" and done["merge_id"]
    ann, ben = _contact_id(store, "ann@horizonbase.com"), _contact_id(store, "ben@horizonbase.com")
    with store.session() as s:
        entry = s.get(st.MergeLedgerRow, done["merge_id"])
        assert {entry.survivor_id, *entry.merged_ids} == {left, right}
        assert st.opportunity_contacts(s, [entry.survivor_id])[entry.survivor_id] == sorted([ann, ben])

