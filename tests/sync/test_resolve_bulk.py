"""Reconcile writes its entities set-based: dirty entities are read as plain rows
(``st.EntityValues``), decided, and written back with a few executemany UPDATEs per
batch (``st.write_entity_values``), whatever mix of fields each entity changed; the
contact roles of opportunities go in with one executemany INSERT. What the store holds
afterwards is what the ORM unit of work wrote before (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, select

from mapping.canonical import ObjectType
from sync import store as st
from sync.config import parse
from sync.engine import Connection, Engine
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

INDUSTRIES = ("Technology", "Banking", None, "Retail", None)


class Statements:
    """The UPDATE / INSERT statements sent while ``on`` is set: (verb, table, rows)."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.seen: list[tuple[str, str, int]] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not self.on:
            return
        m = re.match(r"\s*(UPDATE|INSERT INTO)\s+\"?(\w+)\"?", statement)
        if m:
            rows = len(params) if executemany else 1
            self.seen.append((m.group(1).split()[0], m.group(2), rows))

    def count(self, verb: str, table: str) -> tuple[int, int]:
        """(statements, rows) of ``verb`` on ``table``."""
        hits = [n for v, t, n in self.seen if v == verb and t == table]
        return len(hits), sum(hits)


@pytest.fixture
def world(db_url: str):
    upgrade(db_url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock, page_size=50), FakeConnector("hubspot", clock, page_size=50)
    store = st.Store.from_url(db_url)
    conns = {"salesforce": Connection("salesforce", "salesforce", sf), "hubspot": Connection("hubspot", "hubspot", hs)}
    stmts = Statements(store.engine)
    settings = parse({"dedupe": {"enabled": False}})
    runner = Runner(store, conns, settings, now=clock)
    resolve = Engine.resolve

    def watched(self: Engine, *args: Any, **kwargs: Any) -> Any:
        stmts.on = True
        try:
            return resolve(self, *args, **kwargs)
        finally:
            stmts.on = False

    Engine.resolve = watched  # type: ignore[method-assign]
    try:
        yield store, clock, sf, hs, runner, stmts
    finally:
        Engine.resolve = resolve  # type: ignore[method-assign]


def _seed(sf: FakeConnector, hs: FakeConnector, n: int = 40) -> dict[str, list[str]]:
    """``n`` companies in both systems whose fields differ in which are filled (so each
    entity changes another set of columns), a contact each, a deal with two roles."""
    accts, contacts, deals = [], [], []
    for i in range(n):
        sf_fields: dict[str, Any] = {"Name": f"Kowalczyk & Søn {i} Sp. z o.o.", "Website": f"https://www.ks{i}.pl"}
        if INDUSTRIES[i % 5]:
            sf_fields["Industry"] = INDUSTRIES[i % 5]
        if i % 3 == 0:
            sf_fields["Phone"] = f"+48 22 555 {i:04d}"
        if i % 4 == 1:
            sf_fields["BillingCity"] = "Łódź"
        a = sf.add("Account", sf_fields)
        hs_fields: dict[str, Any] = {"name": f"KS {i}", "domain": f"ks{i}.pl"}
        if i % 2:
            hs_fields["numberofemployees"] = str(10 + i)
        hs.add("companies", hs_fields)
        c1 = sf.add("Contact", {"FirstName": "Zofia", "LastName": f"Wiśniewska{i}", "Email": f"zofia{i}@ks{i}.pl"},
                    assoc={"account": (a,)})
        c2 = sf.add("Contact", {"FirstName": "Jan", "LastName": f"Nowak{i}", "Email": f"jan{i}@ks{i}.pl",
                                **({"Title": "CFO"} if i % 2 else {})}, assoc={"account": (a,)})
        d = sf.add("Opportunity", {"Name": f"Renewal {i}", "StageName": "Prospecting", "CloseDate": "2027-01-15",
                                   "Amount": 1000 + i}, assoc={"account": (a,), "contact": (c1, c2)})
        accts.append(a)
        contacts += [c1, c2]
        deals.append(d)
    return {"accounts": accts, "contacts": contacts, "deals": deals}


def test_a_batch_of_entities_with_different_changes_is_written_with_a_few_statements(world) -> None:
    store, _clock, sf, hs, runner, stmts = world
    _seed(sf, hs)
    report = runner.run_cycle()
    assert report.status == "ok", report.messages
    # 40 accounts, each changing its own mix of columns, and their dirty flags: one
    # UPDATE statement shape for every changed entity (the ORM sent one per mix)
    n_stmt, n_rows = stmts.count("UPDATE", "account")
    assert n_rows == 40 and n_stmt <= 2, stmts.seen
    n_stmt, n_rows = stmts.count("UPDATE", "contact")
    assert n_rows == 80 and n_stmt <= 2
    # 40 deals, 2 roles each, in one INSERT
    assert stmts.count("INSERT", "opportunity_contact") == (1, 80)
    with store.session() as s:
        accounts = list(s.scalars(select(st.AccountRow)))
        assert len(accounts) == 40 and not any(a.dirty for a in accounts)
        by_name = {a.name: a for a in accounts}
        a3 = by_name["Kowalczyk & Søn 3 Sp. z o.o."]  # Salesforce's name wins by priority
        assert (a3.industry, a3.phone, a3.employees, a3.domain) == ("retail", "+48225550003", 13, "ks3.pl")
        assert by_name["Kowalczyk & Søn 1 Sp. z o.o."].industry == "banking"
        assert by_name["Kowalczyk & Søn 2 Sp. z o.o."].industry is None
        assert by_name["Kowalczyk & Søn 1 Sp. z o.o."].billing_city == "Łódź"
        assert a3.updated_at is not None and a3.extras == {}
        contacts = list(s.scalars(select(st.ContactRow)))
        assert {c.email_key for c in contacts} == {f"{n}{i}@ks{i}.pl" for i in range(40) for n in ("zofia", "jan")}
        assert all(c.account_id in {a.id for a in accounts} for c in contacts)
        roles = s.execute(select(st.OpportunityContactRow.opportunity_id, st.OpportunityContactRow.contact_id)).all()
        assert len(roles) == 80 and len({o for o, _ in roles}) == 40
        # provenance of every decided field is kept
        prov = s.scalars(select(st.FieldProvenanceRow).where(st.FieldProvenanceRow.entity_id == a3.id,
                                                             st.FieldProvenanceRow.field == "employees")).one()
        assert prov.system == "hubspot" and prov.value == 13


def test_a_later_cycle_writes_only_the_entities_that_changed(world) -> None:
    store, clock, sf, hs, runner, stmts = world
    ids = _seed(sf, hs, n=12)
    assert runner.run_cycle().status == "ok"
    with store.session() as s:
        before = {a.id: (a.updated_at, a.name) for a in s.scalars(select(st.AccountRow))}
    clock.tick(120)
    sf.edit("Account", ids["accounts"][4], Name="Kowalczyk i Syn 4")
    sf.edit("Account", ids["accounts"][7], Phone="+48 22 555 7777")
    stmts.seen.clear()
    report = runner.run_cycle()
    assert report.status == "ok", report.messages
    with store.session() as s:
        after = {a.id: (a.updated_at, a.name, a.phone, a.dirty) for a in s.scalars(select(st.AccountRow))}
    moved = {cid for cid, v in after.items() if v[0] != before[cid][0]}
    assert len(moved) == 2  # only the two edited accounts got a new updated_at
    assert {v[1] for cid, v in after.items() if cid in moved} >= {"Kowalczyk i Syn 4"}
    assert "+48225557777" in {v[2] for v in after.values()}
    assert not any(v[3] for v in after.values())
    # the two decided rows in one statement; no other account row was written
    n_stmt, n_rows = stmts.count("UPDATE", "account")
    assert n_rows <= 2 + 2 and n_stmt <= 2, stmts.seen


def test_entity_values_report_only_the_columns_set_to_something_new(db_url: str) -> None:
    upgrade(db_url)
    store = st.Store.from_url(db_url)
    clock = Clock()
    with store.session() as s:
        st.add_entity(s, "account", "00000000-0000-4000-8000-000000000001", clock(), name="Ørsted A/S")
    with store.session() as s:
        (row,) = st.dirty_entities(s, ObjectType.ACCOUNT.value, 10)
        assert not isinstance(row, st.AccountRow)
        assert row.name == "Ørsted A/S" and row.changes() == {}
        row.name = "Ørsted A/S"  # the same value: no change
        row.dirty = False
        row.phone = "+4599559955"
        assert row.changes() == {"dirty": False, "phone": "+4599559955"}
        assert st.write_entity_values(s, "account", [row]) == 1
    with store.session() as s:
        got = s.get(st.AccountRow, "00000000-0000-4000-8000-000000000001")
        assert got is not None and (got.dirty, got.phone, got.name) == (False, "+4599559955", "Ørsted A/S")
        assert st.dirty_entities(s, "account", 10) == []
