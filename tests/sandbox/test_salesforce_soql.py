"""The SOQL subset of the Salesforce emulator: parsing, typing and evaluation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from simple_salesforce.format import format_soql

from sandbox.salesforce_soql import (
    SoqlError,
    compile_soql,
    parse_sf_datetime,
    sf_datetime,
    sort_records,
    tokenize,
)
from sandbox.salesforce_store import Org

NOW = "2026-03-01T12:00:00.000+0000"


@pytest.fixture
def org() -> Org:
    o = Org(seed=1)
    o.add("User", {"Email": "owner@example.com", "Name": "Olga Owner", "IsActive": True}, NOW)
    owner = next(iter(o.records["User"]))
    rows = [
        ("Acme", "Technology", 120, "2026-01-01T10:00:00.000+0000", "Prospect"),
        ("Globex", "Finance", 5000, "2026-01-02T10:00:00.000+0000", None),
        ("initech", "Technology", None, "2026-01-03T10:00:00.000+0000", "Other"),
        ("O'Brien & Sons", "Retail", 40, "2026-01-04T10:00:00.000+0000", "Prospect"),
    ]
    for name, industry, emp, stamp, typ in rows:
        o.add(
            "Account",
            {
                "Name": name,
                "Industry": industry,
                "NumberOfEmployees": emp,
                "SystemModstamp": stamp,
                "LastModifiedDate": stamp,
                "Type": typ,
                "OwnerId": owner,
            },
            NOW,
        )
    return o


def names(org: Org, soql: str) -> list[str]:
    q = compile_soql(soql, org)
    store = org.records[q.obj]
    recs = [r for r in store.values() if q.predicate is None or q.predicate(r)]
    if q.order:
        recs = sort_records(recs, q.order)
    return [r["Name"] for r in recs]


def test_tokenize_unescapes_format_soql_strings() -> None:
    soql = format_soql("SELECT Id FROM Account WHERE Name = {}", 'O\'Brien \\ "x"\n')
    toks = tokenize(soql)
    strings = [t.text for t in toks if t.kind == "string"]
    assert strings == ['O\'Brien \\ "x"\n']
    assert [t.kind for t in toks][:4] == ["keyword", "ident", "keyword", "ident"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Industry = 'technology'", ["Acme", "initech"]),  # case-insensitive like Salesforce
        ("Industry != 'Technology'", ["Globex", "O'Brien & Sons"]),
        ("NumberOfEmployees > 100", ["Acme", "Globex"]),
        ("NumberOfEmployees <= 40", ["O'Brien & Sons"]),
        ("NumberOfEmployees = null", ["initech"]),
        ("Type != null AND NumberOfEmployees < 1000", ["Acme", "O'Brien & Sons"]),
        ("Industry IN ('Finance', 'Retail')", ["Globex", "O'Brien & Sons"]),
        ("Industry NOT IN ('Finance', 'Retail')", ["Acme", "initech"]),
        ("(Industry = 'Finance' OR Industry = 'Retail') AND NumberOfEmployees > 100", ["Globex"]),
        ("NOT Industry = 'Technology'", ["Globex", "O'Brien & Sons"]),
        ("Name LIKE 'glo%'", ["Globex"]),
        ("Name = 'O\\'Brien & Sons'", ["O'Brien & Sons"]),
        ("SystemModstamp > 2026-01-02T10:00:00Z", ["initech", "O'Brien & Sons"]),
        ("SystemModstamp >= 2026-01-02T10:00:00.000+0000", ["Globex", "initech", "O'Brien & Sons"]),
        ("SystemModstamp < 2026-01-02T11:00:00+01:00", ["Acme"]),
        ("Owner.Email = 'OWNER@example.com'", ["Acme", "Globex", "initech", "O'Brien & Sons"]),
        ("IsDeleted = false AND Name = 'Acme'", ["Acme"]),
    ],
)
def test_where_filters(org: Org, where: str, expected: list[str]) -> None:
    got = names(org, f"SELECT Id, Name FROM Account WHERE {where}")
    assert sorted(got) == sorted(expected)


def test_order_by_with_nulls_and_direction(org: Org) -> None:
    assert names(org, "SELECT Name FROM Account ORDER BY NumberOfEmployees") == [
        "initech",
        "O'Brien & Sons",
        "Acme",
        "Globex",
    ]
    assert names(org, "SELECT Name FROM Account ORDER BY NumberOfEmployees DESC") == [
        "Globex",
        "Acme",
        "O'Brien & Sons",
        "initech",
    ]
    assert (
        names(org, "SELECT Name FROM Account ORDER BY Type DESC NULLS FIRST, Name")[0] == "Globex"
    )


def test_modstamp_floor_and_index_order_are_detected(org: Org) -> None:
    q = compile_soql(
        "SELECT Id FROM Account WHERE SystemModstamp > 2026-01-02T10:00:00Z AND Industry = 'Retail' "
        "ORDER BY SystemModstamp, Id LIMIT 10",
        org,
    )
    assert q.modstamp_floor == ("2026-01-02T10:00:00.000+0000", False)
    assert q.index_order
    assert q.limit == 10
    q2 = compile_soql(
        "SELECT Id FROM Account WHERE SystemModstamp > 2026-01-02T10:00:00Z OR Name = 'x'", org
    )
    assert q2.modstamp_floor is None  # an OR cannot use the index
    assert not q2.index_order


def test_render_has_attributes_and_relationships(org: Org) -> None:
    q = compile_soql("select id, NAME, Owner.Email from account where name = 'Acme'", org)
    rec = next(r for r in org.records["Account"].values() if r["Name"] == "Acme")
    out = q.render(rec, "59.0")
    assert out["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{rec['Id']}",
    }
    assert list(out) == ["attributes", "Id", "Name", "Owner"]  # canonical field names
    assert out["Owner"]["Email"] == "owner@example.com"
    assert out["Owner"]["attributes"]["type"] == "User"
    assert q.flat(rec) == [rec["Id"], "Acme", "owner@example.com"]


def test_count_query(org: Org) -> None:
    q = compile_soql("SELECT COUNT() FROM Account WHERE Industry = 'Technology'", org)
    assert q.count_only
    assert q.columns == ()


@pytest.mark.parametrize(
    ("soql", "code", "fragment"),
    [
        ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'"),
        ("SELECT Id FROM Account WHERE Bar = 1", "INVALID_FIELD", "No such column 'Bar'"),
        ("SELECT Id FROM Widget", "INVALID_TYPE", "sObject type 'Widget' is not supported"),
        ("SELECT Id Account", "MALFORMED_QUERY", "FROM"),
        ("SELECT FROM Account", "MALFORMED_QUERY", "field name"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "end of query"),
        (
            "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
            "MALFORMED_QUERY",
            "parentheses",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'unterminated",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        ("SELECT Id FROM Account LIMIT abc", "MALFORMED_QUERY", "integer"),
        (
            "SELECT Id FROM Account WHERE NumberOfEmployees = '12'",
            "INVALID_FIELD",
            "must be of type int",
        ),
        ("SELECT Id FROM Account WHERE SystemModstamp > '2026-01-01'", "INVALID_FIELD", "dateTime"),
        ("SELECT Id FROM Account WHERE IsDeleted = 1", "INVALID_FIELD", "boolean"),
        ("SELECT Id FROM Account GROUP BY Name", "MALFORMED_QUERY", "end of query"),
        ("SELECT Id, Id FROM Account", "MALFORMED_QUERY", "duplicate field"),
        ("SELECT Nope.Name FROM Account", "INVALID_FIELD", "relationship 'Nope'"),
        ("", "MALFORMED_QUERY", "empty"),
    ],
)
def test_bad_queries_are_refused(org: Org, soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SoqlError) as info:
        compile_soql(soql, org)
    assert info.value.code == code
    assert fragment in info.value.message


def test_datetime_forms_normalise_to_salesforce_text() -> None:
    want = "2026-01-01T00:00:00.000+0000"
    for text in (
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.000+0000",
        "2026-01-01T01:00:00+01:00",
    ):
        assert sf_datetime(parse_sf_datetime(text)) == want
    assert (
        sf_datetime(datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
        == "2026-05-06T07:08:09.123+0000"
    )


def test_format_soql_datetime_literal_is_accepted(org: Org) -> None:
    soql = format_soql(
        "SELECT Name FROM Account WHERE SystemModstamp >= {} ORDER BY SystemModstamp",
        datetime(2026, 1, 3, 10, 0, tzinfo=UTC),
    )
    assert names(org, soql) == ["initech", "O'Brien & Sons"]


def test_dropped_field_disappears_from_soql(org: Org) -> None:
    org.schema["Account"].pop("industry")
    with pytest.raises(SoqlError) as info:
        compile_soql("SELECT Industry FROM Account", org)
    assert info.value.code == "INVALID_FIELD"
