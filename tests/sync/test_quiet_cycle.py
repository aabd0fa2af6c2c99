"""A quiet cycle is quiet: records already seen are skipped before mapping, and the
re-read window after a burst of writes stops repeating (issue #13)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.base import Cursor, RemoteRecord
from mapping.canonical import ObjectType
from mapping.fieldmap import build_field_maps
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from sync.pull import DEFAULT_LOOKBACK, Puller, raw_digest
from tests.sync.fakes import Clock, FakeConnector


class ListsEverything(FakeConnector):
    """Like Planhat: no modified-since filter, every read lists every record (id order)."""

    def read_pages(self, object_type: ObjectType, *, since: Cursor | None = None,
                   native: str | None = None) -> Iterator[Sequence[RemoteRecord]]:
        yield from super().read_pages(object_type, since=None, native=native)


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


def _seed(sf: FakeConnector, hs: FakeConnector) -> None:
    # shapes unlike the generator's: a bare domain as Website, upper-case emails, no titles
    for i in range(7):
        acct = sf.add("Account", {"Name": f"Kestrel Örnek {i} GmbH", "Website": f"kestrel{i}.de"})
        sf.add("Contact", {"FirstName": "Zoë", "LastName": f"Ng-{i}", "Email": f"ZOE.NG{i}@KESTREL{i}.DE"},
               assoc={"account": (acct,)})
        comp = hs.add("companies", {"name": f"KESTREL ÖRNEK {i}", "domain": f"kestrel{i}.de"})
        hs.add("contacts", {"email": f"ops{i}@kestrel{i}.de", "firstname": "Ops"}, assoc={"account": (comp,)})


def test_a_quiet_cycle_maps_nothing_it_has_already_seen(world) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    r1 = runner().run_cycle()
    assert r1.status == "ok", r1.messages
    assert r1.writes > 0
    clock.tick(DEFAULT_LOOKBACK.total_seconds() + 60)
    r2 = runner().run_cycle()  # reads our own writes back: the echo, mapped once
    assert r2.writes == 0, r2.planned
    assert sum(r2.mapped.values()) > 0
    clock.tick(DEFAULT_LOOKBACK.total_seconds() + 60)
    r3 = runner().run_cycle()
    assert r3.writes == 0
    assert r3.mapped == {"salesforce": 0, "hubspot": 0}, r3.mapped
    # only the records sharing each object's newest modstamp (the inclusive bound) are
    # read again: one per native object here, where every write has its own stamp
    natives = sum(len(ns) for ns in sf.objects.values()) + sum(len(ns) for ns in hs.objects.values())
    assert sum(r3.pulled.values()) <= natives, r3.pulled
    # and it does not come back: a fourth quiet cycle reads the same handful
    clock.tick(600)
    r4 = runner().run_cycle()
    assert r4.mapped == {"salesforce": 0, "hubspot": 0}
    assert sum(r4.pulled.values()) == sum(r3.pulled.values())


def test_an_edit_after_quiet_cycles_is_mapped_and_synced(world) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    runner().run_cycle()
    for _ in range(2):
        clock.tick(180)
        runner().run_cycle()
    rid = next(iter(hs.live("contacts")))
    clock.tick(5)
    hs.edit("contacts", rid, jobtitle="Head of Ops")
    clock.tick(180)
    r = runner().run_cycle()
    assert r.mapped["hubspot"] == 1, r.mapped
    assert any(v.get("Title") == "Head of Ops" for v in sf.live("Contact").values())


def test_a_late_commit_inside_the_look_back_window_is_still_read(world) -> None:
    """The look-back exists for transactions that commit after a read although they
    were stamped before it: a cycle that ran soon after a burst keeps re-reading the
    window, so such a record is found by the next cycle."""
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    runner().run_cycle()
    clock.tick(5)
    r2 = runner().run_cycle()  # 5 s after the burst of writes: cannot vouch for it yet
    read_at = clock()
    assert r2.status == "ok"
    late = hs.add("contacts", {"email": "late@kestrel0.de", "firstname": "Late"})
    hs.mod["contacts"][late] = read_at - timedelta(seconds=30)  # stamped before the read
    clock.tick(5)
    runner().run_cycle()
    with store.session() as s:
        assert st.refs_by_remote_id(s, "hubspot", "contacts", [late])


def test_a_listing_without_a_since_filter_is_compared_on_raw_hashes(world, db_url: str) -> None:
    store, clock, *_ = world
    ph = ListsEverything("planhat", clock)
    for i in range(5):
        ph.add("companies", {"name": f"Fjord {i} AS", "website": f"https://fjord{i}.no"})
    puller = Puller(store, "planhat", "planhat", ph, now=clock, run_id=None)
    first = puller.pull(ObjectType.ACCOUNT)
    assert (first.pulled, first.mapped) == (5, 5)
    clock.tick(600)
    again = puller.pull(ObjectType.ACCOUNT)
    assert (again.pulled, again.mapped, again.changed) == (5, 0, 0)
    ph.edit("companies", next(iter(ph.live("companies"))), name="Fjord Zero AS")
    third = puller.pull(ObjectType.ACCOUNT)
    assert (third.mapped, third.changed) == (1, 1)
    # a different field map maps the same raw record differently: nothing is skipped
    other = Puller(store, "planhat", "planhat", ph, now=clock, run_id=None,
                   fieldmaps=build_field_maps({"planhat.companies": {"fields": {"phone": None}}}))
    assert other.pull(ObjectType.ACCOUNT).mapped == 5


def test_our_writes_clear_the_raw_hash_so_the_echo_is_mapped(world) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    runner().run_cycle()
    with store.session() as s:
        written = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.last_written_hash.is_not(None))).all()
        assert written
        assert all(r.raw_hash is None for r in written)
        read_only = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.last_written_hash.is_(None))).all()
        assert all(r.raw_hash for r in read_only)


def test_raw_digest_ignores_key_order_and_sees_modstamp_and_associations(world) -> None:
    _, clock, *_ = world
    base = RemoteRecord("hubspot", ObjectType.CONTACT, "7", clock(), {"a": "1", "b": None}, native_type="contacts",
                        associations={"account": ("2", "1")})
    same = RemoteRecord("hubspot", ObjectType.CONTACT, "7", clock(), {"b": None, "a": "1"}, native_type="contacts",
                        associations={"account": ("1", "2")})
    assert raw_digest(base, "s") == raw_digest(same, "s")
    later = RemoteRecord("hubspot", ObjectType.CONTACT, "7", clock() + timedelta(seconds=1), {"a": "1", "b": None},
                         native_type="contacts", associations={"account": ("2", "1")})
    moved = RemoteRecord("hubspot", ObjectType.CONTACT, "7", clock(), {"a": "1", "b": None}, native_type="contacts",
                         associations={"account": ("3",)})
    assert len({raw_digest(base, "s"), raw_digest(later, "s"), raw_digest(moved, "s"), raw_digest(base, "t")}) == 4


def test_a_read_vouches_for_the_window_only_once_it_is_back_up_to_the_position(world) -> None:
    """A crash half-way through a re-read must not move the start past records it has
    not re-read yet: the read time is kept only with a page at or past the position."""
    store, clock, *_ = world
    top, first_read = clock(), clock() + timedelta(minutes=5)
    with store.session() as s:
        st.set_cursor(s, "hubspot", "contacts", top, "9", 10, first_read, read_at=first_read)
    later = first_read + timedelta(minutes=30)
    with store.session() as s:  # the re-read's first page, below the stored position
        st.set_cursor(s, "hubspot", "contacts", top - timedelta(seconds=30), "3", 10, later, read_at=later)
    with store.session() as s:
        row = st.get_cursor(s, "hubspot", "contacts")
        assert (row.modstamp, row.read_at) == (top, first_read)
    with store.session() as s:  # its page that reaches the position
        st.set_cursor(s, "hubspot", "contacts", top, "9", 10, later, read_at=later)
    with store.session() as s:
        assert st.get_cursor(s, "hubspot", "contacts").read_at == later
    puller = Puller(store, "hubspot", "hubspot", FakeConnector("hubspot", clock), now=clock, run_id=None)
    assert puller.read_start(top, later) == top
    assert puller.read_start(top, top + timedelta(seconds=10)) == top + timedelta(seconds=10) - DEFAULT_LOOKBACK
    assert puller.read_start(top, None) == top - DEFAULT_LOOKBACK
