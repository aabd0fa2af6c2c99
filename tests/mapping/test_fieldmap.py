"""Field maps: registry, overrides, errors naming the field, writing rules, content hash."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import ErrorCategory, RecordError
from mapping.canonical import Account, Contact, Opportunity
from mapping.fieldmap import (
    FIELD_MAPS,
    OWNER_FIELDS,
    OWNER_PSEUDO_FIELD,
    SCHEMAS,
    Direction,
    FieldMap,
    FieldMapError,
    FieldRule,
    build_field_maps,
    content_hash,
    derive_stage_flags,
    from_entity,
    get_field_map,
    mapped_native_fields,
    to_account,
    to_contact,
    to_entity,
    to_opportunity,
)
from mapping.transforms import TRANSFORMS
from sandbox import values
from sandbox.values import LEAD_STATUS

# --------------------------------------------------------------------------- registry and schema contract


def test_registry_covers_every_required_object() -> None:
    assert set(FIELD_MAPS) == {
        ("salesforce", "Account"),
        ("salesforce", "Contact"),
        ("salesforce", "Lead"),
        ("salesforce", "Opportunity"),
        ("hubspot", "companies"),
        ("hubspot", "contacts"),
        ("hubspot", "deals"),
        ("planhat", "companies"),
        ("planhat", "endusers"),
    }


@pytest.mark.parametrize("key", sorted(FIELD_MAPS))
def test_default_maps_use_only_schema_fields(key: tuple[str, str]) -> None:
    system, native_type = key
    schema = {f.name: f for f in SCHEMAS[system][native_type]}
    fm = FIELD_MAPS[key]
    for rule in fm.rules:
        if rule.native == OWNER_PSEUDO_FIELD:
            assert schema[OWNER_FIELDS[system]].updateable
            continue
        assert rule.native in schema, f"{system}/{native_type}: {rule.native} not in sandbox schema"
        if rule.writes:
            assert schema[rule.native].updateable, f"{rule.native} is read-only but mapped to write"
        assert rule.transform in TRANSFORMS


def test_mapped_native_fields_lists_each_field_once() -> None:
    names = mapped_native_fields("salesforce", "Account")
    assert names.count("Website") == 1
    assert "Name" in names and OWNER_PSEUDO_FIELD in names
    assert "Id" not in names and "SystemModstamp" not in names
    assert "pipeline" in mapped_native_fields("hubspot", "deals")
    assert "domains" in mapped_native_fields("planhat", "companies")


def test_unknown_map_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="salesforce/Case"):
        get_field_map("salesforce", "Case")
    with pytest.raises(LookupError):
        to_entity("zendesk", "tickets", {})


# --------------------------------------------------------------------------- specific mappings


def test_lead_maps_to_contact_with_company_in_extras_and_status_as_lifecycle() -> None:
    entity = to_contact(
        "salesforce",
        "Lead",
        {"LastName": "Raman", "Company": "Hooli, Inc.", "Status": "Working - Contacted"},
    )
    assert isinstance(entity, Contact)
    assert entity.account_id is None
    assert entity.extras == {"lead_company": "Hooli, Inc."}
    assert entity.lifecycle_stage == "mql"


@pytest.mark.parametrize(("status", "stage"), sorted(LEAD_STATUS.items()))
def test_lead_status_table(status: str, stage: str) -> None:
    assert to_contact("salesforce", "Lead", {"Status": status}).lifecycle_stage == stage


def test_lead_status_is_never_written() -> None:
    native = from_entity("salesforce", "Lead", Contact(last_name="X", lifecycle_stage="mql"))
    assert "Status" not in native
    assert native == {"LastName": "X"}


@pytest.mark.parametrize(("stage", "row"), sorted(values.STAGES.items()))
def test_stage_maps_both_ways_in_both_crms(stage: str, row: dict[str, str]) -> None:
    sf = to_opportunity("salesforce", "Opportunity", {"StageName": row["salesforce"]})
    hs = to_opportunity("hubspot", "deals", {"dealstage": row["hubspot"], "pipeline": "default"})
    assert sf.stage == hs.stage == stage
    opp = Opportunity(stage=stage)
    assert from_entity("salesforce", "Opportunity", opp)["StageName"] == row["salesforce"]
    deal = from_entity("hubspot", "deals", opp)
    assert deal["dealstage"] == row["hubspot"]
    assert deal["pipeline"] == values.HUBSPOT_DEFAULT_PIPELINE


@pytest.mark.parametrize(
    ("stage", "flags"),
    [
        ("closed_won", (True, True)),
        ("closed_lost", (True, False)),
        ("proposal", (False, False)),
        (None, (None, None)),
    ],
)
def test_is_closed_and_is_won_follow_the_stage(stage: str | None, flags: tuple[Any, Any]) -> None:
    assert derive_stage_flags(stage) == flags
    # HubSpot's read-only hs_is_closed* are ignored even when they disagree
    fields = {"hs_is_closed": "false", "hs_is_closed_won": "false"}
    if stage:
        fields["dealstage"] = values.STAGES[stage]["hubspot"]
    deal = to_opportunity("hubspot", "deals", fields)
    assert (deal.is_closed, deal.is_won) == flags


def test_read_only_native_fields_are_never_written() -> None:
    opp = Opportunity(stage="closed_won", probability=Decimal(100), is_closed=True, is_won=True)
    deal = from_entity("hubspot", "deals", opp)
    assert "hs_deal_stage_probability" not in deal
    assert "hs_is_closed" not in deal and "hs_is_closed_won" not in deal
    sf = from_entity("salesforce", "Opportunity", opp)
    assert "IsClosed" not in sf and "IsWon" not in sf
    acct = Account(name="A", health=Decimal(7), arr=Decimal(1000), renewal_date=date(2027, 1, 1))
    doc = from_entity("planhat", "companies", acct)
    assert doc == {"name": "A"}


def test_hubspot_probability_fraction_becomes_percent() -> None:
    deal = to_opportunity("hubspot", "deals", {"hs_deal_stage_probability": "0.25"})
    assert deal.probability == Decimal(25)


def test_hubspot_closedate_accepts_iso_and_epoch_ms() -> None:
    iso = to_opportunity("hubspot", "deals", {"closedate": "2026-11-02T10:15:30.123Z"})
    ms = to_opportunity("hubspot", "deals", {"closedate": "1793614530123"})
    assert iso.close_date == ms.close_date == date(2026, 11, 2)


def test_planhat_domains_array_gives_first_domain_and_writes_a_list() -> None:
    acct = to_account("planhat", "companies", {"domains": ["", "https://www.acme.com/", "acme.io"]})
    assert acct.domain == "acme.com"
    assert from_entity("planhat", "companies", acct) == {"domains": ["acme.com"]}
    assert to_account("planhat", "companies", {"domains": '["acme.io"]'}).domain == "acme.io"


def test_phone_region_comes_from_the_records_country() -> None:
    de = to_account("salesforce", "Account", {"Phone": "089 1234567", "BillingCountry": "Germany"})
    assert de.phone == "+49891234567"
    us = to_account("salesforce", "Account", {"Phone": "(415) 555-0100"})
    assert us.phone == "+14155550100"


def test_salesforce_output_types() -> None:
    opp = Opportunity(
        name="N",
        amount=Decimal("1234.50"),
        currency="EUR",
        stage="proposal",
        close_date=date(2026, 12, 1),
        probability=Decimal(40),
        owner_email="o@x.com",
    )
    out = from_entity("salesforce", "Opportunity", opp)
    assert out == {
        "Name": "N",
        "Amount": 1234.5,
        "CurrencyIsoCode": "EUR",
        "StageName": "Proposal/Price Quote",
        "CloseDate": "2026-12-01",
        "Probability": 40,
        "_owner_email": "o@x.com",
    }
    assert isinstance(out["Probability"], int)


def test_country_is_written_as_a_name() -> None:
    acct = Account(name="A", country="DE")
    assert from_entity("salesforce", "Account", acct)["BillingCountry"] == "Germany"
    assert from_entity("hubspot", "companies", acct)["country"] == "Germany"


def test_include_empty_writes_blanks() -> None:
    out = from_entity("hubspot", "contacts", Contact(email="a@b.com"), include_empty=True)
    assert out["email"] == "a@b.com"
    assert out["jobtitle"] == "" and out["hs_email_optout"] == ""
    sf = from_entity("salesforce", "Contact", Contact(email="a@b.com"), include_empty=True)
    assert sf["Title"] is None


def test_from_entity_rejects_the_wrong_entity_type() -> None:
    with pytest.raises(TypeError):
        from_entity("salesforce", "Account", Contact(email="a@b.com"))


def test_too_long_value_is_a_record_error() -> None:
    with pytest.raises(RecordError) as err:
        from_entity("salesforce", "Contact", Contact(last_name="x" * 81))
    assert err.value.field == "LastName"
    assert err.value.category == ErrorCategory.TOO_LONG


# --------------------------------------------------------------------------- errors name the field


@pytest.mark.parametrize(
    ("system", "native_type", "field", "value"),
    [
        ("salesforce", "Opportunity", "StageName", "Maybe Someday"),
        ("salesforce", "Account", "Industry", "Alchemy"),
        ("salesforce", "Account", "Type", "Frenemy"),
        ("salesforce", "Contact", "LeadSource", "Carrier Pigeon"),
        ("salesforce", "Contact", "Lifecycle_Stage__c", "Zombie"),
        ("salesforce", "Lead", "Status", "Nurturing"),
        ("hubspot", "deals", "dealstage", "1234567"),  # a custom pipeline's stage id
        ("hubspot", "deals", "dealtype", "upsell"),
        ("hubspot", "companies", "industry", "ALCHEMY"),
        ("hubspot", "contacts", "lifecyclestage", "247861"),
        ("planhat", "companies", "status", "frozen"),
    ],
)
def test_unknown_picklist_value_is_a_mapping_error_naming_field_and_value(
    system: str, native_type: str, field: str, value: str
) -> None:
    with pytest.raises(RecordError) as err:
        to_entity(system, native_type, {field: value})
    assert err.value.category == ErrorCategory.MAPPING
    assert err.value.field == field
    assert field in str(err.value) and value in str(err.value)


@pytest.mark.parametrize(
    ("system", "native_type", "field", "value"),
    [
        ("salesforce", "Contact", "Email", "not-an-email"),
        ("salesforce", "Account", "Phone", "call reception"),
        ("salesforce", "Account", "BillingCountry", "Atlantis"),
        ("salesforce", "Account", "NumberOfEmployees", "lots"),
        ("salesforce", "Account", "Website", "localhost"),
        ("salesforce", "Opportunity", "CloseDate", "soon"),
        ("salesforce", "Opportunity", "CurrencyIsoCode", "Euro"),
        ("hubspot", "deals", "amount", "a lot"),
        ("hubspot", "contacts", "hs_email_optout", "perhaps"),
        ("hubspot", "deals", "closedate", "tomorrow"),
        ("planhat", "companies", "domains", 42),
        ("planhat", "companies", "renewalDate", "Q3"),
    ],
)
def test_unparseable_value_is_a_record_error_naming_the_field(
    system: str, native_type: str, field: str, value: Any
) -> None:
    with pytest.raises(RecordError) as err:
        to_entity(system, native_type, {field: value})
    assert err.value.field == field
    assert field in str(err.value)


def test_canonical_value_with_no_native_value_is_a_mapping_error() -> None:
    with pytest.raises(RecordError) as err:
        from_entity("salesforce", "Opportunity", Opportunity(stage="not_a_stage"))
    assert err.value.field == "StageName"
    assert err.value.category == ErrorCategory.MAPPING


# --------------------------------------------------------------------------- overrides


def test_override_adds_custom_field_to_extras_and_removes_one() -> None:
    base = get_field_map("salesforce", "Contact")
    fm = base.with_overrides({"fields": {"Custom_Score__c": "extras.score", "Title": None}})
    entity = to_contact(
        "salesforce",
        "Contact",
        {"Custom_Score__c": 87, "Title": "CTO", "LastName": "X"},
        fieldmap=fm,
    )
    assert entity.extras == {"score": 87}
    assert entity.title is None
    assert entity.last_name == "X"
    out = from_entity("salesforce", "Contact", entity.replace(title="CTO"), fieldmap=fm)
    assert out["Custom_Score__c"] == 87
    assert "Title" not in out
    # the default map is untouched
    assert any(r.native == "Title" for r in base.rules)
    assert to_contact("salesforce", "Contact", {"Title": "CTO"}).title == "CTO"


def test_override_to_a_canonical_field_replaces_its_default_source() -> None:
    fm = get_field_map("salesforce", "Contact").with_overrides(
        {"fields": {"Job_Title__c": "title"}}
    )
    entity = to_contact(
        "salesforce", "Contact", {"Title": "old", "Job_Title__c": " New "}, fieldmap=fm
    )
    assert entity.title == "New"
    out = from_entity("salesforce", "Contact", entity, fieldmap=fm)
    assert out["Job_Title__c"] == "New"
    assert "Title" not in out


def test_override_picks_the_canonical_fields_transform() -> None:
    fm = get_field_map("hubspot", "companies").with_overrides(
        {
            "fields": {
                "arr_usd": "arr",
                "renewal": {"canonical": "renewal_date", "direction": "read"},
            }
        }
    )
    acct = to_account(
        "hubspot", "companies", {"arr_usd": "1,200.50", "renewal": "1790787600000"}, fieldmap=fm
    )
    assert acct.arr == Decimal("1200.5")
    assert acct.renewal_date == date(2026, 9, 30)
    out = from_entity("hubspot", "companies", acct, fieldmap=fm)
    assert out["arr_usd"] == "1200.5"
    assert "renewal" not in out


def test_override_table_form_and_planhat_custom_paths() -> None:
    fm = get_field_map("planhat", "companies").with_overrides(
        {"fields": {"custom.Segment": {"canonical": "extras.segment", "transform": "string"}}}
    )
    acct = to_account(
        "planhat", "companies", {"name": "A", "custom": {"Segment": " Enterprise "}}, fieldmap=fm
    )
    assert acct.extras == {"segment": "Enterprise"}
    doc = from_entity("planhat", "companies", acct, fieldmap=fm)
    assert doc == {"name": "A", "custom": {"Segment": "Enterprise"}}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"fieldz": {}}, "fieldz"),
        ({"fields": {"Title": "job_title"}}, "Title"),
        ({"fields": {"Titel": None}}, "Titel"),
        ({"fields": {"X__c": {"canonical": "extras.x", "transform": "rot13"}}}, "X__c"),
        ({"fields": {"X__c": {"canonical": "extras.x", "direction": "sideways"}}}, "X__c"),
        ({"fields": {"X__c": {"canonical": "extras.x", "colour": "red"}}}, "X__c"),
        ({"fields": {"X__c": 42}}, "X__c"),
        ({"fields": {"X__c": "extras."}}, "X__c"),
        ({"fields": {"AccountId": "account_id"}}, "AccountId"),  # the engine owns associations
    ],
)
def test_bad_override_names_the_bad_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(FieldMapError) as err:
        get_field_map("salesforce", "Contact").with_overrides(overrides)
    assert err.value.key == key
    assert key in str(err.value)


def test_values_override_adds_picklist_readings_without_changing_writes() -> None:
    fm = get_field_map("salesforce", "Opportunity").with_overrides(
        {"values": {"StageName": {"Discovery": "qualification", " Legal Review ": "contract"}}}
    )
    assert (
        to_opportunity("salesforce", "Opportunity", {"StageName": "discovery"}, fieldmap=fm).stage
        == "qualification"
    )
    assert (
        to_opportunity(
            "salesforce", "Opportunity", {"StageName": "Legal Review"}, fieldmap=fm
        ).stage
        == "contract"
    )
    assert (
        to_opportunity("salesforce", "Opportunity", {"StageName": "Closed Won"}, fieldmap=fm).stage
        == "closed_won"
    )
    opp = Opportunity(stage="qualification")
    assert (
        from_entity("salesforce", "Opportunity", opp, fieldmap=fm)["StageName"] == "Qualification"
    )
    with pytest.raises(RecordError):  # the default map is untouched
        to_entity("salesforce", "Opportunity", {"StageName": "Discovery"})


def test_values_override_reads_a_custom_hubspot_pipeline_stage_and_lead_status() -> None:
    deals = get_field_map("hubspot", "deals").with_overrides(
        {"values": {"dealstage": {"1234567": "proposal"}}}
    )
    assert (
        to_opportunity("hubspot", "deals", {"dealstage": "1234567"}, fieldmap=deals).stage
        == "proposal"
    )
    leads = get_field_map("salesforce", "Lead").with_overrides(
        {"values": {"Status": {"Nurturing": "mql"}}}
    )
    assert (
        to_contact("salesforce", "Lead", {"Status": "Nurturing"}, fieldmap=leads).lifecycle_stage
        == "mql"
    )


def test_values_overrides_accumulate() -> None:
    fm = (
        get_field_map("hubspot", "deals")
        .with_overrides({"values": {"dealstage": {"a1": "proposal"}}})
        .with_overrides({"values": {"dealstage": {"b2": "contract"}}})
    )
    assert fm.value_aliases["dealstage"] == {"a1": "proposal", "b2": "contract"}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"values": {"StageName": {"Discovery": "discovery"}}},
            "StageName",
        ),  # not a canonical stage
        ({"values": {"Name": {"x": "proposal"}}}, "Name"),  # not a picklist
        ({"values": {"Stage__c": {"x": "proposal"}}}, "Stage__c"),  # not mapped
        ({"values": {"StageName": "proposal"}}, "StageName"),
        ({"values": ["StageName"]}, "values"),
    ],
)
def test_bad_values_override_names_the_bad_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(FieldMapError) as err:
        get_field_map("salesforce", "Opportunity").with_overrides(overrides)
    assert err.value.key == key


@pytest.mark.parametrize(
    ("system", "native_type", "fields", "source"),
    [
        ("hubspot", "contacts", {"hs_analytics_source": "PAID_SOCIAL"}, "paid"),
        ("hubspot", "contacts", {"hs_analytics_source": "AI_REFERRALS"}, "referral"),
        ("salesforce", "Contact", {"LeadSource": "Purchased List"}, "other"),
    ],
)
def test_built_in_readings_of_vendor_default_sources(
    system: str, native_type: str, fields: dict[str, Any], source: str
) -> None:
    assert to_contact(system, native_type, fields).lead_source == source


def test_typed_custom_fields_in_extras_are_json_and_write_back_typed() -> None:
    fm = get_field_map("salesforce", "Account").with_overrides(
        {
            "fields": {
                "Score__c": {"canonical": "extras.score", "transform": "decimal"},
                "Signed__c": {"canonical": "extras.signed_on", "transform": "date"},
            }
        }
    )
    acct = to_account(
        "salesforce", "Account", {"Score__c": 87.50, "Signed__c": "2026-03-01"}, fieldmap=fm
    )
    assert acct.extras == {"score": "87.5", "signed_on": "2026-03-01"}
    out = from_entity("salesforce", "Account", acct, fieldmap=fm)
    assert out == {"Score__c": 87.5, "Signed__c": "2026-03-01"}
    hs = get_field_map("hubspot", "companies").with_overrides(
        {"fields": {"score": {"canonical": "extras.score", "transform": "decimal"}}}
    )
    assert from_entity("hubspot", "companies", acct, fieldmap=hs) == {"score": "87.5"}


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ({"canonical": "amount", "transform": "string"}, "X__c"),
        ({"canonical": "close_date", "transform": "decimal"}, "X__c"),
        ({"canonical": "name", "transform": "json"}, "X__c"),
        ({"canonical": "stage", "transform": "pipeline", "direction": "both"}, "X__c"),
    ],
)
def test_override_whose_transform_does_not_fit_the_canonical_type_names_the_key(
    target: dict[str, Any], key: str
) -> None:
    with pytest.raises(FieldMapError) as err:
        get_field_map("salesforce", "Opportunity").with_overrides({"fields": {key: target}})
    assert err.value.key == key


def test_build_field_maps_applies_overrides_by_system_and_type() -> None:
    maps = build_field_maps({"hubspot.contacts": {"fields": {"jobtitle": None}}})
    assert not any(r.native == "jobtitle" for r in maps[("hubspot", "contacts")].rules)
    assert maps[("salesforce", "Contact")] is FIELD_MAPS[("salesforce", "Contact")]
    with pytest.raises(FieldMapError) as err:
        build_field_maps({"hubspot.tickets": {}})
    assert err.value.key == "hubspot.tickets"


def test_field_map_validates_its_rules() -> None:
    with pytest.raises(FieldMapError) as err:
        FieldMap("x", "y", Account.OBJECT, (FieldRule("Foo", "colour", "string", Direction.BOTH),))
    assert err.value.key == "Foo"


# --------------------------------------------------------------------------- content hash


def test_content_hash_is_order_independent_and_only_covers_named_fields() -> None:
    a = {"Name": "Acme", "Phone": "1", "SystemModstamp": "2026-01-01T00:00:00.000+0000"}
    b = {"SystemModstamp": "2026-11-11T00:00:00.000+0000", "Phone": "1", "Name": "Acme"}
    assert content_hash(a, ["Name", "Phone"]) == content_hash(b, ["Phone", "Name"])
    assert content_hash(a, ["Name", "Phone"]) != content_hash(
        {**a, "Phone": "2"}, ["Name", "Phone"]
    )
    assert len(content_hash(a, ["Name"])) == 64


def test_content_hash_treats_absent_none_and_blank_alike() -> None:
    names = ["Name", "Title"]
    h = content_hash({"Name": "A"}, names)
    assert h == content_hash({"Name": "A", "Title": None}, names)
    assert h == content_hash({"Name": "A ", "Title": ""}, names)
    assert h != content_hash({"Name": "A", "Title": "CTO"}, names)


def test_content_hash_of_numbers_dates_and_nested_values() -> None:
    assert content_hash({"Amount": 20.0}, ["Amount"]) == content_hash(
        {"Amount": Decimal("20")}, ["Amount"]
    )
    assert content_hash({"Amount": 20.5}, ["Amount"]) != content_hash({"Amount": 20}, ["Amount"])
    t1 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert content_hash({"t": t1}, ["t"]) == content_hash({"t": t1.replace(tzinfo=None)}, ["t"])
    doc = {"custom": {"Segment": "Ent", "Other": 1}}
    assert content_hash(doc, ["custom.Segment"]) == content_hash(
        {"custom": {"Segment": "Ent"}}, ["custom.Segment"]
    )
    assert content_hash(doc, ["domains"]) != content_hash({"domains": ["a.com"]}, ["domains"])


def test_content_hash_of_a_written_record_matches_its_echo() -> None:
    """What we write and then read back hashes the same (echo suppression)."""
    entity = to_contact(
        "hubspot",
        "contacts",
        {"email": "Jane@Acme.com", "firstname": "Jane", "hs_email_optout": "false"},
    )
    written = from_entity("hubspot", "contacts", entity)
    echo = dict(written)  # HubSpot returns the same strings, plus read-only properties
    echo["lastmodifieddate"] = "2026-11-02T10:15:30.123Z"
    names = mapped_native_fields("hubspot", "contacts")
    assert content_hash(written, names) == content_hash(echo, names)
