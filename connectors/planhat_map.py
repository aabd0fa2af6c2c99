"""Planhat default field maps, as data: one table per model.

Each row is ``(native field, canonical field, transform, direction)``. Planhat takes
and returns JSON documents; a dotted native name (``custom.Score``) is a path into the
``custom`` object, which is where Planhat keeps custom fields. ``h`` (health), ``arr``
and ``renewalDate`` are computed by Planhat: read only. ``_owner_email`` is the
pseudo-field the connector resolves from ``owner`` (a Planhat user id).
Field names follow ``connectors/planhat_schema.py``.

Company: https://www.planhat.com/developers/api/company
Enduser: https://www.planhat.com/developers/api/enduser
"""

from __future__ import annotations

from connectors.base import MapRow
from mapping.canonical import ObjectType

SYSTEM = "planhat"
# The native field behind the ``_owner_email`` pseudo-field (a Planhat user id).
OWNER_FIELD = "owner"

Row = MapRow

COMPANIES: tuple[Row, ...] = (
    ("name", "name", "string", "both"),
    ("domains", "domain", "domains", "both"),
    ("website", "website", "url", "both"),
    ("phone", "phone", "phone", "both"),
    ("country", "country", "country", "both"),
    # Planhat computes a company's status itself ("status (auto)"): read it, never write it
    ("status", "customer_status", "customer_status", "read"),
    ("h", "health", "decimal", "read"),
    ("arr", "arr", "decimal", "read"),
    ("renewalDate", "renewal_date", "date", "read"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

ENDUSERS: tuple[Row, ...] = (
    ("email", "email", "email", "both"),
    ("firstName", "first_name", "string", "both"),
    ("lastName", "last_name", "string", "both"),
    ("position", "title", "string", "both"),
    ("phone", "phone", "phone", "both"),
)

TABLES: dict[str, tuple[ObjectType, tuple[Row, ...]]] = {
    "companies": (ObjectType.ACCOUNT, COMPANIES),
    "endusers": (ObjectType.CONTACT, ENDUSERS),
}

# --------------------------------------------------------------------------- picklist values
# The default shared definitions (``mapping.definitions``) for Planhat: company status.
PICKLISTS: dict[str, dict[str, str]] = {
    "customer_status": {
        "prospect": "prospect",
        "onboarding": "coming",
        "customer": "customer",
        "churned": "canceled",
        "lost": "lost",
    },
}
PICKLIST_READS: dict[str, dict[str, str]] = {}
