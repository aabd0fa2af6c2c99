"""Transforms one by one: read (native → canonical) and write (canonical → typed native)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import ErrorCategory, RecordError
from mapping.transforms import TRANSFORMS, Context, get_transform, transform_names
from sandbox import values
from sandbox.values import LEAD_STATUS


def ctx(system: str = "salesforce", field: str = "F", region: str | None = None) -> Context:
    return Context(system=system, native_type="T", field=field, region=region)


def test_every_value_map_has_a_picklist_transform() -> None:
    assert set(values.VALUE_MAPS) <= set(TRANSFORMS)
    assert transform_names() == tuple(sorted(TRANSFORMS))


def test_unknown_transform_is_a_lookup_error_listing_known_ones() -> None:
    with pytest.raises(LookupError, match="rot13") as err:
        get_transform("rot13")
    assert "phone" in str(err.value)


@pytest.mark.parametrize(
    ("name", "raw", "canonical", "native"),
    [
        ("string", "  Acme  ", "Acme", "Acme"),
        ("email", " A@B.com ", "a@b.com", "a@b.com"),
        ("domain", "https://www.acme.com/x", "acme.com", "acme.com"),
        ("domains", ["www.acme.com", "acme.io"], "acme.com", ["acme.com"]),
        ("domains", "acme.com, acme.io", "acme.com", ["acme.com"]),
        ("country", "U.S.A.", "US", "United States"),
        ("int", "1,200", 1200, 1200),
        ("decimal", "99.90", Decimal("99.9"), Decimal("99.9")),
        ("fraction_percent", "0.35", Decimal(35), Decimal("0.35")),
        ("bool", "true", True, True),
        ("date", "2026-11-02", date(2026, 11, 2), date(2026, 11, 2)),
        (
            "date_as_datetime",
            "2026-11-02T10:15:30.123Z",
            date(2026, 11, 2),
            datetime(2026, 11, 2, tzinfo=UTC),
        ),
        (
            "datetime",
            "2026-11-02T10:15:30.000+0000",
            datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC),
            datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC),
        ),
        ("currency", "usd", "USD", "USD"),
        ("json", {"a": 1}, {"a": 1}, {"a": 1}),
        ("json", " x ", "x", "x"),
    ],
)
def test_read_then_write(name: str, raw: Any, canonical: Any, native: Any) -> None:
    t = get_transform(name)
    assert t.read(raw, ctx()) == canonical
    assert t.write(canonical, ctx()) == native


def test_owner_email_drops_the_salesforce_sandbox_suffix() -> None:
    t = get_transform("owner_email")
    assert t.read("Dana.Owner@Acme.com.invalid", ctx(field="_owner_email")) == "dana.owner@acme.com"
    assert t.read("dana@acme.com", ctx()) == "dana@acme.com"
    assert t.read(None, ctx()) is None
    with pytest.raises(RecordError) as err:
        t.read("dana", ctx(field="_owner_email"))
    assert err.value.field == "_owner_email"


def test_phone_uses_the_context_region() -> None:
    t = get_transform("phone")
    assert t.read("020 7946 0958", ctx(region="GB")) == "+442079460958"
    with pytest.raises(RecordError):
        t.read("020 7946 0958", ctx(region="US", field="Phone"))


@pytest.mark.parametrize(
    ("system", "native"), [("salesforce", "Closed Won"), ("hubspot", "closedwon")]
)
def test_stage_picklist_reads_case_insensitively(system: str, native: str) -> None:
    t = get_transform("stage")
    assert t.read(native.upper(), ctx(system)) == "closed_won"
    assert t.write("closed_won", ctx(system)) == native


def test_picklist_unknown_value_names_field_and_value() -> None:
    with pytest.raises(RecordError) as err:
        get_transform("industry").read("Alchemy", ctx(field="Industry"))
    assert err.value.category == ErrorCategory.MAPPING
    assert err.value.field == "Industry"
    assert "Industry" in str(err.value) and "Alchemy" in str(err.value)


def test_customer_status_prefers_customer_for_salesforce_customer_direct() -> None:
    t = get_transform("customer_status")
    assert t.read("Customer - Direct", ctx("salesforce")) == "customer"
    assert t.read("Other", ctx("salesforce")) == "churned"
    assert t.read("coming", ctx("planhat")) == "onboarding"
    assert t.write("onboarding", ctx("salesforce")) == "Customer - Direct"


def test_lead_status_reads_every_status_and_writes_the_settable_ones() -> None:
    t = get_transform("lead_status")
    for status, stage in LEAD_STATUS.items():
        assert t.read(status.lower(), ctx(field="Status")) == stage
    assert t.write("lead", ctx()) == "Open - Not Contacted"
    with pytest.raises(RecordError) as err:
        t.write("sql", ctx(field="Status"))  # "Closed - Converted" is set by conversion only
    assert err.value.field == "Status"


def test_hubspot_pipeline_is_written_with_every_stage() -> None:
    t = get_transform("pipeline")
    assert t.write("proposal", ctx("hubspot", "pipeline")) == values.HUBSPOT_DEFAULT_PIPELINE
    assert t.read("whatever", ctx("hubspot", "pipeline")) is None


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("currency", "Euro"),
        ("currency", "E1"),
        ("domains", '["acme.com"'),
        ("domains", {"primary": "acme.com"}),
        ("json", object()),
    ],
)
def test_bad_values_raise_record_error_naming_the_field(name: str, raw: Any) -> None:
    with pytest.raises(RecordError) as err:
        get_transform(name).read(raw, ctx(field="Native__c"))
    assert err.value.field == "Native__c"


def test_country_write_rejects_unknown_codes() -> None:
    with pytest.raises(RecordError) as err:
        get_transform("country").write("XX", ctx(field="BillingCountry"))
    assert err.value.field == "BillingCountry"


def test_json_read_makes_values_json_compatible() -> None:
    t = get_transform("json")
    assert t.read(Decimal("1.50"), ctx()) == "1.50"
    assert t.read(date(2026, 1, 2), ctx()) == "2026-01-02"
    assert t.read("", ctx()) is None
