"""Shared helpers for the mapping tests: fixtures in, JSON-ready canonical out."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from mapping.canonical import Account, Contact, Opportunity
from mapping.fieldmap import OWNER_FIELDS, OWNER_PSEUDO_FIELD

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NATIVE_DIR = FIXTURES / "mapping"
EXPECTED_DIR = FIXTURES / "expected"

# (system, native type) pairs with a recorded payload and a golden output.
GOLDEN_CASES: tuple[tuple[str, str], ...] = (
    ("salesforce", "Account"),
    ("salesforce", "Contact"),
    ("salesforce", "Lead"),
    ("salesforce", "Opportunity"),
    ("hubspot", "companies"),
    ("hubspot", "contacts"),
    ("hubspot", "deals"),
    ("planhat", "companies"),
    ("planhat", "endusers"),
)


def load_native(system: str, native_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(remote id, RemoteRecord.fields) pairs, shaped the way the connectors hand them over.

    Salesforce: the query record without ``attributes``; HubSpot: the ``properties`` of
    each result; Planhat: the document. The owner id is resolved to ``_owner_email``
    from the fixture's owner table, as the connectors do.
    """
    raw = json.loads((NATIVE_DIR / f"{system}_{native_type}.json").read_text(encoding="utf-8"))
    owners: dict[str, str] = raw.get("owners", {})
    owner_field = OWNER_FIELDS[system]
    out: list[tuple[str, dict[str, Any]]] = []
    if system == "hubspot":
        for result in raw["page"]["results"]:
            fields = dict(result["properties"])
            out.append((result["id"], fields))
    else:
        for record in raw["records"]:
            fields = {k: v for k, v in record.items() if k != "attributes"}
            rid = record["Id"] if system == "salesforce" else record["_id"]
            out.append((rid, fields))
    for _, fields in out:
        owner = fields.get(owner_field)
        if owner:
            fields[OWNER_PSEUDO_FIELD] = owners[owner]
    return out


def jsonable(value: Any) -> Any:
    """Canonical values in the golden files' JSON form."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def entity_json(entity: Account | Contact | Opportunity) -> dict[str, Any]:
    """Every field of an entity, JSON-ready (the canonical id is left to the engine)."""
    data = {f.name: jsonable(getattr(entity, f.name)) for f in dataclasses.fields(entity)}
    data["object"] = str(entity.OBJECT)
    return data


def load_expected(system: str, native_type: str) -> list[dict[str, Any]]:
    path = EXPECTED_DIR / f"{system}_{native_type}.json"
    return json.loads(path.read_text(encoding="utf-8"))
