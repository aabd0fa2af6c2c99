"""Golden tests: recorded native payloads in, expected canonical records out; round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mapping.canonical import Account, Contact, Opportunity
from mapping.fieldmap import (
    FIELD_MAPS,
    OWNER_PSEUDO_FIELD,
    SCHEMAS,
    from_entity,
    get_field_map,
    to_entity,
)
from tests.mapping._support import GOLDEN_CASES, entity_json, load_expected, load_native


def test_every_default_map_has_a_golden_case() -> None:
    assert set(GOLDEN_CASES) == set(FIELD_MAPS)


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_golden_native_to_canonical(system: str, native_type: str) -> None:
    records = load_native(system, native_type)
    expected = load_expected(system, native_type)
    assert [e["remote_id"] for e in expected] == [rid for rid, _ in records]
    for (rid, fields), want in zip(records, expected, strict=True):
        got = entity_json(to_entity(system, native_type, fields))
        assert got == want["canonical"], f"{system}/{native_type} {rid}"


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_to_entity_leaves_identity_and_associations_to_the_engine(
    system: str, native_type: str
) -> None:
    for _, fields in load_native(system, native_type):
        entity = to_entity(system, native_type, fields)
        assert entity.id == ""
        if isinstance(entity, Contact | Opportunity):
            assert entity.account_id is None
        if isinstance(entity, Opportunity):
            assert entity.contact_ids == ()


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_to_entity_never_mutates_its_input(system: str, native_type: str) -> None:
    for _, fields in load_native(system, native_type):
        snapshot = repr(fields)
        to_entity(system, native_type, fields)
        assert repr(fields) == snapshot


def _writable_canonical(system: str, native_type: str) -> set[str]:
    """Canonical fields a map both reads and writes (to fields the schema lets us update)."""
    fm = get_field_map(system, native_type)
    schema = {f.name: f for f in SCHEMAS[system][native_type]}
    readable = {r.canonical for r in fm.read_rules}
    return {
        r.canonical
        for r in fm.write_rules
        if r.canonical in readable and (r.native not in schema or schema[r.native].updateable)
    }


def _canonical_value(entity: Account | Contact | Opportunity, name: str) -> Any:
    if name.startswith("extras."):
        return entity.extras.get(name.removeprefix("extras."))
    return getattr(entity, name)


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_round_trip_preserves_mapped_writable_fields(system: str, native_type: str) -> None:
    names = _writable_canonical(system, native_type)
    assert names, "every map writes something"
    for rid, fields in load_native(system, native_type):
        first = to_entity(system, native_type, fields)
        native = from_entity(system, native_type, first)
        again = to_entity(system, native_type, native)
        for name in sorted(names):
            assert _canonical_value(again, name) == _canonical_value(first, name), (
                f"{system}/{native_type} {rid}: {name}"
            )
        # and writing it again gives the same native record (stable: no false changes)
        assert from_entity(system, native_type, again) == native


def test_round_trip_keeps_clean_salesforce_values_byte_for_byte() -> None:
    _, fields = load_native("salesforce", "Opportunity")[0]
    native = from_entity(
        "salesforce", "Opportunity", to_entity("salesforce", "Opportunity", fields)
    )
    for name in ("Name", "CurrencyIsoCode", "StageName", "CloseDate", "Type", OWNER_PSEUDO_FIELD):
        assert native[name] == fields[name], name
    assert native["Amount"] == 48000 and isinstance(native["Amount"], int)
    assert native["Probability"] == 60


def test_round_trip_keeps_clean_hubspot_values_byte_for_byte() -> None:
    _, fields = load_native("hubspot", "deals")[0]
    native = from_entity("hubspot", "deals", to_entity("hubspot", "deals", fields))
    for name in ("dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "dealtype"):
        assert native[name] == fields[name], name
    assert native["closedate"] == "1797292800000"  # 2026-12-15T00:00:00Z in epoch ms


@pytest.mark.parametrize(("system", "native_type"), [c for c in GOLDEN_CASES if c[0] == "hubspot"])
@pytest.mark.parametrize("include_empty", [False, True])
def test_hubspot_output_values_are_all_strings(
    system: str, native_type: str, include_empty: bool
) -> None:
    for _, fields in load_native(system, native_type):
        native = from_entity(
            system, native_type, to_entity(system, native_type, fields), include_empty=include_empty
        )
        assert native
        assert all(isinstance(v, str) for v in native.values()), native


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_from_entity_writes_only_updateable_fields(system: str, native_type: str) -> None:
    schema = {f.name: f for f in SCHEMAS[system][native_type]}
    for _, fields in load_native(system, native_type):
        native = from_entity(
            system, native_type, to_entity(system, native_type, fields), include_empty=True
        )
        for name in native:
            if name in schema:
                assert schema[name].updateable, f"{system}/{native_type}.{name} is read-only"


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (("salesforce", "Account"), ("hubspot", "companies")),
        (("hubspot", "companies"), ("planhat", "companies")),
        (("salesforce", "Contact"), ("hubspot", "contacts")),
        (("salesforce", "Lead"), ("hubspot", "contacts")),
        (("hubspot", "contacts"), ("planhat", "endusers")),
        (("salesforce", "Opportunity"), ("hubspot", "deals")),
        (("hubspot", "deals"), ("salesforce", "Opportunity")),
    ],
)
def test_values_survive_a_trip_through_another_system(
    source: tuple[str, str], target: tuple[str, str]
) -> None:
    shared = _writable_canonical(*source) & _writable_canonical(*target)
    assert shared
    for rid, fields in load_native(*source):
        entity = to_entity(*source, fields)
        back = to_entity(*target, from_entity(*target, entity))
        for name in sorted(shared):
            assert _canonical_value(back, name) == _canonical_value(entity, name), f"{rid}: {name}"


@pytest.mark.parametrize(("system", "native_type"), GOLDEN_CASES)
def test_from_entity_output_is_plain_json(system: str, native_type: str) -> None:
    """What the connectors send: json.dumps must take it as is (no Decimal, no date)."""
    for _, fields in load_native(system, native_type):
        native = from_entity(
            system, native_type, to_entity(system, native_type, fields), include_empty=True
        )
        assert json.loads(json.dumps(native)) == native
