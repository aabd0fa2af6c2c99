"""Salesforce connector: retries, error families, token refresh, budget, from_settings."""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    FatalError,
    OpKind,
    QuotaExhausted,
    RetryPolicy,
    WriteOp,
    load_connector_class,
)
from connectors.salesforce import SalesforceConnector
from mapping.canonical import ObjectType
from tests.connectors.test_salesforce_support import (
    API,
    INSTANCE,
    NEW_TOKEN,
    OLD_TOKEN,
    TOKEN_URL,
    add_describe,
    add_query,
    load,
    make_auth,
    make_connector,
    mock,
    no_sleep,
)

IDS_SOQL = "SELECT Id FROM Account ORDER BY Id"


def test_given_500_then_200_when_read_then_returns_records() -> None:
    conn = make_connector()
    with mock() as rsps:
        add_query(rsps, load("error_server.json"), IDS_SOQL, status=500)
        add_query(rsps, load("query_account_ids.json"), IDS_SOQL)
        ids = list(conn.list_ids(ObjectType.ACCOUNT))
    assert ids == ["0015g00000Acc001AAA", "0015g00000Acc002AAA"]


def test_given_tls_failure_when_read_then_fatal_error_without_retry() -> None:
    conn = make_connector()
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/query/", body=requests.exceptions.SSLError("certificate verify failed"))
        with pytest.raises(FatalError, match="ca_bundle"):
            list(conn.list_ids(ObjectType.ACCOUNT))


def test_given_tls_eof_from_a_reset_then_200_when_read_then_retried() -> None:
    conn = make_connector(retry=RetryPolicy(sleep=lambda s: None))
    with mock() as rsps:
        eof = requests.exceptions.SSLError("EOF occurred in violation of protocol (_ssl.c:2427)")
        rsps.add(responses.GET, f"{API}/query/", body=eof)
        add_query(rsps, load("query_account_ids.json"), IDS_SOQL)
        assert len(list(conn.list_ids(ObjectType.ACCOUNT))) == 2


def test_given_503_with_retry_after_then_200_when_read_then_waits_as_told() -> None:
    sleeps: list[float] = []
    conn = make_connector(retry=RetryPolicy(sleep=sleeps.append))
    with mock() as rsps:
        add_query(rsps, load("error_server.json"), IDS_SOQL, status=503, headers={"Retry-After": "7"})
        add_query(rsps, load("query_account_ids.json"), IDS_SOQL)
        ids = list(conn.list_ids(ObjectType.ACCOUNT))
    assert len(ids) == 2
    assert sleeps == [7.0]


def test_given_unable_to_lock_row_then_success_when_write_then_call_retried() -> None:
    conn = make_connector()
    op = WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, key="k1", remote_id="0015g00000Acc001AAA",
                 fields={"Name": "Acme"})
    with mock() as rsps:
        add_describe(rsps, "Account")
        rsps.add(responses.PATCH, f"{API}/composite/sobjects", status=400,
                 json=load("error_unable_to_lock.json"))
        rsps.add(responses.PATCH, f"{API}/composite/sobjects",
                 json=[{"id": "0015g00000Acc001AAA", "success": True, "errors": []}])
        results = conn.write(ObjectType.ACCOUNT, [op])
    assert results[0].success and results[0].remote_id == "0015g00000Acc001AAA"


def test_given_expired_token_when_call_then_refreshes_once_and_succeeds() -> None:
    conn = make_connector(auth=make_auth())
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/limits/", status=401, json=load("error_invalid_session.json"),
                 match=[matchers.header_matcher({"Authorization": f"Bearer {OLD_TOKEN}"})])
        rsps.add(responses.POST, TOKEN_URL, json=load("token.json"),
                 match=[matchers.urlencoded_params_matcher({
                     "grant_type": "refresh_token", "client_id": "test-client-id",
                     "client_secret": "test-client-secret", "refresh_token": "test-refresh-token"})])
        rsps.add(responses.GET, f"{API}/limits/", json=load("limits.json"),
                 match=[matchers.header_matcher({"Authorization": f"Bearer {NEW_TOKEN}"})])
        facts = conn.check()
    assert facts["daily_api_max"] == 15000
    assert conn.client.session_id == NEW_TOKEN


def test_given_rotated_refresh_token_when_refreshed_twice_then_new_refresh_token_used() -> None:
    conn = make_connector(auth=make_auth())
    rotated = {**load("token.json"), "refresh_token": "rotated-refresh-token"}
    form = {"grant_type": "refresh_token", "client_id": "test-client-id",
            "client_secret": "test-client-secret"}
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/limits/", status=401, json=load("error_invalid_session.json"))
        rsps.add(responses.POST, TOKEN_URL, json=rotated, match=[matchers.urlencoded_params_matcher(
            {**form, "refresh_token": "test-refresh-token"})])
        rsps.add(responses.GET, f"{API}/limits/", json=load("limits.json"))
        rsps.add(responses.GET, f"{API}/limits/", status=401, json=load("error_invalid_session.json"))
        rsps.add(responses.POST, TOKEN_URL, json=load("token.json"), match=[
            matchers.urlencoded_params_matcher({**form, "refresh_token": "rotated-refresh-token"})])
        rsps.add(responses.GET, f"{API}/limits/", json=load("limits.json"))
        conn.check()
        conn.check()


def test_given_invalid_grant_when_refresh_then_auth_error_names_connection() -> None:
    conn = make_connector(auth=make_auth("sf-prod"))
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/limits/", status=401, json=load("error_invalid_session.json"))
        rsps.add(responses.POST, TOKEN_URL, status=400, json=load("token_invalid_grant.json"))
        with pytest.raises(AuthError) as err:
            conn.check()
    message = str(err.value)
    assert "sf-prod" in message and "invalid_grant" in message
    assert "test-refresh-token" not in message and "test-client-secret" not in message


def test_given_expired_session_without_credentials_when_call_then_auth_error() -> None:
    conn = make_connector()
    with mock() as rsps:
        rsps.add(responses.GET, f"{API}/limits/", status=401, json=load("error_invalid_session.json"))
        with pytest.raises(AuthError, match="no credentials"):
            conn.check()


def test_given_request_limit_exceeded_when_read_then_quota_exhausted_without_retry() -> None:
    conn = make_connector()
    with mock() as rsps:  # one response only: a retry would find nothing and fail differently
        add_query(rsps, load("error_request_limit.json"), IDS_SOQL, status=403)
        with pytest.raises(QuotaExhausted, match="request limit"):
            list(conn.list_ids(ObjectType.ACCOUNT))


def test_given_sforce_limit_info_when_calls_then_budget_counts_and_observes() -> None:
    budget = ApiBudget()
    conn = make_connector(budget=budget)
    with mock() as rsps:
        add_query(rsps, load("error_server.json"), IDS_SOQL, status=500,
                  headers={"Sforce-Limit-Info": "api-usage=17/15000"})
        add_query(rsps, load("query_account_ids.json"), IDS_SOQL,
                  headers={"Sforce-Limit-Info": "api-usage=18/15000; api-bursts=1/750"})
        list(conn.list_ids(ObjectType.ACCOUNT))
    assert budget.snapshot()["salesforce"] == {
        "calls": 2, "limit": 15000, "remaining": 14982, "window": "daily",
    }


def test_given_budget_cap_reached_when_next_call_then_quota_exhausted_before_sending() -> None:
    conn = make_connector(budget=ApiBudget(max_calls={"salesforce": 1}))
    with mock() as rsps:
        add_query(rsps, load("query_account_ids.json"), IDS_SOQL)
        assert len(list(conn.list_ids(ObjectType.ACCOUNT))) == 2
        with pytest.raises(QuotaExhausted):
            conn.check()  # nothing registered: the call must not be sent


def _settings(**options: object) -> ConnectionSettings:
    return ConnectionSettings(
        name="sf-prod",
        kind="salesforce",
        options={"token_url": TOKEN_URL, "api_version": "59.0", "bulk_threshold": 500, **options},
        secrets={"client_id": "test-client-id", "client_secret": "test-client-secret",
                 "refresh_token": "test-refresh-token"},
    )


def test_given_refresh_token_settings_when_from_settings_then_client_on_token_instance(
    tmp_path: object,
) -> None:
    budget = ApiBudget()
    with mock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, json=load("token.json"))
        rsps.add(responses.GET, f"{API}/limits/", json=load("limits.json"),
                 match=[matchers.header_matcher({"Authorization": f"Bearer {NEW_TOKEN}"})])
        conn = SalesforceConnector.from_settings(
            _settings(ca_bundle="ca.pem"), budget=budget, retry=RetryPolicy(sleep=no_sleep)
        )
        facts = conn.check()
    assert isinstance(conn, SalesforceConnector)
    assert facts["instance"] == INSTANCE.removeprefix("https://")
    assert conn.bulk_threshold == 500
    assert conn.client.session.verify == "ca.pem"
    assert budget.calls("salesforce") == 2
    assert "test-refresh-token" not in repr(conn.auth) and "test-client-secret" not in repr(conn.auth)


def test_given_revoked_refresh_token_when_from_settings_then_auth_error() -> None:
    with mock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, status=400, json=load("token_invalid_grant.json"))
        with pytest.raises(AuthError, match="sf-prod"):
            SalesforceConnector.from_settings(_settings(), budget=ApiBudget(),
                                              retry=RetryPolicy(sleep=no_sleep))


def test_given_entry_point_when_loaded_then_salesforce_connector() -> None:
    assert load_connector_class("salesforce") is SalesforceConnector


def test_given_403_api_disabled_when_read_then_auth_error_without_retry() -> None:
    conn = make_connector()
    with mock() as rsps:  # one response only: no retry
        add_query(rsps, load("error_api_disabled.json"), IDS_SOQL, status=403)
        with pytest.raises(AuthError, match="API_DISABLED_FOR_ORG"):
            list(conn.list_ids(ObjectType.ACCOUNT))
