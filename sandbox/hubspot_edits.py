"""Realistic edits inside the HubSpot sandbox (the control endpoint's ``/__sandbox/edits``).

Updates change the fields users and workflows touch (job title, phone, lifecycle
stage, deal stage, amount …); creates add plausible records associated to a company;
deletes archive; merges combine two contacts or two companies (new survivor id);
associations move a contact to another company (as its primary).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sandbox.hubspot_store import Rec, iso_ms
from sandbox.values import INDUSTRIES, LIFECYCLE, STAGES, native_values

if TYPE_CHECKING:
    from sandbox.hubspot_state import HubSpotState

EDIT_KINDS = ("update", "create", "delete", "merge", "association")

_TITLES = ("VP Sales", "Head of Marketing", "CFO", "Account Executive", "Operations Manager",
           "Customer Success Lead", "CTO", "Product Manager", "Procurement Lead")  # fmt: skip
_FIRST = ("Ava", "Liam", "Maya", "Noah", "Zoe", "Omar", "Lena", "Ivan", "Sara", "Ken")
_LAST = ("Berg", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen")
_WORDS = ("Northwind", "Bluepeak", "Quantix", "Harbor", "Lumen", "Vertex", "Cobalt", "Summit")
_SUFFIX = ("Labs", "Systems", "Group", "Analytics", "Logistics", "Health")


def _phone(rng: random.Random) -> str:
    return f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"


_UPDATES: dict[str, dict[str, Callable[[random.Random], str]]] = {
    "contacts": {
        "jobtitle": lambda r: r.choice(_TITLES),
        "phone": _phone,
        "lifecyclestage": lambda r: r.choice(native_values(LIFECYCLE, "hubspot")),
    },
    "companies": {
        "phone": _phone,
        "numberofemployees": lambda r: str(r.choice((12, 48, 150, 420, 1200, 5000))),
        "industry": lambda r: r.choice(native_values(INDUSTRIES, "hubspot")),
        "lifecyclestage": lambda r: r.choice(native_values(LIFECYCLE, "hubspot")),
    },
    "deals": {
        "dealstage": lambda r: r.choice(native_values(STAGES, "hubspot")),
        "amount": lambda r: str(r.randrange(5, 500) * 1000),
    },
}


def _pick_live(emu: HubSpotState, rng: random.Random, obj: str) -> Rec | None:
    table = emu.tables[obj]
    if not table.live:
        return None
    return table.recs[table.live[rng.randrange(len(table.live))]]


def _create_values(emu: HubSpotState, rng: random.Random, obj: str) -> dict[str, str | None]:
    serial = emu._next_id
    if obj == "contacts":
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return {
            "firstname": first,
            "lastname": last,
            "email": f"{first.lower()}.{last.lower()}.{serial}@example.com",
            "jobtitle": rng.choice(_TITLES),
            "lifecyclestage": "lead",
        }
    if obj == "companies":
        name = f"{rng.choice(_WORDS)} {rng.choice(_SUFFIX)} {serial}"
        return {
            "name": name,
            "domain": f"{name.lower().replace(' ', '')}.example.com",
            "phone": _phone(rng),
        }
    close = emu._now() + rng.randrange(7, 120) * 86_400_000
    return {
        "dealname": f"{rng.choice(_WORDS)} expansion {serial}",
        "amount": str(rng.randrange(5, 300) * 1000),
        "pipeline": "default",
        "dealstage": "appointmentscheduled",
        "closedate": iso_ms(close - close % 86_400_000),
    }


def apply_edits(
    emu: HubSpotState, rng: random.Random, n: int, kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """Make ``n`` edits of the given kinds (all kinds when empty); describe each."""
    kinds = [k for k in kinds if k in EDIT_KINDS] or list(EDIT_KINDS)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(kinds)
        edit = _one(emu, rng, kind)
        if edit is not None:
            out.append({"system": "hubspot", "kind": kind, **edit})
    return out


def _one(emu: HubSpotState, rng: random.Random, kind: str) -> dict[str, Any] | None:
    now = emu._now()
    if kind == "update":
        obj = rng.choice(list(_UPDATES))
        rec = _pick_live(emu, rng, obj)
        if rec is None:
            return None
        name, gen = rng.choice(list(_UPDATES[obj].items()))
        changed = emu.tables[obj].set_values(rec, {name: gen(rng)}, now)
        emu.ctx.stats.written(emu.system, 1)
        return {
            "object": obj,
            "id": str(rec.id),
            "fields": {f: emu.tables[obj].value(rec, f) for f in changed},
        }
    if kind == "create":
        obj = rng.choice(("contacts", "companies", "deals"))
        values = _create_values(emu, rng, obj)
        rec = emu._create_rec(obj, values)
        if obj in ("contacts", "deals"):
            company = _pick_live(emu, rng, "companies")
            if company is not None:
                emu.assoc.add(obj, "companies", rec.id, company.id, primary=True)
        emu.ctx.stats.written(emu.system, 1)
        return {"object": obj, "id": str(rec.id), "fields": dict(values)}
    if kind == "delete":
        obj = rng.choice(("contacts", "companies", "deals"))
        rec = _pick_live(emu, rng, obj)
        if rec is None:
            return None
        emu.tables[obj].archive(rec, now)
        emu.ctx.stats.written(emu.system, 1)
        return {"object": obj, "id": str(rec.id), "fields": {}}
    if kind == "merge":
        obj = rng.choice(("contacts", "companies"))
        table = emu.tables[obj]
        if len(table.live) < 2:
            return None
        i, j = rng.sample(range(len(table.live)), 2)
        primary, other = table.recs[table.live[i]], table.recs[table.live[j]]
        merged = emu.merge_records(obj, primary, other)
        emu.ctx.stats.written(emu.system, 3)
        return {
            "object": obj,
            "id": str(merged.id),
            "merged_ids": [str(primary.id), str(other.id)],
            "fields": {"hs_merged_object_ids": table.value(merged, "hs_merged_object_ids")},
        }
    # association: move a contact to another company (as its primary company)
    contact = _pick_live(emu, rng, "contacts")
    company = _pick_live(emu, rng, "companies")
    if contact is None or company is None:
        return None
    old = [b for b, _ in emu.assoc.targets("contacts", "companies", contact.id)]
    for b in old:
        emu.assoc.remove("contacts", "companies", contact.id, b)
    emu.assoc.add("contacts", "companies", contact.id, company.id, primary=True)
    emu.tables["contacts"].touch(contact, now)
    return {
        "object": "contacts",
        "id": str(contact.id),
        "fields": {"company_id": str(company.id)},
        "previous": [str(b) for b in old],
    }
