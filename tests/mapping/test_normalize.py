"""Parametrised tests for every normalizer in mapping.normalize."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import RecordError
from mapping import normalize as n

# --------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Jane.Doe@Acme.COM ", "jane.doe@acme.com"),
        ("Jane+News@Example.com", "jane+news@example.com"),  # plus-tag kept in the value
        ("mailto:Sales@Acme.com", "sales@acme.com"),
        ("Jane Doe <Jane@Acme.com>", "jane@acme.com"),
        ("o'brien@acme.ie", "o'brien@acme.ie"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_email(raw: Any, expected: str | None) -> None:
    assert n.normalize_email(raw, field="Email") == expected


@pytest.mark.parametrize(
    "raw", ["jane.doe", "jane@", "@acme.com", "jane doe@acme.com", "a@@b.com", "x@localhost"]
)
def test_invalid_email_raises_record_error_naming_the_field(raw: str) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_email(raw, field="Email")
    assert err.value.field == "Email"
    assert "Email" in str(err.value)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("jane+news@acme.com", "Jane@Acme.com", True),
        ("j.a.n.e@gmail.com", "jane@gmail.com", True),
        ("jane+x@googlemail.com", "jane@gmail.com", True),
        ("j.ane@acme.com", "jane@acme.com", False),  # dots only fold at Gmail
        ("jane@acme.com", "jane@acme.io", False),
    ],
)
def test_email_match_key(a: str, b: str, same: bool) -> None:
    assert (n.email_match_key(a) == n.email_match_key(b)) is same


def test_email_match_key_keeps_the_stored_value_untouched() -> None:
    stored = n.normalize_email("Jane+News@Acme.com")
    assert stored == "jane+news@acme.com"
    assert n.email_match_key(stored) == "jane@acme.com"


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("info@acme.com", True),
        ("noreply@acme.com", True),
        ("no-reply@acme.com", True),
        ("Sales@acme.com", True),
        ("test@acme.com", True),
        ("support+eu@acme.com", True),
        ("jane@acme.com", False),
        ("salesforce.admin.jane@acme.com", False),
    ],
)
def test_is_role_address(email: str, role: bool) -> None:
    assert n.is_role_address(email) is role


@pytest.mark.parametrize(
    ("domain", "free"),
    [
        ("gmail.com", True),
        ("outlook.com", True),
        ("hotmail.com", True),
        ("yahoo.com", True),
        ("icloud.com", True),
        ("aol.com", True),
        ("proton.me", True),
        ("gmx.de", True),
        ("gmx.at", True),  # gmx.* whatever the suffix
        ("GMX.net", True),
        ("acme.com", False),
        ("gmail-partners.com", False),
    ],
)
def test_is_free_mail_domain(domain: str, free: bool) -> None:
    assert n.is_free_mail_domain(domain) is free
    if domain in n.FREE_MAIL_DOMAINS:
        assert free


def test_domain_from_email() -> None:
    assert n.domain_from_email("jo@eu.acme.co.uk") == "acme.co.uk"


# --------------------------------------------------------------------------- domains


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.acme.com", "acme.com"),
        ("http://WWW.Globex.co.uk/home?ref=ad", "globex.co.uk"),
        ("acme.com", "acme.com"),
        ("www.acme.com/", "acme.com"),
        ("shop.eu.acme.com/path/x", "acme.com"),
        ("https://user:pw@app.acme.io:8443/login#top", "acme.io"),
        ("acme.com.au", "acme.com.au"),
        ("Acme.COM.", "acme.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("", None),
        (None, None),
    ],
)
def test_domain_from_url(raw: Any, expected: str | None) -> None:
    assert n.domain_from_url(raw, field="Website") == expected


@pytest.mark.parametrize(
    "raw", ["localhost", "http://intranet/", "not a domain", "http://10.0.0.1/", "com"]
)
def test_bad_domain_raises_record_error(raw: str) -> None:
    with pytest.raises(RecordError) as err:
        n.domain_from_url(raw, field="Website")
    assert err.value.field == "Website"


def test_tldextract_is_configured_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh extractor resolves domains with every socket refused."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tldextract tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    extractor = n.offline_extractor()
    assert extractor.suffix_list_urls == ()
    assert extractor._cache.enabled is False
    assert extractor("https://www.bbc.co.uk").top_domain_under_public_suffix == "bbc.co.uk"
    assert n.domain_from_url("https://forums.news.cnn.com/") == "cnn.com"


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-0100", None, "+14155550100"),
        ("415.555.0100", "US", "+14155550100"),
        ("+1 415 555 0100", "DE", "+14155550100"),  # international form ignores the region
        ("020 7946 0958", "GB", "+442079460958"),
        ("089 1234567", "DE", "+49891234567"),
        ("+49 89 1234567", None, "+49891234567"),
        ("4155550100", None, "+14155550100"),
        (4155550100, None, "+14155550100"),
        ("(415) 555-0100 ext. 12", None, "+14155550100"),
        ("", None, None),
        (None, "US", None),
    ],
)
def test_normalize_phone(raw: Any, region: str | None, expected: str | None) -> None:
    assert n.normalize_phone(raw, region=region, field="Phone") == expected


@pytest.mark.parametrize("raw", ["call me", "12", "+1 000", "555-0100-0000-0000-000"])
def test_bad_phone_raises_record_error(raw: str) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_phone(raw, field="Phone")
    assert err.value.field == "Phone"
    assert raw in str(err.value)


# --------------------------------------------------------------------------- country


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("United States", "US"),
        ("USA", "US"),
        ("U.S.", "US"),
        ("U.S.A.", "US"),
        ("US", "US"),
        ("us", "US"),
        ("United States of America", "US"),
        ("Deutschland", "DE"),
        ("Germany", "DE"),
        ("DEU", "DE"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("GB", "GB"),
        ("France", "FR"),
        ("España", "ES"),
        ("Espana", "ES"),
        ("Österreich", "AT"),
        ("Schweiz", "CH"),
        ("The Netherlands", "NL"),
        ("Holland", "NL"),
        ("Brasil", "BR"),
        ("Japan", "JP"),
        ("South Korea", "KR"),
        ("Côte d'Ivoire", "CI"),
        ("Kenya", "KE"),  # from the locale names, not the alias table
        ("KE", "KE"),
        ("  india ", "IN"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_country(raw: Any, expected: str | None) -> None:
    assert n.normalize_country(raw, field="BillingCountry") == expected


@pytest.mark.parametrize("raw", ["Atlantis", "XX", "Middle Earth", "ZZZ"])
def test_unknown_country_raises_record_error(raw: str) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_country(raw, field="BillingCountry")
    assert err.value.field == "BillingCountry"
    assert raw in str(err.value)


@pytest.mark.parametrize(
    ("code", "name"), [("US", "United States"), ("DE", "Germany"), ("gb", "United Kingdom")]
)
def test_country_name_round_trips(code: str, name: str) -> None:
    assert n.country_name(code) == name
    assert n.normalize_country(name) == code.upper()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # ISO short, official and inverted names, and their translations (pycountry)
        ("Korea, Republic of", "KR"),
        ("Republic of Moldova", "MD"),
        ("Bundesrepublik Deutschland", "DE"),
        ("Saksa", "DE"),  # Finnish
        ("Niemcy", "DE"),  # Polish
        ("Allemagne", "DE"),
        ("Turquía", "TR"),
        ("Türkiye", "TR"),
        ("Eswatini", "SZ"),
        ("Czechia", "CZ"),
        # every ISO alpha-3 code, not only the common ones
        ("KAZ", "KZ"),
        ("mng", "MN"),
        # spellings only the phonenumbers locale data has
        ("Holanda", "NL"),
        ("Hong-Kong", "HK"),
    ],
)
def test_country_names_and_codes_from_iso_data(raw: str, expected: str) -> None:
    assert n.normalize_country(raw, field="BillingCountry") == expected


def test_every_iso_country_has_a_readable_english_name_that_reads_back() -> None:
    import pycountry

    for country in pycountry.countries:
        name = n.country_name(country.alpha_2)
        assert not name.endswith(" of") and "(" not in name, name  # no "Korea, Republic of"
        assert n.normalize_country(name) == country.alpha_2, name
        assert n.normalize_country(country.alpha_3) == country.alpha_2
    assert [n.country_name(c) for c in ("KR", "RU", "VN", "CD")] == [
        "South Korea", "Russia", "Vietnam", "Democratic Republic of the Congo"]


# --------------------------------------------------------------------------- company names


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ACME, Inc.", "Acme"),
        ("Acme Incorporated", "acme"),
        ("Acme Corp.", "Acme Corporation"),
        ("Acme LLC", "Acme"),
        ("Globex Ltd", "Globex Limited"),
        ("Müller GmbH", "Muller"),
        ("Müller GmbH & Co. KG", "Muller"),
        ("Siemens AG", "Siemens"),
        ("Danone S.A.", "Danone SA"),
        ("Capgemini SAS", "Capgemini"),
        ("Philips N.V.", "Philips"),
        ("Booking B.V.", "Booking"),
        ("Tesco plc", "TESCO"),
        ("Atlassian Pty Ltd", "Atlassian"),
        ("Smith & Sons", "Smith and Sons"),
        ("The Home Depot, Inc.", "Home Depot"),
        ("  Acme   Widgets  ", "acme widgets"),
    ],
)
def test_company_match_key_equal(a: str, b: str) -> None:
    assert n.company_match_key(a) == n.company_match_key(b)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ACME, Inc.", "acme"),
        ("AT&T Inc.", "at and t"),
        ("Grupo Bimbo S.A. de C.V.", "grupo bimbo"),
        ("Co", "co"),  # a name that is only a legal form keeps it
    ],
)
def test_company_match_key_value(name: str, key: str) -> None:
    assert n.company_match_key(name) == key


def test_company_match_key_keeps_different_companies_apart() -> None:
    assert n.company_match_key("Acme Widgets") != n.company_match_key("Acme Gadgets")


@pytest.mark.parametrize(
    ("long", "short"),
    [
        ("Siemens Aktiengesellschaft", "Siemens AG"),
        ("Müller Gesellschaft mit beschränkter Haftung", "Müller GmbH"),
        ("Müller Gesellschaft mit beschraenkter Haftung", "Muller"),
        ("Globex Incorporated", "Globex Inc."),
        ("Initech Corporation", "Initech Corp"),
        ("Tesco Public Limited Company", "Tesco PLC"),
        ("Hooli Limited Liability Company", "Hooli, L.L.C."),
        ("Danone Société Anonyme", "Danone S.A."),
        ("Capgemini Société par Actions Simplifiée", "Capgemini S.A.S."),
        ("Booking Besloten Vennootschap", "Booking B.V."),
        ("Philips Naamloze Vennootschap", "Philips N.V."),
        ("Atlassian Proprietary Limited", "Atlassian Pty. Ltd."),
        ("Red Bull Ges.m.b.H.", "Red Bull GesmbH"),
        ("Ferrari Società per Azioni", "Ferrari S.p.A."),
        ("Telefónica Sociedad Anónima", "Telefonica SA"),
        ("Volvo Aktiebolag", "Volvo AB"),
        ("Tata Private Limited", "Tata Pvt Ltd"),
    ],
)
def test_company_match_key_drops_spelled_out_legal_forms(long: str, short: str) -> None:
    assert n.company_match_key(long) == n.company_match_key(short)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Müller Gesellschaft mit beschränkter Haftung", "muller"),
        ("Limited Editions Ltd", "limited editions"),  # the form only at the end
        ("Gesellschaft für Informatik e.V.", "gesellschaft fur informatik"),
        ("Société Générale", "societe generale"),  # not a legal form
        ("Aktiengesellschaft", "aktiengesellschaft"),  # only a legal form: kept
    ],
)
def test_company_match_key_strips_forms_only_at_the_end(name: str, key: str) -> None:
    assert n.company_match_key(name) == key


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "2026-11-02T10:15:30.000+0000",
            datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC),
        ),  # Salesforce
        (
            "2026-11-02T10:15:30.123Z",
            datetime(2026, 11, 2, 10, 15, 30, 123000, tzinfo=UTC),
        ),  # HubSpot
        (
            "1793614530123",
            datetime(2026, 11, 2, 10, 15, 30, 123000, tzinfo=UTC),
        ),  # HubSpot epoch-ms
        (1793614530123, datetime(2026, 11, 2, 10, 15, 30, 123000, tzinfo=UTC)),
        ("2026-11-02T12:15:30+02:00", datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-02T10:15:30.000-0500", datetime(2026, 11, 2, 15, 15, 30, tzinfo=UTC)),
        ("2026-11-02T10:15:30", datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC)),  # naive → UTC
        ("2026-11-02", datetime(2026, 11, 2, tzinfo=UTC)),
        (datetime(2026, 11, 2, 10, 15, 30), datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_normalize_datetime(raw: Any, expected: datetime | None) -> None:
    got = n.normalize_datetime(raw, field="closedate")
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-02", date(2026, 11, 2)),
        ("2027-09-30T00:00:00.000Z", date(2027, 9, 30)),  # Planhat ISO
        ("2026-07-01T23:30:00.000-0500", date(2026, 7, 2)),  # the UTC date
        ("1790787600000", date(2026, 9, 30)),
        (date(2026, 1, 31), date(2026, 1, 31)),
        ("", None),
    ],
)
def test_normalize_date(raw: Any, expected: date | None) -> None:
    assert n.normalize_date(raw, field="CloseDate") == expected


@pytest.mark.parametrize("raw", ["next tuesday", "2026-13-45", "2026-02-30", "02/11/2026", True])
def test_bad_date_raises_record_error(raw: Any) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_date(raw, field="CloseDate")
    assert err.value.field == "CloseDate"


# --------------------------------------------------------------------------- numbers, booleans


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.50", Decimal("1234.5")),
        ("1,234.50", Decimal("1234.5")),
        ("$ 1,000", Decimal("1000")),
        (0.1, Decimal("0.1")),  # floats go through str: no binary noise
        (12500000.0, Decimal("12500000")),
        (48000, Decimal("48000")),
        (Decimal("2.500"), Decimal("2.5")),
        (0, Decimal("0")),
        ("", None),
        (None, None),
    ],
)
def test_normalize_decimal(raw: Any, expected: Decimal | None) -> None:
    got = n.normalize_decimal(raw, field="Amount")
    assert got == expected
    if got is not None:
        assert "E" not in str(got)


@pytest.mark.parametrize("raw", ["lots", "1.2.3", "NaN", "Infinity", True, [1]])
def test_bad_decimal_raises_record_error(raw: Any) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_decimal(raw, field="Amount")
    assert err.value.field == "Amount"


@pytest.mark.parametrize(
    ("raw", "expected"), [("1,200", 1200), (250, 250), (250.0, 250), ("", None)]
)
def test_normalize_int(raw: Any, expected: int | None) -> None:
    assert n.normalize_int(raw, field="NumberOfEmployees") == expected


def test_fractional_int_raises_record_error() -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_int("12.5", field="NumberOfEmployees")
    assert err.value.field == "NumberOfEmployees"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("1", True),
        ("yes", True),
        ("no", False),
        ("", None),
        (None, None),
    ],
)
def test_normalize_bool(raw: Any, expected: bool | None) -> None:
    assert n.normalize_bool(raw, field="hs_email_optout") is expected


@pytest.mark.parametrize("raw", ["maybe", 2, 0.5])
def test_bad_bool_raises_record_error(raw: Any) -> None:
    with pytest.raises(RecordError) as err:
        n.normalize_bool(raw, field="hs_email_optout")
    assert err.value.field == "hs_email_optout"


def test_normalize_string_rejects_objects() -> None:
    assert n.normalize_string("  x ") == "x"
    with pytest.raises(RecordError):
        n.normalize_string({"a": 1}, field="Name")
