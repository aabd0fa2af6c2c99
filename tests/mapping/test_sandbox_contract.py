"""Contract with the sandbox seed generator: every record it writes maps cleanly.

The generator writes native records with realistic noise (phones in many formats,
country spellings, websites with paths and subdomains, mixed-case emails, legal-form
variants); the mapping must read every one without a ``RecordError`` and agree with
the generator on the values both define the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mapping.canonical import Account, Opportunity
from mapping.fieldmap import FIELD_MAPS, OWNER_FIELDS, OWNER_PSEUDO_FIELD, to_entity
from mapping.normalize import domain_from_url
from sandbox import generator

OWNER_FILES = {
    "salesforce": ("User", "Id", "Email"),
    "hubspot": ("owners", "id", "email"),
    "planhat": ("users", "_id", "email"),
}


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seed")
    generator.generate(out, accounts=40, seed=20261102)
    return out


def _records(seed_dir: Path, system: str, native_type: str) -> list[dict[str, Any]]:
    obj, key, email = OWNER_FILES[system]
    owners = {
        u[key]: u[email]
        for u in json.loads((seed_dir / system / f"{obj}.json").read_text(encoding="utf-8"))
    }
    out = []
    for raw in json.loads((seed_dir / system / f"{native_type}.json").read_text(encoding="utf-8")):
        fields = dict(raw["properties"]) if system == "hubspot" else dict(raw)
        owner = fields.get(OWNER_FIELDS[system])
        if owner:
            fields[OWNER_PSEUDO_FIELD] = owners[owner]
        out.append(fields)
    return out


@pytest.mark.parametrize(("system", "native_type"), sorted(FIELD_MAPS))
def test_every_generated_record_maps_without_error(
    seed_dir: Path, system: str, native_type: str
) -> None:
    records = _records(seed_dir, system, native_type)
    assert records, f"the generator wrote no {system}/{native_type}"
    for fields in records:
        entity = to_entity(system, native_type, fields)
        if isinstance(entity, Account):
            assert entity.name
            if entity.phone:
                assert entity.phone.startswith("+")
            if entity.country:
                assert len(entity.country) == 2 and entity.country.isupper()
        if isinstance(entity, Opportunity):
            assert entity.stage is not None and entity.is_closed is not None


def test_generated_company_domains_read_as_the_registrable_domain(seed_dir: Path) -> None:
    """HubSpot ``domain`` (sometimes with ``www.``) and Planhat ``domains`` read the same way."""
    hs = _records(seed_dir, "hubspot", "companies")
    assert any(str(f.get("domain", "")).startswith("www.") for f in hs), "noise expected"
    for fields in hs:
        acct = to_entity("hubspot", "companies", fields)
        assert isinstance(acct, Account)
        if fields.get("domain"):
            assert acct.domain == fields["domain"].lower().removeprefix("www.")
    for fields in _records(seed_dir, "planhat", "companies"):
        acct = to_entity("planhat", "companies", fields)
        assert isinstance(acct, Account)
        assert acct.domain == domain_from_url(fields["domains"][0])
