"""Policy ``merge`` and merges reported by the systems, with fake connectors (exact
control over what each system holds; the real HubSpot merge is in
tests/integration/test_e2e_merge.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.match import Deduper
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector
from tests.sync.test_matching import fixed_matcher


class World:
    def __init__(self, tmp_path: Any, raw: dict[str, Any]) -> None:
        url = f"sqlite:///{tmp_path / 'm.db'}"
        upgrade(url)
        self.clock = Clock()
        self.sf, self.hs = FakeConnector("salesforce", self.clock), FakeConnector("hubspot", self.clock)
        self.hs.mergeable = frozenset({"contacts"})  # as HubSpotConnector declares
        self.store = st.Store.from_url(url)
        self.settings = parse(raw)

    def runner(self) -> Runner:
        conns = {"salesforce": Connection("salesforce", "salesforce", self.sf),
                 "hubspot": Connection("hubspot", "hubspot", self.hs)}
        return Runner(self.store, conns, self.settings, now=self.clock)

    def deduper(self) -> Deduper:
        return Deduper(self.store, {}, now=self.clock, policies=self.settings.policies)

    def entity(self, email: str) -> str:
        with self.store.session() as s:
            return s.scalars(select(st.ContactRow.id).where(st.ContactRow.email == email,
                                                            st.ContactRow.merged_into.is_(None))).one()

    def quiet(self, cycles: int = 4) -> list[Any]:
        reports = []
        for _ in range(cycles):
            self.clock.tick(60)
            reports.append(self.runner().run_cycle())
            if reports[-1].writes == 0:
                break
        return reports


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    w = World(tmp_path, {"policies": {"contact": {"merges": "merge", "create_in": ["hubspot"]}},
                         "limits": {"max_merges": 0}})
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    w.rob = w.hs.add("contacts", {"email": "rob@acme.com", "firstname": "Robert", "lastname": "Smith"})
    w.bob = w.hs.add("contacts", {"email": "bsmith@acme.com", "firstname": "Bob", "lastname": "Smith",
                                  "jobtitle": "CFO"})
    w.runner().run_cycle(force=True)
    return w


def _link(w: World, monkeypatch) -> int:
    fixed_matcher(monkeypatch, links=[(w.entity("rob@acme.com"), w.entity("bsmith@acme.com"))])
    report = w.deduper().run_batch("contact")
    assert len(report.merge_ids) == 1
    return report.merge_ids[0]


def test_a_merge_is_planned_capped_then_pushed_with_the_email_holder_as_primary(world, monkeypatch) -> None:
    w = world
    merge_id = _link(w, monkeypatch)
    with w.store.session() as s:
        entry = s.get(st.MergeLedgerRow, merge_id)
        assert entry.policy == "merge"
        survivor_id = entry.survivor_id
    w.clock.tick(60)
    stopped = w.runner().run_cycle()
    # the whole plan is checked against limits.max_merges before anything is written
    assert stopped.status == "stopped" and "merges planned, over the cap of 0" in stopped.messages[0]
    assert w.hs.merges == []
    w.clock.tick(60)
    done = w.runner().run_cycle(force=True)
    assert done.written["hubspot"] == 1 and done.status == "ok"
    [(native, primary, others)] = w.hs.merges
    with w.store.session() as s:
        agreed = s.get(st.ContactRow, survivor_id).email  # decided by the resolve that planned it
    holder = w.rob if agreed == "rob@acme.com" else w.bob
    assert native == "contacts" and primary == holder and set(others) == {w.rob, w.bob} - {holder}
    [new] = w.hs.live("contacts")
    with w.store.session() as s:
        entry = s.get(st.MergeLedgerRow, merge_id)
        [remote] = entry.remote_results["hubspot"]
        assert remote["into"] == new and set(remote["before"]) == {w.rob, w.bob}
        assert remote["before"][w.bob]["fields"]["title"] == "CFO"
        refs = {r.remote_id: r for r in s.scalars(select(st.ExternalRefRow).where(
            st.ExternalRefRow.system == "hubspot", st.ExternalRefRow.object_type == "contact"))}
        assert refs[new].canonical_id == entry.survivor_id and refs[new].deleted_at is None
        assert refs[w.rob].merged_into == new and refs[w.bob].merged_into == new
    reports = w.quiet()
    assert reports[-1].writes == 0 and len(w.hs.merges) == 1 and len(w.hs.live("contacts")) == 1


def test_undo_withdraws_a_merge_not_pushed_yet(world, monkeypatch) -> None:
    w = world
    merge_id = _link(w, monkeypatch)
    w.clock.tick(60)
    w.runner().run_cycle(dry_run=True)  # planned, not written
    with w.store.session() as s:
        assert [r.kind for r in st.list_pending(s)] == ["merge"]
    out = w.deduper().undo(merge_id)
    assert out["remote"] == {}  # nothing had been merged remotely
    with w.store.session() as s:
        assert [r.kind for r in st.list_pending(s)] == []
    w.settings = parse({"policies": {"contact": {"merges": "merge", "create_in": ["hubspot"]}}})
    w.quiet()
    assert w.hs.merges == [] and len(w.hs.live("contacts")) == 2


def test_after_undo_of_a_pushed_merge_the_restored_entity_lives_and_is_not_recreated(world, monkeypatch) -> None:
    w = world
    merge_id = _link(w, monkeypatch)
    w.clock.tick(60)
    w.runner().run_cycle(force=True)
    w.quiet()
    with w.store.session() as s:
        loser = s.get(st.MergeLedgerRow, merge_id).merged_ids[0]
    out = w.deduper().undo(merge_id)
    assert "cannot unmerge" in out["remote"]["hubspot"][0]
    reports = w.quiet()
    assert reports[-1].writes == 0 and len(w.hs.live("contacts")) == 1
    with w.store.session() as s:
        row = s.get(st.ContactRow, loser)
        # its only record was merged away: not deleted, not re-created in HubSpot
        assert row.deleted_at is None and row.merged_into is None
        live = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.canonical_id == loser,
                                                         st.ExternalRefRow.deleted_at.is_(None))).all()
        assert live == []


def test_a_converted_lead_links_its_entity_to_the_contact(tmp_path, monkeypatch) -> None:
    w = World(tmp_path, {})
    monkeypatch.setattr("sync.match.Deduper.enabled", property(lambda self: False))
    lead = w.sf.add("Lead", {"FirstName": "Jo", "LastName": "Park", "Email": "jo@old-firm.com", "Company": "Old"})
    contact = w.sf.add("Contact", {"FirstName": "Jo", "LastName": "Park", "Email": "jo@new-firm.com"})
    w.runner().run_cycle(force=True)
    a, b = w.entity("jo@old-firm.com"), w.entity("jo@new-firm.com")
    assert a != b
    w.sf.delete("Lead", lead, merged_into=contact)  # converted: Salesforce reports it merged
    reports = w.quiet()
    assert reports[0].remote_merges == 1
    with w.store.session() as s:
        entry = s.scalars(select(st.MergeLedgerRow)).one()
        assert entry.survivor_id == b and entry.merged_ids == [a] and entry.policy == "link"
        assert next(iter(entry.evidence.values())) == {
            "merged_in": "salesforce", "record": f"Lead/{lead}", "into": f"Contact/{contact}"}
    # undone by an admin: stays apart, even though Salesforce still reports the merge
    w.deduper().undo(entry.id)
    assert w.quiet()[0].remote_merges == 0
    with w.store.session() as s:
        assert s.get(st.ContactRow, a).merged_into is None
