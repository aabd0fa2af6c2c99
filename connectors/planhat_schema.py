"""Planhat's native schema: its models and fields.

``custom`` is a free-form object on every model (where Planhat keeps custom fields);
``externalId`` / ``sourceId`` are the ids of other systems revsync writes.

https://www.planhat.com/developers/api/company
"""

from __future__ import annotations

from connectors.schema import FieldSpec
from connectors.schema import spec as _f

# Planhat models → fields. ``custom`` is a free-form object on every model.
PLANHAT: dict[str, tuple[FieldSpec, ...]] = {
    "companies": (
        _f("_id", "id", updateable=False),
        _f("name", "string", nillable=False),
        _f("externalId", "string", unique=True),
        _f("sourceId", "string", unique=True),
        _f("domains", "string"),  # a JSON array of domain strings
        _f("phase", "picklist"),
        _f("status", "picklist", updateable=False),  # auto: prospect | coming | customer | canceled | lost
        _f("h", "double", updateable=False),  # health score, computed by Planhat
        _f("arr", "double", updateable=False),  # computed from licenses
        _f("mrr", "double", updateable=False),
        _f("renewalDate", "date", updateable=False),
        _f("owner", "string"),  # Planhat user id
        _f("country", "string"),
        _f("phone", "string"),
        _f("website", "string"),
        _f("createDate", "datetime", updateable=False),
        _f("lastUpdated", "datetime", updateable=False),
        _f("custom", "object"),
    ),
    "endusers": (
        _f("_id", "id", updateable=False),
        _f("email", "email"),
        _f("companyId", "id", nillable=False),
        _f("externalId", "string", unique=True),
        _f("sourceId", "string", unique=True),
        _f("firstName", "string"),
        _f("lastName", "string"),
        _f("position", "string"),
        _f("phone", "string"),
        _f("archived", "boolean"),
        _f("createDate", "datetime", updateable=False),
        _f("lastUpdated", "datetime", updateable=False),
        _f("custom", "object"),
    ),
    "licenses": (
        _f("_id", "id", updateable=False),
        _f("companyId", "id", nillable=False),
        _f("_currency", "string", nillable=False),
        _f("fromDate", "date", nillable=False),
        _f("toDate", "date"),
        _f("mrr", "double"),
        _f("arr", "double", updateable=False),
        _f("externalId", "string", unique=True),
        _f("sourceId", "string", unique=True),
        _f("renewalStatus", "picklist"),
    ),
    "users": (
        _f("_id", "id", updateable=False),
        _f("email", "email"),
        _f("firstName", "string"),
        _f("lastName", "string"),
    ),
}
