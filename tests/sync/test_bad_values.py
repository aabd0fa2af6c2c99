"""An unreadable value costs its field, never its record (engine on SQLite, fake
connectors, the real mapping): it is no claim in reconcile (never a blank), it is
never written anywhere, the value stays untouched in the system that holds it, and
the ledger keeps one bad_value entry per record and field until the field reads."""

from __future__ import annotations

from typing import Any

import pytest

from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector


@pytest.fixture
def world(db_url: str):
    upgrade(db_url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    store = st.Store.from_url(db_url)

    def runner(policies: dict[str, Any] | None = None) -> Runner:
        conns = {"salesforce": Connection("salesforce", "salesforce", sf),
                 "hubspot": Connection("hubspot", "hubspot", hs)}
        return Runner(store, conns, parse({"policies": policies or {}}), now=clock)

    return store, clock, sf, hs, runner


def _open_bad_values(store: st.Store) -> set[tuple[str, str | None, str | None]]:
    with store.session() as s:
        return {(e.system, e.remote_id, e.field) for e in st.list_errors(s, category="bad_value")}


def _entity(store: st.Store, system: str, native: str, rid: str) -> Any:
    with store.session() as s:
        ref = st.refs_by_remote_id(s, system, native, [rid])[rid]
        row = st.entity_row(s, ref.object_type, ref.canonical_id)
        s.expunge(row)
        return row


@pytest.mark.parametrize("policy", [
    {},                                                        # source priority, never_blank
    {"contact": {"fields": {"phone": "always:hubspot"}}},     # HubSpot's value even when blank
    {"contact": {"never_blank": False, "source_priority": ["hubspot", "salesforce"]}},
])
def test_an_unreadable_value_is_no_claim_and_never_blanks_a_good_value(world, policy) -> None:
    store, _clock, sf, hs, runner = world
    sf_id = sf.add("Contact", {"FirstName": "Ana", "LastName": "Lima", "Email": "ana@lima.example.com",
                               "Phone": "+1 415 555 0100"})
    hs_id = hs.add("contacts", {"email": "ana@lima.example.com", "firstname": "Ana", "lastname": "Lima",
                                "phone": "not a number"})
    report = runner(policy).run_cycle()
    assert report.status == "ok"
    ent = _entity(store, "salesforce", "Contact", sf_id)
    assert ent.phone == "+14155550100"  # the good value stands
    assert _entity(store, "hubspot", "contacts", hs_id).id == ent.id  # one entity
    assert sf.data["Contact"][sf_id]["Phone"] == "+1 415 555 0100"  # never blanked there
    assert hs.data["contacts"][hs_id]["phone"] == "not a number"  # left as it is at its source
    assert _open_bad_values(store) == {("hubspot", hs_id, "phone")}
    # quiet from here on: nothing to write, the entry stays open (nobody fixed it)
    again = runner(policy).run_cycle()
    assert again.writes == 0 and again.errors == 0
    assert _open_bad_values(store) == {("hubspot", hs_id, "phone")}


def test_an_unreadable_value_is_never_written_to_another_system(world) -> None:
    store, _clock, sf, hs, runner = world
    hs_id = hs.add("contacts", {"email": "bo@example.org", "firstname": "Bo", "lastname": "Ek",
                                "phone": "12", "lifecyclestage": "not-a-stage", "jobtitle": "CTO\x00"})
    report = runner().run_cycle()
    assert report.status == "ok"
    [created] = [f for f in sf.data["Contact"].values() if f.get("Email") == "bo@example.org"]
    # the record synced without its unreadable values; the NUL-cleaned title went as clean text
    assert created["LastName"] == "Ek" and created["Title"] == "CTO"
    assert not created.get("Phone") and not created.get("Lifecycle_Stage__c")
    assert _open_bad_values(store) == {("hubspot", hs_id, "phone"), ("hubspot", hs_id, "lifecyclestage")}
    with store.session() as s:
        view = st.refs_by_remote_id(s, "hubspot", "contacts", [hs_id])[hs_id].canonical_fields
    assert view["_cleaned"]["title"]["note"] == "removed 1 control character(s)"
    assert view["_unreadable"]["phone"]["raw"] == "'12'"


def test_a_readable_value_later_clears_only_its_own_entry(world) -> None:
    store, clock, _sf, hs, runner = world
    hs_id = hs.add("contacts", {"email": "cy@example.org", "lastname": "Cy", "phone": "12",
                                "numberofemployees": "x", "firstname": "C\udc80y"})
    runner().run_cycle()
    assert _open_bad_values(store) == {("hubspot", hs_id, "phone"), ("hubspot", hs_id, "firstname")}
    hs.edit("contacts", hs_id, phone="+44 20 7946 0958")
    runner().run_cycle()
    assert _open_bad_values(store) == {("hubspot", hs_id, "firstname")}
    assert _entity(store, "hubspot", "contacts", hs_id).phone == "+442079460958"
    with store.session() as s:
        resolved = [e for e in st.list_errors(s, category="bad_value", state="resolved")]
    assert [(e.field, e.remote_id) for e in resolved] == [("phone", hs_id)]
    hs.edit("contacts", hs_id, firstname="Cy")
    runner().run_cycle()
    assert _open_bad_values(store) == set()
    assert _entity(store, "hubspot", "contacts", hs_id).first_name == "Cy"


def test_a_record_whose_every_value_is_unreadable_is_still_in_the_store(world) -> None:
    store, _clock, _sf, hs, runner = world
    hs_id = hs.add("contacts", {"email": "@@", "firstname": b"\xff\xfe", "phone": "call me"})
    report = runner().run_cycle()
    assert report.status == "ok"
    with store.session() as s:
        assert hs_id in st.refs_by_remote_id(s, "hubspot", "contacts", [hs_id])
    assert _open_bad_values(store) == {("hubspot", hs_id, f) for f in ("email", "firstname", "phone")}


def test_long_and_hostile_values_store_on_every_database(world) -> None:
    """300-character names, NUL, control characters, lone surrogates: the cycle runs, the
    record is stored (PostgreSQL refuses NUL in text and lone surrogates in JSON, and
    would refuse a name longer than its column), the too-long value is a write error."""
    store, _clock, sf, hs, runner = world
    long_name = ("Handels- und Vertriebsgesellschaft " * 10)[:300]
    comp = hs.add("companies", {"name": long_name, "domain": "handel-vertrieb.de", "city": "K\x00öln",
                                "address": "Ring\udc80 1", "phone": "+49 221 \x07 123456"})
    cont = hs.add("contacts", {"email": "lang@handel-vertrieb.de", "firstname": long_name,
                               "lastname": long_name, "jobtitle": long_name, "company": "x\udc80"},
                  assoc={"account": (comp,)})
    report = runner().run_cycle()
    assert report.status == "ok", report
    acct = _entity(store, "hubspot", "companies", comp)
    person = _entity(store, "hubspot", "contacts", cont)
    assert acct.name == long_name and acct.billing_city == "Köln" and acct.billing_street is None
    assert acct.phone == "+49221123456"
    assert person.first_name == person.last_name == person.title == long_name
    assert _open_bad_values(store) == {("hubspot", comp, "address"), ("hubspot", cont, "company")}
    with store.session() as s:
        too_long = {(e.system, e.canonical_id) for e in st.list_errors(s, category="too_long")}
    assert ("salesforce", acct.id) in too_long and ("salesforce", person.id) in too_long


def test_hostile_text_in_the_external_id_field_is_no_id(world) -> None:
    store, _clock, _sf, hs, runner = world
    rid = hs.add("contacts", {"email": "ext@example.org", "lastname": "Ext", "revsync_id": "\udc80\x00"})
    report = runner().run_cycle()
    assert report.status == "ok"
    with store.session() as s:
        assert st.refs_by_remote_id(s, "hubspot", "contacts", [rid])[rid].link_rule == "new"
