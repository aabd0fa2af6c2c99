"""A sandbox seed of messy records our generator would never make ("foreign data").

Hand-written in the seed format ``sandbox/README.md`` describes (and every emulator's
``load`` reads): the shapes of a CRM export that went through other hands. National
phone formats, extensions, numbers that are possible but not valid, quoted and Unicode
email local parts, websites that name no domain, custom picklist values our maps do not
know, lone surrogates (HubSpot sends them as JSON escapes), bytes kept by
``surrogateescape`` (a careless import of Latin-1 text), NUL and other control
characters, missing required fields and 300-character names.

``build(data_dir)`` writes the seed and returns what a correct sync must show: the
seeded ids per (system, native object), and — written out by hand, not computed by the
mapping — every value that cannot be read, as ``(system, remote id, native field)``
with its raw value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.schema import field_names

LONG_NAME = ("Internationale Handels- und Vertriebsgesellschaft für Präzisionsinstrumente, "
             "Laborbedarf, Medizintechnik und verwandte Dienstleistungen der Region "
             "Nordrhein-Westfalen, Niedersachsen, Schleswig-Holstein, Hamburg und Bremen "
             "mit beschränkter Haftung und Compagnie Kommanditgesellschaft auf Aktien (Holding) ")
LONG_NAME = (LONG_NAME * 2)[:300]
LONG_FIRST = ("Maximiliane-" * 30)[:300]
assert len(LONG_NAME) == 300 and len(LONG_FIRST) == 300

TEAM = (("kasia.nowak@foreign-owner.com", "Kasia", "Nowak"), ("lee.chen@foreign-owner.com", "Lee", "Chen"),
        ("sam.berg@foreign-owner.com", "Sam", "Berg"))
SF_STAMP = "2026-03-02T09:00:00.000+0000"
HS_STAMP = "2026-03-02T09:00:00.000Z"
PH_STAMP = "2026-03-02T09:00:00.000Z"


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style id with the object's key prefix."""
    return f"{prefix}FO{n:010d}AAA"


def ph_id(n: int) -> str:
    return f"5f0e0f0e0f0e{n:012x}"


@dataclass
class ForeignSeed:
    """What was seeded and what the sync must report."""

    data_dir: Path
    ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (system, remote id, native field) → the raw value as stored at the source
    unreadable: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    # (system, remote id, native field): values a target cannot take (too long there)
    too_long: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def records(self) -> int:
        return sum(len(v) for v in self.ids.values())


def _sf(obj: str, rid: str, **values: Any) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(field_names("salesforce", obj))
    for name in ("IsDeleted", "HasOptedOutOfEmail", "IsConverted", "IsActive", "IsClosed", "IsWon", "IsPrimary"):
        if name in rec:
            rec[name] = False
    rec.update({"Id": rid, "CreatedDate": SF_STAMP, "LastModifiedDate": SF_STAMP, "SystemModstamp": SF_STAMP})
    rec.update(values)
    return rec


def _hs(rid: str, modified_prop: str, **props: Any) -> dict[str, Any]:
    props = {"hs_object_id": rid, modified_prop: HS_STAMP, "createdate": HS_STAMP, **props}
    return {"id": rid, "properties": props, "createdAt": HS_STAMP, "updatedAt": HS_STAMP, "archived": False}


def _ph(model: str, rid: str, **values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": rid, "createDate": PH_STAMP, "lastUpdated": PH_STAMP, "custom": {},
                           "externalId": None, "sourceId": None}
    if model == "endusers":
        doc["archived"] = False
    doc.update(values)
    return doc


def build(data_dir: Path) -> ForeignSeed:
    """Write the foreign seed into ``data_dir``; return the expectations."""
    seed = ForeignSeed(Path(data_dir))
    bad = seed.unreadable

    # ------------------------------------------------------------------ Salesforce
    user = sf_id("005", 1)
    a = [sf_id("001", n) for n in range(1, 7)]
    c = [sf_id("003", n) for n in range(1, 5)]
    lead = [sf_id("00Q", n) for n in range(1, 3)]
    o = [sf_id("006", n) for n in range(1, 4)]
    sf: dict[str, list[dict[str, Any]]] = {
        # one sales team, a user in each system (an owner unknown to a target system is
        # a separate matter: the connectors leave the owner unchanged there)
        "User": [_sf("User", sf_id("005", n + 1), Email=email, Name=f"{first} {last}", IsActive=True)
                 for n, (email, first, last) in enumerate(TEAM)],
        "Account": [
            _sf("Account", a[0], Name="Müller & Söhne GmbH", Website="muellersoehne.de",
                Phone="+49 (0)30 901820", BillingCountry="Germany", BillingCity="Berlin", OwnerId=user),
            _sf("Account", a[1], Name=LONG_NAME, Website="https://www.handelsgesellschaft-nrw.de/impressum",
                BillingCountry="DE"),
            # an unassigned US area code: possible, not valid → kept; the website is no domain
            _sf("Account", a[2], Name="Prairie Feed & Seed", Website="n/a", Phone="823-701-0042",
                BillingCountry="USA", NumberOfEmployees=12),
            _sf("Account", a[3], Name="Intranet Only Ltd", Website="http://localhost:8080/crm",
                BillingCountry="United Kingdom", Phone="+44 (0) 20 7946 0018"),
            # the required Name is missing (an export that dropped it)
            _sf("Account", a[4], Name=None, Website="nameless-account.io", AnnualRevenue=250000),
            # a country nobody has, so the national phone has no region to be read in
            _sf("Account", a[5], Name="Lost Island Trading", Website="lost-island-trading.com",
                BillingCountry="Atlantis", Phone="020 7946 0958"),
        ],
        "Contact": [
            _sf("Contact", c[0], FirstName="Zoë", LastName="O'Brien-Łukasiewicz", AccountId=a[0],
                Email='"quote\\"probe"@muellersoehne.de', Phone="555.123.4567 x204", OwnerId=user),
            # LastName is required in Salesforce: missing here
            _sf("Contact", c[1], FirstName="Kim", LastName=None, Email="kim@muellersoehne.de", AccountId=a[0]),
            _sf("Contact", c[2], FirstName="Jane", LastName="Tanaka", Email="jane.@docomo.ne.jp",
                Phone="(0)20 7946 0958", Title="Head\x00 of Sales"),
            _sf("Contact", c[3], FirstName="Ole", LastName="Brandt", Email="ole@lost-island-trading.com.",
                Phone="+1 415 555 0100 ext. 77", AccountId=a[5], LeadSource="Web"),
        ],
        "Lead": [
            _sf("Lead", lead[0], FirstName="Priya", LastName="Raman", Company="Acme Widgets (UK) Ltd",
                Email="priya.raman@acme-widgets.co.uk", Phone="+44 (0) 20 7946 0000",
                Status="Open - Not Contacted"),
            _sf("Lead", lead[1], FirstName="Tom", LastName="Lindqvist", Company="Billboard Co",
                Email="tom@billboard-co.se", Status="Nurturing", LeadSource="Billboard"),
        ],
        "Opportunity": [
            # an org's custom stage: a value our map does not know
            _sf("Opportunity", o[0], Name="Müller \u2013 Laborgeräte 2026", AccountId=a[0], Amount=48000,
                StageName="Discovery", CloseDate="2026-09-30", CurrencyIsoCode="EUR"),
            _sf("Opportunity", o[1], Name="Prairie renewal", AccountId=a[2], Amount=None,
                StageName="Closed Won", CloseDate="2026-02-01", Probability=100, IsClosed=True, IsWon=True),
            _sf("Opportunity", o[2], Name="Lost Island pilot", AccountId=a[5], Amount=1200.5,
                StageName="Prospecting", CloseDate="2026-12-15", Type="Pilot"),
        ],
    }
    bad[("salesforce", a[2], "Website")] = "n/a"
    bad[("salesforce", a[3], "Website")] = "http://localhost:8080/crm"
    bad[("salesforce", a[5], "BillingCountry")] = "Atlantis"
    bad[("salesforce", a[5], "Phone")] = "020 7946 0958"
    bad[("salesforce", c[2], "Phone")] = "(0)20 7946 0958"  # a contact has no country: read as US, too long
    bad[("salesforce", lead[1], "Status")] = "Nurturing"
    bad[("salesforce", lead[1], "LeadSource")] = "Billboard"
    bad[("salesforce", o[0], "StageName")] = "Discovery"
    bad[("salesforce", o[2], "Type")] = "Pilot"

    # ------------------------------------------------------------------ HubSpot
    owner = "81000002"  # Lee Chen
    h = [str(7100000001 + n) for n in range(4)]
    hc = [str(7200000001 + n) for n in range(6)]
    hd = [str(7300000001 + n) for n in range(3)]
    hs: dict[str, list[dict[str, Any]]] = {
        "owners": [{"id": str(81000001 + n), "email": email, "firstName": first, "lastName": last,
                    "archived": False} for n, (email, first, last) in enumerate(TEAM)],
        "companies": [
            _hs(h[0], "hs_lastmodifieddate", name="Lone \udc80 Surrogate Co", domain="surrogate-co.com",
                country="Sweden", hubspot_owner_id=owner),
            _hs(h[1], "hs_lastmodifieddate", name="Nowhere Networks", domain="not a domain", website="www",
                country="U.K.", phone="+44 20 7946 0123"),
            _hs(h[2], "hs_lastmodifieddate", name=LONG_NAME[::-1], domain="reversed-holding.de"),
            _hs(h[3], "hs_lastmodifieddate", name="Extension Corp", domain="extension-corp.com",
                phone="+1 (823) 701-0042 ext 9", city="Fargo", state="ND", country="United States"),
        ],
        "contacts": [
            _hs(hc[0], "lastmodifieddate", email='"john smith"@surrogate-co.com', firstname="J\udc80hn",
                lastname="Smith", phone="823-701-0042"),
            _hs(hc[1], "lastmodifieddate", email="josé@exämple.de", firstname="José", lastname="Nul\x00l",
                phone="+44 (0) 20 7946 0958"),
            _hs(hc[2], "lastmodifieddate", email="sales@surrogate-co.com.", firstname=LONG_FIRST,
                lastname="Longfellow"),
            # no email at all; a custom lifecycle stage HubSpot lets admins add
            _hs(hc[3], "lastmodifieddate", firstname="Ghost", lastname="Writer", lifecyclestage="zombie"),
            # "José" imported as Latin-1 bytes kept by surrogateescape; an ANSI escape in the title
            _hs(hc[4], "lastmodifieddate", email="jose.b@extension-corp.com", firstname="Jos\udce9",
                lastname="Barros", jobtitle="CTO\x1b[0m", phone="555-1234"),
            _hs(hc[5], "lastmodifieddate", email="ops@nowhere-networks.co.uk", firstname="Ops",
                lastname="Team", phone="+1 202 555 0143 #12", hs_email_optout="maybe"),
        ],
        "deals": [
            _hs(hd[0], "hs_lastmodifieddate", dealname="Ren\x00ewal 2026", dealstage="1234567",
                pipeline="default", amount="1000", closedate="2026-06-30T00:00:00.000Z"),
            _hs(hd[1], "hs_lastmodifieddate", dealname="Extension upsell", dealstage="qualifiedtobuy",
                pipeline="default", amount="12,000.50", deal_currency_code="usd",
                closedate="1782777600000"),
            _hs(hd[2], "hs_lastmodifieddate", dealname="Nowhere trial", dealstage="appointmentscheduled",
                pipeline="default", amount="one thousand", closedate="2026-07-15T00:00:00.000Z"),
        ],
        "associations": [
            {"fromType": "contacts", "fromId": hc[0], "toType": "companies", "toId": h[0], "typeId": 279,
             "category": "HUBSPOT_DEFINED"},
            {"fromType": "contacts", "fromId": hc[4], "toType": "companies", "toId": h[3], "typeId": 279,
             "category": "HUBSPOT_DEFINED"},
            {"fromType": "contacts", "fromId": hc[5], "toType": "companies", "toId": h[1], "typeId": 279,
             "category": "HUBSPOT_DEFINED"},
            {"fromType": "deals", "fromId": hd[1], "toType": "companies", "toId": h[3], "typeId": 341,
             "category": "HUBSPOT_DEFINED"},
            {"fromType": "deals", "fromId": hd[1], "toType": "contacts", "toId": hc[4], "typeId": 3,
             "category": "HUBSPOT_DEFINED"},
            {"fromType": "deals", "fromId": hd[2], "toType": "companies", "toId": h[1], "typeId": 341,
             "category": "HUBSPOT_DEFINED"},
        ],
    }
    bad[("hubspot", h[0], "name")] = "Lone \udc80 Surrogate Co"
    bad[("hubspot", h[1], "domain")] = "not a domain"
    bad[("hubspot", h[1], "website")] = "www"
    bad[("hubspot", hc[0], "firstname")] = "J\udc80hn"
    bad[("hubspot", hc[3], "lifecyclestage")] = "zombie"
    bad[("hubspot", hc[4], "firstname")] = "Jos\udce9"
    bad[("hubspot", hc[4], "phone")] = "555-1234"  # seven digits: a local number, no area code
    bad[("hubspot", hc[5], "hs_email_optout")] = "maybe"
    bad[("hubspot", hd[0], "dealstage")] = "1234567"  # a custom pipeline's stage id
    bad[("hubspot", hd[2], "amount")] = "one thousand"
    seed.too_long[("hubspot", h[2], "name")] = "salesforce"  # 300 characters; Account.Name takes 255
    seed.too_long[("hubspot", hc[2], "firstname")] = "salesforce"  # Contact.FirstName takes 40

    # ------------------------------------------------------------------ Planhat
    p = [ph_id(n) for n in range(1, 4)]
    pe = [ph_id(100 + n) for n in range(1, 6)]
    ph: dict[str, list[dict[str, Any]]] = {
        "users": [{"_id": ph_id(900 + n), "email": email, "firstName": first, "lastName": last}
                  for n, (email, first, last) in enumerate(TEAM)],
        "companies": [
            _ph("companies", p[0], name="Planhat Only AB", domains=["planhat-only.se"], phone="08-123 456 78",
                country="SE", h=7.5, status="customer"),
            _ph("companies", p[1], name="Vague Ventures", domains=["not a domain"], website="see LinkedIn",
                h="n/a", renewalDate="31/12/2026", status="prospect"),
            # the required name is missing
            _ph("companies", p[2], domains=["nameless.io"], status="customer"),
        ],
        "endusers": [
            _ph("endusers", pe[0], email="junk@@planhat", firstName="Ann", lastName="Holm", companyId=p[0]),
            _ph("endusers", pe[1], email="ok@planhat-only.se", firstName="Olle", lastName="Sund", phone="12",
                position="\ufeffCEO", companyId=p[0]),
            _ph("endusers", pe[2], email='"quoted local"@planhat-only.se', firstName="Quinn",
                lastName="Lee\udc80", companyId=p[0]),
            # no email, no name: all a careless import left
            _ph("endusers", pe[3], companyId=p[1]),
            _ph("endusers", pe[4], email="vera@vague-ventures.com", firstName="Vera", lastName="Vogel",
                phone="+46 (0)8 123 456 78", companyId=p[1]),
        ],
        "licenses": [],
    }
    bad[("planhat", p[1], "domains")] = ["not a domain"]
    bad[("planhat", p[1], "website")] = "see LinkedIn"
    bad[("planhat", p[1], "h")] = "n/a"
    bad[("planhat", p[1], "renewalDate")] = "31/12/2026"
    bad[("planhat", pe[0], "email")] = "junk@@planhat"
    bad[("planhat", pe[1], "phone")] = "12"
    bad[("planhat", pe[2], "lastName")] = "Lee\udc80"

    # ------------------------------------------------------------------ write
    base = Path(data_dir)
    files: dict[str, Mapping[str, list[dict[str, Any]]]] = {"salesforce": sf, "hubspot": hs, "planhat": ph}
    for system, objects in files.items():
        (base / system).mkdir(parents=True, exist_ok=True)
        for obj, rows in objects.items():
            # ensure_ascii: lone surrogates go into the file as \\udc80 escapes, as the APIs send them
            (base / system / f"{obj}.json").write_text(json.dumps(rows, ensure_ascii=True, indent=1),
                                                      encoding="utf-8")
    entity_objects = {"salesforce": ("Account", "Contact", "Lead", "Opportunity"),
                      "hubspot": ("companies", "contacts", "deals"), "planhat": ("companies", "endusers")}
    for system, objs in entity_objects.items():
        for obj in objs:
            rows = files[system][obj]
            seed.ids[(system, obj)] = [str(r.get("Id") or r.get("id") or r.get("_id")) for r in rows]
    counts = {s: {o: len(rows) for o, rows in objs.items()} for s, objs in files.items()}
    (base / "manifest.json").write_text(json.dumps(
        {"seed": 0, "accounts": 0, "generated_by": "tests.integration.foreign_seed", "counts": counts},
        indent=1, sort_keys=True), encoding="utf-8")
    return seed
