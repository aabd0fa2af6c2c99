"""The sandbox's fresh-org mode at the wire: Salesforce Metadata API SOAP, HubSpot
property creation / idProperty / token info, and the JWT bearer grant's refusals."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.salesforce_jwt import GRANT_TYPE, register

META_NS = "http://soap.sforce.com/2006/04/metadata"


def _soap(token: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:met="{META_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Header><met:SessionHeader><met:sessionId>{token}</met:sessionId></met:SessionHeader>"
        f"</soapenv:Header><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )


CREATE = (
    '<met:createMetadata><met:metadata xsi:type="met:CustomField"><met:fullName>Contact.Revsync_Id__c</met:fullName>'
    "<met:externalId>true</met:externalId><met:label>Revsync Id</met:label><met:length>36</met:length>"
    "<met:type>Text</met:type><met:unique>true</met:unique><met:caseSensitive>true</met:caseSensitive>"
    "</met:metadata></met:createMetadata>"
)
GRANT = (
    '<met:upsertMetadata><met:metadata xsi:type="met:PermissionSet"><met:fullName>Revsync_Integration</met:fullName>'
    "<met:fieldPermissions><met:editable>true</met:editable><met:field>Contact.Revsync_Id__c</met:field>"
    "<met:readable>true</met:readable></met:fieldPermissions><met:label>Revsync integration</met:label>"
    "</met:metadata></met:upsertMetadata>"
)


def _describe_names(http: Any, sb: Any, token: str, obj: str) -> set[str]:
    r = http.get(f"{sb.info['salesforce']}/services/data/v59.0/sobjects/{obj}/describe",
                 headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    return {f["name"] for f in r.json()["fields"]}


def test_metadata_api_creates_a_custom_field_describe_shows_once_granted(make_sandbox, sandbox_http) -> None:
    sb = make_sandbox(accounts=2, seed=9, fresh_org=True)
    http = sandbox_http(sb)
    emu = sb.emulators["salesforce"]
    token = emu.issue_token()
    url = f"{sb.info['salesforce']}/services/Soap/m/59.0"
    headers = {"Content-Type": "text/xml", "SOAPAction": '""'}
    assert "Revsync_Id__c" not in _describe_names(http, sb, token, "Contact")

    r = http.post(url, data=_soap(token, CREATE), headers=headers)
    assert r.status_code == 200 and "<success>true</success>" in r.text
    # created, but no field-level security yet: describe still hides it
    assert "Revsync_Id__c" not in _describe_names(http, sb, token, "Contact")
    read = _soap(token, "<met:readMetadata><met:type>CustomField</met:type>"
                        "<met:fullNames>Contact.Revsync_Id__c</met:fullNames>"
                        "<met:fullNames>Lead.Revsync_Id__c</met:fullNames></met:readMetadata>")
    r = http.post(url, data=read, headers=headers)
    assert "<fullName>Contact.Revsync_Id__c</fullName>" in r.text and "<unique>true</unique>" in r.text
    assert '<records xsi:type="CustomField"/>' in r.text  # Lead's does not exist: an empty record

    r = http.post(url, data=_soap(token, GRANT), headers=headers)
    assert "<created>false</created>" in r.text and "<success>true</success>" in r.text
    assert "Revsync_Id__c" in _describe_names(http, sb, token, "Contact")
    # the field now takes upserts
    up = http.patch(f"{sb.info['salesforce']}/services/data/v59.0/sobjects/Contact/Revsync_Id__c/"
                    "0b6f2c1e-9a4d-4c1b-8f0e-3d2a1b0c9e8f", json={"LastName": "Okafor"},
                    headers={"Authorization": f"Bearer {token}"})
    assert up.status_code == 201 and up.json()["created"] is True

    # creating it twice is a per-component error, not a fault
    r = http.post(url, data=_soap(token, CREATE), headers=headers)
    assert r.status_code == 200 and "DUPLICATE_DEVELOPER_NAME" in r.text and "<success>false</success>" in r.text
    r = http.post(url, data=_soap("00Dbad!token", CREATE), headers=headers)
    assert r.status_code == 500 and "INVALID_SESSION_ID" in r.text


def test_hubspot_property_create_then_id_property_and_token_info(make_sandbox, sandbox_http) -> None:
    sb = make_sandbox(accounts=2, seed=9, fresh_org=True)
    http = sandbox_http(sb)
    base = sb.info["hubspot"]
    auth = {"Authorization": f"Bearer {sb.info['credentials']['hubspot']['access_token']}"}
    upsert = {"inputs": [{"id": "6c1d7e52-0f4b-4d35-9c41-1b8e5f0a2d77", "idProperty": "revsync_id",
                          "properties": {"email": "amara.okafor@example.org"}}]}
    r = http.post(f"{base}/crm/v3/objects/contacts/batch/upsert", json=upsert, headers=auth)
    assert r.status_code == 400  # no such unique property yet
    names = {p["name"] for p in http.get(f"{base}/crm/v3/properties/contacts", headers=auth).json()["results"]}
    assert "revsync_id" not in names and "email" in names

    prop = {"name": "revsync_id", "label": "Revsync Id", "type": "string", "fieldType": "text",
            "groupName": "contactinformation", "hasUniqueValue": True}
    r = http.post(f"{base}/crm/v3/properties/contacts", json=prop, headers=auth)
    assert r.status_code == 201 and r.json()["hasUniqueValue"] is True
    again = http.post(f"{base}/crm/v3/properties/contacts", json=prop, headers=auth)
    assert again.status_code == 409 and again.json()["category"] == "OBJECT_ALREADY_EXISTS"
    listed = {p["name"]: p for p in http.get(f"{base}/crm/v3/properties/contacts", headers=auth).json()["results"]}
    assert listed["revsync_id"]["hasUniqueValue"] is True
    r = http.post(f"{base}/crm/v3/objects/contacts/batch/upsert", json=upsert, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["properties"]["revsync_id"] == "6c1d7e52-0f4b-4d35-9c41-1b8e5f0a2d77"

    # token info: unauthenticated, 404 for a token it never issued
    assert http.get(f"{base}/oauth/v1/access-tokens/CJTx-not-issued").status_code == 404
    creds = sb.info["credentials"]["hubspot"]
    tok = http.post(f"{base}/oauth/v1/token", data={
        "grant_type": "refresh_token", "client_id": creds["client_id"], "client_secret": creds["client_secret"],
        "refresh_token": creds["refresh_token"]}).json()["access_token"]
    info = http.get(f"{base}/oauth/v1/access-tokens/{tok}").json()
    assert "crm.objects.contacts.write" in info["scopes"] and info["token_type"] == "access"


@pytest.mark.parametrize(("claims", "reason"), [
    ({"aud": "https://evil.example.com"}, "audience"),
    ({"exp": int(time.time()) - 600}, "expired"),
    ({"exp": int(time.time()) + 3600}, "too far"),
])
def test_jwt_grant_refuses_bad_assertions(make_sandbox, sandbox_http, claims, reason) -> None:
    sb = make_sandbox(accounts=1, seed=9)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    creds = sb.info["credentials"]["salesforce"]
    register(sb.emulators["salesforce"], creds["client_id"], pub)
    good = {"iss": creds["client_id"], "sub": creds["username"], "aud": "https://login.salesforce.com",
            "exp": int(time.time()) + 120}
    url = f"{sb.info['salesforce']}/services/oauth2/token"
    http = sandbox_http(sb)
    ok = http.post(url, data={"grant_type": GRANT_TYPE, "assertion": jwt.encode(good, key, algorithm="RS256")})
    assert ok.status_code == 200 and ok.json()["access_token"]
    bad = http.post(url, data={"grant_type": GRANT_TYPE,
                               "assertion": jwt.encode({**good, **claims}, key, algorithm="RS256")})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert reason in bad.json()["error_description"]
