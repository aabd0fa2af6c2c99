"""Push records its results set-based (``store.write_ref_rows``, ``delete_outbox_rows``)
and the store's row readers return plain rows: what the ORM path did, checked on the
store after one push (fake Salesforce connector, the real Pusher, SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mapping.canonical import ObjectType, new_id
from sync import store as st
from sync.connection import Connection
from sync.migrate import upgrade
from sync.push import Pusher
from tests.sync.fakes import Clock, FakeConnector

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return st.Store.from_url(url)


def _ref(cid: str, native: str, rid: str, fields: dict[str, object]) -> dict[str, object]:
    return {
        "canonical_id": cid, "system": "salesforce", "object_type": "contact", "native_type": native,
        "remote_id": rid, "remote_modstamp": T0, "canonical_fields": fields, "associations": {},
        "link_rule": "email", "first_seen_at": T0, "last_seen_at": T0, "deleted_at": None, "merged_into": None,
        "revsync_id": None, "last_written_hash": None, "last_seen_hash": "old", "raw_hash": "raw-old",
    }


def test_write_ref_rows_inserts_and_updates_by_id_and_rows_read_back(store: st.Store) -> None:
    cid = new_id()
    with store.session() as s:
        st.write_ref_rows(s, [_ref(cid, "Contact", "003A", {"last_name": "Nguyễn"}),
                              _ref(cid, "Lead", "00QB", {"email": "ana@example.org"})], [])
    with store.session() as s:
        rows = st.ref_rows_by_remote_id(s, "salesforce", "Contact", ["003A", "missing"])
        assert set(rows) == {"003A"}
        a = rows["003A"]
        assert not isinstance(a, st.ExternalRefRow)  # a plain row, not an ORM object
        assert a.canonical_fields == {"last_name": "Nguyễn"} and a.remote_modstamp == T0
        by_cid = st.ref_rows_for_entities(s, "contact", [cid])
        lead = next(r for r in by_cid[cid] if r.native_type == "Lead")
        # two updates with different column sets in one call
        st.write_ref_rows(s, [], [{"id": a.id, "canonical_fields": {"last_name": "Nguyen"}, "raw_hash": None},
                                  {"id": lead.id, "deleted_at": T0 + timedelta(hours=1)}])
    with store.session() as s:
        refs = {r.remote_id: r for r in s.scalars(select(st.ExternalRefRow))}
    assert refs["003A"].canonical_fields == {"last_name": "Nguyen"} and refs["003A"].raw_hash is None
    assert refs["003A"].deleted_at is None and refs["003A"].last_seen_hash == "old"  # untouched columns stay
    assert refs["00QB"].deleted_at == T0 + timedelta(hours=1) and refs["00QB"].raw_hash == "raw-old"


def test_push_writes_results_set_based_and_a_failed_record_keeps_its_retry(store: st.Store) -> None:
    """One contact with two Leads in Salesforce (kept apart under policy "link"), plus a
    new contact: one Lead's update and the create go through, the other's is refused. The entity's
    older open error is resolved by the write that went through, but the Lead's new
    failure stays open with a retry; the created record gets a ref carrying its id."""
    clock = Clock()
    clock.t = T0
    sf = FakeConnector("salesforce", clock)
    sf.add("Lead", {"LastName": "Okafor", "Email": "chidi@example.org"}, rid="00QA")
    sf.add("Lead", {"LastName": "Okafor", "Email": "chidi@example.org"}, rid="00QB")
    sf.fail_fields = {"Email": "chidi.okafor@example.org"}
    cid, fresh = new_id(), new_id()
    now = T0 + timedelta(minutes=5)
    with store.session() as s:
        st.add_entity(s, "contact", cid, T0, email="chidi@example.org")
        st.add_entity(s, "contact", fresh, T0, email="mei@example.org")
        st.write_ref_rows(s, [_ref(cid, "Lead", "00QA", {"last_name": "Okafor", "email": "chidi@example.org"}),
                              _ref(cid, "Lead", "00QB", {"last_name": "Okafor", "email": "chidi@example.org"})], [])
        st.record_error(s, system="salesforce", object_type="contact", native_type="Lead",
                              remote_id="00QA", canonical_id=cid, direction="write", category="validation",
                              message="an earlier failure", field=None, payload=None, now=T0, run_id=None)
        row = {"run_id": None, "system": "salesforce", "object_type": "contact", "state": "pending",
               "attempts": 0, "created_at": T0, "updated_at": T0}
        st.insert_outbox(s, [
            {**row, "native_type": "Lead", "kind": "update", "canonical_id": cid, "remote_id": "00QA",
             "payload": {"fields": {"Title": "Head of Déjà Vu", "Revsync_Id__c": cid}, "associations": {},
                         "changes": []}},
            {**row, "native_type": "Lead", "kind": "update", "canonical_id": cid, "remote_id": "00QB",
             "payload": {"fields": {"Email": "chidi.okafor@example.org"}, "associations": {}, "changes": []}},
            {**row, "native_type": "Contact", "kind": "create", "canonical_id": fresh, "remote_id": None,
             "payload": {"fields": {"LastName": "Lin", "Email": "mei@example.org", "Revsync_Id__c": fresh},
                         "associations": {}, "changes": []}},
        ])
    pusher = Pusher(store, {"salesforce": Connection("salesforce", "salesforce", sf)}, now=lambda: now)
    stats = pusher.push(ObjectType.CONTACT)
    assert stats.written == {"salesforce": 2} and stats.failed == {"salesforce": 1}
    with store.session() as s:
        outbox = [(o.native_type, o.kind, o.state) for o in s.scalars(select(st.OutboxRow))]
        errors = {e.remote_id: e for e in s.scalars(select(st.ErrorLedgerRow))}
        refs = {r.remote_id: r for r in s.scalars(select(st.ExternalRefRow))}
    assert outbox == [("Lead", "update", "failed")]  # the two done ops are gone
    assert errors["00QA"].state == "resolved"
    assert errors["00QB"].state == "open" and errors["00QB"].next_attempt_at is not None
    contact = refs["00QA"]
    assert contact.canonical_fields["title"] == "Head of Déjà Vu"
    assert contact.canonical_fields["last_name"] == "Okafor"  # an update adds to the view, keeps the rest
    assert contact.last_written_hash == contact.last_seen_hash not in (None, "old")
    assert contact.raw_hash is None and contact.revsync_id == cid
    assert refs["00QB"].last_seen_hash == "old" and refs["00QB"].raw_hash == "raw-old"  # failed: unchanged
    created = [r for r in refs.values() if r.canonical_id == fresh]
    assert len(created) == 1 and created[0].link_rule == "created" and created[0].revsync_id == fresh
    assert created[0].remote_id in sf.live("Contact") and created[0].first_seen_at == now
