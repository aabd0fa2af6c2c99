"""Native schemas the sandbox serves: the fields each system has, with their types.

This is the contract between the seed generator (which writes records with these
fields), the emulators (Salesforce describe, HubSpot properties, Planhat models) and
the tests. Names and types follow the vendors' standard objects; the few custom
fields are the ones revsync itself needs (an external-id field per object).

Types: ``id``, ``reference`` (Salesforce id of another record), ``string``,
``email``, ``phone``, ``url``, ``picklist``, ``textarea``, ``int``, ``double``,
``currency``, ``percent``, ``boolean``, ``date`` (YYYY-MM-DD), ``datetime``
(ISO-8601). HubSpot sends every property value as a string whatever its type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    label: str = ""
    length: int = 0  # max length for strings (0: type default)
    unique: bool = False
    external_id: bool = False
    updateable: bool = True
    nillable: bool = True
    custom: bool = False


def _f(name: str, type_: str, **kw: object) -> FieldSpec:
    return FieldSpec(name=name, type=type_, label=kw.pop("label", name), **kw)  # type: ignore[arg-type]


_SF_SYSTEM = (
    _f("Id", "id", updateable=False, nillable=False),
    _f("IsDeleted", "boolean", updateable=False),
    _f("CreatedDate", "datetime", updateable=False),
    _f("LastModifiedDate", "datetime", updateable=False),
    _f("SystemModstamp", "datetime", updateable=False),
)
_SF_EXT = _f("Revsync_Id__c", "string", length=36, unique=True, external_id=True, custom=True)

# Salesforce sObjects (API names). Owner is a lookup to User; revsync maps owners by email.
SALESFORCE: dict[str, tuple[FieldSpec, ...]] = {
    "User": (
        *_SF_SYSTEM,
        _f("Email", "email", length=80),
        _f("Name", "string", length=121, updateable=False),
        _f("IsActive", "boolean"),
    ),
    "Account": (
        *_SF_SYSTEM,
        _f("MasterRecordId", "reference", updateable=False),
        _f("Name", "string", length=255, nillable=False),
        _f("ParentId", "reference"),
        _f("Website", "url", length=255),
        _f("Industry", "picklist", length=255),
        _f("NumberOfEmployees", "int"),
        _f("AnnualRevenue", "currency"),
        _f("Phone", "phone", length=40),
        _f("BillingStreet", "textarea", length=255),
        _f("BillingCity", "string", length=40),
        _f("BillingState", "string", length=80),
        _f("BillingPostalCode", "string", length=20),
        _f("BillingCountry", "string", length=80),
        _f("Type", "picklist", length=255),
        _f("OwnerId", "reference"),
        _SF_EXT,
    ),
    "Contact": (
        *_SF_SYSTEM,
        _f("MasterRecordId", "reference", updateable=False),
        _f("AccountId", "reference"),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Email", "email", length=80),
        _f("Title", "string", length=128),
        _f("Phone", "phone", length=40),
        _f("MailingCity", "string", length=40),
        _f("MailingState", "string", length=80),
        _f("LeadSource", "picklist", length=255),
        _f("HasOptedOutOfEmail", "boolean"),
        _f("Lifecycle_Stage__c", "picklist", length=255, custom=True),
        _f("OwnerId", "reference"),
        _SF_EXT,
    ),
    "Lead": (
        *_SF_SYSTEM,
        _f("MasterRecordId", "reference", updateable=False),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Email", "email", length=80),
        _f("Company", "string", length=255, nillable=False),
        _f("Title", "string", length=128),
        _f("Phone", "phone", length=40),
        _f("City", "string", length=40),
        _f("State", "string", length=80),
        _f("Status", "picklist", length=255),
        _f("LeadSource", "picklist", length=255),
        _f("HasOptedOutOfEmail", "boolean"),
        _f("IsConverted", "boolean", updateable=False),
        _f("ConvertedContactId", "reference", updateable=False),
        _f("OwnerId", "reference"),
        _SF_EXT,
    ),
    "Opportunity": (
        *_SF_SYSTEM,
        _f("AccountId", "reference"),
        _f("Name", "string", length=120, nillable=False),
        _f("Amount", "currency"),
        _f("CurrencyIsoCode", "picklist", length=3),
        _f("StageName", "picklist", length=255, nillable=False),
        _f("CloseDate", "date", nillable=False),
        _f("Probability", "percent"),
        _f("Type", "picklist", length=255),
        _f("IsClosed", "boolean", updateable=False),
        _f("IsWon", "boolean", updateable=False),
        _f("OwnerId", "reference"),
        _SF_EXT,
    ),
    "OpportunityContactRole": (
        *_SF_SYSTEM,
        _f("OpportunityId", "reference", nillable=False),
        _f("ContactId", "reference", nillable=False),
        _f("Role", "picklist", length=255),
        _f("IsPrimary", "boolean"),
    ),
}

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

SCHEMAS: dict[str, dict[str, tuple[FieldSpec, ...]]] = {
    "salesforce": SALESFORCE,
    "hubspot": HUBSPOT,
    "planhat": PLANHAT,
}


def field_names(system: str, obj: str) -> tuple[str, ...]:
    """The field names of ``obj`` in ``system`` (KeyError if unknown)."""
    return tuple(f.name for f in SCHEMAS[system][obj])
