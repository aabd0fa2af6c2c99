"""HubSpot's native schema: CRM v3 object types and their properties.

Every property value travels as a string whatever its type. ``revsync_id`` is the
unique custom property revsync writes; the rest are HubSpot defaults.

https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide
"""

from __future__ import annotations

from connectors.schema import FieldSpec
from connectors.schema import spec as _f

# HubSpot CRM v3 object types → properties (all values travel as strings).
# hs_object_id, createdate and the last-modified property are read-only.
HUBSPOT: dict[str, tuple[FieldSpec, ...]] = {
    "companies": (
        _f("hs_object_id", "string", updateable=False),
        _f("createdate", "datetime", updateable=False),
        _f("hs_lastmodifieddate", "datetime", updateable=False),
        _f("name", "string"),
        _f("domain", "string"),
        _f("website", "string"),
        _f("industry", "picklist"),
        _f("numberofemployees", "int"),
        _f("annualrevenue", "double"),
        _f("phone", "string"),
        _f("address", "string"),
        _f("city", "string"),
        _f("state", "string"),
        _f("zip", "string"),
        _f("country", "string"),
        _f("lifecyclestage", "picklist"),
        _f("hubspot_owner_id", "string"),
        _f("hs_merged_object_ids", "string", updateable=False),
        # calculated by HubSpot from the company's "child to parent company" association
        # (type 14): the parent company's id, a read-only property of type number (read,
        # like every property value, as a string); written through the v4 associations.
        # See docs/hierarchies.md for the sources.
        _f("hs_parent_company_id", "int", updateable=False),
        _f("revsync_id", "string", unique=True, external_id=True, custom=True),
    ),
    "contacts": (
        _f("hs_object_id", "string", updateable=False),
        _f("createdate", "datetime", updateable=False),
        _f("lastmodifieddate", "datetime", updateable=False),
        _f("email", "email", unique=True),
        _f("firstname", "string"),
        _f("lastname", "string"),
        _f("jobtitle", "string"),
        _f("phone", "string"),
        _f("city", "string"),
        _f("state", "string"),
        _f("company", "string"),
        _f("lifecyclestage", "picklist"),
        _f("hs_lead_status", "picklist"),
        _f("hs_analytics_source", "picklist"),
        _f("hs_email_optout", "boolean"),
        _f("hubspot_owner_id", "string"),
        _f("hs_merged_object_ids", "string", updateable=False),
        _f("revsync_id", "string", unique=True, external_id=True, custom=True),
    ),
    "deals": (
        _f("hs_object_id", "string", updateable=False),
        _f("createdate", "datetime", updateable=False),
        _f("hs_lastmodifieddate", "datetime", updateable=False),
        _f("dealname", "string"),
        _f("amount", "double"),
        _f("deal_currency_code", "picklist"),
        _f("closedate", "datetime"),
        _f("pipeline", "string"),
        _f("dealstage", "picklist"),
        _f("hs_deal_stage_probability", "double", updateable=False),
        _f("dealtype", "picklist"),
        _f("hs_is_closed", "boolean", updateable=False),
        _f("hs_is_closed_won", "boolean", updateable=False),
        _f("hubspot_owner_id", "string"),
        _f("hs_merged_object_ids", "string", updateable=False),
        _f("revsync_id", "string", unique=True, external_id=True, custom=True),
    ),
}

# HubSpot owners (GET /crm/v3/owners): id ↔ email.
HUBSPOT_OWNER_FIELDS = ("id", "email", "firstName", "lastName", "archived")
