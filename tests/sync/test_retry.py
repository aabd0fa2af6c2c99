"""Failed writes heal on their own: the following cycles retry them (backoff, a cap,
then parked), associations wait for their target, ``retry`` re-plans from the current
canonical state, and a record carrying a revsync id the store does not know is
linked under that id (fake connectors, the real engine)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mapping.canonical import ObjectType
from sync import store as st
from tests.sync.test_engine import _seed, world  # noqa: F401  (fixture)


def _errors(store: st.Store) -> list[tuple[str, str, int]]:
    with store.session() as s:
        return [(e.state, e.field or "", e.attempts) for e in st.list_errors(s)]


def test_retry_after_a_fix_at_the_source_sends_the_fixed_value(world) -> None:  # noqa: F811
    store, clock, sf, hs, runner = world
    ids = _seed(sf, hs, clock)
    sf.fail_fields = {"Email": "bob@acme.com"}  # Salesforce refuses this value, for good
    r = runner().run_cycle()
    assert r.failed == {"salesforce": 1}
    clock.tick(30)
    again = runner().run_retry()  # nothing fixed yet: it fails again, still open
    assert again.failed == {"salesforce": 1}
    assert [e[0] for e in _errors(store)] == ["open"]
    # the value is fixed where it comes from (HubSpot); retry sends the fixed value
    clock.tick(30)
    hs.edit("contacts", ids["only_hs"], email="bob.smith@acme.com")
    clock.tick(30)
    rr = runner().run_retry()
    assert rr.written.get("salesforce") == 1, rr.as_dict()
    emails = [v.get("Email") for v in sf.live("Contact").values()]
    assert "bob.smith@acme.com" in emails and "bob@acme.com" not in emails
    assert _errors(store) == []


def test_failed_writes_are_retried_by_later_cycles_with_backoff(world) -> None:  # noqa: F811
    store, clock, sf, hs, runner = world
    _seed(sf, hs, clock)
    sf.fail_fields = {"Email": "bob@acme.com"}
    runner().run_cycle()
    calls = sf.write_calls
    clock.tick(5)  # inside the backoff: the next cycle does not try it
    assert runner().run_cycle().writes == 0
    assert sf.write_calls == calls
    sf.fail_fields = {}  # the system accepts it now (e.g. a validation rule was relaxed)
    clock.tick(st.RETRY_BASE.total_seconds() + 1)
    r = runner().run_cycle()  # a normal cycle, no `retry`
    assert r.written == {"salesforce": 1}
    assert any(v.get("Email") == "bob@acme.com" for v in sf.live("Contact").values())
    assert _errors(store) == []
    with store.session() as s:
        assert s.scalar(select(st.OutboxRow.id).limit(1)) is None  # the outbox is empty


def test_a_write_that_keeps_failing_is_parked_after_the_cap(world) -> None:  # noqa: F811
    store, clock, sf, hs, runner = world
    _seed(sf, hs, clock)
    sf.fail_fields = {"Email": "bob@acme.com"}
    tries = 0
    for _ in range(st.RETRY_CAP + 3):
        r = runner().run_cycle()
        tries += r.failed.get("salesforce", 0)
        clock.tick(st.RETRY_MAX_DELAY.total_seconds() + 1)
    assert tries == st.RETRY_CAP
    [(state, field, attempts)] = _errors(store)
    assert (state, field, attempts) == ("parked", "Email", st.RETRY_CAP)
    calls = sf.write_calls
    clock.tick(st.RETRY_MAX_DELAY.total_seconds() + 1)
    assert runner().run_cycle().writes == 0 and sf.write_calls == calls  # parked: left alone
    sf.fail_fields = {}
    rr = runner().run_retry()  # an admin's retry takes parked writes too
    assert rr.written == {"salesforce": 1} and _errors(store) == []


def test_an_association_waits_until_its_target_exists(world) -> None:  # noqa: F811
    store, clock, sf, hs, runner = world
    comp = hs.add("companies", {"name": "Globex", "domain": "globex.com"})
    hs.add("contacts", {"email": "ann@globex.com", "firstname": "Ann", "lastname": "Lee"},
           assoc={"account": (comp,)})
    sf.fail_fields = {"Name": "Globex"}  # the account's create fails in Salesforce
    r = runner().run_cycle()
    assert r.failed == {"salesforce": 1}
    [ann] = [rid for rid, v in sf.live("Contact").items() if v.get("Email") == "ann@globex.com"]
    assert not sf.assoc.get("Contact", {}).get(ann, {}).get("account")  # written without it …
    with store.session() as s:  # … and the association waits in the outbox
        waiting = s.scalars(select(st.OutboxRow).where(st.OutboxRow.object_type == "contact")).all()
    assert [(w.state, list(w.payload["associations"])) for w in waiting] == [("pending", ["account"])]
    sf.fail_fields = {}
    clock.tick(st.RETRY_BASE.total_seconds() + 1)
    r2 = runner().run_cycle()  # the account is created, then the association written
    [acct] = [rid for rid, v in sf.live("Account").items() if v.get("Name") == "Globex"]
    assert sf.assoc["Contact"][ann]["account"] == (acct,), r2.as_dict()
    clock.tick(st.RETRY_MAX_DELAY.total_seconds())
    assert runner().run_cycle().writes == 0
    with store.session() as s:
        assert s.scalar(select(st.OutboxRow.id).limit(1)) is None


@pytest.mark.parametrize("sf_carries", [True, False], ids=["both-carry-it", "read-after-a-record-without-it"])
def test_a_record_carrying_an_unknown_revsync_id_is_linked_under_it(world, sf_carries: bool) -> None:  # noqa: F811
    """Salesforce is read first: a record without the id makes an entity, which takes
    the id of the HubSpot record read after it (the order of reading decides nothing)."""
    store, clock, sf, hs, runner = world
    cid = "0b0f6d1e-8a7c-4c51-9d0e-2f3a4b5c6d7e"
    sf.add("Account", {"Name": "Initech", "Website": "https://initech.com",
                       **({"Revsync_Id__c": cid} if sf_carries else {})})
    hs.add("companies", {"name": "Initech", "domain": "initech.com", "revsync_id": cid})
    runner().run_cycle()
    with store.session() as s:
        refs = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.object_type == "account")).all()
        assert {(r.system, r.canonical_id) for r in refs} == {("salesforce", cid), ("hubspot", cid)}
        assert st.entity_row(s, ObjectType.ACCOUNT.value, cid) is not None
        assert st.entity_counts(s)["account"] == 1
    # the Salesforce record without the id gets it written (identity lives in the systems)
    assert [v.get("Revsync_Id__c") for v in sf.live("Account").values()] == [cid]
