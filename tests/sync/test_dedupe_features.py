"""The column-wise feature tables (DuckDB SQL + Python per distinct value) give exactly
the features the per-record reference functions give."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pytest

from sync.dedupe_keys import (
    account_feature_table,
    account_features,
    contact_feature_table,
    contact_features,
)

FIRST = ["Bob", "Robert", "  Zoë-Ann ", "ANDRÉ", "Liam", "Alex", "", None, "Ömer", "Straße", "O'Neil", "J.", "ß"]
LAST = ["Smith", "O'Neil", "García Márquez", "van der Berg", "", None, "MÜLLER", "Łukasz", "Ng"]
EMAILS = [
    "  Jane.Doe@Acme.com ", "jane.doe+crm@acme.com", "Jane.Doe@gmail.com", "j.a.n.e+x@googlemail.com",
    "Jane Doe <jane@acme.com>", "info@acme.com", "Sales+eu@acme.com", "noreply@acme.com",
    "test@test.com", "bob@example.com", "not an email", "", None, "JOHN.SMITH@ACME.IO",
    "a..b@acme.com", "josé@acme.com", "mailto:pat@acme.com", "+x@acme.com", "x@acme.c",
    "bob@sub.acme.co.uk", "bob@acme.com\n", "o'brien@acme.ie", "a@b.com", 42, Decimal("7"), True,
    "team+x@Acme.com", "TeSt@Example.ORG",
]  # fmt: skip
PHONES = [
    "+14155550100", "(415) 555-0100", "+44 20 7946 0958", "030 901820", "call me", "", None,
    "+1 415 555 0100", "415.555.0100", "+4930901820", "+0123456789", "+12", "+14155550100\n",
    "+١٤١٥٥٥٥٠١٠٠", 4155550100, 14155550100, 3.5, False, "+49 (0)30 901820", "00 44 20 7946 0958",
    "+15550100199", "(555) 010-0199 ext. 12", "+10000000000",
]  # fmt: skip
COUNTRIES = [None, "US", "DE", "GB", "", " FR ", "XX"]
COMPANIES = ["ACME, Inc.", "Acme", "The Acme Company", "Müller GmbH & Co. KG", "", None, "  ", "Co"]
ACCOUNT_IDS = [None, "acct-1", 17, "  ", ""]
TITLES = ["VP Sales", "v.p. \u2013 sales", "Directeur Général", "", None, "CEO  "]
CITIES = ["San Francisco", "SAN FRANCISCO ", "Saint-Étienne", "São Paulo", "", None, 7]
STATES = ["CA", "ca", "California", "Île-de-France", "", None]


def _contacts(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        record = {
            "id": i if i % 3 else f"c{i}",
            "first_name": FIRST[i % len(FIRST)],
            "last_name": LAST[(i * 7) % len(LAST)],
            "email": EMAILS[(i * 3) % len(EMAILS)],
            "phone": PHONES[(i * 7) % len(PHONES)],
            "country": COUNTRIES[(i * 11) % len(COUNTRIES)],
            "company": COMPANIES[(i * 13) % len(COMPANIES)],
            "account_id": ACCOUNT_IDS[(i * 17) % len(ACCOUNT_IDS)],
            "title": TITLES[(i * 19) % len(TITLES)],
            "city": CITIES[(i * 23) % len(CITIES)],
            "state": STATES[(i * 5) % len(STATES)],
        }
        if i % 29 == 0:
            del record["email"], record["company"]  # absent fields, not just empty ones
        out.append(record)
    return out


ACCOUNT_NAMES = ["ACME, Inc.", "Acme Aktiengesellschaft", "Brightwave Pty. Ltd.", "", None, "S.A.S."]
SITES = [
    "https://www.acme.com/x", "acme.co.uk", "http://gmail.com", "localhost", "", None, "example.com",
    "HTTPS://WWW.Acme.com/", "https://app.acme.io", "www.acme.de/", "acme.com.", "http://co.uk",
    "ftp://files.acme.com", "https://user@acme.com:8443/x?y", "  acme.com ", "bücher.de", "https://",
]  # fmt: skip
STREETS = ["1 Main St.", "1 main st", "Königstraße 5", "", None]
POSTCODES = ["SW1A 1AA", "sw1a-1aa", 10115, "", None]
INDUSTRIES = ["Software", "software ", "Bio-Tech", None]


def _accounts(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        record: dict[str, Any] = {
            "id": f"a{i}",
            "name": ACCOUNT_NAMES[i % len(ACCOUNT_NAMES)],
            "phone": PHONES[(i * 3) % len(PHONES)],
            "country": COUNTRIES[(i * 5) % len(COUNTRIES)],
            "billing_street": STREETS[(i * 7) % len(STREETS)],
            "billing_postal_code": POSTCODES[(i * 11) % len(POSTCODES)],
            "industry": INDUSTRIES[(i * 13) % len(INDUSTRIES)],
            "billing_city": CITIES[(i * 3) % len(CITIES)],
            "billing_state": STATES[(i * 17) % len(STATES)],
        }
        site = SITES[(i * 7) % len(SITES)]
        record["domain" if i % 2 else "website"] = site
        out.append(record)
    return out


def _table(build: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    con = duckdb.connect(":memory:")
    try:
        build(con, records, "features")
        rows: list[dict[str, Any]] = con.sql("SELECT * EXCLUDE (rn) FROM features ORDER BY rn").to_arrow_table().to_pylist()
    finally:
        con.close()
    return rows


@pytest.mark.parametrize(
    ("build", "reference", "records"),
    [
        (contact_feature_table, contact_features, _contacts(600)),
        (account_feature_table, account_features, _accounts(300)),
        (account_feature_table, account_features, [*_accounts(40), {"id": "n", "website": 5}]),
    ],
    ids=["contacts", "accounts", "accounts-non-str-site"],
)
def test_feature_table_equals_the_per_record_features(build: Any, reference: Any, records: list[dict[str, Any]]) -> None:
    expected = [reference(r) for r in records]
    got = _table(build, records)
    assert len(got) == len(expected)
    for want, row in zip(expected, got, strict=True):
        assert row == want, want["unique_id"]


def test_the_sample_exercises_both_paths() -> None:
    """Plain values are decided in SQL, the rest by the Python functions: both occur."""
    rows = _table(contact_feature_table, _contacts(600))
    emails = {r["email"] for r in rows}
    phones = {r["phone"] for r in rows}
    assert {"jane.doe@acme.com", "janedoe@gmail.com", "jane@gmail.com", "john.smith@acme.io"} <= emails
    # keys from the digits: E.164 in SQL, national forms and unassigned area codes in Python
    assert {"155550100", "079460958", "930901820", "550100199"} <= phones
    assert None in emails and None in phones
    forms = {tuple(r["first_forms"]) for r in rows if r["first_forms"]}
    assert ("robert",) in forms


def test_duplicate_ids_are_refused() -> None:
    con = duckdb.connect(":memory:")
    with pytest.raises(ValueError, match="duplicate record id"):
        contact_feature_table(con, [{"id": 1}, {"id": "1"}], "features")
    con.close()
