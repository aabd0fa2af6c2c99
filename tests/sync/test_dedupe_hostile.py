"""Hand-written records unlike our generator's, each a kind of real-world noise the
matcher must read right (issue #11): a person's work address in one system and a
personal one in another, phones ``phonenumbers`` calls invalid, swapped names,
relatives sharing a mailbox, namesakes at one company, a company that moved."""

from __future__ import annotations

from typing import Any

from sync.dedupe import MatchResult, match_accounts, match_contacts
from sync.dedupe_models import NAMESAKE_LEVELS, WEIGHED_WITH_NAME

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
    # one name at one company: a work and a personal address is weighed with the name
    # (the namesakes it cannot tell apart), not as a work/personal pair of strangers
    assert pair.evidence["phone"] == "exact" and pair.evidence["email"] == WEIGHED_WITH_NAME


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
    assert pair is None or pair.evidence["email"] == "same domain, user part extends the other"
    # … and so for jane.doe@ / jane_doe@ (one name, two separators: two mailboxes)
    result = _contacts(
        {"id": "d1", "first_name": "Jane", "last_name": "Doe", "email": "jane.doe@corvid-freight.com",
         "company": "Corvid Freight", "title": "Account Executive"},
        {"id": "d2", "first_name": "Jane", "last_name": "Doe", "email": "jane_doe@corvid-freight.com",
         "company": "Corvid Freight", "title": "Account Executive"},
    )
    assert not _linked(result, "d1", "d2")
    pair = _judged(result, "d1", "d2")
    assert pair is None or pair.evidence["email"] == "same domain, user part differs in separators only"


def test_a_record_that_fits_two_namesakes_is_linked_to_neither() -> None:
    # two Anna Kowalskas at one company, each with her own mailbox and phone; a third
    # record (no email, no phone) fits both equally: which one it is stays for review,
    # and the two never meet in one cluster through it
    ak1 = {"first_name": "Anna", "last_name": "Kowalska", "company": "Wisla Logistics", "title": "Buyer"}
    result = _contacts(
        {"id": "a1", **ak1, "email": "anna.kowalska@wisla-logistics.pl", "phone": "+48225550101"},
        {"id": "a1b", **ak1, "email": "anna.kowalska@wisla-logistics.pl"},
        {"id": "a2", **ak1, "email": "akowalska@wisla-logistics.pl", "phone": "+48225550177"},
        {"id": "a2b", **ak1, "email": "akowalska@wisla-logistics.pl"},
        {"id": "x", **ak1},
    )
    assert _linked(result, "a1", "a1b") and _linked(result, "a2", "a2b")
    assert not _linked(result, "a1", "a2")
    assert not any("x" in c for c in result.clusters)
    asked = {frozenset((p.left, p.right)) for p in result.review}
    assert frozenset(("a1", "x")) in asked or frozenset(("a1b", "x")) in asked
    assert frozenset(("a2", "x")) in asked or frozenset(("a2b", "x")) in asked
    # one question per two groups: x against a1's cluster once, not once per record
    assert sum(1 for q in asked if "x" in q and q & {"a1", "a1b"}) == 1


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


def test_the_city_is_weak_evidence_where_the_company_cannot_speak() -> None:
    # a marketing record without a company, with a personal address: the city where the
    # person works is what is left to tell a duplicate from a namesake elsewhere
    sf = {"id": "sf", "first_name": "Oluwaseun", "last_name": "Adeyemi", "email": "o.adeyemi@kestrel-bank.co.uk",
          "company": "Kestrel Bank plc", "title": "Treasury Analyst", "city": "Leeds", "state": "West Yorkshire"}
    hs = {"id": "hs", "first_name": "Oluwaseun", "last_name": "Adeyemi", "email": "seun.adeyemi@yahoo.co.uk",
          "title": "Treasury Analyst"}
    here = _judged(_contacts(sf, {**hs, "city": "LEEDS", "state": "west yorkshire"}), "hs", "sf")
    elsewhere = _judged(_contacts(sf, {**hs, "city": "Bristol", "state": "Avon"}), "hs", "sf")
    unknown = _judged(_contacts(sf, hs), "hs", "sf")
    assert here.evidence["place"] == "same city"
    assert here.probability > unknown.probability
    assert elsewhere is None or (elsewhere.evidence["place"] == "different"
                                 and elsewhere.probability < unknown.probability)


def test_a_shared_city_at_one_company_tells_nothing() -> None:
    # colleagues share their company's city: it must not make two namesakes one person
    base = {"first_name": "Marta", "last_name": "Silva", "company": "Atlantico Seguros", "title": "Actuary"}
    with_city = _contacts({"id": "a", **base, "city": "Lisboa", "phone": "+351211234567"},
                          {"id": "b", **base, "city": "Lisboa", "phone": "+351219876543"})
    without = _contacts({"id": "a", **base, "phone": "+351211234567"}, {"id": "b", **base, "phone": "+351219876543"})
    pair, bare = _judged(with_city, "a", "b"), _judged(without, "a", "b")
    assert pair.evidence["place"] == "same city, same company (tells nothing)"
    assert abs(pair.probability - bare.probability) < 1e-9


def test_a_company_that_moved_within_its_city_links() -> None:
    # new street and postcode, same city; the website is missing on one side
    sf = {"id": "sf", "name": "Fernhill Dental Group", "website": "fernhilldental.com", "billing_street": "12 Elm St",
          "billing_postal_code": "97205", "country": "US"}
    hs = {"id": "hs", "name": "Fernhill Dental Group", "billing_street": "880 NW Flanders St",
          "billing_postal_code": "97209", "country": "US"}
    result = match_accounts([{**sf, "billing_city": "Portland", "billing_state": "OR"},
                             {**hs, "billing_city": "Portland", "billing_state": "Oregon"}, *FILLER_ACCOUNTS])
    pair = _judged(result, "hs", "sf")
    assert pair.evidence["address"] == "same city, street and postcode differ or missing"
    assert _linked(result, "hs", "sf")
    without_city = _judged(match_accounts([sf, hs, *FILLER_ACCOUNTS]), "hs", "sf")
    assert without_city.evidence["address"] == "different" and without_city.probability < pair.probability


def test_a_company_name_meets_the_other_records_mail_domain() -> None:
    # HubSpot holds the work address but no company; Salesforce the account, no email
    sf = {"id": "sf", "first_name": "Ingrid", "last_name": "Solberg", "company": "Fjordline Shipping AS",
          "title": "Fleet Manager", "phone": "+4722334455"}
    hs = {"id": "hs", "first_name": "Ingrid", "last_name": "Solberg", "email": "ingrid.solberg@fjordlineshipping.no",
          "title": "Fleet Manager"}
    pair = _judged(_contacts(sf, hs), "hs", "sf")
    # (name and company together: one person's name at the company the domain names)
    assert pair.evidence["company"] == WEIGHED_WITH_NAME
    assert pair.evidence["name"] == NAMESAKE_LEVELS["same"]
    other = _judged(_contacts(sf, {**hs, "email": "ingrid.solberg@nordkapp-fisk.no"}), "hs", "sf")
    assert other is None or (other.evidence["company"] == "missing" and other.probability < pair.probability)
