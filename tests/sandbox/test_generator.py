"""Seed generator: determinism, schema conformance, ids, references, clusters, noise and
the ground truth's expected values, recomputed here from the written files with an
independent reader (its own native→canonical reading and its own policy code)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from mapping.fieldmap import to_entity
from sandbox import gen_data
from sandbox import values as V
from sandbox.generator import EPOCH, SF_PREFIX, Profile, generate, iter_records, read_manifest
from sandbox.schema import HUBSPOT_OWNER_FIELDS, field_names
from sandbox.values import LEAD_STATUS, READ_ALIASES
from sync.defaults import DEFAULT_POLICIES

ACCOUNTS = 400
REAL_ACCOUNTS = 1500
SEED = 11

SF_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")

ENTITY_OBJECTS = {
    "account": (("salesforce", "Account"), ("hubspot", "companies"), ("planhat", "companies")),
    "contact": (
        ("salesforce", "Contact"),
        ("salesforce", "Lead"),
        ("hubspot", "contacts"),
        ("planhat", "endusers"),
    ),
    "opportunity": (("salesforce", "Opportunity"), ("hubspot", "deals")),
}
SF_FILES = ("User", "Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole")
HS_OBJECTS = ("companies", "contacts", "deals")
PH_FILES = ("users", "companies", "endusers", "licenses")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class Data:
    """Everything one generated directory holds, loaded once."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.sf = {obj: list(iter_records(root, "salesforce", obj)) for obj in SF_FILES}
        self.hs = {obj: list(iter_records(root, "hubspot", obj)) for obj in (*HS_OBJECTS, "owners", "associations")}
        self.ph = {obj: list(iter_records(root, "planhat", obj)) for obj in PH_FILES}
        self.truth = _load(root / "ground_truth.json")

    def records(self, system: str, obj: str) -> list[dict[str, Any]]:
        return {"salesforce": self.sf, "hubspot": self.hs, "planhat": self.ph}[system][obj]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("seed")
    manifest = generate(root, accounts=ACCOUNTS, seed=SEED, noise="classic")
    return Data(root, manifest)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Data:
    """The "real" noise profile (issue #11's kinds), at a size where shares are stable."""
    root = tmp_path_factory.mktemp("seed-real")
    manifest = generate(root, accounts=REAL_ACCOUNTS, seed=SEED, noise="real")
    return Data(root, manifest)


@pytest.fixture(params=["classic", "real"])
def both(request: pytest.FixtureRequest) -> Data:
    data: Data = request.getfixturevalue("data" if request.param == "classic" else "real")
    return data


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    first = _hashes_of(tmp_path / "a", seed=3)
    second = _hashes_of(tmp_path / "b", seed=3)
    other = _hashes_of(tmp_path / "c", seed=4)
    assert first == second
    assert set(first) == set(other)
    changed = {name for name in first if first[name] != other[name]}
    assert {"salesforce/Account.json", "hubspot/contacts.json", "ground_truth.json"} <= changed


def _hashes_of(root: Path, *, seed: int) -> dict[str, str]:
    generate(root, accounts=60, seed=seed)
    return _hashes(root)


def test_files_listed_by_the_contract_exist_with_a_manifest(data: Data) -> None:
    names = set(_hashes(data.root))
    expected = {
        "manifest.json",
        "ground_truth.json",
        *(f"salesforce/{o}.json" for o in SF_FILES),
        *(f"hubspot/{o}.json" for o in (*HS_OBJECTS, "owners", "associations")),
        *(f"planhat/{o}.json" for o in PH_FILES),
    }
    assert names == expected
    manifest = read_manifest(data.root)
    assert manifest == data.manifest
    assert manifest["seed"] == SEED and manifest["accounts"] == ACCOUNTS
    assert manifest["generated_by"]


def test_zero_accounts_writes_empty_arrays(tmp_path: Path) -> None:
    manifest = generate(tmp_path, accounts=0, seed=1)
    assert manifest["counts"]["salesforce"]["Account"] == 0
    assert _load(tmp_path / "salesforce" / "Account.json") == []
    assert _load(tmp_path / "ground_truth.json")["entities"]["contact"] == []


# --------------------------------------------------------------------------- counts


def test_manifest_counts_are_the_file_lengths(both: Data) -> None:
    data = both
    for system, objs in data.manifest["counts"].items():
        for obj, n in objs.items():
            assert len(data.records(system, obj)) == n, (system, obj)
    for kind, n in data.manifest["entities"].items():
        assert len(data.truth["entities"][kind]) == n


def test_coverage_per_system_is_roughly_as_configured(data: Data) -> None:
    accounts = data.truth["entities"]["account"]
    assert len(accounts) == ACCOUNTS

    def share(kind: str, system: str) -> float:
        clusters = data.truth["entities"][kind]
        return sum(any(r["system"] == system for r in c["records"]) for c in clusters) / len(clusters)

    assert 0.84 <= share("account", "salesforce") <= 0.96
    assert 0.62 <= share("account", "hubspot") <= 0.85  # 70% + the companies Salesforce lacks
    assert 0.30 <= share("account", "planhat") <= 0.50
    assert 0.70 <= share("contact", "salesforce") <= 0.88
    assert 0.72 <= share("contact", "hubspot") <= 0.90
    assert 0.15 <= share("contact", "planhat") <= 0.40
    assert 0.80 <= share("opportunity", "salesforce") <= 0.98
    assert 0.40 <= share("opportunity", "hubspot") <= 0.62
    people = len(data.truth["entities"]["contact"]) / ACCOUNTS
    opps = len(data.truth["entities"]["opportunity"]) / ACCOUNTS
    assert 3.0 <= people <= 5.0
    assert 1.2 <= opps <= 2.2
    assert data.manifest["counts"]["salesforce"]["Lead"] > 0
    assert len(data.sf["User"]) == len(data.hs["owners"]) == len(data.ph["users"]) == 20


# --------------------------------------------------------------------------- shapes


def test_salesforce_records_have_exactly_the_schema_fields(both: Data) -> None:
    data = both
    for obj in SF_FILES:
        names = set(field_names("salesforce", obj))
        for rec in data.sf[obj]:
            assert set(rec) == names, obj
            assert rec["IsDeleted"] is False
            assert SF_DT.match(rec["CreatedDate"]) and SF_DT.match(rec["SystemModstamp"])
            assert rec["LastModifiedDate"] == rec["SystemModstamp"]
            assert rec["CreatedDate"] <= rec["SystemModstamp"]
            assert rec.get("Revsync_Id__c") is None
    for rec in data.sf["Opportunity"]:
        assert DAY.match(rec["CloseDate"])
        assert rec["Name"] and rec["StageName"] in V.native_values(V.STAGES, "salesforce")
        assert rec["IsWon"] == (rec["StageName"] == "Closed Won")
        assert rec["IsClosed"] == rec["StageName"].startswith("Closed")
    for rec in data.sf["Lead"]:
        assert rec["IsConverted"] is False and rec["Company"] and rec["LastName"]


def test_hubspot_records_are_wire_shaped_with_string_properties(both: Data) -> None:
    data = both
    modprop = {"companies": "hs_lastmodifieddate", "contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
    for obj in HS_OBJECTS:
        names = set(field_names("hubspot", obj))
        for rec in data.hs[obj]:
            assert set(rec) == {"id", "properties", "createdAt", "updatedAt", "archived"}
            assert rec["archived"] is False
            assert set(rec["properties"]) <= names, set(rec["properties"]) - names
            for key, value in rec["properties"].items():
                assert value is None or isinstance(value, str), (obj, key, value)
            props = rec["properties"]
            assert props["hs_object_id"] == rec["id"]
            assert props[modprop[obj]] == rec["updatedAt"]
            assert props["createdate"] == rec["createdAt"]
            assert ISO_MS.match(rec["createdAt"]) and ISO_MS.match(rec["updatedAt"])
            assert rec["createdAt"] <= rec["updatedAt"]
            assert props.get("revsync_id") is None
    for owner in data.hs["owners"]:
        assert tuple(owner) == tuple(sorted(HUBSPOT_OWNER_FIELDS))
    for deal in data.hs["deals"]:
        assert deal["properties"]["dealstage"] in V.native_values(V.STAGES, "hubspot")
        assert deal["properties"]["pipeline"] == V.HUBSPOT_DEFAULT_PIPELINE
    emails = [c["properties"]["email"].lower() for c in data.hs["contacts"] if c["properties"]["email"]]
    assert len(emails) == len(set(emails)), "HubSpot contact emails are unique per portal"


def test_planhat_records_use_only_schema_fields(both: Data) -> None:
    data = both
    for obj in PH_FILES:
        names = set(field_names("planhat", obj))
        for rec in data.ph[obj]:
            assert set(rec) <= names, (obj, set(rec) - names)
    for company in data.ph["companies"]:
        assert company["name"] and isinstance(company["domains"], list)
        assert company["status"] in V.native_values(V.CUSTOMER_STATUS, "planhat")
        assert ISO_MS.match(company["lastUpdated"])
    for user in data.ph["endusers"]:
        assert user["email"] and user["companyId"]


def test_every_seed_timestamp_is_before_the_epoch(both: Data) -> None:
    data = both
    limit_sf = EPOCH.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    limit_iso = EPOCH.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for obj in SF_FILES:
        assert all(r["SystemModstamp"] < limit_sf for r in data.sf[obj])
    for obj in HS_OBJECTS:
        assert all(r["updatedAt"] < limit_iso for r in data.hs[obj])
    assert all(r["lastUpdated"] < limit_iso for r in data.ph["companies"] + data.ph["endusers"])


# --------------------------------------------------------------------------- ids


def _sf_checksum_ok(rid: str) -> bool:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in (rid[0:5], rid[5:10], rid[10:15]):
        suffix += alphabet[sum(1 << i for i, ch in enumerate(chunk) if ch.isupper())]
    return suffix == rid[15:]


def test_ids_are_unique_per_system_and_well_formed(both: Data) -> None:
    data = both
    sf_ids = [r["Id"] for obj in SF_FILES for r in data.sf[obj]]
    assert len(sf_ids) == len(set(sf_ids))
    for obj in SF_FILES:
        for rec in data.sf[obj]:
            rid = rec["Id"]
            assert re.fullmatch(r"[0-9A-Za-z]{18}", rid) and rid.startswith(SF_PREFIX[obj])
            assert _sf_checksum_ok(rid), rid
    assert SF_PREFIX == {
        "User": "005", "Account": "001", "Contact": "003", "Lead": "00Q",
        "Opportunity": "006", "OpportunityContactRole": "00K",
    }  # fmt: skip
    hs_ids = [r["id"] for obj in (*HS_OBJECTS, "owners") for r in data.hs[obj]]
    assert len(hs_ids) == len(set(hs_ids))
    assert all(re.fullmatch(r"[1-9][0-9]*", i) for i in hs_ids)
    ph_ids = [r["_id"] for obj in PH_FILES for r in data.ph[obj]]
    assert len(ph_ids) == len(set(ph_ids))
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ph_ids)


def test_known_salesforce_id_checksum() -> None:
    from sandbox.generator import sf_id18

    # A published example: 001A0000006Vm9r → 001A0000006Vm9rIAC
    assert sf_id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


# --------------------------------------------------------------------------- references


def test_references_point_at_existing_records(both: Data) -> None:
    data = both
    sf_ids = {obj: {r["Id"] for r in data.sf[obj]} for obj in SF_FILES}
    for obj in ("Account", "Contact", "Lead", "Opportunity"):
        for rec in data.sf[obj]:
            assert rec["OwnerId"] in sf_ids["User"]
    assert all(r["AccountId"] in sf_ids["Account"] for r in data.sf["Contact"])
    assert all(r["AccountId"] in sf_ids["Account"] for r in data.sf["Opportunity"])
    for role in data.sf["OpportunityContactRole"]:
        assert role["OpportunityId"] in sf_ids["Opportunity"]
        assert role["ContactId"] in sf_ids["Contact"]
    assert data.sf["OpportunityContactRole"]

    hs_ids = {obj: {r["id"] for r in data.hs[obj]} for obj in (*HS_OBJECTS, "owners")}
    for obj in HS_OBJECTS:
        for rec in data.hs[obj]:
            owner = rec["properties"]["hubspot_owner_id"]
            assert owner is None or owner in hs_ids["owners"]
    kinds: Counter[tuple[str, str, int]] = Counter()
    for assoc in data.hs["associations"]:
        assert set(assoc) == {"fromType", "fromId", "toType", "toId", "typeId", "category"}
        assert assoc["fromId"] in hs_ids[assoc["fromType"]]
        assert assoc["toId"] in hs_ids[assoc["toType"]]
        assert assoc["category"] == "HUBSPOT_DEFINED"
        kinds[(assoc["fromType"], assoc["toType"], assoc["typeId"])] += 1
    # plus company hierarchies (child → parent company, type 14) when a subsidiary and
    # its parent both have a HubSpot company
    assert set(kinds) - {("companies", "companies", 14)} == {
        ("contacts", "companies", 279), ("deals", "companies", 341), ("deals", "contacts", 3)}

    ph_ids = {obj: {r["_id"] for r in data.ph[obj]} for obj in PH_FILES}
    assert all(r["companyId"] in ph_ids["companies"] for r in data.ph["endusers"])
    assert all(r["companyId"] in ph_ids["companies"] for r in data.ph["licenses"])
    assert all(r["owner"] in ph_ids["users"] for r in data.ph["companies"])


def test_planhat_source_id_is_a_true_salesforce_link(data: Data) -> None:
    cluster_of = {r["id"]: c["entity"] for c in data.truth["entities"]["account"] for r in c["records"]}
    linked = [c for c in data.ph["companies"] if c["sourceId"]]
    with_sf = [
        c for c in data.truth["entities"]["account"]
        if {r["system"] for r in c["records"]} >= {"salesforce", "planhat"}
    ]  # fmt: skip
    assert 0.3 * len(with_sf) <= len(linked) <= 0.7 * len(with_sf)
    for company in linked:
        assert company["sourceId"].startswith("001")
        assert cluster_of[company["sourceId"]] == cluster_of[company["_id"]]


def test_planhat_arr_and_renewal_follow_the_licenses(data: Data) -> None:
    today = EPOCH.date().isoformat()
    licenses: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lic in data.ph["licenses"]:
        licenses[lic["companyId"]].append(lic)
        assert lic["arr"] == lic["mrr"] * 12 and lic["fromDate"] <= lic["toDate"]
    assert licenses
    for company in data.ph["companies"]:
        own = licenses.get(company["_id"], [])
        if not own:
            continue
        active = sum(lic["mrr"] for lic in own if lic["fromDate"] <= today <= lic["toDate"])
        assert company["arr"] == active * 12
        assert company["renewalDate"] == max(lic["toDate"] for lic in own)


# --------------------------------------------------------------------------- clusters and noise


def test_clusters_cover_every_entity_record_exactly_once(both: Data) -> None:
    data = both
    seen: Counter[tuple[str, str, str]] = Counter()
    for kind, clusters in data.truth["entities"].items():
        for cluster in clusters:
            assert cluster["records"], cluster["entity"]
            for ref in cluster["records"]:
                assert (ref["system"], ref["object"]) in ENTITY_OBJECTS[kind]
                seen[(ref["system"], ref["object"], ref["id"])] += 1
    assert max(seen.values()) == 1
    written = {
        (system, obj, r["Id"] if system == "salesforce" else r["id"] if system == "hubspot" else r["_id"])
        for objs in ENTITY_OBJECTS.values()
        for system, obj in objs
        for r in data.records(system, obj)
    }
    assert set(seen) == written
    entities = [c["entity"] for cs in data.truth["entities"].values() for c in cs]
    assert len(entities) == len(set(entities))


def _by_id(data: Data) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for objs in ENTITY_OBJECTS.values():
        for system, obj in objs:
            for rec in data.records(system, obj):
                rid = rec["Id"] if system == "salesforce" else rec["id"] if system == "hubspot" else rec["_id"]
                out[(system, rid)] = rec
    return out


def test_within_system_duplicates_are_present_at_a_realistic_rate(data: Data) -> None:
    for kind in ("account", "contact", "opportunity"):
        clusters = data.truth["entities"][kind]
        records = sum(len(c["records"]) for c in clusters)
        dup_records = 0
        for cluster in clusters:
            per_system = Counter(r["system"] for r in cluster["records"])
            dup_records += sum(n - 1 for n in per_system.values())
        assert 0.03 <= dup_records / records <= 0.12, (kind, dup_records, records)


def test_noise_is_present_in_names_websites_emails_phones(data: Data) -> None:
    records = _by_id(data)
    sf_names = [r["Name"] for r in data.sf["Account"]]
    assert any(n.isupper() for n in sf_names)
    assert any(", Inc." in n or "Incorporated" in n for n in sf_names + [c["properties"]["name"] for c in data.hs["companies"]])
    websites = [r["Website"] for r in data.sf["Account"] if r["Website"]]
    assert any(w.startswith("https://www.") for w in websites)
    assert any(w.startswith("http://") for w in websites)
    assert any(not w.startswith("http") for w in websites)
    emails = [r["Email"] for r in data.sf["Contact"] if r["Email"]] + [
        c["properties"]["email"] for c in data.hs["contacts"] if c["properties"]["email"]
    ]
    assert any("+" in e.split("@")[0] for e in emails)
    assert any(e != e.lower() for e in emails)
    assert any(e.endswith(tuple(gen_data.FREE_MAIL)) for e in emails)
    phones = [r["Phone"] for r in data.sf["Contact"] if r["Phone"]]
    assert any(p.startswith("(") for p in phones) and any(p.startswith("+1 ") for p in phones)
    assert any("." in p for p in phones)
    # nicknames: one cluster holding both the formal name and one of its nicknames
    nick_pairs = 0
    for cluster in data.truth["entities"]["contact"]:
        firsts = set()
        for ref in cluster["records"]:
            rec = records[(ref["system"], ref["id"])]
            firsts.add(rec.get("FirstName") or rec.get("firstName") or rec.get("properties", {}).get("firstname"))
        nick_pairs += any(f in gen_data.NICKNAMES and set(gen_data.NICKNAMES[f]) & firsts for f in firsts)
    assert nick_pairs > 0
    countries = {r["BillingCountry"] for r in data.sf["Account"]}
    assert {"United States", "USA"} & countries and "US" in countries


def test_every_phone_is_valid_for_phonenumbers(data: Data) -> None:
    phones = [r["Phone"] for obj in ("Account", "Contact", "Lead") for r in data.sf[obj] if r["Phone"]]
    phones += [r["properties"]["phone"] for obj in ("companies", "contacts") for r in data.hs[obj]]
    phones += [r["phone"] for obj in ("companies", "endusers") for r in data.ph[obj]]
    phones = [p for p in phones if p]
    assert len(phones) > 1000
    for text in phones:
        number = phonenumbers.parse(text, "US")
        assert phonenumbers.is_valid_number(number), text


# --------------------------------------------------------------------------- expected values


def _e164(text: str | None) -> str | None:
    if not text:
        return None
    return phonenumbers.format_number(phonenumbers.parse(text, "US"), phonenumbers.PhoneNumberFormat.E164)


def _pick(table: dict[str, dict[str, str]], system: str) -> Callable[[Any], Any]:
    """Picklist reading: the mapping layer's documented aliases, then the value table."""
    name = next(k for k, t in V.VALUE_MAPS.items() if t is table)
    aliases = READ_ALIASES.get((name, system), {})

    def read(value: Any) -> Any:
        if not value:
            return None
        return aliases.get(value.casefold()) or V.to_canonical(table, system, value)

    return read


def _money(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _lower(value: Any) -> str | None:
    return value.strip().lower() if value else None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class Reader:
    """An independent native → canonical reading of a few fields, and modstamps."""

    def __init__(self, data: Data) -> None:
        self.owner = {
            "salesforce": {u["Id"]: u["Email"].lower() for u in data.sf["User"]},
            "hubspot": {u["id"]: u["email"].lower() for u in data.hs["owners"]},
            "planhat": {u["_id"]: u["email"].lower() for u in data.ph["users"]},
        }

    def read(self, kind: str, system: str, obj: str, rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(modstamp as sortable text, canonical values of the checked fields)."""
        if system == "salesforce":
            return rec["SystemModstamp"][:19], self._sf(kind, obj, rec)
        if system == "hubspot":
            return rec["updatedAt"][:23], self._hs(kind, rec["properties"])
        return rec["lastUpdated"][:23], self._ph(kind, rec)

    def _sf(self, kind: str, obj: str, r: dict[str, Any]) -> dict[str, Any]:
        owner = self.owner["salesforce"].get(r["OwnerId"])
        if kind == "account":
            return {
                "industry": _pick(V.INDUSTRIES, "salesforce")(r["Industry"]),
                "employees": _int(r["NumberOfEmployees"]), "annual_revenue": _money(r["AnnualRevenue"]),
                "phone": _e164(r["Phone"]), "owner_email": owner,
                "customer_status": _pick(V.CUSTOMER_STATUS, "salesforce")(r["Type"]),
            }  # fmt: skip
        if kind == "contact":
            out = {
                "email": _lower(r["Email"]), "first_name": _text(r["FirstName"]),
                "last_name": _text(r["LastName"]), "title": _text(r["Title"]),
                "phone": _e164(r["Phone"]), "owner_email": owner,
                "lead_source": _pick(V.LEAD_SOURCES, "salesforce")(r["LeadSource"]),
            }  # fmt: skip
            if obj == "Contact":
                out["lifecycle_stage"] = _pick(V.LIFECYCLE, "salesforce")(r["Lifecycle_Stage__c"])
            else:
                out["lifecycle_stage"] = LEAD_STATUS[r["Status"]]
            return out
        return {
            "name": _text(r["Name"]), "amount": _money(r["Amount"]), "currency": r["CurrencyIsoCode"],
            "stage": _pick(V.STAGES, "salesforce")(r["StageName"]), "close_date": r["CloseDate"],
            "type": _pick(V.OPPORTUNITY_TYPES, "salesforce")(r["Type"]), "owner_email": owner,
        }  # fmt: skip

    def _hs(self, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        owner = self.owner["hubspot"].get(p["hubspot_owner_id"] or "")
        if kind == "account":
            return {
                "industry": _pick(V.INDUSTRIES, "hubspot")(p["industry"]),
                "employees": _int(p["numberofemployees"]), "annual_revenue": _money(p["annualrevenue"]),
                "phone": _e164(p["phone"]), "owner_email": owner,
            }  # fmt: skip
        if kind == "contact":
            return {
                "email": _lower(p["email"]), "first_name": _text(p["firstname"]),
                "last_name": _text(p["lastname"]), "title": _text(p["jobtitle"]),
                "phone": _e164(p["phone"]), "owner_email": owner,
                "lead_source": _pick(V.LEAD_SOURCES, "hubspot")(p["hs_analytics_source"]),
                "lifecycle_stage": _pick(V.LIFECYCLE, "hubspot")(p["lifecyclestage"]),
            }  # fmt: skip
        return {
            "name": _text(p["dealname"]), "amount": _money(p["amount"]),
            "currency": p["deal_currency_code"], "stage": _pick(V.STAGES, "hubspot")(p["dealstage"]),
            "close_date": p["closedate"][:10] if p["closedate"] else None,
            "type": _pick(V.OPPORTUNITY_TYPES, "hubspot")(p["dealtype"]), "owner_email": owner,
        }  # fmt: skip

    def _ph(self, kind: str, r: dict[str, Any]) -> dict[str, Any]:
        if kind == "account":
            return {
                "phone": _e164(r["phone"]), "owner_email": self.owner["planhat"].get(r["owner"]),
                "customer_status": _pick(V.CUSTOMER_STATUS, "planhat")(r["status"]),
            }
        return {
            "email": _lower(r["email"]), "first_name": _text(r["firstName"]),
            "last_name": _text(r["lastName"]), "title": _text(r["position"]), "phone": _e164(r["phone"]),
        }  # fmt: skip


CHECKED = {
    "account": ("industry", "employees", "annual_revenue", "phone", "owner_email", "customer_status"),
    "contact": ("email", "first_name", "last_name", "title", "phone", "owner_email", "lead_source", "lifecycle_stage"),
    "opportunity": ("name", "amount", "currency", "stage", "close_date", "type", "owner_email"),
}


def _policy(kind: str, fld: str) -> str:
    conf = DEFAULT_POLICIES[kind]
    return conf["fields"].get(fld, conf["default"])


def _recompute(kind: str, fld: str, rows: list[tuple[str, str, dict[str, Any]]]) -> tuple[bool, Any]:
    """(is a certain conflict, chosen value) from (system, modstamp, values) rows."""
    per_system: dict[str, set[Any]] = defaultdict(set)
    for system, _stamp, vals in rows:
        if vals.get(fld) is not None:
            per_system[system].add(vals[fld])
    if any(len(v) > 1 for v in per_system.values()):
        return False, None
    distinct = {next(iter(v)) for v in per_system.values()}
    if len(per_system) < 2 or len(distinct) < 2:
        return False, None
    policy = _policy(kind, fld)
    if policy == "latest":
        stamps = sorted((stamp, vals[fld]) for _s, stamp, vals in rows if vals.get(fld) is not None)
        assert stamps[-1][0] != stamps[-2][0], "latest needs distinct modstamps"
        return True, stamps[-1][1]
    if policy.startswith("prefer:") and per_system.get(policy[7:]):
        return True, next(iter(per_system[policy[7:]]))
    for system in DEFAULT_POLICIES[kind]["source_priority"]:
        if per_system.get(system):
            return True, next(iter(per_system[system]))
    raise AssertionError("no value")


def _canonical_expected(fld: str, value: Any) -> Any:
    return Decimal(value) if fld in ("amount", "annual_revenue") else value


def test_expected_values_match_an_independent_recomputation(both: Data) -> None:
    data = both
    reader = Reader(data)
    records = _by_id(data)
    found: Counter[tuple[str, str]] = Counter()
    latest_differs_from_priority = 0
    for kind, clusters in data.truth["entities"].items():
        for cluster in clusters:
            rows = []
            for ref in cluster["records"]:
                stamp, vals = reader.read(kind, ref["system"], ref["object"], records[(ref["system"], ref["id"])])
                rows.append((ref["system"], stamp, vals))
            for fld in CHECKED[kind]:
                conflict, value = _recompute(kind, fld, rows)
                expected = cluster["expected"]
                assert (fld in expected) == conflict, (cluster["entity"], fld, expected, rows)
                if conflict:
                    assert _canonical_expected(fld, expected[fld]) == value, (cluster["entity"], fld)
                    found[(kind, fld)] += 1
                    if _policy(kind, fld) == "latest":
                        first = next(
                            vals[fld] for s in DEFAULT_POLICIES[kind]["source_priority"]
                            for sys_, _t, vals in rows if sys_ == s and vals.get(fld) is not None
                        )  # fmt: skip
                        latest_differs_from_priority += first != value
    for key in (
        ("account", "industry"), ("account", "customer_status"), ("account", "phone"),
        ("contact", "title"), ("contact", "phone"), ("contact", "lifecycle_stage"),
        ("contact", "first_name"), ("contact", "email"),
        ("opportunity", "stage"), ("opportunity", "close_date"), ("opportunity", "amount"),
    ):  # fmt: skip
        assert found[key] > 0, key
    assert latest_differs_from_priority > 0, "some `latest` conflicts are won by HubSpot or Planhat"


def test_expected_values_are_canonical_and_only_scored_fields(both: Data) -> None:
    data = both
    scored = data.truth["scored_fields"]
    assert data.truth["policies"] == json.loads(json.dumps(DEFAULT_POLICIES))
    assert data.truth["seed"] == SEED and data.truth["accounts"] == data.manifest["accounts"]
    assert data.truth["noise"] == data.manifest["noise"]
    picklists = {
        "industry": V.INDUSTRIES, "customer_status": V.CUSTOMER_STATUS, "lifecycle_stage": V.LIFECYCLE,
        "lead_source": V.LEAD_SOURCES, "stage": V.STAGES, "type": V.OPPORTUNITY_TYPES,
    }  # fmt: skip
    n = 0
    for kind, clusters in data.truth["entities"].items():
        for cluster in clusters:
            for fld, value in cluster["expected"].items():
                n += 1
                assert fld in scored[kind]
                assert value is not None
                if fld in picklists:
                    assert value in picklists[fld], (fld, value)
                elif fld == "phone":
                    assert re.fullmatch(r"\+[1-9]\d{7,14}", value)
                elif fld in ("email", "owner_email"):
                    assert value == value.strip().lower() and "@" in value
                elif fld in ("close_date", "renewal_date"):
                    date.fromisoformat(value)
                elif fld in ("amount", "annual_revenue", "arr", "health"):
                    assert isinstance(value, str) and Decimal(value) >= 0
                elif fld == "employees":
                    assert isinstance(value, int)
    assert n > ACCOUNTS * 0.2


def test_close_dates_spread_around_the_epoch(data: Data) -> None:
    days = [date.fromisoformat(r["CloseDate"]) for r in data.sf["Opportunity"]]
    epoch = EPOCH.date()
    assert min(days) < epoch - timedelta(days=30) and max(days) > epoch + timedelta(days=30)


def _json_canonical(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def test_expected_values_agree_with_the_project_mapping(data: Data) -> None:
    """Read every record with ``mapping.fieldmap.to_entity`` (what the engine reads), apply
    the policies with this module's own code, and compare with ``expected``: the ground
    truth is what a correct engine must produce from the seed."""
    owners = Reader(data).owner
    records = _by_id(data)
    scored = data.truth["scored_fields"]
    checked = 0
    for kind, clusters in data.truth["entities"].items():
        for cluster in clusters:
            rows = []
            for ref in cluster["records"]:
                system, rec = ref["system"], records[(ref["system"], ref["id"])]
                if system == "salesforce":
                    fields, owner, stamp = dict(rec), rec["OwnerId"], rec["SystemModstamp"][:19]
                elif system == "hubspot":
                    fields, owner, stamp = dict(rec["properties"]), rec["properties"]["hubspot_owner_id"], rec["updatedAt"][:23]
                else:
                    fields, owner, stamp = dict(rec), rec.get("owner"), rec["lastUpdated"][:23]
                fields["_owner_email"] = owners[system].get(owner or "")
                entity = to_entity(system, ref["object"], fields)
                rows.append((system, stamp, {f: _json_canonical(getattr(entity, f)) for f in scored[kind]}))
            for fld in scored[kind]:
                conflict, value = _recompute(kind, fld, rows)
                assert (fld in cluster["expected"]) == conflict, (cluster["entity"], fld, rows)
                if conflict:
                    want = cluster["expected"][fld]
                    assert (Decimal(want) if isinstance(value, Decimal) else want) == value
                    checked += 1
    assert checked > ACCOUNTS


def test_a_quiet_profile_has_no_duplicates_and_no_genuine_conflicts(tmp_path: Path) -> None:
    quiet = Profile(dup_rate=0, conflict_rate=0, missing_rate=0, nickname_rate=0, typo_rate=0)
    generate(tmp_path, accounts=120, seed=5, profile=quiet)
    truth = _load(tmp_path / "ground_truth.json")
    only_from_conflicts = {
        "industry", "employees", "annual_revenue", "phone", "owner_email", "title",
        "lead_source", "first_name", "last_name", "stage", "close_date", "amount", "type",
    }  # fmt: skip
    for clusters in truth["entities"].values():
        for cluster in clusters:
            systems = [r["system"] for r in cluster["records"]]
            assert len(systems) == len(set(systems))
            assert not set(cluster["expected"]) & only_from_conflicts, cluster


def test_typo_changes_exactly_one_character_position() -> None:
    import random

    from sandbox.generator import _typo

    rng = random.Random(0)
    for word in ("Johnson", "Brightwave", "Martinez"):
        for _ in range(50):
            typo = _typo(rng, word)
            assert typo != word  # no adjacent equal letters: every kind of typo shows
            assert abs(len(typo) - len(word)) <= 1
            assert typo[0] == word[0]


# --------------------------------------------------------------------------- "real" noise


def _plain(email: str | None) -> str | None:
    """An address compared as a person's mailbox: lowercased, plus-tag dropped."""
    if not email:
        return None
    local, _, dom = email.strip().lower().partition("@")
    return local.split("+", 1)[0] + "@" + dom


def _email_of(system: str, rec: dict[str, Any]) -> str | None:
    if system == "salesforce":
        return rec["Email"]
    if system == "hubspot":
        return rec["properties"]["email"]
    return rec["email"]


def _cross_system_email_pairs(data: Data) -> tuple[int, int]:
    """(pairs of one person's records in two systems, both with an email; of those, different)."""
    records = _by_id(data)
    pairs = differ = 0
    for cluster in data.truth["entities"]["contact"]:
        refs = [(r["system"], _plain(_email_of(r["system"], records[(r["system"], r["id"])]))) for r in cluster["records"]]
        for i, (sys_a, a) in enumerate(refs):
            for sys_b, b in refs[i + 1 :]:
                if sys_a != sys_b and a and b:
                    pairs += 1
                    differ += a != b
    return pairs, differ


def _all_phone_texts(data: Data) -> list[str]:
    phones = [r["Phone"] for obj in ("Account", "Contact", "Lead") for r in data.sf[obj]]
    phones += [r["properties"]["phone"] for obj in ("companies", "contacts") for r in data.hs[obj]]
    phones += [r["phone"] for obj in ("companies", "endusers") for r in data.ph[obj]]
    return [p for p in phones if p]


def test_unassigned_area_codes_give_possible_but_invalid_numbers() -> None:
    for area in gen_data.UNASSIGNED_NANP_AREA_CODES:
        for sub in ("2345678", "9876543", "4109921"):
            number = phonenumbers.parse(f"+1{area}{sub}")
            assert phonenumbers.is_possible_number(number), area
            assert not phonenumbers.is_valid_number(number), area


def test_real_profile_cross_system_pairs_often_use_different_addresses(real: Data, data: Data) -> None:
    pairs, differ = _cross_system_email_pairs(real)
    assert pairs > 1000
    assert 0.20 <= differ / pairs <= 0.50, (differ, pairs)  # work vs private, typos
    pairs, differ = _cross_system_email_pairs(data)
    assert differ / pairs < 0.08  # classic: the noise the matcher was first tuned on


def test_real_profile_phones_fail_strict_validation_and_carry_extensions(real: Data) -> None:
    phones = _all_phone_texts(real)
    assert len(phones) > 3000
    parsed = [phonenumbers.parse(text, "US") for text in phones]
    assert all(phonenumbers.is_possible_number(n) for n in parsed)  # every one is still a number
    invalid = sum(not phonenumbers.is_valid_number(n) for n in parsed) / len(parsed)
    assert 0.15 <= invalid <= 0.40, invalid  # NANP numbers on unassigned area codes
    with_ext = sum(bool(n.extension) for n in parsed) / len(parsed)
    assert 0.04 <= with_ext <= 0.14, with_ext
    national = sum(t.startswith("(") or t[:3].isdigit() for t in phones) / len(phones)
    assert national > 0.2


def test_real_profile_missing_fields_are_common(real: Data, data: Data) -> None:
    def share_blank(d: Data) -> tuple[float, float, float]:
        contacts = d.sf["Contact"] + d.sf["Lead"]
        hs = [c["properties"] for c in d.hs["contacts"]]
        emails = (sum(not r["Email"] for r in contacts) + sum(not p["email"] for p in hs)) / (len(contacts) + len(hs))
        phones = (sum(not r["Phone"] for r in contacts) + sum(not p["phone"] for p in hs)) / (len(contacts) + len(hs))
        sites = sum(not r["Website"] for r in d.sf["Account"]) / len(d.sf["Account"])
        return emails, phones, sites

    emails, phones, sites = share_blank(real)
    assert 0.04 <= emails <= 0.20, emails
    assert 0.20 <= phones <= 0.45, phones
    assert 0.14 <= sites <= 0.28, sites
    classic = share_blank(data)
    assert classic[0] < emails and classic[1] < phones and classic[2] < sites
    # email is HubSpot's contact identity key: a HubSpot contact without one is rarer
    # than a Salesforce contact or lead without one
    sf = real.sf["Contact"] + real.sf["Lead"]
    hs = [c["properties"] for c in real.hs["contacts"]]
    sf_blank = sum(not r["Email"] for r in sf) / len(sf)
    hs_blank = sum(not p["email"] for p in hs) / len(hs)
    assert hs_blank < sf_blank / 2, (hs_blank, sf_blank)
    assert 0.005 <= hs_blank <= 0.05, hs_blank


def _contacts_by_account(d: Data) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Salesforce Contacts per true account: (contact entity, record)."""
    entity_of = {
        (r["system"], r["id"]): c["entity"] for cs in d.truth["entities"].values() for c in cs for r in c["records"]
    }
    out: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for rec in d.sf["Contact"]:
        out[entity_of[("salesforce", rec["AccountId"])]].append((entity_of[("salesforce", rec["Id"])], rec))
    return out


def test_real_profile_has_namesakes_at_one_company(real: Data, data: Data) -> None:
    def namesakes(d: Data) -> int:
        n = 0
        for contacts in _contacts_by_account(d).values():
            by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
            for entity, rec in contacts:
                by_name[(rec["FirstName"], rec["LastName"])].add(entity)
            n += sum(len(es) > 1 for es in by_name.values())
        return n

    people = len(real.truth["entities"]["contact"])
    found = namesakes(real)
    # 0.3 % of people (sandbox.generator.NOISE_PROFILES: "real-v1" had 3 %, beyond
    # what name frequencies allow at the CRM sizes of a company), plus chance
    assert 0.0005 * people <= found <= 0.01 * people, (found, people)
    assert namesakes(data) <= 2  # chance alone


def test_real_profile_relatives_share_a_personal_mailbox(real: Data, data: Data) -> None:
    def shared(d: Data) -> list[set[str]]:
        records = _by_id(d)
        owners: dict[str, set[str]] = defaultdict(set)
        for cluster in d.truth["entities"]["contact"]:
            for r in cluster["records"]:
                email = _plain(_email_of(r["system"], records[(r["system"], r["id"])]))
                if email:
                    owners[email].add(cluster["entity"])
        return [es for es in owners.values() if len(es) > 1]

    found = shared(real)
    people = len(real.truth["entities"]["contact"])
    assert 0.002 * people <= len(found) <= 0.03 * people, (len(found), people)
    assert all(len(es) >= 2 for es in found)
    assert shared(data) == []  # classic: one mailbox, one person


def test_real_profile_companies_move_headquarters(real: Data) -> None:
    records = _by_id(real)
    both_sides = moved = 0
    for cluster in real.truth["entities"]["account"]:
        streets: dict[str, set[str]] = defaultdict(set)
        for r in cluster["records"]:
            rec = records[(r["system"], r["id"])]
            street = rec["BillingStreet"] if r["system"] == "salesforce" else rec.get("properties", {}).get("address")
            if r["system"] != "planhat" and street:
                streets[r["system"]].add(street)
        if len(streets) == 2:
            both_sides += 1
            moved += streets["salesforce"].isdisjoint(streets["hubspot"])
            if streets["salesforce"].isdisjoint(streets["hubspot"]):
                assert "billing_street" in cluster["expected"]  # the truth holds the policy's pick
    assert 0.04 <= moved / both_sides <= 0.14, (moved, both_sides)


# --------------------------------------------------------------------------- company identity


def _domain_label(value: str | None) -> str | None:
    """``https://app.rocketmind.co.uk/x`` → ``rocketmind`` (the registrable domain's label)."""
    from mapping.normalize import domain_from_url

    dom = domain_from_url(value) if value else None
    return dom.split(".", 1)[0] if dom else None


def _account_labels_and_names(d: Data) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per account entity: the domain labels and the folded names its records carry."""
    from sync.dedupe_keys import company_key

    records = _by_id(d)
    labels: dict[str, set[str]] = defaultdict(set)
    names: dict[str, set[str]] = defaultdict(set)
    for cluster in d.truth["entities"]["account"]:
        for r in cluster["records"]:
            rec = records[(r["system"], r["id"])]
            if r["system"] == "salesforce":
                sites, name = [rec["Website"]], rec["Name"]
            elif r["system"] == "hubspot":
                sites, name = [rec["properties"]["domain"], rec["properties"]["website"]], rec["properties"]["name"]
            else:
                sites, name = [*rec["domains"], rec["website"]], rec["name"]
            labels[cluster["entity"]].update(lbl for s in sites if (lbl := _domain_label(s)))
            if key := company_key(name):
                names[cluster["entity"]].add(key)
    return labels, names


def test_distinct_companies_never_share_a_domain_or_a_name(both: Data) -> None:
    """Two real companies with one domain label (``rocketmind.com`` and ``rocketmind.co.uk``)
    or one name would be one company to any reader: the generator never makes them."""
    labels, names = _account_labels_and_names(both)
    owner: dict[str, set[str]] = defaultdict(set)
    for entity, lbls in labels.items():
        for lbl in lbls:
            owner[lbl].add(entity)
    assert all(len(lbls) == 1 for lbls in labels.values() if lbls), "one company, one domain label"
    assert {lbl: es for lbl, es in owner.items() if len(es) > 1} == {}
    name_owner: dict[str, set[str]] = defaultdict(set)
    for entity, keys in names.items():
        for key in keys:
            name_owner[key].add(entity)
    shared = [es for es in name_owner.values() if len(es) > 1]
    # only a typo can land on another company's name, and rarely
    assert len(shared) <= 0.002 * len(names), shared[:5]


def test_subsidiaries_are_modelled_in_the_truth_and_salesforce_hierarchy(data: Data) -> None:
    d = data
    accounts = {c["entity"]: c for c in d.truth["entities"]["account"]}
    subs = [c for c in accounts.values() if "parent" in c]
    assert 0.01 * len(accounts) <= len(subs) <= 0.04 * len(accounts)
    records = _by_id(d)
    entity_of = {(r["system"], r["id"]): e for e, c in accounts.items() for r in c["records"]}
    labels, _names = _account_labels_and_names(d)
    sf_parent_links = 0
    for sub in subs:
        parent = accounts[sub["parent"]]
        assert parent["entity"] < sub["entity"] and "parent" not in parent  # one level, parent first
        assert not labels[sub["entity"]] & labels[parent["entity"]]  # its own domain
        for r in sub["records"]:
            rec = records[(r["system"], r["id"])]
            if r["system"] == "salesforce":
                assert rec["Name"].casefold().startswith(_sf_name_base(records, parent).casefold()[:4])
                if rec["ParentId"]:
                    assert entity_of[("salesforce", rec["ParentId"])] == parent["entity"]
                    sf_parent_links += 1
    assert sf_parent_links > 0
    non_subs = [rec for rec in d.sf["Account"] if entity_of[("salesforce", rec["Id"])] not in {s["entity"] for s in subs}]
    assert all(rec["ParentId"] is None for rec in non_subs)
    # HubSpot: each subsidiary's company is the child (type 14) of a company of its parent
    hs_links = [a for a in d.hs["associations"] if a["fromType"] == a["toType"] == "companies"]
    assert hs_links and all(a["typeId"] == 14 for a in hs_links)
    for a in hs_links:
        child, parent = entity_of[("hubspot", a["fromId"])], entity_of[("hubspot", a["toId"])]
        assert accounts[child].get("parent") == parent
    assert len({a["fromId"] for a in hs_links}) == len(hs_links)  # one parent each


def _sf_name_base(records: dict[tuple[str, str], dict[str, Any]], cluster: dict[str, Any]) -> str:
    for r in cluster["records"]:
        rec = records[(r["system"], r["id"])]
        name = rec.get("Name") or rec.get("name") or rec.get("properties", {}).get("name")
        if name:
            return str(name)
    return ""
