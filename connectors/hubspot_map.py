"""HubSpot default field maps, as data: one table per CRM v3 object type.

Each row is ``(native property, canonical field, transform, direction)``. HubSpot
sends and takes every property value as a string; ``mapping.fieldmap`` reads the
strings through the transforms and writes strings back. ``_owner_email`` is the
pseudo-field the connector resolves from ``hubspot_owner_id`` via the owners API.
Property names follow ``connectors/hubspot_schema.py``.

Properties: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide
"""

from __future__ import annotations

from connectors.base import MapRow
from mapping.canonical import ObjectType

SYSTEM = "hubspot"
# The native property behind the ``_owner_email`` pseudo-field (an owner id).
OWNER_FIELD = "hubspot_owner_id"

Row = MapRow

# https://knowledge.hubspot.com/properties/hubspots-default-company-properties
COMPANIES: tuple[Row, ...] = (
    ("name", "name", "string", "both"),
    ("domain", "domain", "domain", "both"),
    ("website", "website", "url", "both"),
    ("industry", "industry", "industry", "both"),
    ("numberofemployees", "employees", "int", "both"),
    ("annualrevenue", "annual_revenue", "decimal", "both"),
    ("phone", "phone", "phone", "both"),
    ("address", "billing_street", "string", "both"),
    ("city", "billing_city", "string", "both"),
    ("state", "billing_state", "string", "both"),
    ("zip", "billing_postal_code", "string", "both"),
    ("country", "country", "country", "both"),
    ("lifecyclestage", "lifecycle_stage", "lifecycle_stage", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://knowledge.hubspot.com/properties/hubspots-default-contact-properties
# hs_analytics_source ("Original source") is computed by HubSpot: read only.
CONTACTS: tuple[Row, ...] = (
    ("email", "email", "email", "both"),
    ("firstname", "first_name", "string", "both"),
    ("lastname", "last_name", "string", "both"),
    ("jobtitle", "title", "string", "both"),
    ("phone", "phone", "phone", "both"),
    ("city", "city", "string", "both"),
    ("state", "state", "string", "both"),
    ("company", "extras.lead_company", "string", "both"),
    ("lifecyclestage", "lifecycle_stage", "lifecycle_stage", "both"),
    ("hs_analytics_source", "lead_source", "lead_source", "read"),
    ("hs_email_optout", "do_not_contact", "flag", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://knowledge.hubspot.com/properties/hubspots-default-deal-properties
# closedate is a date-time property; the canonical close_date is its UTC date.
# hs_is_closed / hs_is_closed_won are read only: is_closed / is_won derive from the stage.
# hs_deal_stage_probability is a 0..1 fraction (read only); canonical probability is a
# percent. pipeline is written with every stage (the default pipeline's stage ids).
DEALS: tuple[Row, ...] = (
    ("dealname", "name", "string", "both"),
    ("amount", "amount", "decimal", "both"),
    ("deal_currency_code", "currency", "currency", "both"),
    ("dealstage", "stage", "stage", "both"),
    ("pipeline", "stage", "pipeline", "write"),
    ("closedate", "close_date", "date_as_datetime", "both"),
    ("hs_deal_stage_probability", "probability", "fraction_percent", "read"),
    ("dealtype", "type", "type", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

TABLES: dict[str, tuple[ObjectType, tuple[Row, ...]]] = {
    "companies": (ObjectType.ACCOUNT, COMPANIES),
    "contacts": (ObjectType.CONTACT, CONTACTS),
    "deals": (ObjectType.OPPORTUNITY, DEALS),
}

# --------------------------------------------------------------------------- picklist values
# The default shared definitions (``mapping.definitions``) for HubSpot: per value set,
# canonical value → the internal value written (and read) for it: the default sales
# pipeline's stage ids, the lifecycle stage, industry, original source and deal type
# enumerations.
# https://knowledge.hubspot.com/object-settings/set-up-and-customize-pipelines
PICKLISTS: dict[str, dict[str, str]] = {
    "stage": {
        "prospecting": "appointmentscheduled",
        "qualification": "qualifiedtobuy",
        "proposal": "presentationscheduled",
        "negotiation": "decisionmakerboughtin",
        "contract": "contractsent",
        "closed_won": "closedwon",
        "closed_lost": "closedlost",
    },
    "lifecycle_stage": {
        "subscriber": "subscriber",
        "lead": "lead",
        "mql": "marketingqualifiedlead",
        "sql": "salesqualifiedlead",
        "opportunity": "opportunity",
        "customer": "customer",
        "evangelist": "evangelist",
        "other": "other",
    },
    "industry": {
        "software": "COMPUTER_SOFTWARE",
        "financial_services": "FINANCIAL_SERVICES",
        "banking": "BANKING",
        "healthcare": "HOSPITAL_HEALTH_CARE",
        "retail": "RETAIL",
        "manufacturing": "MACHINERY",
        "education": "EDUCATION_MANAGEMENT",
        "telecommunications": "TELECOMMUNICATIONS",
        "media": "MEDIA_PRODUCTION",
        "energy": "OIL_ENERGY",
        "insurance": "INSURANCE",
        "consulting": "MANAGEMENT_CONSULTING",
        "transportation": "TRANSPORTATION_TRUCKING_RAILROAD",
        "hospitality": "HOSPITALITY",
        "biotechnology": "BIOTECHNOLOGY",
    },
    "lead_source": {
        "web": "ORGANIC_SEARCH",
        "paid": "PAID_SEARCH",
        "social": "SOCIAL_MEDIA",
        "email": "EMAIL_MARKETING",
        "referral": "REFERRALS",
        "event": "OFFLINE",
        "direct": "DIRECT_TRAFFIC",
        "other": "OTHER_CAMPAIGNS",
    },
    "type": {
        "new_business": "newbusiness",
        "existing_business": "existingbusiness",
        "renewal": "renewal",
    },
}

# Original-source values HubSpot computes besides the ones we write.
# https://knowledge.hubspot.com/contacts/understand-the-source-properties
PICKLIST_READS: dict[str, dict[str, str]] = {
    "lead_source": {"PAID_SOCIAL": "paid", "AI_REFERRALS": "referral"},
}

# The pipeline every deal stage is written with (``pipeline`` is sent with ``dealstage``).
PIPELINES: dict[str, str] = {"stage": "default"}
