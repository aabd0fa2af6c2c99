"""Salesforce's native schema: the sObjects and fields revsync reads and writes.

API names and types follow Salesforce's standard objects; ``Revsync_Id__c`` (and
``Lifecycle_Stage__c`` on Contact) are the custom fields revsync needs. The sandbox's
describe and SOQL emulators serve exactly these.

https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_list.htm
"""

from __future__ import annotations

from connectors.schema import FieldSpec
from connectors.schema import spec as _f

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
