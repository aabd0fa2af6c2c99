"""Canonical value sets: the values revsync's canonical model knows, in order.

No system is named here: each connector declares its native value for each canonical
value (``Connector.picklists`` / ``picklist_reads``, e.g. ``connectors/salesforce_map.py``)
and ``[definitions.*]`` in revsync.toml adds, renames and retires canonical values
(``mapping.definitions`` builds the effective tables). A native value the effective
definitions do not map is a ``RecordError`` in ``mapping.transforms``, which the field
map records as an unreadable field (raw value and reason in the ledger), never a
silent drop, never written raw to another system.
"""

from __future__ import annotations

#: value set → its canonical values, in order (the first canonical value of a set that
#: writes a native value is the one that native value reads as, unless a connector or
#: the admin says otherwise)
CANONICAL: dict[str, tuple[str, ...]] = {
    "stage": ("prospecting", "qualification", "proposal", "negotiation", "contract", "closed_won", "closed_lost"),
    "lifecycle_stage": ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other"),
    "industry": (
        "software", "financial_services", "banking", "healthcare", "retail", "manufacturing", "education",
        "telecommunications", "media", "energy", "insurance", "consulting", "transportation", "hospitality",
        "biotechnology",
    ),
    "customer_status": ("prospect", "onboarding", "customer", "churned", "lost"),
    "lead_source": ("web", "paid", "social", "email", "referral", "event", "direct", "other"),
    "type": ("new_business", "existing_business", "renewal"),
}  # fmt: skip

#: value sets whose canonical values are another set's (a lead's status reads as a
#: lifecycle stage)
SHARES_VALUES: dict[str, str] = {"lead_status": "lifecycle_stage"}

#: canonical values the engine itself relies on: never renamed or retired
#: (``is_closed`` / ``is_won`` derive from them, the handoff starts at closed_won)
FIXED: dict[str, frozenset[str]] = {"stage": frozenset({"closed_won", "closed_lost"})}

# Default probability per canonical stage (a value set's own property, no system's).
STAGE_PROBABILITY: dict[str, int] = {
    "prospecting": 10,
    "qualification": 20,
    "proposal": 40,
    "negotiation": 60,
    "contract": 80,
    "closed_won": 100,
    "closed_lost": 0,
}


def value_sets() -> tuple[str, ...]:
    """Every value set name (``stage``, ``lead_status``…)."""
    return (*CANONICAL, *SHARES_VALUES)
