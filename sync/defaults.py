"""Default field policies (what ``revsync init`` writes and what applies when unset).

Rules (the README's configuration section shows how to change them):

- ``source_priority``: the first system in ``source_priority`` with a value wins;
- ``latest``: the value with the most recent remote modstamp wins;
- ``prefer:<system>``: that system's value unless blank, else ``source_priority``;
- ``always:<system>``: that system's value, even blank;
- ``never_blank`` (default on): a blank value never overwrites a filled one.

The sandbox's ground truth is computed from these same defaults, so a change here
changes the expected canonical values of the demo data.
"""

from __future__ import annotations

from typing import Any

DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = ("salesforce", "hubspot", "planhat")

DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    "account": {
        "default": "source_priority",
        "source_priority": list(DEFAULT_SOURCE_PRIORITY),
        "never_blank": True,
        "fields": {
            # Customer success owns health, ARR, renewal and status.
            "health": "prefer:planhat",
            "arr": "prefer:planhat",
            "renewal_date": "prefer:planhat",
            "customer_status": "prefer:planhat",
            # Marketing keeps lifecycle current.
            "lifecycle_stage": "latest",
            # Re-parenting in any system moves the account everywhere.
            "parent_id": "latest",
        },
    },
    "contact": {
        "default": "source_priority",
        "source_priority": list(DEFAULT_SOURCE_PRIORITY),
        "never_blank": True,
        "fields": {
            "lifecycle_stage": "latest",
            "title": "latest",
            "phone": "latest",
        },
    },
    "opportunity": {
        "default": "source_priority",
        "source_priority": ["salesforce", "hubspot"],
        "never_blank": True,
        "fields": {
            "stage": "latest",
            "close_date": "latest",
        },
    },
}
