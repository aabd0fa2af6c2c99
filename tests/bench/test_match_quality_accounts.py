"""The match bench reads contacts as the engine does: each with its canonical account's
name (tier 1 over the account records), a HubSpot contact with its associated company's."""

from __future__ import annotations

import json
from pathlib import Path

from bench.match_quality import CONTACT_OBJECTS, _sandbox_records, canonical_accounts


def _write(root: Path, system: str, obj: str, rows: list[dict]) -> None:
    (root / system).mkdir(parents=True, exist_ok=True)
    (root / system / f"{obj}.json").write_text(json.dumps(rows), encoding="utf-8")


def _world(root: Path) -> None:
    # one company in three systems, named three ways (as the vendors' exports show them)
    _write(root, "salesforce", "Account", [
        {"Id": "001A", "Name": "Nordwind Logistik GmbH", "Website": "https://www.nordwind-logistik.de/kontakt"},
        {"Id": "001B", "Name": "Nordwind Logistik Schweiz AG", "Website": "https://nordwind.ch"},
    ])
    _write(root, "hubspot", "companies", [
        {"id": "9001", "properties": {"name": "Nordwind Logistics", "domain": "nordwind-logistik.de", "website": None}},
        {"id": "9002", "properties": {"name": "Gmail Inc", "domain": "gmail.com", "website": None}},
    ])
    _write(root, "planhat", "companies", [
        {"_id": "66aa", "name": "NORDWIND", "domains": [], "website": None, "sourceId": "001A"},
        {"_id": "66bb", "name": "Someone on gmail", "domains": ["gmail.com"], "website": None, "sourceId": None},
    ])
    _write(root, "hubspot", "associations", [
        {"fromType": "contacts", "fromId": "501", "toType": "companies", "toId": "9001", "typeId": 279},
    ])
    _write(root, "salesforce", "Contact", [
        {"Id": "003A", "FirstName": "Henrike", "LastName": "Bakker", "Email": "h.bakker@nordwind-logistik.de",
         "AccountId": "001A"},
    ])
    _write(root, "salesforce", "Lead", [])
    _write(root, "hubspot", "contacts", [
        {"id": "501", "properties": {"firstname": "Henrike", "lastname": "Bakker", "email": "henrike.b@web.de",
                                     "company": None}},
    ])
    _write(root, "planhat", "endusers", [
        {"_id": "77aa", "firstName": "Henrike", "lastName": "Bakker", "email": "h.bakker@nordwind-logistik.de",
         "companyId": "66aa"},
    ])


def test_accounts_of_one_domain_or_source_id_share_one_name(tmp_path: Path) -> None:
    _world(tmp_path)
    names = canonical_accounts(tmp_path)
    one = {names[("salesforce", "001A")], names[("hubspot", "9001")], names[("planhat", "66aa")]}
    assert one == {"Nordwind Logistik GmbH"}  # the best-ranked system's name
    assert names[("salesforce", "001B")] == "Nordwind Logistik Schweiz AG"  # its own domain: its own account
    # a free-mail domain is never a company key
    assert names[("hubspot", "9002")] == "Gmail Inc" and names[("planhat", "66bb")] == "Someone on gmail"


def test_contacts_carry_their_canonical_account_and_hubspot_its_association(tmp_path: Path) -> None:
    _world(tmp_path)
    linked = {r["id"]: r.get("company") for r in _sandbox_records(tmp_path, CONTACT_OBJECTS, "contact",
                                                                  linked_accounts=True)}
    assert linked == dict.fromkeys(("salesforce:003A", "hubspot:501", "planhat:77aa"), "Nordwind Logistik GmbH")
    own = {r["id"]: r.get("company") for r in _sandbox_records(tmp_path, CONTACT_OBJECTS, "contact")}
    assert own == {"salesforce:003A": "Nordwind Logistik GmbH", "hubspot:501": None, "planhat:77aa": "NORDWIND"}
