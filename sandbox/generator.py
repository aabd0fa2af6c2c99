"""Deterministic seed data for the sandbox, with a ground truth of clusters and conflicts.

``generate(out_dir, accounts=N, seed=S)`` first invents a *true world* of N companies,
their people and their opportunities, then writes the copies each system holds —
Salesforce (Account, Contact, Lead, Opportunity, OpportunityContactRole, User),
HubSpot (companies, contacts, deals, owners, associations) and Planhat (companies,
endusers, licenses, users) — with realistic noise, within-system duplicates and
genuine cross-system conflicts, plus ``ground_truth.json``. Same seed → byte-identical
files; nothing reads the wall clock (every timestamp is before ``EPOCH``, 2026-01-01Z,
so live edits made through the emulators are always newer than the seed data).

Ground truth semantics (the engine's end-to-end test compares against this)
--------------------------------------------------------------------------
``entities[kind]`` (kind ∈ account, contact, opportunity) lists one entry per real
entity: ``{"entity": "A000123", "records": [{"system", "object", "id"}, ...],
"expected": {field: value}}``; a subsidiary account also has ``"parent": "A000042"``
(a distinct entity: never one cluster with its parent). Top-level ``noise`` names the
profile (``NOISE_PROFILES``).

Distinct companies never share a name or a domain label (``rocketmind.com`` and
``rocketmind.co.uk`` would be one company to any reader); a subsidiary carries its
parent's name plus a region and a domain of its own (``rocketmind-uk.co.uk``), its
Salesforce Account's ``ParentId`` is the parent's Account, and its HubSpot company is
associated to the parent's company as its child (type 14, "child to parent company").
Planhat holds no hierarchy (its public API reference names no parent field).

- ``records`` is the cluster: every remote record that is this entity, across
  systems and within one (duplicates). Entity objects are Salesforce Account,
  Contact, Lead (unconverted), Opportunity; HubSpot companies, contacts, deals;
  Planhat companies, endusers. Every such record is in exactly one cluster; users,
  owners, licenses, contact roles and associations are not entities.
- ``expected`` lists only the *scored* fields (``scored_fields[kind]``, canonical
  names of ``mapping.canonical``) that CONFLICT: at least two systems carry different
  non-blank values after normalization. A scored field is left out when its truth is
  not certain: some record's reading of it is unknown (none today; the ``uncertain``
  hook stays for fields whose mapping is undecided), or two records of the SAME
  system carry different non-blank values.
  Because of the second rule, "the system's value" is unambiguous: every record of a
  system that has the field agrees on it.
- The value is what the default policies (``mapping.defaults``) choose, ``never_blank`` on:
  ``source_priority`` → the first system of the object's ``source_priority`` list with
  a non-blank value; ``latest`` → the non-blank value of the record with the greatest
  remote modstamp (Salesforce ``SystemModstamp``, HubSpot ``updatedAt`` = the
  last-modified property, Planhat ``lastUpdated``; within one cluster all modstamps
  are at least a minute apart, so there are no ties); ``prefer:<s>`` → ``<s>``'s
  value if non-blank, else ``source_priority``; ``always:<s>`` → ``<s>``'s value.
- Values are canonical and normalized: picklists as canonical keys of
  ``mapping.values``, read from the native value the way ``mapping.transforms`` reads
  it: its ``READ_ALIASES`` first (a Salesforce Account ``Type`` of "Customer - Direct"
  reads as ``customer``, "Other" as ``churned``), then ``values.to_canonical``; a
  Salesforce Lead's ``Status`` reads as a lifecycle stage through ``LEAD_STATUS``;
  phones E.164; emails stripped and lowercased (plus-tags kept); names and titles
  stripped; countries ISO-3166 alpha-2; dates ``YYYY-MM-DD``; money (amount,
  annual_revenue, arr, health) as decimal strings, to be compared as ``Decimal``;
  employees as ints; booleans as booleans. A phone that ``phonenumbers`` does not
  call valid (the "real" profile's unassigned area codes) is still its E.164 digits;
  an extension is not part of the value.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from mapping.defaults import default_policies
from mapping.normalize import company_match_key
from sandbox import gen_data as D
from sandbox import values as V
from sandbox.schema import SCHEMAS
from sandbox.values import LEAD_STATUS, READ_ALIASES

GENERATED_BY = "revsync.sandbox.generator/1"
# Every seed timestamp is before this instant; close and renewal dates spread around it.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH_MS = int(EPOCH.timestamp() * 1000)
DAY_MS = 86_400_000
# HubSpot-defined company → company association type "child company to parent company".
# https://developers.hubspot.com/changelog/2018-9-11-parent-child-associations
HS_CHILD_TO_PARENT = 14

# The sales org's own mail domain (owners / users / reps).
REP_DOMAIN = "revsync-demo.com"

# Scored canonical fields per kind (see the module docstring).
SCORED_FIELDS: dict[str, tuple[str, ...]] = {
    "account": (
        "industry", "employees", "annual_revenue", "phone", "billing_street",
        "billing_city", "billing_state", "billing_postal_code", "country", "owner_email",
        "lifecycle_stage", "customer_status", "health", "arr", "renewal_date",
    ),
    "contact": (
        "email", "first_name", "last_name", "title", "phone", "lifecycle_stage",
        "owner_email", "lead_source", "do_not_contact",
    ),
    "opportunity": ("name", "amount", "currency", "stage", "close_date", "type", "owner_email"),
}  # fmt: skip

# Which scored fields each native object carries.
_CARRIES: dict[tuple[str, str], frozenset[str]] = {
    ("salesforce", "Account"): frozenset(SCORED_FIELDS["account"])
    - {"lifecycle_stage", "health", "arr", "renewal_date"},
    ("hubspot", "companies"): frozenset(SCORED_FIELDS["account"])
    - {"customer_status", "health", "arr", "renewal_date"},
    ("planhat", "companies"): frozenset(
        {"phone", "country", "owner_email", "customer_status", "health", "arr", "renewal_date"}
    ),
    ("salesforce", "Contact"): frozenset(SCORED_FIELDS["contact"]),
    ("salesforce", "Lead"): frozenset(SCORED_FIELDS["contact"]),
    ("hubspot", "contacts"): frozenset(SCORED_FIELDS["contact"]),
    ("planhat", "endusers"): frozenset({"email", "first_name", "last_name", "title", "phone"}),
    ("salesforce", "Opportunity"): frozenset(SCORED_FIELDS["opportunity"]),
    ("hubspot", "deals"): frozenset(SCORED_FIELDS["opportunity"]),
}
# Fields a record of this object carries but whose canonical reading is not certain
# (left out of ``expected``); empty since the mapping reads Lead Status as lifecycle.
_UNCERTAIN: dict[tuple[str, str], frozenset[str]] = {}
# An unconverted Lead's Status for the person's lifecycle stage; later stages than MQL
# stay "Working - Contacted" (Salesforce lags behind marketing: a realistic conflict).
_LEAD_STATUS_FOR: dict[str, str] = {
    "subscriber": "Open - Not Contacted",
    "lead": "Open - Not Contacted",
    "mql": "Working - Contacted",
    "other": "Closed - Not Converted",
}
# Fields a copy may simply lack (missing-data noise).
_BLANKABLE: dict[str, tuple[str, ...]] = {
    "account": (
        "industry", "employees", "annual_revenue", "phone", "billing_street",
        "billing_postal_code",
    ),
    "contact": ("title", "phone", "lead_source", "lifecycle_stage"),
    "opportunity": ("type", "amount"),
}  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """Shape of the generated world: sizes, coverage per system, noise rates.

    The defaults give about 13 entity records per account (measured at 100k accounts:
    1.29M entity records, plus 0.61M contact roles, associations and licenses; ~95 s
    of CPU, < 100 MB of memory). ``people_mean`` is below the 6-10 of big B2B
    accounts so that 100k accounts stay near a million records.
    """

    people_mean: float = 4.0
    opportunity_weights: tuple[int, ...] = (10, 40, 30, 15, 5)  # P(0..4 opportunities)
    sf_account: float = 0.90
    hs_account: float = 0.70
    ph_customer: float = 0.85  # Planhat holds customers mainly
    ph_other: float = 0.08
    sf_contact: float = 0.70
    sf_lead: float = 0.08
    hs_contact: float = 0.80
    ph_enduser: float = 0.75  # of the people of a Planhat company
    sf_opportunity: float = 0.90
    hs_deal: float = 0.50
    dup_rate: float = 0.07
    conflict_rate: float = 0.20
    missing_rate: float = 0.05
    free_mail_rate: float = 0.08
    nickname_rate: float = 0.25
    typo_rate: float = 0.03
    sourceid_rate: float = 0.5  # Planhat companies carrying the Salesforce Account id
    # Parent / subsidiary: a share of companies are a subsidiary of an earlier one (same
    # name base plus a region, their OWN registrable domain, Salesforce ParentId, the
    # truth's ``parent``). Both profiles model it.
    subsidiary_rate: float = 0.02
    # ---- the "real" profile's noise kinds (all off in "classic"; see NOISE_PROFILES)
    noise: str = "classic"
    alt_email_rate: float = 0.0  # person in >= 2 systems: one copy holds the personal mailbox
    email_typo_rate: float = 0.0  # copy: one typo in the email's local part
    email_domain_typo_rate: float = 0.0  # copy: one typo in the email's domain
    email_missing_rate: float = 0.0  # copy (Salesforce): no email at all
    # copy (HubSpot): no email; None: ``email_missing_rate``. Email is HubSpot's
    # identity key (forms, tracking and the contacts API create and dedupe contacts by
    # it), so a HubSpot contact without one is rarer than a Salesforce one.
    hubspot_email_missing_rate: float | None = None
    unassigned_phone_rate: float = 0.0  # true NANP phone on an unassigned area code (possible, not valid)
    phone_extension_rate: float = 0.0  # copy: the phone text carries an extension
    phone_missing_rate: float = 0.0  # copy: no phone (on top of missing_rate)
    phone_changed_rate: float = 0.0  # person in >= 2 systems: one copy holds an older number
    namesake_rate: float = 0.0  # person: same first + last name as an earlier colleague
    namesake_same_title: float = 0.5  # ... and then also the same title
    shared_mailbox_rate: float = 0.0  # person: uses a relative's personal mailbox (same last name)
    hq_moved_rate: float = 0.0  # account in >= 2 systems: one copy keeps the old street + postcode
    website_missing_rate: float | None = None  # copy: no website / domain (None: missing_rate)


DEFAULT_PROFILE = Profile()
# Subsidiaries start once this many companies exist that may be a parent (so the tiny
# worlds of the end-to-end tests hold none).
_MIN_PARENT_POOL = 50
# Named noise profiles. "classic" is the noise the matcher was first tuned on (the
# generator's original output, plus the parent/subsidiary modelling). "real" adds the
# kinds found in CRM data nobody generated (issue #11): shares below, measured in
# tests/sandbox/test_generator.py.
_REAL_V1 = Profile(
    noise="real-v1",
    missing_rate=0.12,
    typo_rate=0.05,
    alt_email_rate=0.30,
    email_typo_rate=0.03,
    email_domain_typo_rate=0.015,
    email_missing_rate=0.08,
    unassigned_phone_rate=0.35,
    phone_extension_rate=0.08,
    phone_missing_rate=0.15,
    phone_changed_rate=0.08,
    namesake_rate=0.03,
    shared_mailbox_rate=0.01,
    hq_moved_rate=0.08,
    website_missing_rate=0.20,
)
NOISE_PROFILES: dict[str, Profile] = {
    "classic": DEFAULT_PROFILE,
    # "real" as first written (issue #11), kept to compare benchmarks across the change.
    "real-v1": _REAL_V1,
    # Two shares of "real-v1" were implausible (see bench/README.md, issue #11 third
    # pass, for the arithmetic and sources):
    # - namesakes: 3 % of people sharing first AND last name with a colleague at one
    #   company. Two random people share a full name with a probability of the order
    #   of sum(p_first^2) * sum(p_last^2) ~ 1e-2 * 1e-3 = 1e-5 (US census surnames:
    #   Smith, the commonest, is 0.8 % of people; 6.3 million surnames), so at the few
    #   to few hundred contacts a CRM holds per company it is 1e-4 .. 1e-3 per person;
    #   0.3 % keeps a generous margin (names cluster by origin; big accounts).
    # - HubSpot contacts without any email: email is HubSpot's primary contact
    #   identifier, so 2 % there (Salesforce keeps 8 %: leads from calls and events).
    "real": replace(_REAL_V1, noise="real", namesake_rate=0.003, hubspot_email_missing_rate=0.02),
}
# What ``revsync sandbox generate/serve`` and the benchmarks use without ``--noise``.
# Still "classic": phones are read leniently now, but on "real" data tier 1's email key
# fuses namesakes and relatives sharing a mailbox (7 of 179 contact clusters at 40
# accounts, tests/integration/test_e2e_sync.py), so the end-to-end tests would fail;
# switch once the contact matcher keeps them apart.
DEFAULT_NOISE = "classic"

_STATUS_WEIGHTS = {"prospect": 55, "customer": 30, "onboarding": 5, "churned": 7, "lost": 3}
_PROSPECT_LIFECYCLE = ("subscriber", "lead", "mql", "sql", "opportunity")
_OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation", "contract")
_EMPLOYEE_BANDS = ((5, 50), (50, 200), (200, 1000), (1000, 5000), (5000, 50000))
_EMPLOYEE_WEIGHTS = (35, 30, 20, 10, 5)


# --------------------------------------------------------------------------- ids


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
SF_PREFIX = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
}


def sf_id18(id15: str) -> str:
    """Salesforce's 18-character id: the 15-character id plus its case-checksum suffix."""
    suffix = []
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        bits = sum(1 << j for j, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix.append(_SF_SUFFIX[bits])
    return id15 + "".join(suffix)


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


class _Ids:
    """Seeded, sequential remote ids per system (unique within each system)."""

    def __init__(self, rng: random.Random) -> None:
        self._sf = {obj: rng.randrange(62**5, 62**6) for obj in SF_PREFIX}
        # HubSpot ids are numeric strings; disjoint ranges keep them unique across objects.
        self._hs = {
            "owners": 310_000_000 + rng.randrange(1000),
            "contacts": 100_000 + rng.randrange(1000),
            "companies": 5_000_000_000 + rng.randrange(10**6),
            "deals": 9_000_000_000 + rng.randrange(10**6),
        }
        self._rng = rng
        self._ph_machine = f"{rng.getrandbits(40):010x}"
        self._ph_counter = rng.getrandbits(24)

    def sf(self, obj: str) -> str:
        n = self._sf[obj]
        self._sf[obj] = n + 1
        return sf_id18(SF_PREFIX[obj] + "5g" + "0" + _b62(n, 9))

    def hs(self, obj: str) -> str:
        n = self._hs[obj]
        self._hs[obj] = n + 1 + self._rng.randrange(40)
        return str(n)

    def ph(self, created_ms: int) -> str:
        """A Mongo ObjectId: 4-byte time, 5-byte machine, 3-byte counter (24 hex)."""
        self._ph_counter = (self._ph_counter + 1) % (1 << 24)
        return f"{created_ms // 1000:08x}{self._ph_machine}{self._ph_counter:06x}"


# --------------------------------------------------------------------------- time


def _seconds(ms: int) -> str:
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % t[:6]  # noqa: UP031 (hot path)


def sf_datetime(ms: int) -> str:
    """Salesforce rendering: ``2025-11-02T10:15:30.000+0000`` (second precision)."""
    return _seconds(ms) + ".000+0000"


def iso_ms(ms: int) -> str:
    """HubSpot / Planhat rendering: ``2025-11-02T10:15:30.123Z``."""
    return f"{_seconds(ms)}.{ms % 1000:03d}Z"


# --------------------------------------------------------------------------- output


class _ArrayWriter:
    """Streams a JSON array to a file, one record per line, sorted keys."""

    _ENC = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = path.open("w", encoding="utf-8", buffering=1 << 20)
        self._fh.write("[")
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(("\n" if self.count == 0 else ",\n") + self._ENC.encode(record))
        self.count += 1

    def close(self) -> None:
        self._fh.write("\n]\n" if self.count else "]\n")
        self._fh.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# --------------------------------------------------------------------------- policies


@dataclass
class _Rec:
    """One remote record of a cluster: its identity, modstamp and canonical reading."""

    system: str
    object: str
    id: str
    stamp: int  # remote modstamp, epoch ms
    canon: dict[str, Any]
    uncertain: frozenset[str] = frozenset()


@functools.cache
def _default_policies() -> dict[str, dict[str, Any]]:
    return default_policies()


def _policy_for(kind: str, fld: str, policies: Mapping[str, Mapping[str, Any]]) -> str:
    conf = policies[kind]
    return str(conf.get("fields", {}).get(fld, conf.get("default", "source_priority")))


def expected_values(
    kind: str,
    records: Sequence[_Rec],
    policies: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``expected`` map of one cluster (semantics in the module docstring);
    ``policies`` default to the product's (``mapping.defaults``)."""
    policies = policies or _default_policies()
    conf = policies[kind]
    priority = list(conf.get("source_priority", ()))
    out: dict[str, Any] = {}
    for fld in SCORED_FIELDS[kind]:
        if any(fld in r.uncertain for r in records):
            continue
        by_system: dict[str, Any] = {}
        agree = True
        for r in records:
            value = r.canon.get(fld)
            if value is None:
                continue
            if r.system in by_system and by_system[r.system] != value:
                agree = False
                break
            by_system[r.system] = value
        if not agree or len(by_system) < 2:
            continue
        vals = list(by_system.values())
        if all(v == vals[0] for v in vals):
            continue
        policy = _policy_for(kind, fld, policies)
        out[fld] = _choose(policy, fld, records, by_system, priority)
    return out


def _choose(
    policy: str, fld: str, records: Sequence[_Rec], by_system: Mapping[str, Any], priority: Sequence[str]
) -> Any:
    if policy == "latest":
        winner = max((r for r in records if r.canon.get(fld) is not None), key=lambda r: r.stamp)
        return winner.canon[fld]
    if policy.startswith("always:"):
        return by_system.get(policy.split(":", 1)[1])
    if policy.startswith("prefer:"):
        preferred = policy.split(":", 1)[1]
        if by_system.get(preferred) is not None:
            return by_system[preferred]
    for system in priority:
        if by_system.get(system) is not None:
            return by_system[system]
    return None


# --------------------------------------------------------------------------- true world


@dataclass
class _Company:
    idx: int
    name_base: str
    suffix: str
    suffix_variants: tuple[str, ...]
    domain: str
    industry: str
    employees: int
    annual_revenue: int
    country: str
    city: tuple[str, str, str, str, str, int, str]
    phone: tuple[str, str]  # (calling code, national significant number)
    street: str
    postal_code: str
    owner: int
    status: str
    lifecycle: str
    health: str | None = None
    arr: int | None = None
    mrr: int | None = None
    renewal: str | None = None
    licenses: list[tuple[str, str, int]] = field(default_factory=list)
    parent: int | None = None  # the parent company's idx (a subsidiary)
    parent_sf: str | None = None  # the parent's primary Salesforce Account id
    sf_account: str | None = None  # the primary Salesforce Account id, once written
    parent_hs: str | None = None  # the parent's primary HubSpot company id
    hs_company: str | None = None  # the primary HubSpot company id, once written


@dataclass
class _Person:
    idx: int
    first: str
    last: str
    email: str
    title: str
    phone: tuple[str, str]
    lifecycle: str
    owner: int
    lead_source: str
    dnc: bool


@dataclass
class _Opp:
    idx: int
    name: str
    amount: int
    currency: str
    stage: str
    close_date: str
    type: str
    owner: int
    contacts: list[int]  # indexes into the company's people


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _e164(phone: tuple[str, str]) -> str:
    return "+" + phone[0] + phone[1]


def _typo(rng: random.Random, text: str) -> str:
    """One single-character typo (swap, drop, double or replace) inside a word."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 2)
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    repl = rng.choice("aeiou") if text[i] not in "aeiou" else rng.choice("rstln")
    return text[:i] + repl + text[i + 1 :]


class _World:
    """Draws the true world and writes every system's copy of it."""

    def __init__(self, out_dir: Path, *, accounts: int, seed: int, profile: Profile) -> None:
        self.rng = random.Random(f"revsync-sandbox-{seed}")
        self.out = out_dir
        self.accounts = accounts
        self.seed = seed
        self.p = profile
        self.ids = _Ids(self.rng)
        self.domains: set[str] = set()
        self.slugs: set[str] = set()  # company name slugs (= domain labels) in use
        self.name_keys: set[str] = set()  # company names folded as matchers fold them
        self.parent_pool: list[_Company] = []
        # Company identity (subsidiaries, invented names) draws from its own stream, so
        # the rest of the world is unchanged until a subsidiary or a name clash happens.
        self.id_rng = random.Random(f"revsync-sandbox-{seed}-identity")
        self.free_emails: set[str] = set()
        self.hs_emails: set[str] = set()
        # "real" noise: recent personal mailboxes (email, last name) a relative may share
        self.mailboxes: list[tuple[str, str]] = []
        self.web_missing = profile.missing_rate if profile.website_missing_rate is None else profile.website_missing_rate
        self.n_contacts = 0
        self.n_opps = 0
        self.width = max(6, len(str(accounts)))
        self.countries = list(D.COUNTRIES)
        self.country_weights = [D.COUNTRIES[c][0] for c in self.countries]
        self.cities = {c: [row for row in D.CITIES if row[0] == c] for c in self.countries}
        self.industries = list(V.INDUSTRIES)
        self.first_names = [*D.NICKNAMES, *D.OTHER_FIRST_NAMES]
        files = {
            "salesforce": ("User", "Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole"),
            "hubspot": ("owners", "companies", "contacts", "deals", "associations"),
            "planhat": ("users", "companies", "endusers", "licenses"),
        }
        self.w = {
            (system, obj): _ArrayWriter(out_dir / system / f"{obj}.json")
            for system, objs in files.items()
            for obj in objs
        }
        self.gt = {kind: _ArrayWriter(out_dir / f".gt_{kind}.part") for kind in SCORED_FIELDS}
        self._owners()

    # ------------------------------------------------------------------ owners

    def _owners(self) -> None:
        """~20 sales reps, the same people in every system (matched by email)."""
        self.rep_email: list[str] = []
        self.rep_sf: list[str] = []
        self.rep_hs: list[str] = []
        self.rep_ph: list[str] = []
        for first, last in D.REP_NAMES:
            email = f"{first.lower()}.{last.lower()}@{REP_DOMAIN}"
            created = EPOCH_MS - 1000 * DAY_MS + self.rng.randrange(100 * DAY_MS)
            sf_id, hs_id, ph_id = self.ids.sf("User"), self.ids.hs("owners"), self.ids.ph(created)
            stamp = created + self.rng.randrange(300 * DAY_MS)
            self.w["salesforce", "User"].write(
                {
                    "Id": sf_id, "IsDeleted": False, "CreatedDate": sf_datetime(created),
                    "LastModifiedDate": sf_datetime(stamp), "SystemModstamp": sf_datetime(stamp),
                    "Email": email, "Name": f"{first} {last}", "IsActive": True,
                }
            )  # fmt: skip
            self.w["hubspot", "owners"].write(
                {"id": hs_id, "email": email, "firstName": first, "lastName": last, "archived": False}
            )
            self.w["planhat", "users"].write(
                {"_id": ph_id, "email": email, "firstName": first, "lastName": last}
            )
            self.rep_email.append(email)
            self.rep_sf.append(sf_id)
            self.rep_hs.append(hs_id)
            self.rep_ph.append(ph_id)

    # ------------------------------------------------------------------ truth

    def _phone(self, city: tuple[str, str, str, str, str, int, str]) -> tuple[str, str]:
        rng = self.rng
        sub = rng.choice(city[6]) + "".join(rng.choices("0123456789", k=city[5] - 1))
        cc, area = D.COUNTRY_CALLING_CODE[city[0]], city[4]
        rate = self.p.unassigned_phone_rate
        if rate and cc == "1" and rng.random() < rate:
            area = rng.choice(D.UNASSIGNED_NANP_AREA_CODES)  # possible, not valid
        return cc, area + sub

    def _postal(self, country: str, prefix: str) -> str:
        rng = self.rng
        if country == "US":
            return prefix + f"{rng.randrange(100):02d}"
        if country == "CA":
            return f"{prefix} {rng.randrange(10)}{rng.choice('ABCEGHJKLMNPRSTVXY')}{rng.randrange(10)}"
        if country == "GB":
            return f"{prefix} {rng.randrange(10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        if country == "NL":
            return f"{prefix}{rng.randrange(10)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
        if country == "AU":
            return prefix + str(rng.randrange(10))
        return prefix + f"{rng.randrange(100):02d}"

    def _company(self, idx: int) -> _Company:
        rng = self.rng
        country = rng.choices(self.countries, self.country_weights)[0]
        city = rng.choice(self.cities[country])
        industry = rng.choice(self.industries)
        tld = rng.choice(D.TLDS[country])
        picked = self._pick_parent(country) if self.p.subsidiary_rate else None
        parent = picked[0] if picked else None
        if picked is not None:
            # a subsidiary: the parent's name plus a region, and a domain of its OWN
            # (``rocketmind-uk.co.uk``, not the parent's: the domain key must not fuse them)
            region = picked[1]
            base = f"{picked[0].name_base} {region}"
            slug = _slug(base)
            domain = f"{_slug(picked[0].name_base)}-{_slug(region)}{tld}"
        else:
            base, slug = self._unique_base(industry)
            domain = slug + tld
        self.slugs.add(slug)
        self.name_keys.add(company_match_key(base))
        self.domains.add(domain)
        suffix, variants = rng.choice(D.LEGAL_SUFFIXES[country]) if rng.random() < 0.75 else ("", ())
        low, high = rng.choices(_EMPLOYEE_BANDS, _EMPLOYEE_WEIGHTS)[0]
        employees = rng.randrange(low, high)
        revenue = max(100_000, round(employees * rng.randrange(80_000, 260_000), -4))
        status = rng.choices(list(_STATUS_WEIGHTS), list(_STATUS_WEIGHTS.values()))[0]
        if status in ("customer", "onboarding"):
            lifecycle = "customer"
        elif status in ("churned", "lost"):
            lifecycle = "other"
        else:
            lifecycle = rng.choice(("lead", "mql", "sql", "opportunity"))
        street = self._street()
        return _Company(
            idx=idx, name_base=base, suffix=suffix, suffix_variants=variants, domain=domain,
            industry=industry, employees=employees, annual_revenue=revenue, country=country,
            city=city, phone=self._phone(city), street=street,
            postal_code=self._postal(country, city[3]), owner=rng.randrange(len(self.rep_email)),
            status=status, lifecycle=lifecycle, parent=parent.idx if parent is not None else None,
            parent_sf=parent.sf_account if parent is not None else None,
            parent_hs=parent.hs_company if parent is not None else None,
        )  # fmt: skip

    def _unique_base(self, industry: str) -> tuple[str, str]:
        """A company name (and its slug) no other company has: distinct companies never
        share a name or a domain label (``rocketmind.com`` / ``rocketmind.co.uk`` would
        read as one company to anyone). Word-part names first, invented ones after."""
        for _ in range(10):
            base = self._company_base(industry)
            slug = _slug(base)
            if self._is_new_name(base, slug):
                return base, slug
        while True:
            base = self._brand_name(industry)
            slug = _slug(base)
            if self._is_new_name(base, slug):
                return base, slug

    def _is_new_name(self, base: str, slug: str) -> bool:
        """Neither the domain label nor the folded name (legal forms and "Group" dropped:
        "Harbortide Group" is "Harbortide") belongs to another company yet."""
        return slug not in self.slugs and company_match_key(base) not in self.name_keys

    def _brand_name(self, industry: str) -> str:
        """An invented brand name: Zenora, Calix Health, Verolanix, …"""
        rng = self.id_rng
        word = "".join(rng.choices(D.NAME_SYLLABLES, k=rng.choice((2, 2, 3)))) + rng.choice(D.NAME_ENDINGS)
        word = word.capitalize()
        return f"{word} {rng.choice(D.INDUSTRY_NOUNS[industry])}" if rng.random() < 0.4 else word

    def _pick_parent(self, country: str) -> tuple[_Company, str] | None:
        """Sometimes (``subsidiary_rate``) an earlier company becomes this one's parent:
        (parent, the region the subsidiary is named after)."""
        rng = self.id_rng
        if len(self.parent_pool) < _MIN_PARENT_POOL or rng.random() >= self.p.subsidiary_rate:
            return None
        parent = rng.choice(self.parent_pool)
        free = [
            r for r in D.SUBSIDIARY_REGIONS[country]
            if self._is_new_name(f"{parent.name_base} {r}", _slug(f"{parent.name_base} {r}"))
        ]
        return (parent, rng.choice(free)) if free else None

    def _remember_parent(self, c: _Company) -> None:
        """A bounded, seeded pool of companies that may get a subsidiary later."""
        if c.parent is not None:
            return
        if len(self.parent_pool) < 1000:
            self.parent_pool.append(c)
        else:
            self.parent_pool[self.id_rng.randrange(len(self.parent_pool))] = c

    def _street(self) -> str:
        rng = self.rng
        street = f"{rng.randrange(1, 9999)} {rng.choice(D.STREET_NAMES)} {rng.choice(D.STREET_TYPES)}"
        if rng.random() < 0.2:
            street += f", Suite {rng.randrange(100, 2000)}"
        return street

    def _company_base(self, industry: str) -> str:
        """A company name without legal suffix: Brightwave, Harbor Analytics, Blue Summit, …"""
        rng = self.rng
        lead = rng.choice(D.NAME_LEADS)
        r = rng.random()
        if r < 0.3:
            return lead + rng.choice(D.NAME_TAILS)
        if r < 0.55:
            return f"{lead} {rng.choice(D.INDUSTRY_NOUNS[industry])}"
        if r < 0.85:
            return f"{lead}{rng.choice(D.NAME_TAILS)} {rng.choice(D.INDUSTRY_NOUNS[industry])}"
        return f"{lead} {rng.choice(D.NAME_LEADS)}"

    def _planhat_money(self, c: _Company) -> None:
        """Licenses, ARR, MRR, renewal and health for a company Planhat tracks."""
        rng = self.rng
        c.health = f"{rng.randrange(10, 100) / 10:.1f}"
        if c.status not in ("customer", "onboarding", "churned"):
            return
        today = EPOCH.date()
        mrr_total = 0
        latest: date | None = None
        for _ in range(1 if rng.random() < 0.7 else 2):
            if c.status == "churned":
                start = today - timedelta(days=rng.randrange(400, 800))
            elif c.status == "onboarding":
                start = today - timedelta(days=rng.randrange(1, 60))
            else:
                start = today - timedelta(days=rng.randrange(30, 700))
            years = 1 if c.status == "churned" else rng.choice((1, 1, 1, 2, 3))
            end = start + timedelta(days=365 * years - 1)
            mrr = rng.randrange(2, 400) * 50
            c.licenses.append((start.isoformat(), end.isoformat(), mrr))
            if start <= today <= end:
                mrr_total += mrr
            if latest is None or end > latest:
                latest = end
        c.mrr = mrr_total
        c.arr = mrr_total * 12
        c.renewal = latest.isoformat() if latest else None

    def _person(self, c: _Company, local_parts: set[str], like: _Person | None = None) -> _Person:
        """A new person at ``c``; ``like`` makes them a namesake of that colleague."""
        rng, p = self.rng, self.p
        first = rng.choice(self.first_names)
        last = rng.choice(D.LAST_NAMES)
        title = None
        if like is not None:  # a namesake: a distinct person with the same name
            first, last = like.first, like.last
            title = like.title if rng.random() < p.namesake_same_title else None
        if p.shared_mailbox_rate and like is None and self.mailboxes and rng.random() < p.shared_mailbox_rate:
            # a relative of an earlier person: same last name, their personal mailbox
            email, last = rng.choice(self.mailboxes)
        elif rng.random() < self.p.free_mail_rate:
            email = self._free_mail(first, last)
            if p.shared_mailbox_rate:
                self._remember_mailbox(email, last)
        else:
            f, lname = first.lower(), last.lower()
            pattern = rng.choice((f"{f}.{lname}", f"{f[0]}{lname}", f"{f}", f"{f}{lname[0]}", f"{f}_{lname}"))
            local = pattern
            n = 2
            while local in local_parts:
                local = f"{pattern}{n}"
                n += 1
            local_parts.add(local)
            email = f"{local}@{c.domain}"
        if c.status in ("customer", "onboarding"):
            lifecycle = "customer" if rng.random() < 0.8 else "evangelist"
        elif c.status in ("churned", "lost"):
            lifecycle = "other"
        else:
            lifecycle = rng.choice(_PROSPECT_LIFECYCLE)
        self.n_contacts += 1
        return _Person(
            idx=self.n_contacts, first=first, last=last, email=email,
            title=title or rng.choice(D.TITLES), phone=self._phone(c.city), lifecycle=lifecycle,
            owner=c.owner if rng.random() < 0.85 else rng.randrange(len(self.rep_email)),
            lead_source=rng.choice(list(V.LEAD_SOURCES)), dnc=rng.random() < 0.05,
        )  # fmt: skip

    def _free_mail(self, first: str, last: str) -> str:
        """A personal address no one else has yet (``janesmith123@gmail.com``)."""
        rng = self.rng
        while True:
            email = f"{first.lower()}{last.lower()}{rng.randrange(1, 999)}@{rng.choice(D.FREE_MAIL)}"
            if email not in self.free_emails:
                break
        self.free_emails.add(email)
        return email

    def _remember_mailbox(self, email: str, last: str) -> None:
        """Keep a bounded, seeded sample of personal mailboxes relatives may share."""
        if len(self.mailboxes) < 2000:
            self.mailboxes.append((email, last))
        else:
            self.mailboxes[self.rng.randrange(len(self.mailboxes))] = (email, last)

    def _personal_mailbox(self, person: _Person) -> str:
        """The person's private address (another one when their main one is private)."""
        email = self._free_mail(person.first, person.last)
        if self.p.shared_mailbox_rate:
            self._remember_mailbox(email, person.last)
        return email

    def _email_noise(self, email: str | None, *, may_blank: bool, missing_rate: float | None = None) -> str | None:
        """Real-profile noise on one copy's email: missing, a local-part or a domain typo."""
        rng, p = self.rng, self.p
        if email is None:
            return None
        if missing_rate is None:
            missing_rate = p.email_missing_rate
        if missing_rate and may_blank and rng.random() < missing_rate:
            return None
        local, _, dom = email.partition("@")
        if p.email_typo_rate and rng.random() < p.email_typo_rate:
            local = _typo(rng, local)
        if p.email_domain_typo_rate and rng.random() < p.email_domain_typo_rate:
            label, _, tld = dom.partition(".")
            if rng.random() < 0.6 and len(label) >= 4:
                label = _typo(rng, label)
            else:
                tld = {"com": rng.choice(("con", "cm", "co")), "co.uk": "uk.co"}.get(tld, tld + "m")
            dom = f"{label}.{tld}"
        return f"{local}@{dom}"

    def _opportunity(self, c: _Company, n_people: int) -> _Opp:
        rng = self.rng
        if rng.random() < 0.45:
            stage = rng.choice(("closed_won", "closed_won", "closed_lost"))
            close = EPOCH - timedelta(days=rng.randrange(1, 500))
        else:
            stage = rng.choice(_OPEN_STAGES)
            close = EPOCH + timedelta(days=rng.randrange(0, 270))
        if c.status in ("customer", "onboarding", "churned"):
            type_ = rng.choice(("new_business", "existing_business", "renewal"))
        else:
            type_ = "new_business"
        people = list(range(n_people))
        k = min(n_people, rng.choice((0, 1, 1, 2, 2, 3)))
        self.n_opps += 1
        return _Opp(
            idx=self.n_opps,
            name=f"{c.name_base} - {rng.choice(D.OPPORTUNITY_SUFFIXES)}",
            amount=rng.randrange(5, 500) * 1000 if rng.random() < 0.8 else rng.randrange(5000, 500000),
            currency=D.CURRENCY[c.country] if rng.random() < 0.6 else "USD",
            stage=stage, close_date=close.date().isoformat(), type=type_,
            owner=c.owner if rng.random() < 0.9 else rng.randrange(len(self.rep_email)),
            contacts=rng.sample(people, k),
        )  # fmt: skip

    # ------------------------------------------------------------------ noise helpers

    def _stamps(self, n: int) -> list[int]:
        """``n`` distinct modstamps (whole seconds, ≥ 60 s apart), shuffled, all < EPOCH."""
        rng = self.rng
        start = EPOCH_MS - rng.randrange(150 * DAY_MS, 900 * DAY_MS)
        room = (EPOCH_MS - DAY_MS - start) // max(n, 1)
        out = []
        t = start
        for _ in range(n):
            t += rng.randrange(60_000, max(room, 60_001))
            out.append(t - t % 1000 + rng.randrange(1000))
        rng.shuffle(out)
        return out

    def _created(self, stamp: int) -> int:
        return stamp - self.rng.randrange(DAY_MS // 24, 500 * DAY_MS)

    def _company_name(self, c: _Company) -> str:
        rng = self.rng
        r = rng.random()
        base = c.name_base
        if rng.random() < self.p.typo_rate:
            base = _typo(rng, base)
        if not c.suffix or r < 0.55:
            name = f"{base} {c.suffix}".strip()
        elif r < 0.75:
            variant = rng.choice(c.suffix_variants)
            name = f"{base}{variant}" if variant.startswith(",") else f"{base} {variant}"
        elif r < 0.9:
            name = base
        else:
            name = f"{base} {c.suffix.rstrip('.')}".upper()
        return name

    def _website(self, domain: str) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return f"https://www.{domain}"
        if r < 0.55:
            return f"http://{domain}"
        if r < 0.7:
            return f"www.{domain}"
        if r < 0.85:
            return f"https://{domain}/"
        if r < 0.92:
            return f"https://{rng.choice(D.WEB_SUBDOMAINS)}.{domain}"
        return domain

    def _phone_text(self, phone: tuple[str, str]) -> str:
        rng = self.rng
        cc, nsn = phone
        if cc == "1":
            a, b, c = nsn[:3], nsn[3:6], nsn[6:]
            text = rng.choice(
                (f"({a}) {b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}", f"{a}-{b}-{c}",
                 f"+1{nsn}", f"1-{a}-{b}-{c}", f"+1 ({a}) {b}-{c}")
            )  # fmt: skip
        else:
            head = len(nsn) - 8 if len(nsn) > 8 else len(nsn) - 7
            area, sub = nsn[: max(head, 1)], nsn[max(head, 1) :]
            mid = len(sub) // 2
            text = rng.choice(
                (f"+{cc} {area} {sub[:mid]} {sub[mid:]}", f"+{cc}{nsn}", f"+{cc}-{area}-{sub}")
            )
        if self.p.phone_extension_rate and rng.random() < self.p.phone_extension_rate:
            text += rng.choice(D.PHONE_EXTENSIONS).format(n=rng.randrange(1, 9999))
        return text

    def _country_text(self, country: str, system: str) -> str:
        names = D.COUNTRIES[country][1]
        if system == "salesforce":
            return names[0] if self.rng.random() < 0.3 else self.rng.choice(names[1:])
        if system == "hubspot":
            return names[1] if self.rng.random() < 0.8 else self.rng.choice(names)
        return names[0] if self.rng.random() < 0.7 else names[1]

    def _email_text(self, email: str) -> str:
        rng = self.rng
        r = rng.random()
        local, _, dom = email.partition("@")
        if r < 0.85:
            return email
        if r < 0.93:
            return ".".join(part.capitalize() for part in local.split(".")) + "@" + dom
        if r < 0.97:
            return f"{local}+{rng.choice(('crm', 'sf', 'news', 'work'))}@{dom}"
        return email.upper()

    def _first_name(self, first: str) -> str:
        if first in D.NICKNAMES and self.rng.random() < self.p.nickname_rate:
            return self.rng.choice(D.NICKNAMES[first])
        return first

    def _systems(self, *pairs: tuple[str, float]) -> list[str]:
        return [s for s, prob in pairs if self.rng.random() < prob]

    def _copies(self, kind: str, truth: dict[str, Any], systems: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """Per-copy canonical values: the truth, a genuine conflict or two, missing fields."""
        rng = self.rng
        copies = [{f: truth[f] for f in _CARRIES[so] if f in truth} for so in systems]
        if len(systems) >= 2 and rng.random() < self.p.conflict_rate:
            for _ in range(rng.choice((1, 1, 2))):
                fld = rng.choice(_CONFLICTS[kind])
                holders = [i for i, so in enumerate(systems) if fld in _CARRIES[so]]
                if len(holders) < 2:
                    continue
                i = rng.choice(holders)
                if copies[i].get(fld) is not None:
                    copies[i][fld] = self._alternative(kind, fld, copies[i][fld])
        for copy in copies:
            for fld in _BLANKABLE[kind]:
                if fld in copy and rng.random() < self.p.missing_rate:
                    copy[fld] = None
            if self.p.phone_missing_rate and copy.get("phone") and rng.random() < self.p.phone_missing_rate:
                copy["phone"] = None
        return copies

    def _alternative(self, kind: str, fld: str, value: Any) -> Any:
        """A different, plausible value for a genuinely conflicting field."""
        rng = self.rng
        if fld in ("industry",):
            return rng.choice([i for i in self.industries if i != value])
        if fld == "employees":
            return max(1, int(value * rng.choice((0.5, 0.8, 1.25, 1.5, 2.0))) + 1)
        if fld in ("annual_revenue", "amount"):
            return max(1000, int(round(int(value) * rng.choice((0.5, 0.8, 1.2, 1.5)), -3)))
        if fld == "phone":
            cc, nsn = value
            return cc, nsn[:-4] + f"{(int(nsn[-4:]) + rng.randrange(1, 9999)) % 10000:04d}"
        if fld == "owner_email":
            return rng.choice([i for i in range(len(self.rep_email)) if i != value])
        if fld == "title":
            return rng.choice([t for t in D.TITLES if t != value])
        if fld == "lifecycle_stage":
            return rng.choice([s for s in V.LIFECYCLE if s != value])
        if fld == "lead_source":
            return rng.choice([s for s in V.LEAD_SOURCES if s != value])
        if fld == "stage":
            return rng.choice([s for s in V.STAGES if s != value])
        if fld == "close_date":
            d = date.fromisoformat(value) + timedelta(days=rng.choice((-30, -14, 7, 14, 30, 45, 90)))
            return d.isoformat()
        if fld == "type":
            return rng.choice([t for t in V.OPPORTUNITY_TYPES if t != value])
        raise ValueError(fld)

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        for idx in range(self.accounts):
            self._emit_company(idx)

    def _emit_company(self, idx: int) -> None:
        rng, p = self.rng, self.p
        c = self._company(idx)
        in_ph = rng.random() < (p.ph_customer if c.status in ("customer", "onboarding", "churned") else p.ph_other)
        systems = self._systems(("salesforce", p.sf_account), ("hubspot", p.hs_account))
        if not systems:
            systems = ["hubspot"]
        if in_ph:
            systems.append("planhat")
            self._planhat_money(c)
        truth = {
            "industry": c.industry, "employees": c.employees, "annual_revenue": c.annual_revenue,
            "phone": c.phone, "billing_street": c.street, "billing_city": c.city[1],
            "billing_state": c.city[2], "billing_postal_code": c.postal_code, "country": c.country,
            "owner_email": c.owner, "lifecycle_stage": c.lifecycle, "customer_status": c.status,
            "health": c.health, "arr": c.arr, "renewal_date": c.renewal,
        }  # fmt: skip
        objs = [(s, "Account" if s == "salesforce" else "companies") for s in systems]
        copies = self._copies("account", truth, objs)
        if p.hq_moved_rate and rng.random() < p.hq_moved_rate:
            # the company moved; one system still holds the old street and postcode
            holders = [i for i, so in enumerate(objs) if "billing_street" in _CARRIES[so]]
            if len(holders) >= 2:
                i = rng.choice(holders)
                copies[i]["billing_street"] = self._street()
                copies[i]["billing_postal_code"] = self._postal(c.country, c.city[3])
        recs: list[_Rec] = []
        primary: dict[str, str] = {}
        dups = [rng.random() < p.dup_rate for _ in objs]
        stamps = self._stamps(len(objs) + sum(dups))
        for (system, _obj), copy, dup in zip(objs, copies, dups, strict=True):
            # About half of the Planhat companies that Salesforce holds carry the Salesforce
            # Account id as sourceId (what a real Salesforce→Planhat integration sets).
            link = primary.get("salesforce") if rng.random() < p.sourceid_rate else None
            rec = self._account_record(c, system, copy, stamps.pop(), sf_account_id=link)
            primary[system] = rec.id
            if system == "salesforce":
                c.sf_account = rec.id
            if system == "hubspot":
                c.hs_company = rec.id
                if c.parent_hs:
                    # HubSpot's company hierarchy: child → parent company, type 14
                    self._assoc("companies", rec.id, "companies", c.parent_hs, HS_CHILD_TO_PARENT)
            recs.append(rec)
            if dup:
                dcopy = dict(copy)
                for fld in _BLANKABLE["account"]:
                    if fld in dcopy and rng.random() < 0.3:
                        dcopy[fld] = None
                recs.append(self._account_record(c, system, dcopy, stamps.pop(), sf_account_id=None))
        if in_ph:
            for lic in c.licenses:
                self._license(c, primary["planhat"], lic)
        parent = f"A{c.parent:0{self.width}d}" if c.parent is not None else None
        self._gt("account", f"A{idx:0{self.width}d}", recs, parent=parent)
        if self.p.subsidiary_rate:
            self._remember_parent(c)

        local_parts: set[str] = set()
        people: list[_Person] = []
        for _ in range(self._n_people()):
            like = rng.choice(people) if p.namesake_rate and people and rng.random() < p.namesake_rate else None
            people.append(self._person(c, local_parts, like))
        person_ids = [self._emit_person(c, person, primary) for person in people]
        n_opps = rng.choices(range(len(p.opportunity_weights)), p.opportunity_weights)[0]
        for _ in range(n_opps):
            self._emit_opportunity(c, self._opportunity(c, len(people)), primary, person_ids)

    def _n_people(self) -> int:
        # int() of an exponential variate has mean ~ (scale - 0.5): aim at people_mean overall.
        scale = max(self.p.people_mean - 0.5, 0.01)
        return min(60, 1 + int(self.rng.expovariate(1.0 / scale)))

    # ------------------------------------------------------------------ accounts

    def _account_record(
        self, c: _Company, system: str, v: dict[str, Any], stamp: int, *, sf_account_id: str | None
    ) -> _Rec:
        """Write one account copy; ``sf_account_id`` becomes a Planhat company's sourceId."""
        rng = self.rng
        created = self._created(stamp)
        phone = v.get("phone")
        owner = v.get("owner_email")
        canon: dict[str, Any] = {
            "phone": _e164(phone) if phone else None,
            "country": v.get("country"),
            "owner_email": self.rep_email[owner] if owner is not None else None,
        }
        if system in ("salesforce", "hubspot"):
            for fld in ("industry", "employees", "billing_street", "billing_city", "billing_state", "billing_postal_code"):
                canon[fld] = v.get(fld)
            canon["annual_revenue"] = str(v["annual_revenue"]) if v.get("annual_revenue") is not None else None
        if system == "salesforce":
            rid = self.ids.sf("Account")
            sf_type = V.to_native(V.CUSTOMER_STATUS, "salesforce", v["customer_status"])
            canon["customer_status"] = _read_picklist("customer_status", "salesforce", sf_type)
            self.w["salesforce", "Account"].write(
                {
                    "Id": rid, "IsDeleted": False, "CreatedDate": sf_datetime(created),
                    "LastModifiedDate": sf_datetime(stamp), "SystemModstamp": sf_datetime(stamp),
                    "MasterRecordId": None, "Name": self._company_name(c), "ParentId": c.parent_sf,
                    "Website": self._website(c.domain) if rng.random() > self.web_missing else None,
                    "Industry": V.to_native(V.INDUSTRIES, "salesforce", v["industry"]) if v.get("industry") else None,
                    "NumberOfEmployees": v.get("employees"), "AnnualRevenue": v.get("annual_revenue"),
                    "Phone": self._phone_text(phone) if phone else None,
                    "BillingStreet": v.get("billing_street"), "BillingCity": v.get("billing_city"),
                    "BillingState": v.get("billing_state"), "BillingPostalCode": v.get("billing_postal_code"),
                    "BillingCountry": self._country_text(c.country, "salesforce"),
                    "Type": sf_type, "OwnerId": self.rep_sf[owner] if owner is not None else None,
                    "Revsync_Id__c": None,
                }
            )  # fmt: skip
            return _Rec("salesforce", "Account", rid, stamp - stamp % 1000, canon)
        if system == "hubspot":
            rid = self.ids.hs("companies")
            canon["lifecycle_stage"] = v.get("lifecycle_stage")
            revenue = v.get("annual_revenue")
            employees = v.get("employees")
            self.w["hubspot", "companies"].write(
                self._hs(rid, created, stamp, "hs_lastmodifieddate", {
                    "name": self._company_name(c),
                    "domain": self._hs_domain(c.domain),
                    "website": self._website(c.domain) if rng.random() > self.web_missing else None,
                    "industry": V.to_native(V.INDUSTRIES, "hubspot", v["industry"]) if v.get("industry") else None,
                    "numberofemployees": str(employees) if employees is not None else None,
                    "annualrevenue": str(revenue) if revenue is not None else None,
                    "phone": self._phone_text(phone) if phone else None,
                    "address": v.get("billing_street"), "city": v.get("billing_city"),
                    "state": v.get("billing_state"), "zip": v.get("billing_postal_code"),
                    "country": self._country_text(c.country, "hubspot"),
                    "lifecyclestage": V.to_native(V.LIFECYCLE, "hubspot", v["lifecycle_stage"]),
                    "hubspot_owner_id": self.rep_hs[owner] if owner is not None else None,
                    "hs_merged_object_ids": None, "revsync_id": None,
                })
            )  # fmt: skip
            return _Rec("hubspot", "companies", rid, stamp, canon)
        rid = self.ids.ph(created)
        status = V.to_native(V.CUSTOMER_STATUS, "planhat", v["customer_status"]) or "prospect"
        canon.update(
            customer_status=_read_picklist("customer_status", "planhat", status),
            health=v.get("health"), arr=str(v["arr"]) if v.get("arr") is not None else None,
            renewal_date=v.get("renewal_date"),
        )
        self.w["planhat", "companies"].write(
            {
                "_id": rid, "name": self._company_name(c), "externalId": None,
                "sourceId": sf_account_id,
                "domains": [c.domain], "phase": rng.choice(D.PLANHAT_PHASES), "status": status,
                "h": float(v["health"]) if v.get("health") is not None else None,
                "arr": v.get("arr"), "mrr": c.mrr, "renewalDate": v.get("renewal_date"),
                "owner": self.rep_ph[owner] if owner is not None else None,
                "country": self._country_text(c.country, "planhat"),
                "phone": self._phone_text(phone) if phone else None,
                "website": self._website(c.domain) if rng.random() < 0.7 else None,
                "createDate": iso_ms(created), "lastUpdated": iso_ms(stamp), "custom": {},
            }
        )  # fmt: skip
        return _Rec("planhat", "companies", rid, stamp, canon)

    def _hs_domain(self, domain: str) -> str | None:
        rng = self.rng
        text = domain if rng.random() < 0.9 else f"www.{domain}"
        if self.p.website_missing_rate is not None and rng.random() < self.p.website_missing_rate:
            return None
        return text

    def _license(self, c: _Company, company_id: str, lic: tuple[str, str, int]) -> None:
        start, end, mrr = lic
        created = EPOCH_MS - self.rng.randrange(DAY_MS, 300 * DAY_MS)
        self.w["planhat", "licenses"].write(
            {
                "_id": self.ids.ph(created), "companyId": company_id,
                "_currency": D.CURRENCY[c.country], "fromDate": start, "toDate": end,
                "mrr": mrr, "arr": mrr * 12, "externalId": None, "sourceId": None,
                "renewalStatus": "ongoing" if end >= EPOCH.date().isoformat() else "renewed",
            }
        )  # fmt: skip

    @staticmethod
    def _hs(rid: str, created: int, stamp: int, modprop: str, props: dict[str, Any]) -> dict[str, Any]:
        created_s, stamp_s = iso_ms(created), iso_ms(stamp)
        props = {"hs_object_id": rid, "createdate": created_s, modprop: stamp_s, **props}
        return {"id": rid, "properties": props, "createdAt": created_s, "updatedAt": stamp_s, "archived": False}

    def _gt(self, kind: str, entity: str, recs: list[_Rec], *, parent: str | None = None) -> None:
        item: dict[str, Any] = {
            "entity": entity,
            "records": [{"system": r.system, "object": r.object, "id": r.id} for r in recs],
            "expected": expected_values(kind, recs),
        }
        if parent is not None:
            item["parent"] = parent  # a subsidiary of that (distinct) account entity
        self.gt[kind].write(item)

    # ------------------------------------------------------------------ contacts

    def _emit_person(self, c: _Company, person: _Person, accounts: Mapping[str, str]) -> dict[str, str]:
        """Write every copy of one person; returns the primary record id per native object."""
        rng, p = self.rng, self.p
        objs: list[tuple[str, str]] = []
        r = rng.random()
        if r < p.sf_contact:
            objs.append(("salesforce", "Contact" if "salesforce" in accounts else "Lead"))
        elif r < p.sf_contact + p.sf_lead:
            objs.append(("salesforce", "Lead"))
        if rng.random() < p.hs_contact:
            objs.append(("hubspot", "contacts"))
        if "planhat" in accounts and rng.random() < p.ph_enduser:
            objs.append(("planhat", "endusers"))
        if not objs:
            objs.append(("hubspot", "contacts"))
        truth = {
            "email": person.email, "first_name": person.first, "last_name": person.last,
            "title": person.title, "phone": person.phone, "lifecycle_stage": person.lifecycle,
            "owner_email": person.owner, "lead_source": person.lead_source,
            "do_not_contact": person.dnc,
        }  # fmt: skip
        copies = self._copies("contact", truth, objs)
        if p.alt_email_rate and len(objs) >= 2 and rng.random() < p.alt_email_rate:
            # work address in one system, the private one in another
            copies[rng.randrange(1, len(objs))]["email"] = self._personal_mailbox(person)
        if p.phone_changed_rate and len(objs) >= 2 and rng.random() < p.phone_changed_rate:
            i = rng.randrange(len(objs))
            if copies[i].get("phone"):
                copies[i]["phone"] = self._alternative("contact", "phone", copies[i]["phone"])
        if p.noise != "classic":
            for (system, _obj), copy in zip(objs, copies, strict=True):
                # a Planhat enduser needs an email (or an external id): never blank there
                copy["email"] = self._email_noise(
                    copy.get("email"), may_blank=system != "planhat",
                    missing_rate=p.hubspot_email_missing_rate if system == "hubspot" else None,
                )
        dups = [rng.random() < p.dup_rate for _ in objs]
        stamps = self._stamps(len(objs) + sum(dups))
        recs: list[_Rec] = []
        ids: dict[str, str] = {}
        for (system, obj), copy, dup in zip(objs, copies, dups, strict=True):
            rec = self._contact_record(c, person, system, obj, copy, stamps.pop(), accounts, dup=False)
            ids[obj] = rec.id
            recs.append(rec)
            if dup:
                dcopy = dict(copy)
                for fld in _BLANKABLE["contact"]:
                    if fld in dcopy and rng.random() < 0.3:
                        dcopy[fld] = None
                recs.append(self._contact_record(c, person, system, obj, dcopy, stamps.pop(), accounts, dup=True))
        self._gt("contact", f"C{person.idx:08d}", recs)
        return ids

    def _contact_email(self, system: str, email: str, *, dup: bool) -> str | None:
        """The email a copy holds; HubSpot's is unique per portal (case-insensitive)."""
        rng = self.rng
        text = self._email_text(email)
        if system == "hubspot":
            if rng.random() < 0.02 and not dup:  # the person's private address in marketing
                local = email.split("@", 1)[0].replace(".", "").replace("_", "")
                text = f"{local}{rng.randrange(1, 99)}@{rng.choice(D.FREE_MAIL)}"
                while text in self.free_emails:  # someone else's mailbox: pick another
                    text = f"{local}{rng.randrange(1, 999)}@{rng.choice(D.FREE_MAIL)}"
                self.free_emails.add(text)
            if dup or text.lower() in self.hs_emails:
                local, _, dom = email.partition("@")
                for tag in ("web", "event", "trial", "old", "2"):
                    text = f"{local}+{tag}@{dom}"
                    if text.lower() not in self.hs_emails:
                        break
                else:
                    return None
            self.hs_emails.add(text.lower())
        return text

    def _contact_record(
        self, c: _Company, person: _Person, system: str, obj: str, v: dict[str, Any], stamp: int,
        accounts: Mapping[str, str], *, dup: bool,
    ) -> _Rec:
        rng = self.rng
        created = self._created(stamp)
        first = self._first_name(v["first_name"])
        last = _typo(rng, v["last_name"]) if rng.random() < self.p.typo_rate else v["last_name"]
        email = self._contact_email(system, v["email"], dup=dup) if v.get("email") else None
        if system == "salesforce" and rng.random() < self.p.missing_rate:
            email = None
        phone = v.get("phone")
        owner = v.get("owner_email")
        city, state = self._contact_place(c, person, f"{system}:{obj}:{int(dup)}:{stamp}")
        canon: dict[str, Any] = {
            "email": email.strip().lower() if email else None,
            "first_name": first, "last_name": last, "title": v.get("title"),
            "phone": _e164(phone) if phone else None,
        }  # fmt: skip
        if system != "planhat":  # Planhat's enduser has no address fields
            canon["city"], canon["state"] = city, state
        if system != "planhat":
            canon["owner_email"] = self.rep_email[owner] if owner is not None else None
            canon["lead_source"] = v.get("lead_source")
            canon["do_not_contact"] = v.get("do_not_contact")
        common_sf = {
            "IsDeleted": False, "CreatedDate": sf_datetime(created),
            "LastModifiedDate": sf_datetime(stamp), "SystemModstamp": sf_datetime(stamp),
            "MasterRecordId": None, "FirstName": first, "LastName": last, "Email": email,
            "Title": v.get("title"), "Phone": self._phone_text(phone) if phone else None,
            **({"MailingCity": city, "MailingState": state} if obj == "Contact" else {"City": city, "State": state}),
            "LeadSource": V.to_native(V.LEAD_SOURCES, "salesforce", v["lead_source"]) if v.get("lead_source") else None,
            "HasOptedOutOfEmail": bool(v.get("do_not_contact")),
            "OwnerId": self.rep_sf[owner] if owner is not None else None, "Revsync_Id__c": None,
        }  # fmt: skip
        if obj == "Contact":
            rid = self.ids.sf("Contact")
            lifecycle = v.get("lifecycle_stage")
            canon["lifecycle_stage"] = lifecycle
            self.w["salesforce", "Contact"].write(
                {
                    "Id": rid, **common_sf, "AccountId": accounts["salesforce"],
                    "Lifecycle_Stage__c": V.to_native(V.LIFECYCLE, "salesforce", lifecycle) if lifecycle else None,
                }
            )  # fmt: skip
            return _Rec("salesforce", "Contact", rid, stamp - stamp % 1000, canon)
        if obj == "Lead":
            rid = self.ids.sf("Lead")
            lifecycle = v.get("lifecycle_stage")
            if lifecycle is None:
                status = rng.choice(D.SALESFORCE_LEAD_STATUS)
            else:
                status = _LEAD_STATUS_FOR.get(lifecycle, "Working - Contacted")
            canon["lifecycle_stage"] = LEAD_STATUS[status]
            self.w["salesforce", "Lead"].write(
                {
                    "Id": rid, **common_sf, "Company": self._company_name(c),
                    "Status": status, "IsConverted": False, "ConvertedContactId": None,
                }
            )  # fmt: skip
            return _Rec(
                "salesforce", "Lead", rid, stamp - stamp % 1000, canon,
                _UNCERTAIN.get(("salesforce", "Lead"), frozenset()),
            )  # fmt: skip
        if system == "hubspot":
            rid = self.ids.hs("contacts")
            lifecycle = v.get("lifecycle_stage")
            canon["lifecycle_stage"] = lifecycle
            dnc = v.get("do_not_contact")
            if not dnc and rng.random() < 0.3:
                dnc = None  # never set in HubSpot: blank, not false
            canon["do_not_contact"] = dnc
            source = v.get("lead_source")
            self.w["hubspot", "contacts"].write(
                self._hs(rid, created, stamp, "lastmodifieddate", {
                    "email": email, "firstname": first, "lastname": last,
                    "jobtitle": v.get("title"), "phone": self._phone_text(phone) if phone else None,
                    "city": city, "state": state,
                    "company": self._company_name(c) if rng.random() < 0.7 else None,
                    "lifecyclestage": V.to_native(V.LIFECYCLE, "hubspot", lifecycle) if lifecycle else None,
                    "hs_lead_status": rng.choice(D.HUBSPOT_LEAD_STATUS) if rng.random() < 0.6 else None,
                    "hs_analytics_source": V.to_native(V.LEAD_SOURCES, "hubspot", source) if source else None,
                    "hs_email_optout": None if dnc is None else ("true" if dnc else "false"),
                    "hubspot_owner_id": self.rep_hs[owner] if owner is not None else None,
                    "hs_merged_object_ids": None, "revsync_id": None,
                })
            )  # fmt: skip
            if "hubspot" in accounts:
                self._assoc("contacts", rid, "companies", accounts["hubspot"], 279)
            return _Rec("hubspot", "contacts", rid, stamp, canon)
        rid = self.ids.ph(created)
        self.w["planhat", "endusers"].write(
            {
                "_id": rid, "email": email, "companyId": accounts["planhat"], "externalId": None,
                "sourceId": None, "firstName": first, "lastName": last, "position": v.get("title"),
                "phone": self._phone_text(phone) if phone else None, "archived": False,
                "createDate": iso_ms(created), "lastUpdated": iso_ms(stamp), "custom": {},
            }
        )  # fmt: skip
        return _Rec("planhat", "endusers", rid, stamp, canon)

    def _contact_place(self, c: _Company, person: _Person, copy: str) -> tuple[str | None, str | None]:
        """The city and state one copy of a person holds: the company's (most people work
        there) or, for a share of people, another city of its country (remote staff);
        often blank (many CRM records carry no address). Drawn from generators of their
        own, so the main stream (and every other value) is unchanged by them."""
        who = random.Random(f"{self.seed}:place:{person.idx}")
        place = c.city if who.random() < 0.85 else who.choice(self.cities[c.country])
        here = random.Random(f"{self.seed}:place:{person.idx}:{copy}")
        if here.random() < 0.35 + self.p.missing_rate:
            return None, None
        return place[1], (place[2] or None) if here.random() >= 0.1 else None

    def _assoc(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        self.w["hubspot", "associations"].write(
            {
                "fromType": from_type, "fromId": from_id, "toType": to_type, "toId": to_id,
                "typeId": type_id, "category": "HUBSPOT_DEFINED",
            }
        )  # fmt: skip

    # ------------------------------------------------------------------ opportunities

    def _emit_opportunity(
        self, c: _Company, opp: _Opp, accounts: Mapping[str, str], people: Sequence[Mapping[str, str]]
    ) -> None:
        rng, p = self.rng, self.p
        objs: list[tuple[str, str]] = []
        if "salesforce" in accounts and rng.random() < p.sf_opportunity:
            objs.append(("salesforce", "Opportunity"))
        if rng.random() < p.hs_deal:
            objs.append(("hubspot", "deals"))
        if not objs:
            objs.append(("salesforce", "Opportunity") if "salesforce" in accounts else ("hubspot", "deals"))
        truth = {
            "name": opp.name, "amount": opp.amount, "currency": opp.currency, "stage": opp.stage,
            "close_date": opp.close_date, "type": opp.type, "owner_email": opp.owner,
        }  # fmt: skip
        copies = self._copies("opportunity", truth, objs)
        dups = [rng.random() < p.dup_rate for _ in objs]
        stamps = self._stamps(len(objs) + sum(dups))
        recs: list[_Rec] = []
        for (system, _obj), copy, dup in zip(objs, copies, dups, strict=True):
            recs.append(self._opportunity_record(opp, system, copy, stamps.pop(), accounts, people, primary=True))
            if dup:
                recs.append(self._opportunity_record(opp, system, dict(copy), stamps.pop(), accounts, people, primary=False))
        self._gt("opportunity", f"O{opp.idx:08d}", recs)

    def _opportunity_record(
        self, opp: _Opp, system: str, v: dict[str, Any], stamp: int, accounts: Mapping[str, str],
        people: Sequence[Mapping[str, str]], *, primary: bool,
    ) -> _Rec:
        rng = self.rng
        created = self._created(stamp)
        name = v["name"]
        if system == "hubspot" and rng.random() < 0.1:
            name = name.replace(" - ", " ")
        owner = v.get("owner_email")
        amount = v.get("amount")
        stage = v["stage"]
        canon: dict[str, Any] = {
            "name": name, "amount": str(amount) if amount is not None else None,
            "currency": v.get("currency"), "stage": stage, "close_date": v["close_date"],
            "type": v.get("type"), "owner_email": self.rep_email[owner] if owner is not None else None,
        }  # fmt: skip
        prob = V.STAGE_PROBABILITY[stage]
        closed, won = stage in ("closed_won", "closed_lost"), stage == "closed_won"
        if system == "salesforce":
            rid = self.ids.sf("Opportunity")
            self.w["salesforce", "Opportunity"].write(
                {
                    "Id": rid, "IsDeleted": False, "CreatedDate": sf_datetime(created),
                    "LastModifiedDate": sf_datetime(stamp), "SystemModstamp": sf_datetime(stamp),
                    "AccountId": accounts["salesforce"], "Name": name, "Amount": amount,
                    "CurrencyIsoCode": v.get("currency"),
                    "StageName": V.to_native(V.STAGES, "salesforce", stage),
                    "CloseDate": v["close_date"], "Probability": prob,
                    "Type": V.to_native(V.OPPORTUNITY_TYPES, "salesforce", v["type"]) if v.get("type") else None,
                    "IsClosed": closed, "IsWon": won,
                    "OwnerId": self.rep_sf[owner] if owner is not None else None, "Revsync_Id__c": None,
                    **_contract_terms(rid, v["close_date"], won),
                }
            )  # fmt: skip
            if primary:
                contact_ids = [people[i]["Contact"] for i in opp.contacts if "Contact" in people[i]]
                for n, contact_id in enumerate(contact_ids):
                    ocr_stamp = stamp - rng.randrange(DAY_MS)
                    self.w["salesforce", "OpportunityContactRole"].write(
                        {
                            "Id": self.ids.sf("OpportunityContactRole"), "IsDeleted": False,
                            "CreatedDate": sf_datetime(ocr_stamp), "LastModifiedDate": sf_datetime(ocr_stamp),
                            "SystemModstamp": sf_datetime(ocr_stamp), "OpportunityId": rid,
                            "ContactId": contact_id, "Role": rng.choice(D.CONTACT_ROLES),
                            "IsPrimary": n == 0,
                        }
                    )  # fmt: skip
            return _Rec("salesforce", "Opportunity", rid, stamp - stamp % 1000, canon)
        rid = self.ids.hs("deals")
        self.w["hubspot", "deals"].write(
            self._hs(rid, created, stamp, "hs_lastmodifieddate", {
                "dealname": name, "amount": str(amount) if amount is not None else None,
                "deal_currency_code": v.get("currency"), "closedate": v["close_date"] + "T00:00:00.000Z",
                "pipeline": V.HUBSPOT_DEFAULT_PIPELINE,
                "dealstage": V.to_native(V.STAGES, "hubspot", stage),
                "hs_deal_stage_probability": _fraction(prob),
                "dealtype": V.to_native(V.OPPORTUNITY_TYPES, "hubspot", v["type"]) if v.get("type") else None,
                "hs_is_closed": "true" if closed else "false",
                "hs_is_closed_won": "true" if won else "false",
                "hubspot_owner_id": self.rep_hs[owner] if owner is not None else None,
                "hs_merged_object_ids": None, "revsync_id": None,
            })
        )  # fmt: skip
        if "hubspot" in accounts:
            self._assoc("deals", rid, "companies", accounts["hubspot"], 341)
        if primary:
            for i in opp.contacts:
                if "contacts" in people[i]:
                    self._assoc("deals", rid, "contacts", people[i]["contacts"], 3)
        return _Rec("hubspot", "deals", rid, stamp, canon)

    def close(self) -> None:
        for writer in (*self.w.values(), *self.gt.values()):
            writer.close()


#: products a won deal may carry (Salesforce ``Products__c``, ";"-separated)
PRODUCTS = ("Core Platform", "Analytics", "Data Pipeline", "Premium Support", "Sandbox Seats")


def _contract_terms(rid: str, close_date: str, won: bool) -> dict[str, Any]:
    """A won deal's contract start, renewal date and products, derived from its id (the
    seeded random stream is untouched): about a third of won deals lack the contract
    term (their handoff to customer success waits), about half name their products."""
    h = int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16)
    if not won or h % 3 == 0:
        return {"Contract_Start__c": None, "Renewal_Date__c": None, "Products__c": None}
    start = date.fromisoformat(close_date) + timedelta(days=h % 20)
    products = [p for i, p in enumerate(PRODUCTS) if (h >> (4 + i)) & 1][:3] if h % 2 else []
    return {"Contract_Start__c": start.isoformat(),
            "Renewal_Date__c": (start + timedelta(days=364)).isoformat(),
            "Products__c": ";".join(products) or None}


def _read_picklist(table: str, system: str, native: str | None) -> str | None:
    """The canonical value the mapping layer reads from a native picklist value."""
    if not native:
        return None
    alias = READ_ALIASES.get((table, system), {}).get(native.strip().casefold())
    return alias or V.to_canonical(V.VALUE_MAPS[table], system, native)


def _fraction(percent: int) -> str:
    """HubSpot's probability: a 0-1 fraction as a string ("0.2", "1", "0")."""
    text = f"{percent / 100:.2f}".rstrip("0").rstrip(".")
    return text or "0"


# --------------------------------------------------------------------------- public API


def generate(
    out_dir: Path, *, accounts: int, seed: int, profile: Profile | None = None, noise: str | None = None,
) -> dict[str, Any]:
    """Write the seed data set for ``accounts`` companies into ``out_dir``; return the manifest.

    ``noise`` names a profile of ``NOISE_PROFILES`` (default ``DEFAULT_NOISE``);
    ``profile`` gives one explicitly instead. Same ``seed`` (and profile) →
    byte-identical files. Writes are streamed, so memory stays small whatever the size
    (about 13 entity records per account). The ground truth's semantics are in the
    module docstring.
    """
    if accounts < 0:
        raise ValueError("accounts must be >= 0")
    if profile is None:
        name = DEFAULT_NOISE if noise is None else noise
        if name not in NOISE_PROFILES:
            raise ValueError(f"unknown noise profile {name!r} (known: {', '.join(NOISE_PROFILES)})")
        profile = NOISE_PROFILES[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _World(out_dir, accounts=accounts, seed=seed, profile=profile)
    try:
        world.run()
    finally:
        world.close()
    _write_ground_truth(out_dir, accounts=accounts, seed=seed, noise=profile.noise)
    counts: dict[str, dict[str, int]] = {}
    for (system, obj), writer in world.w.items():
        counts.setdefault(system, {})[obj] = writer.count
    manifest = {
        "seed": seed,
        "accounts": accounts,
        "generated_by": GENERATED_BY,
        "noise": profile.noise,
        "epoch": iso_ms(EPOCH_MS),
        "counts": counts,
        "entities": {kind: writer.count for kind, writer in world.gt.items()},
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def _write_ground_truth(out_dir: Path, *, accounts: int, seed: int, noise: str) -> None:
    """Assemble ``ground_truth.json`` from the streamed per-kind parts (sorted keys)."""
    with (out_dir / "ground_truth.json").open("w", encoding="utf-8") as fh:
        fh.write(f'{{"accounts":{accounts},"entities":{{')
        for n, kind in enumerate(SCORED_FIELDS):
            part = out_dir / f".gt_{kind}.part"
            fh.write(("," if n else "") + f'"{kind}":')
            with part.open(encoding="utf-8") as src:
                shutil.copyfileobj(src, fh, 1 << 20)
            part.unlink()
        fh.write(
            f'}},"epoch":"{iso_ms(EPOCH_MS)}","noise":{_dumps(noise)},"policies":{_dumps(_default_policies())},'
            f'"scored_fields":{_dumps(SCORED_FIELDS)},"seed":{seed}}}\n'
        )


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The ``manifest.json`` of a generated directory."""
    result: dict[str, Any] = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    return result


def iter_records(data_dir: Path, system: str, obj: str) -> Iterator[dict[str, Any]]:
    """The records of ``<data_dir>/<system>/<obj>.json`` (nothing if the file is missing)."""
    path = Path(data_dir) / system / f"{obj}.json"
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        yield from json.load(fh)


def native_objects(system: str) -> tuple[str, ...]:
    """The native objects a system's data directory holds (schema objects plus extras)."""
    extras = {"hubspot": ("owners", "associations")}
    return (*SCHEMAS[system], *extras.get(system, ()))

_CONFLICTS: dict[str, tuple[str, ...]] = {
    "account": ("industry", "employees", "annual_revenue", "phone", "owner_email"),
    "contact": ("title", "title", "phone", "lifecycle_stage", "lifecycle_stage", "owner_email", "lead_source"),
    "opportunity": ("stage", "stage", "close_date", "close_date", "amount", "type", "owner_email"),
}
