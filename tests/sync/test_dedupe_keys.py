"""Tier-1 match keys and nickname forms."""

from __future__ import annotations

import pytest

from mapping.nicknames import name_forms, same_person_name
from sync.dedupe_keys import (
    account_features,
    company_domain,
    company_key,
    contact_features,
    email_key,
    first_name_block,
    phone_key,
    postcode_key,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("  Jane.Doe@Acme.com ", "jane.doe@acme.com"),
        ("jane.doe+crm@acme.com", "jane.doe@acme.com"),
        ("Jane.Doe@gmail.com", "janedoe@gmail.com"),
        ("j.a.n.e+x@googlemail.com", "jane@gmail.com"),
        ("Jane Doe <jane@acme.com>", "jane@acme.com"),
    ],
)
def test_email_key_folds_case_plus_tags_and_gmail_dots(raw: str, key: str) -> None:
    assert email_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    ["info@acme.com", "noreply@acme.com", "Sales+eu@acme.com", "test@test.com", "bob@example.com", "not an email", "", None, 42],
)
def test_role_placeholder_and_unreadable_addresses_are_never_keys(raw: object) -> None:
    assert email_key(raw) is None


def test_phone_key_reads_the_digits_whatever_their_format_or_validity() -> None:
    # one number, however written: E.164, national, with an extension
    assert phone_key("(415) 555-0100") == phone_key("+14155550100") == phone_key("415.555.0100 x204") == "155550100"
    assert phone_key("+44 20 7946 0958") == phone_key("020 7946 0958", region="GB") == "079460958"
    assert phone_key("030 901820", region="DE") == phone_key("+4930901820") == "930901820"
    # an unassigned area code (phonenumbers: possible, not valid) is still evidence
    assert phone_key("+1 555 010 0199") == phone_key("(555) 010-0199") == "550100199"
    assert phone_key("call me") is None
    assert phone_key("0000000") is None and phone_key("12 34") is None
    assert phone_key(None) is None


@pytest.mark.parametrize(
    ("website", "email", "domain"),
    [
        ("https://www.eu.acme.co.uk/about?x=1", None, "acme.co.uk"),
        ("acme.com", "jo@other.com", "acme.com"),
        (None, "jo@Sales.Globex.com", "globex.com"),
        ("not a url", "jo@globex.com", "globex.com"),
        (None, "jo@gmail.com", None),
        ("http://yahoo.co.uk", None, None),
        (None, "x@example.com", None),
        (None, None, None),
    ],
)
def test_company_domain_from_website_or_email_never_free_mail(
    website: str | None, email: str | None, domain: str | None
) -> None:
    assert company_domain(website, email) == domain


def test_company_key_drops_legal_forms() -> None:
    assert company_key("ACME, Inc.") == company_key("Acme") == "acme"
    assert company_key("  ") is None
    assert company_key(None) is None


def test_nickname_forms_meet_their_formal_name_and_not_others() -> None:
    assert same_person_name("Bob", "Robert")
    assert same_person_name("Maggie", "margaret")
    assert same_person_name("Alex", "Alexandra") and same_person_name("Alex", "Alexander")
    assert not same_person_name("Alexander", "Alexandra")
    assert not same_person_name("Bob", "William")
    assert name_forms("Zoë") == ("zoe",)
    assert first_name_block("Bobby") == first_name_block("Robert") == "robert"
    assert first_name_block("Priya") == "priya"


def test_postcode_key() -> None:
    assert postcode_key("sw1a 1aa") == "SW1A1AA"
    assert postcode_key(2000) == "2000"
    assert postcode_key(" - ") is None


def test_feature_rows_use_the_keys() -> None:
    row = contact_features(
        {"id": 7, "first_name": "Bob", "last_name": "O'Neil", "email": "Bob+x@Acme.com", "phone": "(415) 555-0100", "company": "Acme Inc", "title": " VP, Sales ",
         "city": "Saint-Étienne", "state": None}
    )
    assert row == {
        "unique_id": "7",
        "first_name": "bob",
        "last_name": "oneil",
        "first_forms": ["bob", "robert"],
        "first_block": "robert",
        "full_name": "bob oneil",
        "name_block": "robert oneil",
        "email": "bob@acme.com",
        "email_local": "bob",
        "email_domain": "acme.com",
        "email_work_domain": "acme.com",
        "phone": "155550100",
        "company": "acme",
        "company_slug": "acme",
        "email_org": "acme",
        "title": "vp sales",
        "city": "saint etienne",
        "state": None,
    }
    acct = account_features({"id": "a", "name": "Globex GmbH", "website": "https://www.globex.de/", "billing_postal_code": "10 115", "country": "DE", "phone": "030 901820"})
    assert acct["name"] == "globex" and acct["domain"] == "globex.de"
    assert acct["postcode"] == "10115" and acct["phone"] == "930901820"
    personal = contact_features({"id": "p", "email": "Jo.Smith@GMail.com"})
    assert (personal["email_local"], personal["email_domain"], personal["email_work_domain"]) == (
        "josmith", "gmail.com", None)  # a personal address names no employer
    assert contact_features({"id": "w", "email": "jo_smith@acme.com"})["email_local"] == "josmith"
    assert contact_features({"id": "x", "account_id": "acc-1"})["company"] == "acc-1"
