"""Salesforce default field maps, as data: one table per sObject.

Each row is ``(native field, canonical field, transform, direction)``. Canonical
``extras.<name>`` puts a value into ``Entity.extras``. ``_owner_email`` is the
pseudo-field the connector resolves from ``OwnerId`` (User.Email) on read and back to
an ``OwnerId`` on write. Field names and types follow ``connectors/salesforce_schema.py``.
Leads map to canonical contacts: ``Company`` is kept as text in
``extras["lead_company"]`` (never an account link) and ``Status`` reads as a
lifecycle stage through ``mapping.transforms.LEAD_STATUS``.

Standard objects: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_list.htm
"""

from __future__ import annotations

from mapping.canonical import ObjectType

SYSTEM = "salesforce"
# The native field behind the ``_owner_email`` pseudo-field (a lookup to User).
OWNER_FIELD = "OwnerId"

Row = tuple[str, str, str, str]

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
    ("Status", "lifecycle_stage", "lead_status", "read"),
    ("LeadSource", "lead_source", "lead_source", "both"),
    ("HasOptedOutOfEmail", "do_not_contact", "flag", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm
# IsClosed / IsWon are read-only and follow StageName: canonical is_closed / is_won are
# derived from the canonical stage (mapping.fieldmap.derive_stage_flags).
OPPORTUNITY: tuple[Row, ...] = (
    ("Name", "name", "string", "both"),
    ("Amount", "amount", "decimal", "both"),
    ("CurrencyIsoCode", "currency", "currency", "both"),
    ("StageName", "stage", "stage", "both"),
    ("CloseDate", "close_date", "date", "both"),
    ("Probability", "probability", "decimal", "both"),
    ("Type", "type", "type", "both"),
    ("_owner_email", "owner_email", "owner_email", "both"),
)

TABLES: dict[str, tuple[ObjectType, tuple[Row, ...]]] = {
    "Account": (ObjectType.ACCOUNT, ACCOUNT),
    "Contact": (ObjectType.CONTACT, CONTACT),
    "Lead": (ObjectType.CONTACT, LEAD),
    "Opportunity": (ObjectType.OPPORTUNITY, OPPORTUNITY),
}
