"""Shared helpers for the Salesforce recorded-API tests (no tests here).

Fixtures in ``tests/fixtures/salesforce/`` are raw API bodies in the documented
shapes; ``mock()`` replays them strictly and in order (every registered response
must be used, an unexpected request fails).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry
from simple_salesforce import Salesforce

from connectors.base import ApiBudget, RetryPolicy
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_auth import SalesforceAuth

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v59.0"
TOKEN_URL = "https://login.example.test/services/oauth2/token"
OLD_TOKEN = "00Dxx0000000001!ARstaleTOKEN"
NEW_TOKEN = "00Dxx0000000001!ARfreshTOKEN"
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)

# The Account fields the connector selects from describe_Account.json (compound
# BillingAddress left out), in describe order.
ACCOUNT_FIELDS = (
    "Id, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, MasterRecordId, Name, "
    "Website, Industry, NumberOfEmployees, AnnualRevenue, BillingCity, OwnerId, "
    "Revsync_Id__c, Health_Score__c"
)
CONTACT_FIELDS = (
    "Id, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, MasterRecordId, AccountId, "
    "FirstName, LastName, Email, Title, OwnerId, Revsync_Id__c"
)


def load(name: str) -> Any:
    """A fixture: parsed JSON for ``.json``, text otherwise."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


def mock() -> responses.RequestsMock:
    """Strict replay: in order, every response used, nothing unexpected."""
    return responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry)


def no_sleep(_: float) -> None:
    return None


def make_connector(
    *,
    budget: ApiBudget | None = None,
    retry: RetryPolicy | None = None,
    auth: SalesforceAuth | None = None,
    **kwargs: Any,
) -> SalesforceConnector:
    """A connector on a ready-made client (stale token), frozen clock, no waits."""
    client = Salesforce(
        instance_url=INSTANCE, session_id=OLD_TOKEN, version="59.0", session=requests.Session()
    )
    return SalesforceConnector(
        client,
        budget=budget or ApiBudget(),
        retry=retry or RetryPolicy(sleep=no_sleep),
        auth=auth,
        clock=lambda: NOW,
        bulk_poll_seconds=0,
        **kwargs,
    )


def make_auth(connection: str = "sf-prod") -> SalesforceAuth:
    return SalesforceAuth(
        token_url=TOKEN_URL,
        client_id="test-client-id",
        client_secret="test-client-secret",
        refresh_token="test-refresh-token",
        connection=connection,
    )


def add_describe(rsps: responses.RequestsMock, native: str) -> None:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    rsps.add(responses.GET, f"{API}/sobjects/{native}/describe", json=load(f"describe_{native}.json"))


def add_query(
    rsps: responses.RequestsMock,
    body: Any,
    soql: str | None = None,
    *,
    include_deleted: bool = False,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> None:
    """A query (or queryAll) page; with ``soql`` the exact statement must match."""
    url = f"{API}/{'queryAll' if include_deleted else 'query'}/"
    match = [matchers.query_param_matcher({"q": soql})] if soql is not None else []
    rsps.add(responses.GET, url, json=body, status=status, headers=headers, match=match)


def add_users(rsps: responses.RequestsMock) -> None:
    add_query(rsps, load("query_user.json"), "SELECT Id, Email FROM User")


def json_body(call: Any) -> Any:
    return json.loads(call.request.body)


Responder = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]
