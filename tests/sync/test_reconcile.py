"""Field policies, one rule at a time (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sync.plan import check_caps, native_diff
from sync.reconcile import Claim, Decision, FieldPolicy, decide, derive

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def c(system: str, value, minutes: int = 0, rid: str | None = None) -> Claim:
    return Claim(system, rid or f"{system}-1", T0 + timedelta(minutes=minutes), value)


def test_source_priority_first_system_with_a_value_wins() -> None:
    d = decide("title", [c("hubspot", "CTO", 5), c("salesforce", "CEO", 0)], FieldPolicy())
    assert (d.value, d.system, d.rule, d.conflict) == ("CEO", "salesforce", "source_priority", True)


def test_source_priority_skips_blanks_under_never_blank() -> None:
    d = decide("title", [c("salesforce", None), c("hubspot", "CTO"), c("planhat", "Boss")], FieldPolicy())
    assert (d.value, d.system) == ("CTO", "hubspot")
    d = decide("title", [c("salesforce", "  "), c("hubspot", "CTO")], FieldPolicy())
    assert d.value == "CTO"


def test_without_never_blank_a_blank_from_the_top_system_wins() -> None:
    d = decide("title", [c("salesforce", None), c("hubspot", "CTO")], FieldPolicy(never_blank=False))
    assert d.value is None and d.system == "salesforce"


def test_within_one_system_the_newest_record_speaks() -> None:
    claims = [c("salesforce", "Old", 0, "a"), c("salesforce", "New", 9, "b"), c("hubspot", "X", 20)]
    d = decide("title", claims, FieldPolicy())
    assert (d.value, d.remote_id) == ("New", "b")


def test_latest_most_recent_modstamp_wins_ties_by_priority() -> None:
    pol = FieldPolicy(fields={"title": "latest"})
    d = decide("title", [c("salesforce", "CEO", 1), c("hubspot", "CTO", 7), c("planhat", "COO", 3)], pol)
    assert (d.value, d.system, d.rule) == ("CTO", "hubspot", "latest")
    d = decide("title", [c("hubspot", "CTO", 7), c("salesforce", "CEO", 7)], pol)
    assert d.system == "salesforce"
    d = decide("title", [c("salesforce", "CEO", 1), c("hubspot", None, 9)], pol)
    assert d.value == "CEO"  # a newer blank never overwrites


def test_prefer_uses_the_system_unless_blank_then_falls_back() -> None:
    pol = FieldPolicy(fields={"health": "prefer:planhat"})
    d = decide("health", [c("salesforce", 5), c("planhat", 8)], pol)
    assert (d.value, d.system, d.rule) == (8, "planhat", "prefer:planhat")
    d = decide("health", [c("salesforce", 5), c("planhat", None)], pol)
    assert (d.value, d.system, d.rule) == (5, "salesforce", "prefer:planhat>source_priority")


def test_always_uses_the_system_even_blank() -> None:
    pol = FieldPolicy(fields={"arr": "always:planhat"}, never_blank=True)
    d = decide("arr", [c("salesforce", 100), c("planhat", None)], pol)
    assert d.value is None and d.system == "planhat" and d.rule == "always:planhat"
    d = decide("arr", [c("salesforce", 100)], pol)  # planhat has no record: fall back
    assert d.value == 100


def test_never_blank_keeps_the_current_value_when_every_claim_is_blank() -> None:
    d = decide("title", [c("salesforce", None), c("hubspot", "")], FieldPolicy(), current="CEO")
    assert (d.value, d.rule) == ("CEO", "never_blank:kept")


def test_direction_ignores_claims_from_write_only_systems() -> None:
    pol = FieldPolicy(direction={"salesforce": {"title": "write"}})
    d = decide("title", [c("salesforce", "CEO"), c("hubspot", "CTO")], pol)
    assert (d.value, d.system) == ("CTO", "hubspot")
    assert pol.writes_to("salesforce", "title") and not pol.reads_from("salesforce", "title")
    assert not FieldPolicy(direction={"hubspot": {"*": "read"}}).writes_to("hubspot", "title")


def test_policy_from_config_round_trip() -> None:
    pol = FieldPolicy.from_config({"default": "latest", "source_priority": ["hubspot", "salesforce"],
                                   "fields": {"name": "source_priority"}, "deletes": "propagate"})
    assert pol.rule_for("title") == "latest" and pol.rule_for("name") == "source_priority"
    assert pol.source_priority == ("hubspot", "salesforce") and pol.deletes == "propagate"


def test_caps_and_native_diff() -> None:
    assert check_caps({"create": 3, "update": 10}, {"create": 5, "update": 5}) == [
        "10 updates planned, over the cap of 5 (limits.max_updates; use --force to go ahead)"]
    assert check_caps({"create": 5}, {"create": 5}) == []
    assert native_diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": 2}


@pytest.mark.parametrize("value", [None, "", "   ", ()])
def test_blank_values(value) -> None:
    d = decide("x", [c("salesforce", value)], FieldPolicy())
    assert d.value is None


def test_an_account_domain_no_system_gives_is_its_websites_registrable_domain() -> None:
    website = decide("website", [c("hubspot", "https://www.eu.zenith-group.co.uk/about", 3, "h1")], FieldPolicy())
    blank = decide("domain", [c("salesforce", None), c("hubspot", None)], FieldPolicy())
    d = derive("account", {"website": website, "domain": blank})["domain"]
    assert (d.value, d.rule, d.system, d.remote_id) == ("zenith-group.co.uk", "derived:website", "hubspot", "h1")
    # a value kept from before (every claim blank now) follows the website too
    kept = decide("domain", [c("hubspot", None)], FieldPolicy(), current="old.com")
    assert kept.rule == "never_blank:kept"
    assert derive("account", {"website": website, "domain": kept})["domain"].value == "zenith-group.co.uk"


def test_a_domain_a_system_gives_is_never_replaced_by_the_websites() -> None:
    website = decide("website", [c("salesforce", "https://zenith.com")], FieldPolicy())
    given = decide("domain", [c("hubspot", "zenith.io")], FieldPolicy())
    assert derive("account", {"website": website, "domain": given})["domain"] is given
    # nothing to derive from: no website, or one that names no registrable domain
    no_site = Decision("website", None, "source_priority")
    blank = Decision("domain", None, "source_priority")
    assert derive("account", {"website": no_site, "domain": blank})["domain"] is blank
    local = Decision("website", "http://intranet", "source_priority")
    assert derive("account", {"website": local, "domain": blank})["domain"] is blank
    assert derive("contact", {"website": website, "domain": blank})["domain"] is blank


def test_a_deal_probability_no_system_gives_is_its_stages_default() -> None:
    """HubSpot calculates a deal's probability from its stage once revsync writes the
    stage: a probability left blank in cycle 1 came back in cycle 2 (foreign-data e2e)."""
    stage = decide("stage", [c("hubspot", "prospecting", 5, "d1")], FieldPolicy())
    blank = decide("probability", [c("salesforce", None), c("hubspot", None)], FieldPolicy())
    d = derive("opportunity", {"stage": stage, "probability": blank})["probability"]
    assert (d.value, d.rule, d.system) == (Decimal(10), "derived:stage", "hubspot")
    given = decide("probability", [c("salesforce", Decimal(35))], FieldPolicy())
    assert derive("opportunity", {"stage": stage, "probability": given})["probability"] is given
    odd = Decision("stage", "custom_stage", "source_priority")
    assert derive("opportunity", {"stage": odd, "probability": blank})["probability"] is blank
