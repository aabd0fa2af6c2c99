"""Tier 2 inside revsync: links with before-images, the review queue, undo, and the
matcher inside the cycle. The matcher itself is tested in test_dedupe*.py; here its
decisions are given, so what the store does with them is exact."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import sync.dedupe as dd
from mapping.canonical import ObjectType
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.match import Deduper
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    store = st.Store.from_url(url)
    settings = parse({})

    def runner() -> Runner:
        conns = {"salesforce": Connection("salesforce", "salesforce", sf),
                 "hubspot": Connection("hubspot", "hubspot", hs)}
        return Runner(store, conns, settings, now=clock)

    sf.add("Contact", {"FirstName": "Robert", "LastName": "Smith", "Email": "rob@acme.com", "Phone": "+14155550132"})
    hs.add("contacts", {"email": "bsmith@acme.com", "firstname": "Bob", "lastname": "Smith", "phone": "415 555 0132"})
    hs.add("contacts", {"email": "carol@acme.com", "firstname": "Carol", "lastname": "Jones"})
    return store, clock, sf, hs, runner


def _ids(store, email):
    with store.session() as s:
        return s.scalars(select(st.ContactRow.id).where(st.ContactRow.email == email)).one()


def fixed_matcher(monkeypatch, links=(), review=()):
    """The matcher's decisions, given as pairs of canonical ids."""

    def pair(a: str, b: str, p: float) -> dd.Pair:
        return dd.Pair(min(a, b), max(a, b), p, {"name": "nickname", "phone": "exact"})

    def fake(records, spec, *, options=None, model_json=None, train_records=None):
        return dd.MatchResult(links=[pair(a, b, 0.995) for a, b in links],
                              review=[pair(a, b, 0.9) for a, b in review],
                              clusters=[], warnings=[], model_json='{"model": "x"}')

    monkeypatch.setattr(dd, "match_records", fake)


def test_a_link_folds_two_entities_and_undo_restores_them(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    rob, bob = _ids(store, "rob@acme.com"), _ids(store, "bsmith@acme.com")
    fixed_matcher(monkeypatch, links=[(rob, bob)])
    d = Deduper(store, {}, now=clock)
    report = d.run_batch("contact")
    assert report.links == 1 and report.clusters == 1 and len(report.merge_ids) == 1
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(st.ContactRow).where(st.ContactRow.id.in_([rob, bob])))}
        merged = [r for r in rows.values() if r.merged_into]
        assert len(merged) == 1
        loser, survivor = merged[0].id, merged[0].merged_into
        refs = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.object_type == "contact")).all()
        assert {r.canonical_id for r in refs if r.remote_id in sf.live("Contact") | hs.live("contacts")
                and r.canonical_id in (rob, bob)} == {survivor}
        entry = s.get(st.MergeLedgerRow, report.merge_ids[0])
        assert entry.merged_ids == [loser] and entry.policy == "link"
        assert entry.before_images[loser]["refs"] and entry.evidence
    # the next cycle writes the agreed values to both remote records
    clock.tick(60)
    r = runner().run_cycle()
    assert r.entities["contact"] == 2
    bob_record = next(v for v in hs.live("contacts").values() if v["email"] == "bsmith@acme.com")
    assert bob_record["firstname"] == "Robert"  # one person now: Salesforce's first name wins everywhere

    out = d.undo(report.merge_ids[0])
    assert out["restored"] == [loser]
    with store.session() as s:
        assert s.get(st.ContactRow, loser).merged_into is None
        assert st.decided_pairs(s, "contact")[(min(rob, bob), max(rob, bob))] == "rejected"
        assert s.get(st.MergeLedgerRow, report.merge_ids[0]).undone_at is not None
    with pytest.raises(ValueError, match="already undone"):
        d.undo(report.merge_ids[0])
    # an undone pair is never linked again automatically
    again = d.run_batch("contact")
    assert again.links == 0 and again.skipped_rejected == 1


def test_review_queue_accept_and_reject(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    rob, bob, carol = (_ids(store, e) for e in ("rob@acme.com", "bsmith@acme.com", "carol@acme.com"))
    fixed_matcher(monkeypatch, review=[(rob, bob), (carol, rob)])
    d = Deduper(store, {}, now=clock)
    rep = d.run_batch("contact")
    assert rep.links == 0 and rep.review_added == 2 and rep.review_open == 2
    assert d.run_batch("contact").review_added == 0  # a pair is queued once
    with store.session() as s:
        rows = st.review_rows(s, "contact")
        first, second = rows[0].id, rows[1].id
    accepted = d.decide(first, True)
    assert accepted["state"] == "accepted" and accepted["merge_id"]
    assert d.decide(second, False)["state"] == "rejected"
    with pytest.raises(ValueError, match="already accepted"):
        d.decide(first, False)
    with pytest.raises(LookupError):
        d.decide(9999, True)
    with store.session() as s:
        assert st.review_rows(s, "contact") == []
        assert st.entity_counts(s)["contact"] == 2


def test_dry_run_links_nothing(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    fixed_matcher(monkeypatch, links=[(_ids(store, "rob@acme.com"), _ids(store, "bsmith@acme.com"))])
    rep = Deduper(store, {}, now=clock).run_batch("contact", dry_run=True)
    assert rep.links == 1 and len(rep.planned_clusters) == 1 and rep.merge_ids == []
    with store.session() as s:
        assert st.entity_counts(s)["contact"] == 3 and st.get_match_model(s, "contact") is None


def test_the_cycle_runs_the_real_matcher_and_keeps_its_model(world) -> None:
    store, clock, sf, hs, runner = world
    r = runner().run_cycle()
    assert r.status == "ok"
    with store.session() as s:
        assert st.get_match_model(s, "contact") is not None  # first cycle: a batch run
    clock.tick(60)
    hs.add("contacts", {"email": "dan@acme.com", "firstname": "Dan", "lastname": "Brown"})
    r2 = runner().run_cycle()  # incremental: only Dan is scored against the stored contacts
    assert r2.status == "ok" and r2.new_entities == 1


def test_dedupe_can_be_switched_off(world) -> None:
    store, clock, sf, hs, runner = world
    r = runner()
    r.settings = parse({"dedupe": {"enabled": False}})
    r.run_cycle()
    with store.session() as s:
        assert st.get_match_model(s, "contact") is None


def test_dedupe_config_is_validated() -> None:
    from sync.config import ConfigError

    with pytest.raises(ConfigError, match=r"dedupe\.review_from: must not be above"):
        parse({"dedupe": {"auto_link": 0.9, "review_from": 0.95}})
    with pytest.raises(ConfigError, match=r"dedupe\.threshold: unknown key"):
        parse({"dedupe": {"threshold": 0.9}})


def test_link_marks_dependents_dirty(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    with store.session() as s:
        ids = [r.id for r in s.scalars(select(st.ContactRow))][:2]
        merge_id = st.link_entities(s, ObjectType.CONTACT.value, ids, evidence={}, run_id=None, now=clock())
        assert merge_id is not None
        rows = {i: s.get(st.ContactRow, i) for i in ids}
        survivor = next(r for r in rows.values() if r.merged_into is None)
        loser = next(r for r in rows.values() if r.merged_into is not None)
        assert survivor.dirty and not loser.dirty  # the survivor is re-decided next cycle


def test_run_pending_matches_whatever_a_dead_run_left_unmatched(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()  # as if the run died before matching: entities exist, no model
    d = Deduper(store, {}, now=clock)
    first = d.run_pending("contact")
    assert first.mode == "batch" and first.records == 3
    clock.tick(60)
    hs.add("contacts", {"email": "eve@acme.com", "firstname": "Eve", "lastname": "Stone"})
    runner().run_cycle()
    second = d.run_pending("contact")
    assert second.mode == "incremental" and second.records == 1  # only what is new since
    clock.tick(60)
    assert d.run_pending("contact").records == 0


def _content_matcher(monkeypatch, calls: list[dict] | None = None, weak: bool = False, link: bool = True):
    """A matcher that links contacts sharing a last name (decided on the records it is
    given, as the real one is); records the arguments of each call."""
    import json

    def fake(records, spec, *, options=None, model_json=None, train_records=None):
        records = list(records)
        if calls is not None:
            calls.append({"records": records, "model_json": model_json, "train_records": train_records})
        by_last: dict[str, list[str]] = {}
        for r in records:
            if r.get("last_name"):
                by_last.setdefault(r["last_name"], []).append(str(r["id"]))
        links = [dd.Pair(min(a, b), max(a, b), 0.999, {"name": "last exact"})
                 for ids in by_last.values() for i, a in enumerate(ids) for b in ids[i + 1:] if link]
        model = model_json or json.dumps({"revsync": {"weak": weak, "trained_on": len(train_records or [])}})
        return dd.MatchResult(links=links, review=[], clusters=[], warnings=[], model_json=model)

    monkeypatch.setattr(dd, "match_records", fake)


def test_the_cycle_matches_reconciled_entities_and_withdraws_the_plan_of_those_folded_away(world, monkeypatch):
    store, clock, sf, hs, runner = world
    calls: list[dict] = []
    _content_matcher(monkeypatch, calls)
    r = runner().run_cycle()
    assert r.status == "ok" and r.matched_links == 1
    # the matcher saw the reconciled entities (names), not only the emails a pull leaves
    assert {(c["first_name"], c["last_name"]) for c in calls[0]["records"]} == {
        ("Robert", "Smith"), ("Bob", "Smith"), ("Carol", "Jones")}
    # trained on the systems' records (one per remote record), not on the entities
    assert len(calls[0]["train_records"]) == 3
    # Robert (Salesforce) and Bob (HubSpot) are one person now: neither is created in
    # the other system (their plans were withdrawn); only Carol is created in Salesforce
    # (Salesforce's email wins for the one person, in HubSpot too)
    assert sorted(v["email"] for v in hs.live("contacts").values()) == ["carol@acme.com", "rob@acme.com"]
    assert sorted(v.get("Email") for v in sf.live("Contact").values()) == ["carol@acme.com", "rob@acme.com"]
    assert r.planned.get("hubspot", {}).get("create", 0) == 0
    with store.session() as s:
        assert sum(st.pending_counts(s).values()) == 0
    clock.tick(60)
    assert runner().run_cycle().writes == 0  # quiet afterwards


def test_the_model_is_retrained_when_weak_outgrown_or_asked(world, monkeypatch) -> None:
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    calls: list[dict] = []
    _content_matcher(monkeypatch, calls, weak=True, link=False)
    d = Deduper(store, {}, now=clock)
    incremental: list[list[str]] = []
    monkeypatch.setattr(Deduper, "run_incremental",
                        lambda self, ot, ids: incremental.append(list(ids)) or dd_report(ot))
    assert d.run_pending("contact").trained  # no model yet: batch, trained
    assert d.retrain_reason("contact") is None  # weak, but the store has not grown since
    for i in range(2):  # 3 → 5 contacts: more than 1.1 x 3 + 1, less than 2 x 3
        clock.tick(60)
        hs.add("contacts", {"email": f"p{i}@acme.com", "firstname": f"P{i}", "lastname": f"Q{i}"})
    runner().run_cycle()
    assert "too little" in (d.retrain_reason("contact") or "")
    rep = d.run_pending("contact")  # weak and grown: retrained on everything, all re-scored
    assert rep.mode == "batch" and rep.trained and calls[-1]["model_json"] is None
    assert len(calls[-1]["records"]) == 5 and not incremental

    _content_matcher(monkeypatch, calls, weak=False, link=False)
    assert d.run_batch("contact", retrain=True).trained  # --retrain: a sound model now
    clock.tick(60)
    hs.add("contacts", {"email": "z@acme.com", "firstname": "Zoe", "lastname": "Zed"})
    runner().run_cycle()
    d.run_pending("contact")  # 6 < 2 x 5: the kept model scores only the new one
    assert len(incremental) == 1 and len(incremental[0]) == 1
    rep = d.run_batch("contact")  # `revsync dedupe`: the kept model, not retrained
    assert not rep.trained and calls[-1]["model_json"] is not None and calls[-1]["train_records"] is None
    for i in range(5):  # 6 → 11 >= 2 x 5
        clock.tick(60)
        hs.add("contacts", {"email": f"g{i}@acme.com", "firstname": f"G{i}", "lastname": f"H{i}"})
    runner().run_cycle()
    assert "grew" in (d.retrain_reason("contact") or "")
    rep = d.run_pending("contact")
    assert rep.mode == "batch" and rep.trained and len(calls[-1]["records"]) == 11


def dd_report(ot: str):
    from sync.match import DedupeReport

    return DedupeReport(ot, "incremental")


def test_thresholds_are_per_object_and_configurable() -> None:
    from sync.config import ConfigError
    from sync.match import _options

    assert (_options({}, "account").review_from, _options({}, "contact").review_from) == (0.90, 0.80)
    cfg = parse({"dedupe": {"auto_link": 0.995, "contact": {"review_from": 0.7}}}).dedupe
    assert (_options(cfg, "contact").auto_link, _options(cfg, "contact").review_from) == (0.995, 0.7)
    assert (_options(cfg, "account").auto_link, _options(cfg, "account").review_from) == (0.995, 0.90)
    with pytest.raises(ConfigError, match=r"dedupe\.account\.threshold: unknown key"):
        parse({"dedupe": {"account": {"threshold": 0.9}}})
    with pytest.raises(ConfigError, match=r"dedupe\.contact\.review_from: must not be above"):
        parse({"dedupe": {"contact": {"auto_link": 0.9, "review_from": 0.95}}})


def test_the_survivor_of_a_link_is_the_entity_whose_id_its_records_carry(world, monkeypatch) -> None:
    """A store rebuilt from the systems makes entities in another order: the survivor
    must still be the entity whose revsync id the systems hold, not the oldest."""
    store, clock, sf, hs, runner = world
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    runner().run_cycle()
    with store.session() as s:
        rows = sorted(s.scalars(select(st.ContactRow)), key=lambda r: (r.created_at, r.id))[:2]
        older, younger = rows[0].id, rows[1].id
        ref = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.canonical_id == younger)).first()
        ref.revsync_id = younger  # the younger entity's id is the one a system carries
        for other in s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.canonical_id == older)):
            other.revsync_id = None
        s.flush()
        st.link_entities(s, ObjectType.CONTACT.value, [older, younger], evidence={}, run_id=None, now=clock())
        assert s.get(st.ContactRow, younger).merged_into is None
        assert s.get(st.ContactRow, older).merged_into == younger


def test_a_link_of_a_parent_account_re_decides_its_subsidiaries(world) -> None:
    """Two records of one parent company linked by tier 2: the subsidiary whose parent was
    the merged-away entity is marked for re-decision (its parent becomes the survivor),
    or it would ask every system for a parent that no longer exists."""
    store, clock, _sf, _hs, _runner = world
    with store.session() as s:
        now = clock()
        a, b, child = (st.AccountRow(id=f"00000000-0000-4000-8000-00000000000{i}", name=n, dirty=False,
                                     created_at=now, updated_at=now)
                       for i, n in enumerate(("Fjord Group", "Fjord Group AS", "Fjord Shipping")))
        child.parent_id = b.id
        s.add_all([a, b, child])
        s.flush()
        st.link_entities(s, ObjectType.ACCOUNT.value, [a.id, b.id], evidence={}, run_id=None, now=clock(),
                         survivor_id=a.id)
        s.flush()
        s.refresh(child)
        assert b.merged_into == a.id
        assert child.dirty is True
