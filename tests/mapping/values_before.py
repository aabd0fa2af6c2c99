"""The value tables as mapping/values.py and mapping/transforms.py held them before the
shared definitions moved them into the connectors (commit bc82fc7): the defaults the
connectors ship must equal these, value for value, both directions."""
from __future__ import annotations

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


LEAD_STATUS: dict[str, str] = {
    "Open - Not Contacted": "lead",
    "Working - Contacted": "mql",
    "Closed - Converted": "sql",
    "Closed - Not Converted": "other",
}

READ_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("customer_status", "salesforce"): {"customer - direct": "customer", "other": "churned"},
    ("lead_source", "hubspot"): {"paid_social": "paid", "ai_referrals": "referral"},
    ("lead_source", "salesforce"): {"purchased list": "other", "web referral": "referral"},
}
