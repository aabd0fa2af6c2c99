"""The vendors' default picklist values as the emulators and the generator use them.

Built from the connectors' declarations (``connectors/<vendor>_map.py``): an emulated
org or portal carries exactly the values a freshly configured one ships with, whatever
an admin's ``[definitions]`` say (the sandbox is the vendor, not revsync).
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors import hubspot_map, planhat_map, salesforce_map
from mapping.values import CANONICAL, STAGE_PROBABILITY

__all__ = [
    "CUSTOMER_STATUS", "HUBSPOT_DEFAULT_PIPELINE", "INDUSTRIES", "LEAD_SOURCES", "LEAD_STATUS", "LIFECYCLE",
    "OPPORTUNITY_TYPES", "READ_ALIASES", "STAGES", "STAGE_PROBABILITY", "VALUE_MAPS", "native_values",
    "to_canonical", "to_native",
]  # fmt: skip

_DECLARED = {"salesforce": salesforce_map, "hubspot": hubspot_map, "planhat": planhat_map}


def _table(name: str) -> dict[str, dict[str, str]]:
    """canonical → {system: native} for value set ``name`` (canonical order)."""
    out: dict[str, dict[str, str]] = {}
    for canonical in CANONICAL[name]:
        row = {s: m.PICKLISTS[name][canonical] for s, m in _DECLARED.items() if canonical in m.PICKLISTS.get(name, {})}
        if row:
            out[canonical] = row
    return out


STAGES = _table("stage")
LIFECYCLE = _table("lifecycle_stage")
INDUSTRIES = _table("industry")
CUSTOMER_STATUS = _table("customer_status")
LEAD_SOURCES = _table("lead_source")
OPPORTUNITY_TYPES = _table("type")
VALUE_MAPS: dict[str, dict[str, dict[str, str]]] = {
    "stage": STAGES, "lifecycle_stage": LIFECYCLE, "industry": INDUSTRIES, "customer_status": CUSTOMER_STATUS,
    "lead_source": LEAD_SOURCES, "type": OPPORTUNITY_TYPES,
}  # fmt: skip
HUBSPOT_DEFAULT_PIPELINE = hubspot_map.PIPELINES["stage"]
#: Salesforce Lead Status → canonical lifecycle stage (written values and the read-only one)
LEAD_STATUS: dict[str, str] = {
    **{n: c for c, n in salesforce_map.PICKLISTS["lead_status"].items()},
    **salesforce_map.PICKLIST_READS["lead_status"],
}
#: (value set, system) → casefolded native → canonical: the declared extra readings
READ_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    (name, s): {n.casefold(): c for n, c in reads.items()}
    for s, m in _DECLARED.items() for name, reads in m.PICKLIST_READS.items() if name != "lead_status"
}


def to_native(table: Mapping[str, Mapping[str, str]], system: str, canonical: str) -> str | None:
    """Native value for ``canonical`` in ``system`` (None when the system has no such value)."""
    row = table.get(canonical)
    return row.get(system) if row else None


def to_canonical(table: Mapping[str, Mapping[str, str]], system: str, native: str) -> str | None:
    """Canonical value for ``native`` in ``system`` (case-insensitive, first in table order); None when unknown."""
    folded = native.strip().casefold()
    for canonical, row in table.items():
        value = row.get(system)
        if value is not None and value.casefold() == folded:
            return canonical
    return None


def native_values(table: Mapping[str, Mapping[str, str]], system: str) -> list[str]:
    """Distinct native values of a table for ``system``, in table order (for picklist describe)."""
    seen: dict[str, None] = {}
    for row in table.values():
        if system in row:
            seen.setdefault(row[system], None)
    return list(seen)
