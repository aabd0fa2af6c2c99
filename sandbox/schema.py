"""The native schemas the sandbox serves, imported from the connectors that own them.

This is the contract between the seed generator (which writes records with these
fields), the emulators (Salesforce describe, HubSpot properties, Planhat models) and
the tests. The schemas live with their connectors (``connectors/*_schema.py``): the
sandbox imports them, product code never imports the sandbox.
"""

from __future__ import annotations

from connectors.hubspot_schema import HUBSPOT, HUBSPOT_OWNER_FIELDS
from connectors.planhat_schema import PLANHAT
from connectors.salesforce_schema import SALESFORCE
from connectors.schema import FieldSpec

__all__ = ["HUBSPOT", "HUBSPOT_OWNER_FIELDS", "PLANHAT", "SALESFORCE", "SCHEMAS", "FieldSpec", "field_names"]

SCHEMAS: dict[str, dict[str, tuple[FieldSpec, ...]]] = {
    "salesforce": SALESFORCE,
    "hubspot": HUBSPOT,
    "planhat": PLANHAT,
}


def field_names(system: str, obj: str) -> tuple[str, ...]:
    """The field names of ``obj`` in ``system`` (KeyError if unknown)."""
    return tuple(f.name for f in SCHEMAS[system][obj])
