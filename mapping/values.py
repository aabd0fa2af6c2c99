"""Picklist value maps: canonical value ↔ each system's native value.

Each table maps a canonical value to the native value each system stores. The
native values are the vendors' defaults: Salesforce's standard ``StageName`` and
``Industry`` picklists, HubSpot's default sales pipeline stage ids and industry
enumeration, Planhat's company ``status``. An unknown native value (an org's custom
stage, a custom lifecycle stage) is a ``RecordError`` in ``mapping.transforms``, which
the field map records as an unreadable field (raw value and reason in the ledger),
never a silent drop and never a lost record.
"""

from __future__ import annotations

from collections.abc import Mapping

# canonical stage → (Salesforce StageName, HubSpot dealstage id in the default pipeline)
STAGES: dict[str, dict[str, str]] = {
    "prospecting": {"salesforce": "Prospecting", "hubspot": "appointmentscheduled"},
    "qualification": {"salesforce": "Qualification", "hubspot": "qualifiedtobuy"},
    "proposal": {"salesforce": "Proposal/Price Quote", "hubspot": "presentationscheduled"},
    "negotiation": {"salesforce": "Negotiation/Review", "hubspot": "decisionmakerboughtin"},
    "contract": {"salesforce": "Value Proposition", "hubspot": "contractsent"},
    "closed_won": {"salesforce": "Closed Won", "hubspot": "closedwon"},
    "closed_lost": {"salesforce": "Closed Lost", "hubspot": "closedlost"},
}
# Default probability per canonical stage (Salesforce and HubSpot defaults agree closely).
STAGE_PROBABILITY: dict[str, int] = {
    "prospecting": 10,
    "qualification": 20,
    "proposal": 40,
    "negotiation": 60,
    "contract": 80,
    "closed_won": 100,
    "closed_lost": 0,
}
HUBSPOT_DEFAULT_PIPELINE = "default"

# canonical lifecycle stage → native. Salesforce has no standard contact lifecycle; the
# sandbox org carries the custom picklist Lifecycle_Stage__c with HubSpot's labels.
LIFECYCLE: dict[str, dict[str, str]] = {
    "subscriber": {"salesforce": "Subscriber", "hubspot": "subscriber"},
    "lead": {"salesforce": "Lead", "hubspot": "lead"},
    "mql": {"salesforce": "Marketing Qualified Lead", "hubspot": "marketingqualifiedlead"},
    "sql": {"salesforce": "Sales Qualified Lead", "hubspot": "salesqualifiedlead"},
    "opportunity": {"salesforce": "Opportunity", "hubspot": "opportunity"},
    "customer": {"salesforce": "Customer", "hubspot": "customer"},
    "evangelist": {"salesforce": "Evangelist", "hubspot": "evangelist"},
    "other": {"salesforce": "Other", "hubspot": "other"},
}

# canonical industry → native (Salesforce standard Industry picklist; HubSpot enumeration).
INDUSTRIES: dict[str, dict[str, str]] = {
    "software": {"salesforce": "Technology", "hubspot": "COMPUTER_SOFTWARE"},
    "financial_services": {"salesforce": "Finance", "hubspot": "FINANCIAL_SERVICES"},
    "banking": {"salesforce": "Banking", "hubspot": "BANKING"},
    "healthcare": {"salesforce": "Healthcare", "hubspot": "HOSPITAL_HEALTH_CARE"},
    "retail": {"salesforce": "Retail", "hubspot": "RETAIL"},
    "manufacturing": {"salesforce": "Manufacturing", "hubspot": "MACHINERY"},
    "education": {"salesforce": "Education", "hubspot": "EDUCATION_MANAGEMENT"},
    "telecommunications": {"salesforce": "Telecommunications", "hubspot": "TELECOMMUNICATIONS"},
    "media": {"salesforce": "Media", "hubspot": "MEDIA_PRODUCTION"},
    "energy": {"salesforce": "Energy", "hubspot": "OIL_ENERGY"},
    "insurance": {"salesforce": "Insurance", "hubspot": "INSURANCE"},
    "consulting": {"salesforce": "Consulting", "hubspot": "MANAGEMENT_CONSULTING"},
    "transportation": {"salesforce": "Transportation", "hubspot": "TRANSPORTATION_TRUCKING_RAILROAD"},
    "hospitality": {"salesforce": "Hospitality", "hubspot": "HOSPITALITY"},
    "biotechnology": {"salesforce": "Biotechnology", "hubspot": "BIOTECHNOLOGY"},
}

# canonical customer status → Planhat company status; Salesforce Account Type.
CUSTOMER_STATUS: dict[str, dict[str, str]] = {
    "prospect": {"salesforce": "Prospect", "planhat": "prospect"},
    "onboarding": {"salesforce": "Customer - Direct", "planhat": "coming"},
    "customer": {"salesforce": "Customer - Direct", "planhat": "customer"},
    "churned": {"salesforce": "Other", "planhat": "canceled"},
    "lost": {"salesforce": "Other", "planhat": "lost"},
}

# canonical lead source → native.
LEAD_SOURCES: dict[str, dict[str, str]] = {
    "web": {"salesforce": "Web", "hubspot": "ORGANIC_SEARCH"},
    "paid": {"salesforce": "Advertisement", "hubspot": "PAID_SEARCH"},
    "social": {"salesforce": "Social", "hubspot": "SOCIAL_MEDIA"},
    "email": {"salesforce": "Email", "hubspot": "EMAIL_MARKETING"},
    "referral": {"salesforce": "Partner Referral", "hubspot": "REFERRALS"},
    "event": {"salesforce": "Trade Show", "hubspot": "OFFLINE"},
    "direct": {"salesforce": "Phone Inquiry", "hubspot": "DIRECT_TRAFFIC"},
    "other": {"salesforce": "Other", "hubspot": "OTHER_CAMPAIGNS"},
}

# canonical opportunity type → native.
OPPORTUNITY_TYPES: dict[str, dict[str, str]] = {
    "new_business": {"salesforce": "New Customer", "hubspot": "newbusiness"},
    "existing_business": {"salesforce": "Existing Customer - Upgrade", "hubspot": "existingbusiness"},
    "renewal": {"salesforce": "Existing Customer - Replacement", "hubspot": "renewal"},
}

VALUE_MAPS: dict[str, dict[str, dict[str, str]]] = {
    "stage": STAGES,
    "lifecycle_stage": LIFECYCLE,
    "industry": INDUSTRIES,
    "customer_status": CUSTOMER_STATUS,
    "lead_source": LEAD_SOURCES,
    "type": OPPORTUNITY_TYPES,
}


def to_native(table: Mapping[str, Mapping[str, str]], system: str, canonical: str) -> str | None:
    """Native value for ``canonical`` in ``system`` (None when the system has no such value)."""
    row = table.get(canonical)
    return row.get(system) if row else None


def to_canonical(table: Mapping[str, Mapping[str, str]], system: str, native: str) -> str | None:
    """Canonical value for ``native`` in ``system``; None when unknown.

    Matching is case-insensitive. Where several canonical values share one native
    value (e.g. Salesforce "Customer - Direct"), the first in table order wins.
    """
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
