"""Account hierarchies: the pure checks, then the engine on SQLite with fake connectors.

The fakes carry a company's parent as a ``parent`` association (remote ids), as the
Salesforce (ParentId) and HubSpot (company → company type 14) connectors do.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sync import hierarchy
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.link import pick_account
from sync.migrate import upgrade
from sync.push import parent_waves
from tests.sync.fakes import Clock, FakeConnector

# ---------------------------------------------------------------- pure checks


def test_a_parent_gone_from_a_record_is_kept_as_an_explicit_removal() -> None:
    # the connector read the parent field and it names none: removed, if there was one
    assert hierarchy.with_removal({"parent": ["P1"]}, {"parent": []}) == {"parent": []}
    assert hierarchy.with_removal({"parent": ["P1"]}, {"parent": ["P2"]}) == {"parent": ["P2"]}
    # a record that never had one, or whose removal was already seen, says nothing new
    assert hierarchy.with_removal({}, {"parent": []}) == {}
    assert hierarchy.with_removal(None, {"account": ["A"], "parent": []}) == {"account": ["A"]}
    assert hierarchy.with_removal({"parent": []}, {"parent": []}) == {}
    # a connector that did not read the parent (field absent) removes nothing
    assert hierarchy.with_removal({"parent": ["P1"]}, {}) == {}
    assert hierarchy.removed_parent({"parent": []}) and not hierarchy.removed_parent({})
    assert not hierarchy.removed_parent({"parent": ["P"]}) and not hierarchy.removed_parent(None)


def test_a_removal_counts_as_a_value_only_where_a_record_removed_it() -> None:
    from datetime import datetime

    from sync.reconcile import Claim, Decision, FieldPolicy, _with_removals, decide

    policy = FieldPolicy(fields={"parent_id": "latest"})
    old, new, newer = datetime(2026, 1, 1), datetime(2026, 2, 1), datetime(2026, 3, 1)
    kept = Claim("hubspot", "h1", old, "P")
    removal = Claim("salesforce", "s1", new, None)
    blank = Claim("planhat", "p1", newer, None)  # never had a parent: claims nothing
    decided = decide("parent_id", [kept, removal, blank], policy, current="P")
    assert decided.value == "P"  # never_blank alone would keep the parent
    d = _with_removals([kept, removal, blank], [removal], policy, decided)
    assert (d.value, d.system, d.rule) == (None, "salesforce", "latest:removed")
    # a parent set after the removal wins over it
    later = Claim("hubspot", "h1", newer, "Q")
    assert _with_removals([later, removal], [removal], policy, decided).value == "Q"
    # under source_priority the ranked system's parent stands against a lower one's removal
    ranked = FieldPolicy(source_priority=("hubspot", "salesforce"))
    d = _with_removals([kept, removal], [removal], ranked, Decision("parent_id", "P", "source_priority"))
    assert d.value == "P"


def test_chain_lists_the_root_first_and_stops_at_a_loop() -> None:
    parents = {"e": "d", "d": "c", "c": "b", "b": "a", "a": None}
    assert hierarchy.chain("e", parents) == ["a", "b", "c", "d", "e"]
    assert hierarchy.chain("x", {"x": "y", "y": "x"}) == ["y", "x"]


@pytest.mark.parametrize(("cid", "parent", "kind"), [
    ("a", "a", "self"),
    ("a", "c", "cycle"),  # c → b → a: a under c closes the loop
    ("b", "c", "cycle"),
    ("a", "ghost", "missing"),
    ("a", "dead", "missing"),
])
def test_refusal_names_why_a_parent_cannot_be_set(cid: str, parent: str, kind: str) -> None:
    parents = {"a": None, "b": "a", "c": "b", "dead": None}
    live = {"a", "b", "c"}
    why = hierarchy.refusal(cid, parent, parents, live.__contains__)
    assert why is not None and why.kind == kind, why


def test_a_deep_chain_and_a_move_across_branches_pass() -> None:
    parents = {f"n{i}": (f"n{i - 1}" if i else None) for i in range(8)} | {"x": None}
    live = set(parents)
    assert hierarchy.refusal("n7", "n6", parents, live.__contains__) is None
    assert hierarchy.refusal("n3", "x", parents, live.__contains__) is None  # re-parenting a subtree
    assert hierarchy.refusal("x", "n7", parents, live.__contains__) is None
    assert hierarchy.refusal("n0", None, parents, live.__contains__) is None


def test_the_domain_key_never_links_a_subsidiary_into_its_parent() -> None:
    root = {"id": "root", "name": "Initech Holdings, Inc.", "sub": False}
    eu = {"id": "eu", "name": "Initech Europe GmbH", "sub": True}
    # the same name, legal forms aside, wins whatever the hierarchy says
    assert pick_account([root, eu], "INITECH EUROPE", sub=True) == "eu"
    assert pick_account([root, eu], "Initech Holdings", sub=False) == "root"
    # a record naming a parent links by name only: never into the parent
    assert pick_account([root], "Initech Asia Pte Ltd", sub=True) is None
    assert pick_account([root, eu], "Initech Asia", sub=True) is None
    # any other record: the oldest account that is not a subsidiary …
    assert pick_account([eu, root], "Initech", sub=False) == "root"
    # … or the one subsidiary owning the domain (its copy where no hierarchy is kept)
    assert pick_account([eu], "Initech Europe (DACH)", sub=False) == "eu"
    assert pick_account([eu, {**eu, "id": "eu2", "name": "Initech Nordics"}], "Initech", sub=False) is None


def test_parent_waves_put_parents_before_children() -> None:
    def item(cid: str, parent: str | None) -> tuple:
        return (0, "create", "Account", cid, None, {"associations": {"parent": [parent]} if parent else {}})

    items = [item("c", "b"), item("b", "a"), item("z", "outside"), item("a", None)]
    waves = parent_waves(items)
    order = [[it[3] for it in w] for w in waves]
    assert order == [["z", "a"], ["b"], ["c"]]
    # a cycle (refused upstream) does not loop forever
    assert sum(len(w) for w in parent_waves([item("p", "q"), item("q", "p")])) == 2


# ---------------------------------------------------------------- the engine


@pytest.fixture
def world(db_url: str):
    upgrade(db_url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    store = st.Store.from_url(db_url)

    def runner() -> Runner:
        conns = {"salesforce": Connection("salesforce", "salesforce", sf),
                 "hubspot": Connection("hubspot", "hubspot", hs)}
        return Runner(store, conns, parse({}), now=clock)

    return store, clock, sf, hs, runner


def _hs_by_name(hs: FakeConnector) -> dict[str, str]:
    return {rec["name"]: rid for rid, rec in hs.live("companies").items()}


def _sf_by_name(sf: FakeConnector) -> dict[str, str]:
    return {rec["Name"]: rid for rid, rec in sf.live("Account").items()}


def _parent(conn: FakeConnector, native: str, rid: str) -> str | None:
    return (conn.assoc[native].get(rid, {}).get("parent") or (None,))[0]


def _deep_chain(sf: FakeConnector, depth: int = 6) -> list[str]:
    """Salesforce accounts L0 ← L1 ← … (each the parent of the next), created children
    first so that a child's record is read before its parent's."""
    ids: list[str] = [""] * depth
    for i in range(depth):
        ids[i] = sf.add("Account", {"Name": f"Level {i} Holdings", "Website": f"https://level{i}.example.org"})
    for i in range(1, depth):
        sf.assoc["Account"][ids[i]]["parent"] = (ids[i - 1],)
    return ids


def test_a_deep_hierarchy_reaches_hubspot_with_hubspot_ids(world) -> None:
    store, clock, sf, hs, runner = world
    sf_ids = _deep_chain(sf)
    report = runner().run_cycle()
    assert report.status == "ok", report.messages
    clock.tick(120)
    runner().run_cycle()
    by_name = _hs_by_name(hs)
    for i in range(1, 6):
        child = by_name[f"Level {i} Holdings"]
        assert _parent(hs, "companies", child) == by_name[f"Level {i - 1} Holdings"], i
    assert _parent(hs, "companies", by_name["Level 0 Holdings"]) is None
    # canonical: the chain from the root, and provenance names the rule
    with store.session() as s:
        leaf = st.find_entity(s, f"salesforce:{sf_ids[5]}")
        assert leaf is not None
        chain = hierarchy.chain_of(s, leaf[1])
        assert [c["name"] for c in chain] == [f"Level {i} Holdings" for i in range(6)]
        prov = {p.field: p for p in st.provenance(s, "account", leaf[1])}
        assert prov["parent_id"].rule == "latest" and prov["parent_id"].system == "salesforce"
        assert hierarchy.summary(s) == {"with_parent": 5, "deepest": 6, "refused": 0}
    # a third cycle writes nothing: the parent links read back are echoes
    calls = (sf.write_calls, hs.write_calls)
    clock.tick(120)
    runner().run_cycle()
    assert (sf.write_calls, hs.write_calls) == calls


def test_re_parenting_in_hubspot_moves_the_account_in_salesforce(world) -> None:
    store, clock, sf, hs, runner = world
    sf_ids = _deep_chain(sf, 3)
    other = sf.add("Account", {"Name": "Other Group", "Website": "https://other-group.example.net"})
    runner().run_cycle()
    clock.tick(120)
    runner().run_cycle()
    by_name = _hs_by_name(hs)
    # someone moves Level 2 under Other Group in HubSpot
    clock.tick(60)
    hs.assoc["companies"][by_name["Level 2 Holdings"]]["parent"] = (by_name["Other Group"],)
    hs.edit("companies", by_name["Level 2 Holdings"])
    clock.tick(60)
    runner().run_cycle()
    assert _parent(sf, "Account", sf_ids[2]) == other
    assert _parent(sf, "Account", sf_ids[1]) == sf_ids[0]  # the rest stays


def test_a_cycle_is_refused_never_written_and_ledgered(world) -> None:
    store, clock, sf, hs, runner = world
    sf_ids = _deep_chain(sf, 3)
    runner().run_cycle()
    clock.tick(120)
    runner().run_cycle()
    by_name = _hs_by_name(hs)
    # HubSpot puts the root under its own grandchild: L0 → L2 → L1 → L0
    clock.tick(60)
    hs.assoc["companies"][by_name["Level 0 Holdings"]]["parent"] = (by_name["Level 2 Holdings"],)
    hs.edit("companies", by_name["Level 0 Holdings"])
    clock.tick(60)
    runner().run_cycle()
    assert _parent(sf, "Account", sf_ids[0]) is None  # never written to Salesforce
    with store.session() as s:
        root = st.find_entity(s, f"salesforce:{sf_ids[0]}")
        assert root is not None
        row = s.get(st.AccountRow, root[1])
        assert row is not None and row.parent_id is None
        entries = s.scalars(select(st.ErrorLedgerRow).where(st.ErrorLedgerRow.direction == "hierarchy",
                                                            st.ErrorLedgerRow.state == "open")).all()
        assert [(e.canonical_id, e.field, e.system) for e in entries] == [(root[1], "parent_id", "hubspot")]
        assert "cycle" in (entries[0].message or "")
    # the admin fixes it in HubSpot: the refusal is resolved
    clock.tick(60)
    hs.assoc["companies"][by_name["Level 0 Holdings"]]["parent"] = ()
    hs.edit("companies", by_name["Level 0 Holdings"])
    clock.tick(60)
    runner().run_cycle()
    with store.session() as s:
        still = s.scalars(select(st.ErrorLedgerRow).where(st.ErrorLedgerRow.direction == "hierarchy",
                                                          st.ErrorLedgerRow.state == "open")).all()
        assert still == []


def test_self_parent_and_unknown_parent_are_refused(world) -> None:
    store, clock, sf, hs, runner = world
    me = hs.add("companies", {"name": "Selfie Ltd", "domain": "selfie.example.com"})
    hs.assoc["companies"][me]["parent"] = (me,)
    orphan = hs.add("companies", {"name": "Orphan Co", "domain": "orphan.example.com"},
                    assoc={"parent": ("999999999",)})  # no such company
    runner().run_cycle()
    sf_names = _sf_by_name(sf)
    assert _parent(sf, "Account", sf_names["Selfie Ltd"]) is None
    assert _parent(sf, "Account", sf_names["Orphan Co"]) is None
    with store.session() as s:
        entries = s.scalars(select(st.ErrorLedgerRow).where(st.ErrorLedgerRow.direction == "hierarchy")).all()
        kinds = sorted((e.remote_id, (e.message or "").split(")")[0]) for e in entries)
        assert kinds == sorted([(me, "parent refused (self"), (orphan, "parent refused (missing")])


def test_a_parent_and_its_subsidiary_sharing_a_domain_stay_two_accounts(world) -> None:
    """Tier 1's domain key never fuses a subsidiary into its parent; the same
    subsidiary in two systems still links by domain and name."""
    store, clock, sf, hs, runner = world
    root = sf.add("Account", {"Name": "Globex Corporation", "Website": "https://www.globex.com"})
    sub = sf.add("Account", {"Name": "Globex Europe", "Website": "https://globex.com/eu"},
                 assoc={"parent": (root,)})
    hs_root = hs.add("companies", {"name": "GLOBEX CORPORATION", "domain": "globex.com"})
    hs_sub = hs.add("companies", {"name": "Globex Europe", "domain": "globex.com"}, assoc={"parent": (hs_root,)})
    report = runner().run_cycle()
    assert report.entities["account"] == 2, report.entities
    with store.session() as s:
        e_root, e_sub = (st.find_entity(s, f"salesforce:{root}"), st.find_entity(s, f"salesforce:{sub}"))
        assert e_root is not None and e_sub is not None and e_root != e_sub
        assert st.find_entity(s, f"hubspot:{hs_root}") == e_root
        assert st.find_entity(s, f"hubspot:{hs_sub}") == e_sub
        row = s.get(st.AccountRow, e_sub[1])
        assert row is not None and row.parent_id == e_root[1]
    assert len(sf.live("Account")) == 2 and len(hs.live("companies")) == 2  # nothing created


def test_a_deleted_parent_is_refused(world) -> None:
    store, clock, sf, hs, runner = world
    gone = hs.add("companies", {"name": "Defunct Parent AG", "domain": "defunct-parent.de"})
    child = hs.add("companies", {"name": "Survivor Child GmbH", "domain": "survivor-child.de"})
    runner().run_cycle()
    clock.tick(60)
    hs.delete("companies", gone)
    sf.delete("Account", _sf_by_name(sf)["Defunct Parent AG"])
    runner().run_cycle()  # every record of the parent is gone: its entity is deleted
    clock.tick(60)
    hs.assoc["companies"][child]["parent"] = (gone,)  # a stale link to the deleted company
    hs.edit("companies", child)
    runner().run_cycle()
    sf_child = _sf_by_name(sf)["Survivor Child GmbH"]
    assert _parent(sf, "Account", sf_child) is None
    with store.session() as s:
        entries = s.scalars(select(st.ErrorLedgerRow).where(st.ErrorLedgerRow.direction == "hierarchy")).all()
        assert [(e.remote_id, e.state) for e in entries] == [(child, "open")]
        assert "does not exist" in (entries[0].message or "")
