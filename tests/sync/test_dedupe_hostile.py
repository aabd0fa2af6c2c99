"""Hand-written records unlike our generator's, each a kind of real-world noise the
matcher must read right (issue #11): a person's work address in one system and a
personal one in another, phones ``phonenumbers`` calls invalid, swapped names,
relatives sharing a mailbox, namesakes at one company, a company that moved."""

from __future__ import annotations

from typing import Any

from sync.dedupe import MatchResult, match_accounts, match_contacts

FILLER_CONTACTS = [
    {"id": f"f{i}", "first_name": first, "last_name": last, "email": f"{first.lower()}@{co.lower()}.com",
     "company": co, "title": "Analyst"}
    for i, (first, last, co) in enumerate([
        ("Ines", "Duarte", "Lisboa Tech"), ("Piotr", "Nowak", "Wisla Data"), ("Aiko", "Tanaka", "Kumo Systems"),
        ("Oscar", "Berg", "Nordlys"), ("Fatima", "Haddad", "Cedar Labs"), ("Tomasz", "Zielinski", "Odra Soft"),
    ])
]  # fmt: skip


def _contacts(*records: dict[str, Any]) -> MatchResult:
    return match_contacts([*records, *FILLER_CONTACTS])


def _linked(result: MatchResult, a: str, b: str) -> bool:
    return any({a, b} <= set(c) for c in result.clusters)


def _judged(result: MatchResult, a: str, b: str) -> Any:
    key = (min(a, b), max(a, b))
    return next((p for p in [*result.links, *result.review] if (p.left, p.right) == key), None)


def test_work_and_personal_address_with_the_same_invalid_phone_link() -> None:
    # area code 555-01xx is unassigned: phonenumbers calls it invalid, but both records
    # carry the same digits (one in E.164 as a lenient store keeps it, one as typed)
    result = _contacts(
        {"id": "sf", "first_name": "Hannelore", "last_name": "Brandt", "email": "h.brandt@vulkanwerk.de",
         "phone": "+15550100199", "company": "Vulkanwerk GmbH", "title": "Head of Procurement"},
        {"id": "hs", "first_name": "Hannelore", "last_name": "Brandt", "email": "hanne.brandt@web.de",
         "phone": "(555) 010-0199 ext. 4", "company": "Vulkanwerk", "title": "Head of Procurement"},
    )
    assert _linked(result, "hs", "sf")
    pair = _judged(result, "hs", "sf")
    assert pair.evidence["phone"] == "exact" and pair.evidence["email"] == "a work and a personal address"


def test_the_same_user_part_at_a_personal_domain_is_evidence() -> None:
    result = _contacts(
        {"id": "a", "first_name": "Kwame", "last_name": "Mensah", "email": "kwame.mensah@adinkra.io",
         "company": "Adinkra"},
        {"id": "b", "first_name": "Kwame", "last_name": "Mensah", "email": "Kwame.Mensah@gmail.com"},
    )
    assert _judged(result, "a", "b").evidence["email"] == "same user part, personal or mistyped domain"
    assert _linked(result, "a", "b")


def test_swapped_first_and_last_name_link() -> None:
    result = _contacts(
        {"id": "a", "first_name": "Wei", "last_name": "Zhang", "email": "zhang.wei@jadeport.cn", "company": "Jadeport"},
        {"id": "b", "first_name": "Zhang", "last_name": "Wei", "email": "zhang.wei@jadeport.cn", "company": "Jadeport"},
    )
    assert _judged(result, "a", "b").evidence["name"] == "first and last swapped"
    assert _linked(result, "a", "b")


def test_relatives_sharing_one_personal_mailbox_stay_apart() -> None:
    result = _contacts(
        {"id": "mother", "first_name": "Graciela", "last_name": "Ortega", "email": "ortega.familia@hotmail.com",
         "company": "Clinica Ortega", "title": "Director"},
        {"id": "son", "first_name": "Mateo", "last_name": "Ortega", "email": "ortega.familia@hotmail.com",
         "company": "Taller Mateo", "title": "Owner"},
    )
    assert not _linked(result, "mother", "son")
    pair = _judged(result, "mother", "son")
    assert pair is None or pair.evidence["email"] == "same address, first names differ (shared mailbox)"
    # … while a nickname at the same address is one person
    same = _contacts(
        {"id": "a", "first_name": "Robert", "last_name": "Ortega", "email": "rob.ortega@hotmail.com"},
        {"id": "b", "first_name": "Bob", "last_name": "Ortega", "email": "rob.ortega@hotmail.com"},
    )
    assert _linked(same, "a", "b")


def test_namesakes_at_one_company_with_one_title_stay_apart() -> None:
    # the second John Smith got john.smith2@: two mailboxes at one company domain
    result = _contacts(
        {"id": "j1", "first_name": "John", "last_name": "Smith", "email": "john.smith@corvid-freight.com",
         "company": "Corvid Freight", "title": "Account Executive", "phone": "+13125550143"},
        {"id": "j2", "first_name": "John", "last_name": "Smith", "email": "john.smith2@corvid-freight.com",
         "company": "Corvid Freight", "title": "Account Executive", "phone": "+13125550178"},
    )
    assert not _linked(result, "j1", "j2")
    pair = _judged(result, "j1", "j2")
    assert pair is None or pair.evidence["email"] == "same company domain, other mailbox (colleagues)"


def test_a_one_letter_typo_in_the_user_part_links() -> None:
    result = _contacts(
        {"id": "a", "first_name": "Priya", "last_name": "Raghavan", "email": "priya.raghavan@tidewell.com",
         "company": "Tidewell"},
        {"id": "b", "first_name": "Priya", "last_name": "Raghavan", "email": "priya.rahgavan@tidewell.com",
         "company": "Tidewell Inc."},
    )
    assert _judged(result, "a", "b").evidence["email"] == "same domain, user part one typo apart"
    assert _linked(result, "a", "b")


FILLER_ACCOUNTS = [
    {"id": f"f{i}", "name": name, "domain": f"{name.lower().replace(' ', '')}.com", "billing_street": f"{i} Main St",
     "billing_postal_code": f"1000{i}", "country": "US"}
    for i, name in enumerate(["Lumen Foods", "Orchid Biotech", "Granite Ledger", "Pelican Air", "Quarry Nine"])
]  # fmt: skip


def test_a_company_that_moved_still_links() -> None:
    # HQ moved: one system still holds the old street and postcode, and an old switchboard
    result = match_accounts([
        {"id": "sf", "name": "Halcyon Robotics, Inc.", "website": "https://www.halcyon-robotics.com",
         "billing_street": "200 Harbor Way", "billing_postal_code": "94080", "phone": "+16505550100",
         "country": "US", "industry": "Machinery"},
        {"id": "hs", "name": "Halcyon Robotics", "domain": "halcyon-robotics.com",
         "billing_street": "1 Innovation Dr", "billing_postal_code": "78701", "phone": "+15125550188",
         "country": "US", "industry": "Industrial Automation"},
        *FILLER_ACCOUNTS,
    ])
    assert _linked(result, "hs", "sf")


def test_same_name_with_the_website_missing_on_one_side_links() -> None:
    result = match_accounts([
        {"id": "a", "name": "Brackenridge Surveying LLC", "website": "brackenridge-survey.com", "country": "US",
         "billing_postal_code": "80202"},
        {"id": "b", "name": "Brackenridge Surveying", "country": "US", "billing_postal_code": "80202"},
        *FILLER_ACCOUNTS,
    ])
    assert _linked(result, "a", "b")
