"""Salesforce default field maps, as data: one table per sObject.

Each row is ``(native field, canonical field, transform, direction)``. Canonical
``extras.<name>`` puts a value into ``Entity.extras``. ``_owner_email`` is the
pseudo-field the connector resolves from ``OwnerId`` (User.Email) on read and back to
an ``OwnerId`` on write. Field names and types follow ``connectors/salesforce_schema.py``.
Leads map to canonical contacts: ``Company`` is kept as text in
``extras["lead_company"]`` (never an account link) and ``Status`` reads as a
lifecycle stage through the ``lead_status`` definitions (``PICKLISTS`` below).

Standard objects: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_list.htm
"""

from __future__ import annotations

from connectors.base import MapRow
from mapping.canonical import ObjectType

SYSTEM = "salesforce"
# The native field behind the ``_owner_email`` pseudo-field (a lookup to User).
OWNER_FIELD = "OwnerId"

Row = MapRow

# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_account.htm
ACCOUNT: tuple[Row, ...] = (
    ("Name", "name", "string", "both"),
    ("Website", "website", "url", "both"),
    ("Website", "domain", "domain", "read"),
    ("Industry", "industry", "industry", "both"),
    ("NumberOfEmployees", "employees", "int", "both"),
    ("AnnualRevenue", "annual_revenue", "decimal", "both"),
    ("Phone", "phone", "phone", "both"),
    ("BillingStreet", "billing_street", "string", "both"),
    ("BillingCity", "billing_city", "string", "both"),
    ("BillingState", "billing_state", "string", "both"),
    ("BillingPostalCode", "billing_postal_code", "string", "both"),
    ("BillingCountry", "country", "country", "both"),
    ("Type", "customer_status", "customer_status", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contact.htm
CONTACT: tuple[Row, ...] = (
    ("FirstName", "first_name", "string", "both"),
    ("LastName", "last_name", "string", "both"),
    ("Email", "email", "email", "both"),
    ("Title", "title", "string", "both"),
    ("Phone", "phone", "phone", "both"),
    ("MailingCity", "city", "string", "both"),
    ("MailingState", "state", "string", "both"),
    ("LeadSource", "lead_source", "lead_source", "both"),
    ("HasOptedOutOfEmail", "do_not_contact", "flag", "both"),
    ("Lifecycle_Stage__c", "lifecycle_stage", "lifecycle_stage", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_lead.htm
LEAD: tuple[Row, ...] = (
    ("FirstName", "first_name", "string", "both"),
    ("LastName", "last_name", "string", "both"),
    ("Email", "email", "email", "both"),
    ("Company", "extras.lead_company", "string", "both"),
    ("Title", "title", "string", "both"),
    ("Phone", "phone", "phone", "both"),
    ("City", "city", "string", "both"),
    ("State", "state", "string", "both"),
    ("Status", "lifecycle_stage", "lead_status", "read"),
    ("LeadSource", "lead_source", "lead_source", "both"),
    ("HasOptedOutOfEmail", "do_not_contact", "flag", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm
# IsClosed / IsWon are read-only and follow StageName: canonical is_closed / is_won are
# derived from the canonical stage (``mapping.fieldmap.derive_stage_flags``).
OPPORTUNITY: tuple[Row, ...] = (
    ("Name", "name", "string", "both"),
    ("Amount", "amount", "decimal", "both"),
    ("CurrencyIsoCode", "currency", "currency", "both"),
    ("StageName", "stage", "stage", "both"),
    ("CloseDate", "close_date", "date", "both"),
    ("Probability", "probability", "decimal", "both"),
    ("Type", "type", "type", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
    # custom fields a closed-won handoff needs (sync.handoff, issue 15); read only:
    # Salesforce is where reps keep the contract term and products
    ("Contract_Start__c", "extras.contract_start", "string", "read"),
    ("Renewal_Date__c", "extras.renewal_date", "string", "read"),
    ("Products__c", "extras.products", "string", "read"),
)

TABLES: dict[str, tuple[ObjectType, tuple[Row, ...]]] = {
    "Account": (ObjectType.ACCOUNT, ACCOUNT),
    "Contact": (ObjectType.CONTACT, CONTACT),
    "Lead": (ObjectType.CONTACT, LEAD),
    "Opportunity": (ObjectType.OPPORTUNITY, OPPORTUNITY),
}

# --------------------------------------------------------------------------- picklist values
# The default shared definitions (``mapping.definitions``) for Salesforce: per value set,
# canonical value → the native value written (and read) for it. The org's standard
# StageName, Industry, Account Type, LeadSource and Opportunity Type picklists; the
# sandbox org's custom Lifecycle_Stage__c carries HubSpot's lifecycle labels.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm
PICKLISTS: dict[str, dict[str, str]] = {
    "stage": {
        "prospecting": "Prospecting",
        "qualification": "Qualification",
        "proposal": "Proposal/Price Quote",
        "negotiation": "Negotiation/Review",
        "contract": "Value Proposition",
        "closed_won": "Closed Won",
        "closed_lost": "Closed Lost",
    },
    "lifecycle_stage": {
        "subscriber": "Subscriber",
        "lead": "Lead",
        "mql": "Marketing Qualified Lead",
        "sql": "Sales Qualified Lead",
        "opportunity": "Opportunity",
        "customer": "Customer",
        "evangelist": "Evangelist",
        "other": "Other",
    },
    # Lead.Status read as a lifecycle stage; "Closed - Converted" is set by lead
    # conversion, never by an update: read only (PICKLIST_READS)
    "lead_status": {
        "lead": "Open - Not Contacted",
        "mql": "Working - Contacted",
        "other": "Closed - Not Converted",
    },
    "industry": {
        "software": "Technology",
        "financial_services": "Finance",
        "banking": "Banking",
        "healthcare": "Healthcare",
        "retail": "Retail",
        "manufacturing": "Manufacturing",
        "education": "Education",
        "telecommunications": "Telecommunications",
        "media": "Media",
        "energy": "Energy",
        "insurance": "Insurance",
        "consulting": "Consulting",
        "transportation": "Transportation",
        "hospitality": "Hospitality",
        "biotechnology": "Biotechnology",
    },
    "customer_status": {
        "prospect": "Prospect",
        "onboarding": "Customer - Direct",
        "customer": "Customer - Direct",
        "churned": "Other",
        "lost": "Other",
    },
    "lead_source": {
        "web": "Web",
        "paid": "Advertisement",
        "social": "Social",
        "email": "Email",
        "referral": "Partner Referral",
        "event": "Trade Show",
        "direct": "Phone Inquiry",
        "other": "Other",
    },
    "type": {
        "new_business": "New Customer",
        "existing_business": "Existing Customer - Upgrade",
        "renewal": "Existing Customer - Replacement",
    },
}

# Native values read as a canonical value besides the written ones: a native value
# several canonical values write ("Customer - Direct" reads as customer, not
# onboarding), read-only values, and the rest of the standard LeadSource picklist.
PICKLIST_READS: dict[str, dict[str, str]] = {
    "customer_status": {"Customer - Direct": "customer", "Other": "churned"},
    "lead_source": {"Purchased List": "other", "Web Referral": "referral"},
    "lead_status": {"Closed - Converted": "sql"},
}
