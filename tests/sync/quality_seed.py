"""A small hand-made store for the quality, metrics and web tests.

Values are written the way the vendors shape them, not as our generator does: two
systems disagreeing on an opportunity's stage and amount, a Planhat record without an
owner, an account not touched for a year, a bad value in the error ledger.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sync import store as st
from sync.migrate import upgrade

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)


def seed(url: str) -> st.Store:
    """Migrate ``url`` and fill it; returns the store."""
    upgrade(url)
    store = st.Store.from_url(url)
    with store.session() as s:
        def ent(t, eid, **kw):
            s.add(t(id=eid, created_at=NOW, updated_at=kw.pop("updated_at", NOW), deleted_at=None, extras={},
                    dirty=False, **kw))

        def ref(system, obj, native, rid, cid, fields, modstamp=NOW, rule="external_id"):
            s.add(st.ExternalRefRow(canonical_id=cid, system=system, object_type=obj, native_type=native,
                                    remote_id=rid, remote_modstamp=modstamp, canonical_fields=fields,
                                    associations={}, link_rule=rule, first_seen_at=NOW, last_seen_at=NOW))

        ent(st.AccountRow, "a-1", name="Zephyr Ölwerke GmbH", domain="zephyr-oel.de", industry="energy",
            country="DE", owner_email="kai@corp.example", arr=Decimal("120000"), renewal_date=date(2026, 7, 1))
        ent(st.AccountRow, "a-2", name="Quokka Logistics", domain=None, industry=None, country="AU",
            owner_email=None, arr=Decimal("30000"), renewal_date=date(2027, 3, 1), updated_at=OLD)
        ref("salesforce", "account", "Account", "001A000001", "a-1",
            {"name": "Zephyr Ölwerke GmbH", "domain": "zephyr-oel.de", "industry": "energy", "country": "DE",
             "owner_email": "kai@corp.example"})
        ref("planhat", "account", "companies", "ph-77", "a-1",
            {"name": "Zephyr Olwerke", "domain": "zephyr-oel.de", "country": "DE", "owner_email": None,
             "arr": "150000", "renewal_date": "2026-07-01"})
        ref("salesforce", "account", "Account", "001A000002", "a-2",
            {"name": "Quokka Logistics", "domain": None, "industry": None, "country": "AU", "owner_email": None},
            modstamp=OLD)
        ent(st.OpportunityRow, "o-1", name="Zephyr renewal FY27", account_id="a-1", amount=Decimal("50000"),
            stage="negotiation", close_date=date(2026, 8, 30), owner_email="kai@corp.example",
            is_closed=False, is_won=False)
        ent(st.OpportunityRow, "o-2", name="Quokka pilot", account_id="a-2", amount=Decimal("8000"),
            stage="closed_won", close_date=date(2026, 2, 10), owner_email="kai@corp.example",
            is_closed=True, is_won=True)
        ref("salesforce", "opportunity", "Opportunity", "006A000001", "o-1",
            {"name": "Zephyr renewal FY27", "amount": "50000.00", "stage": "negotiation", "close_date": "2026-08-30"})
        ref("hubspot", "opportunity", "deals", "9001", "o-1",
            {"name": "Zephyr renewal FY27", "amount": "45000", "stage": "closed_won", "close_date": "2026-05-30"})
        ref("salesforce", "opportunity", "Opportunity", "006A000002", "o-2",
            {"name": "Quokka pilot", "amount": "8000", "stage": "closed_won", "close_date": "2026-02-10"})
        for f, value, rule in (("name", "Zephyr Ölwerke GmbH", "source_priority"), ("arr", "150000", "prefer:planhat")):
            system, rid = ("planhat", "ph-77") if rule == "prefer:planhat" else ("salesforce", "001A000001")
            s.add(st.FieldProvenanceRow(object_type="account", entity_id="a-1", field=f, value=value, system=system,
                                        remote_id=rid, rule=rule, decided_at=NOW))
        for f, rule, system in (("stage", "source_priority", "salesforce"), ("amount", "latest", "salesforce")):
            s.add(st.FieldProvenanceRow(object_type="opportunity", entity_id="o-1", field=f, value=None,
                                        system=system, remote_id="006A000001", rule=rule, decided_at=NOW))
        s.add(st.ErrorLedgerRow(system="hubspot", object_type="contact", native_type="contacts", remote_id="551",
                                canonical_id=None, direction="read", category="bad_value", field="phone",
                                message="contacts 551: phone 'call me maybe' is not a phone number", payload=None,
                                first_seen_at=NOW, last_seen_at=NOW, attempts=1, state="open"))
        s.add(st.ErrorLedgerRow(system="salesforce", object_type="opportunity", native_type="Opportunity",
                                remote_id="006A000002", canonical_id=None, direction="read", category="bad_value",
                                field="StageName", message="Opportunity 006A000002: StageName: unknown stage value "
                                "'Verbal Commit'", payload=None, first_seen_at=NOW, last_seen_at=NOW, attempts=1,
                                state="open"))
        s.add(st.ErrorLedgerRow(system="salesforce", object_type="account", native_type="Account",
                                remote_id=None, canonical_id="a-2", direction="write", category="validation",
                                field="Name", message="FIELD_CUSTOM_VALIDATION_EXCEPTION: Name must be set",
                                payload=None, first_seen_at=NOW, last_seen_at=NOW, attempts=2, state="open"))
        s.add(st.OutboxRow(system="salesforce", object_type="account", native_type="Account", kind="update",
                           canonical_id="a-2", remote_id="001A000002", payload={"changes": [["name", None,
                           "Quokka Logistics", "source_priority"]]}, state="failed", attempts=2,
                           last_error="FIELD_CUSTOM_VALIDATION_EXCEPTION: Name must be set",
                           created_at=NOW, updated_at=NOW))
        s.add(st.OutboxRow(system="hubspot", object_type="opportunity", native_type="deals", kind="update",
                           canonical_id="o-1", remote_id="9001", payload={"changes": [
                               ["stage", "closed_won", "negotiation", "source_priority"],
                               ["amount", "45000", "50000.00", "latest"]]},
                           state="pending", attempts=0, created_at=NOW, updated_at=NOW))
        s.add(st.MatchReviewRow(object_type="account", left_id="a-1", right_id="a-2", probability=0.91,
                                evidence={"name": "fuzzy 0.61", "domain": "missing"}, state="open",
                                created_at=NOW))
        s.add(st.SyncRunRow(kind="cycle", scope={}, started_at=NOW - timedelta(seconds=42), finished_at=NOW,
                            status="ok", counts={"pulled": {"salesforce": 5, "hubspot": 1}, "written": {"planhat": 2},
                                                 "failed": {"salesforce": 1}, "api_calls": {"salesforce": 7},
                                                 "seconds": 42.0}))
        s.add(st.ApiUsageRow(system="salesforce", day=NOW.date(), calls=7, limit=15000, remaining=14993,
                             updated_at=NOW))
    return store
