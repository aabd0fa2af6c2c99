"""Lenient normalisers and the per-field unreadable path of ``read_entity``.

Values here are shaped like foreign CRM exports, not like our generator's output:
national formats, extensions, unassigned area codes, quoted local parts, hostile text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.base import RecordError
from mapping import normalize as n
from mapping.fieldmap import content_hash, read_entity, to_entity

# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "region", "e164", "ext"),
    [
        ("823-701-0042", None, "+18237010042", None),  # possible, not valid: unassigned area code
        ("555.123.4567 x204", None, "+15551234567", "204"),
        ("(415) 555-0100 ext. 12", None, "+14155550100", "12"),
        ("+44 (0) 20 7946 0958", None, "+442079460958", None),
        ("(0)20 7946 0958", "GB", "+442079460958", None),
        ("020 7946 0958", "GB", "+442079460958", None),
        ("+49 (0)30 901820", None, "+4930901820", None),
        ("+1 (999) 555-0100", None, "+19995550100", None),  # 999: no such area code, right length
    ],
)
def test_possible_phone_numbers_are_kept_in_e164_with_the_extension_apart(
    raw: str, region: str | None, e164: str, ext: str | None
) -> None:
    assert n.normalize_phone(raw, region=region, field="Phone") == e164
    assert n.phone_extension(raw, region=region) == ext


@pytest.mark.parametrize("raw", ["call me", "12", "555-1234", "+999 123", "(0)20 7946 0958", "+1 415 555 0100 0000"])
def test_only_junk_phone_numbers_are_unreadable(raw: str) -> None:
    # "(0)20 7946 0958" without a country is read as a US number: too long, unreadable
    with pytest.raises(RecordError) as err:
        n.normalize_phone(raw, field="Phone")
    assert err.value.field == "Phone"


# --------------------------------------------------------------------------- emails


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"quote\\"probe"@example.com', '"quote\\"probe"@example.com'),
        ('"john smith"@example.com', '"john smith"@example.com'),
        ("josé@exämple.de", "josé@exämple.de"),
        ("用户@例子.广告", "用户@例子.广告"),
        ("Jane@Acme.com.", "jane@acme.com"),  # trailing dot: the DNS root
        ("jane.@docomo.ne.jp", '"jane."@docomo.ne.jp'),  # deliverable, only valid quoted
        ("a..b@example.com", '"a..b"@example.com'),
        ("o'brien+tag@acme.ie", "o'brien+tag@acme.ie"),
    ],
)
def test_unusual_but_deliverable_emails_pass(raw: str, expected: str) -> None:
    assert n.normalize_email(raw, field="Email") == expected


@pytest.mark.parametrize("raw", ["jane doe@acme.com", "x@localhost", "a@@b.com", "jane@acme..com", "@acme.com", "jane@[127.0.0.1]"])
def test_emails_that_are_not_addresses_stay_unreadable(raw: str) -> None:
    with pytest.raises(RecordError):
        n.normalize_email(raw, field="Email")


# --------------------------------------------------------------------------- text hygiene


def test_control_characters_and_nul_are_removed_and_noted() -> None:
    assert n.clean_text("Ja\x00ne\x07 Doe\x7f") == ("Jane Doe", "removed 3 control character(s)")
    assert n.clean_text("line one\nline\ttwo\r\n") == ("line one\nline\ttwo\r\n", None)
    assert n.clean_text("\ufeffAcme") == ("Acme", "removed 1 control character(s)")
    assert n.clean_text("😀 Zoë") == ("😀 Zoë", None)


def test_a_surrogate_pair_is_joined_and_a_lone_surrogate_is_refused() -> None:
    assert n.clean_text("\ud83d\ude00") == ("😀", None)
    with pytest.raises(RecordError, match="lone surrogate"):
        n.clean_text("Jos\udc80", field="lastname")
    with pytest.raises(RecordError, match="not UTF-8"):
        n.sanitize(b"Jos\xe9", field="lastname")
    assert n.sanitize("José".encode()) == ("José", None)
    assert n.sanitize(["a\x00", {"k": "b\x01"}]) == (["a", {"k": "b"}], "removed 1 control character(s); removed 1 control character(s)")


def test_printable_is_escaped_safe_text_cut_to_a_limit() -> None:
    text = n.printable("a\x00\udc80" + "x" * 500)
    text.encode("utf-8")  # never raises
    assert text.startswith("'a\\x00\\udc80xxx") and text.endswith("(513 chars)")  # of the repr
    assert len(text) < n.RAW_LIMIT + 20
    assert n.safe_text("\ufeff\x00") == "\\ufeff\\u0000"


def test_numbers_no_system_holds_are_unreadable() -> None:
    assert n.normalize_decimal("9,999,999,999,999,999") == Decimal("9999999999999999")
    for raw in ("1e400", "10000000000000000", "NaN", "-Infinity"):
        with pytest.raises(RecordError):
            n.normalize_decimal(raw, field="AnnualRevenue")


def test_content_hash_takes_lone_surrogates_and_nul() -> None:
    a = content_hash({"lastname": "Li\udc80ma", "x": "\x00"}, ["lastname", "x"])
    assert a == content_hash({"lastname": "Li\udc80ma", "x": "\x00"}, ["lastname", "x"])
    assert a != content_hash({"lastname": "Lima", "x": "\x00"}, ["lastname", "x"])


# --------------------------------------------------------------------------- per field


def _unreadable(result: Any) -> dict[str, tuple[str, str]]:
    return {u.canonical: (u.native, u.raw) for u in result.unreadable}


@pytest.mark.parametrize(
    ("system", "native", "fields", "bad", "kept"),
    [
        ("hubspot", "contacts", {"phone": "ask reception"}, {"phone": ("phone", "'ask reception'")}, {}),
        ("hubspot", "contacts", {"email": "jane doe@acme"}, {"email": ("email", "'jane doe@acme'")}, {}),
        ("hubspot", "contacts", {"lastname": "Li\udc80ma"}, {"last_name": ("lastname", "'Li\\udc80ma'")}, {}),
        ("hubspot", "contacts", {"jobtitle": b"\xff"}, {"title": ("jobtitle", "b'\\xff'")}, {}),
        ("hubspot", "contacts", {"lifecyclestage": "zombie"}, {"lifecycle_stage": ("lifecyclestage", "'zombie'")}, {}),
        ("hubspot", "contacts", {"lastname": "Do\x00e\x1b"}, {}, {"last_name": "Doe"}),
        ("salesforce", "Account", {"Website": "n/a"},
         {"website": ("Website", "'n/a'"), "domain": ("Website", "'n/a'")}, {}),
        ("salesforce", "Account", {"NumberOfEmployees": "lots"}, {"employees": ("NumberOfEmployees", "'lots'")}, {}),
        ("salesforce", "Account", {"AnnualRevenue": "1e400"}, {"annual_revenue": ("AnnualRevenue", "'1e400'")}, {}),
        ("salesforce", "Account", {"BillingCountry": "Atlantis", "Phone": "020 7946 0958"},
         {"country": ("BillingCountry", "'Atlantis'"), "phone": ("Phone", "'020 7946 0958'")}, {}),
        ("salesforce", "Opportunity", {"CloseDate": "31/12/2026"}, {"close_date": ("CloseDate", "'31/12/2026'")}, {}),
        ("salesforce", "Opportunity", {"Probability": 150}, {"probability": ("Probability", "150")}, {}),
        ("salesforce", "Opportunity", {"CurrencyIsoCode": "dollars"}, {"currency": ("CurrencyIsoCode", "'dollars'")}, {}),
        ("planhat", "companies", {"domains": ["not a domain"], "h": "great"},
         {"domain": ("domains", "['not a domain']"), "health": ("h", "'great'")}, {}),
        ("salesforce", "Account", {"Website": "https://www.acme.co.uk/about", "BillingCountry": "UK",
                                   "Phone": "(0)20 7946 0958"}, {},
         {"domain": "acme.co.uk", "phone": "+442079460958", "website": "https://www.acme.co.uk/about"}),
    ],
)
def test_each_unreadable_value_costs_its_field_only(
    system: str, native: str, fields: dict[str, Any], bad: dict[str, tuple[str, str]], kept: dict[str, Any]
) -> None:
    base = {
        ("hubspot", "contacts"): {"email": "ana@lima.example.com", "firstname": "Ana", "lastname": "Lima"},
        ("salesforce", "Account"): {"Name": "Acme Ltd"},
        ("salesforce", "Opportunity"): {"Name": "Renewal 2027", "Amount": "1,200.50", "StageName": "Prospecting"},
        ("planhat", "companies"): {"name": "Acme Ltd"},
    }[(system, native)]
    result = read_entity(system, native, {**base, **fields})
    assert _unreadable(result) == bad
    entity = result.entity
    for canonical in bad:
        assert getattr(entity, canonical) is None
    for canonical, value in kept.items():
        assert getattr(entity, canonical) == value
    # the readable values of the record are all there
    if native == "contacts":
        assert entity.first_name == "Ana" and (entity.email == "ana@lima.example.com" or "email" in bad)
    elif native == "Opportunity":
        assert entity.name == "Renewal 2027" and entity.amount == Decimal("1200.5")
    else:
        assert entity.name == "Acme Ltd"
    for u in result.unreadable:
        assert u.reason and u.native in u.reason
    if bad:
        with pytest.raises(RecordError) as err:
            to_entity(system, native, {**base, **fields})  # the strict form still refuses
        assert err.value.field == result.unreadable[0].native


def test_cleaned_values_are_reported_with_their_raw_form() -> None:
    result = read_entity("hubspot", "contacts", {"email": "a@b.example.com", "firstname": "\x00Ana\x00"})
    assert result.entity.first_name == "Ana" and result.unreadable == ()
    [c] = result.cleaned
    assert (c.canonical, c.native, c.raw, c.note) == ("first_name", "firstname", "'\\x00Ana\\x00'",
                                                      "removed 2 control character(s)")


def test_a_phone_extension_is_kept_in_extras() -> None:
    result = read_entity("salesforce", "Contact", {"LastName": "Ek", "Phone": "555.123.4567 x204"})
    assert result.entity.phone == "+15551234567"
    assert result.entity.extras == {"phone_extension": "204"}
