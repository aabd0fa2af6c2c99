"""HubSpot connector error handling: rate limits, quotas, 5xx, resets, auth, scopes."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from urllib3.exceptions import ProtocolError

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    Cursor,
    FatalError,
    QuotaExhausted,
    RetryPolicy,
)
from connectors.hubspot import NO_URLLIB3_RETRY, HubSpotConnector, OAuthCredentials
from mapping.canonical import ObjectType
from tests.connectors.urllib3_replay import Replay

PROPS = r"/crm/v3/properties/companies"
LIST = r"/crm/v3/objects/companies"
OWNERS = r"/crm/v3/owners/?"


@pytest.fixture
def replay() -> Iterator[Replay]:
    r = Replay()
    yield r
    r.assert_done()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(replay: Replay, *, token: str | None = "test-token", **kw: Any) -> tuple[HubSpotConnector, Sleeps]:
    sleeps = Sleeps()
    conn = HubSpotConnector(replay.client(access_token=token), budget=ApiBudget(),
                            retry=RetryPolicy(sleep=sleeps), clock=lambda: 1000.0, **kw)
    return conn, sleeps


def test_given_429_ten_secondly_then_200_when_read_then_waits_the_window_and_returns_records(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, 429, "error_429_ten_secondly.json",
               {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "190",
                "X-HubSpot-RateLimit-Remaining": "0"})
    replay.add("GET", LIST, body="companies_list_single.json",
               headers={"X-HubSpot-RateLimit-Daily": "625000", "X-HubSpot-RateLimit-Daily-Remaining": "624000"})
    conn, sleeps = make(replay)

    recs = list(conn.read(ObjectType.ACCOUNT))

    assert [r.remote_id for r in recs] == ["9001"]
    assert sleeps == [10.0]  # no Retry-After: wait for the 10 s window
    assert conn.budget.calls("hubspot") == 3
    assert conn.budget.snapshot()["hubspot"]["remaining"] == 624000


def test_given_429_with_retry_after_when_read_then_honours_it(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, 429, "error_429_ten_secondly.json", {"Retry-After": "3"})
    replay.add("GET", LIST, body="companies_list_single.json")
    conn, sleeps = make(replay)

    assert len(list(conn.read(ObjectType.ACCOUNT))) == 1
    assert sleeps == [3.0]


def test_given_429_daily_when_read_then_quota_exhausted_without_retry(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, 429, "error_429_daily.json")
    conn, sleeps = make(replay)

    with pytest.raises(QuotaExhausted, match="daily"):
        list(conn.read(ObjectType.ACCOUNT))
    assert sleeps == []
    assert conn.budget.calls("hubspot") == 2


def test_given_500_then_200_when_read_then_returns_records(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, 500, "error_500.json")
    replay.add("GET", LIST, body="companies_list_single.json")
    conn, sleeps = make(replay)

    assert [r.remote_id for r in conn.read(ObjectType.ACCOUNT)] == ["9001"]
    assert len(sleeps) == 1


def test_given_connection_reset_then_200_when_read_then_returns_records(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, raises=ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))
    replay.add("GET", LIST, body="companies_list_single.json")
    conn, _ = make(replay)

    assert [r.remote_id for r in conn.read(ObjectType.ACCOUNT)] == ["9001"]


def test_given_500_every_time_when_read_then_stops_after_the_policy_attempts(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    for _ in range(3):
        replay.add("GET", LIST, 503, "error_500.json")
    sleeps = Sleeps()
    conn = HubSpotConnector(replay.client(), budget=ApiBudget(), retry=RetryPolicy(attempts=3, sleep=sleeps))

    with pytest.raises(Exception, match="HTTP 503"):
        list(conn.read(ObjectType.ACCOUNT))
    assert len(sleeps) == 2


def test_given_expired_oauth_token_when_read_then_refreshes_once_and_retries(replay: Replay) -> None:
    replay.add("GET", PROPS, 401, "error_401_expired.json")
    replay.add("POST", r"/oauth/v1/token", body="oauth_token_refreshed.json")
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, body="companies_list_single.json")
    creds = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rtoken")
    conn, _ = make(replay, token="stale-token", oauth=creds)

    assert [r.remote_id for r in conn.read(ObjectType.ACCOUNT)] == ["9001"]
    token_req = replay.requests[1]
    assert token_req.body == {"grant_type": "refresh_token", "client_id": "cid",
                              "client_secret": "csecret", "refresh_token": "rtoken"}
    assert replay.requests[0].headers["Authorization"] == "Bearer stale-token"
    assert replay.requests[2].headers["Authorization"] == "Bearer fresh-access-token"
    assert replay.requests[3].headers["Authorization"] == "Bearer fresh-access-token"
    assert "csecret" not in repr(creds) and "rtoken" not in repr(creds)


def test_given_oauth_without_access_token_when_first_call_then_refreshes_first(replay: Replay) -> None:
    replay.add("POST", r"/oauth/v1/token", body="oauth_token_refreshed.json")
    replay.add("GET", OWNERS, body="owners_p1.json")
    creds = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rtoken")
    conn, _ = make(replay, token=None, oauth=creds)

    assert conn.check()["ok"] is True
    assert replay.requests[1].headers["Authorization"] == "Bearer fresh-access-token"


def test_given_private_app_token_rejected_when_read_then_auth_error(replay: Replay) -> None:
    replay.add("GET", PROPS, 401, "error_401_expired.json")
    conn, _ = make(replay)

    with pytest.raises(AuthError):
        list(conn.read(ObjectType.ACCOUNT))


def test_given_401_after_refresh_when_read_then_auth_error(replay: Replay) -> None:
    replay.add("GET", PROPS, 401, "error_401_expired.json")
    replay.add("POST", r"/oauth/v1/token", body="oauth_token_refreshed.json")
    replay.add("GET", PROPS, 401, "error_401_expired.json")
    creds = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rtoken")
    conn, _ = make(replay, token="stale-token", oauth=creds)

    with pytest.raises(AuthError, match="after an OAuth refresh"):
        list(conn.read(ObjectType.ACCOUNT))


def test_given_bad_refresh_token_when_refreshing_then_auth_error_without_secrets(replay: Replay) -> None:
    replay.add("GET", PROPS, 401, "error_401_expired.json")
    replay.add("POST", r"/oauth/v1/token", 400,
               {"error": "invalid_grant", "error_description": "refresh token is invalid, expired or revoked",
                "status": "BAD_REFRESH_TOKEN", "message": "refresh token is invalid, expired or revoked"})
    creds = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rtoken")
    conn, _ = make(replay, token="stale-token", oauth=creds)

    with pytest.raises(AuthError, match="invalid_grant") as info:
        list(conn.read(ObjectType.ACCOUNT))
    assert "csecret" not in str(info.value) and "rtoken" not in str(info.value)


def test_given_missing_scopes_403_when_read_then_auth_error(replay: Replay) -> None:
    """A 403 (the token lacks a scope) ends HubSpot's part of the run like a 401."""
    replay.add("GET", PROPS, 403, "error_403_missing_scopes.json")
    conn, sleeps = make(replay)

    with pytest.raises(AuthError, match="MISSING_SCOPES"):
        list(conn.read(ObjectType.ACCOUNT))
    assert sleeps == []


# ---------------------------------------------------------------- the real client, real sockets


class _Server(http.server.ThreadingHTTPServer):
    script: list[tuple[int, dict[str, str], dict[str, Any]]]
    seen: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        status, headers, body = self.server.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.script, srv.seen = [], []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_urllib3_retries_are_off_so_each_attempt_is_one_request(local_server: _Server) -> None:
    rate = {"status": "error", "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
    # urllib3's default Retry would silently repeat a 429 carrying Retry-After (3 more times)
    local_server.script = [(429, {"Retry-After": "0"}, rate), (200, {}, {"results": []})]
    host, port = local_server.server_address[:2]
    settings = ConnectionSettings(
        name="hs", kind="hubspot", options={"host": f"http://{host!s}:{port}", "timeout": 5},
        secrets={"access_token": "pat-test"})
    sleeps = Sleeps()
    conn = HubSpotConnector.from_settings(settings, budget=ApiBudget(), retry=RetryPolicy(sleep=sleeps))

    assert conn.check()["ok"] is True
    assert len(local_server.seen) == 2  # our one retry, nothing stacked underneath
    assert sleeps == [0.0]
    assert NO_URLLIB3_RETRY.total == 0


def test_from_settings_requires_a_token() -> None:
    settings = ConnectionSettings(name="hs", kind="hubspot", options={}, secrets={})
    with pytest.raises(FatalError, match="access_token"):
        HubSpotConnector.from_settings(settings, budget=ApiBudget())


def test_given_token_near_expiry_when_calling_then_refreshes_before_the_call(replay: Replay) -> None:
    replay.add("POST", r"/oauth/v1/token", body="oauth_token_refreshed.json")
    replay.add("GET", OWNERS, body="owners_p1.json")
    replay.add("GET", OWNERS, body="owners_p1.json")
    replay.add("POST", r"/oauth/v1/token", body="oauth_token_refreshed.json")
    replay.add("GET", OWNERS, body="owners_p1.json")
    now = [1000.0]
    creds = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rtoken")
    conn = HubSpotConnector(replay.client(access_token=None), budget=ApiBudget(),
                            retry=RetryPolicy(sleep=lambda s: None), oauth=creds, clock=lambda: now[0])

    conn.check()
    now[0] += 1000  # 800 s left of 1800: no refresh yet
    conn.check()
    now[0] += 750  # 50 s left: inside the early-refresh margin
    conn.check()

    assert [q.path for q in replay.requests] == [
        "/oauth/v1/token", "/crm/v3/owners/", "/crm/v3/owners/", "/oauth/v1/token", "/crm/v3/owners/"]


def test_given_search_429_secondly_without_retry_after_when_reading_then_waits_one_second(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("POST", r"/crm/v3/objects/companies/search", 429,
               {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                "correlationId": "c7f4a3e2-0000-4000-8000-000000000009", "policyName": "SECONDLY"})
    replay.add("POST", r"/crm/v3/objects/companies/search", body={"total": 0, "results": []})
    conn, sleeps = make(replay)

    assert list(conn.read(ObjectType.ACCOUNT, since=Cursor(datetime(2024, 1, 1, tzinfo=UTC)))) == []
    assert sleeps == [1.0, pytest.approx(0.2)]  # the 1 s window, then the search pacing (frozen clock)


def test_given_search_rejected_with_400_when_reading_then_fatal(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("POST", r"/crm/v3/objects/companies/search", 400,
               {"status": "error", "message": "There was a problem with the request.", "category": "VALIDATION_ERROR",
                "correlationId": "c7f4a3e2-0000-4000-8000-00000000000a"})
    conn, sleeps = make(replay)

    with pytest.raises(FatalError, match="VALIDATION_ERROR"):
        list(conn.read(ObjectType.ACCOUNT, since=Cursor(datetime(2024, 1, 1, tzinfo=UTC))))
    assert sleeps == []


def test_given_500_with_limit_headers_when_read_then_backs_off_instead_of_waiting_the_window(replay: Replay) -> None:
    replay.add("GET", PROPS, body="properties_companies.json")
    replay.add("GET", LIST, 500, "error_500.json", {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    replay.add("GET", LIST, body="companies_list_single.json")
    conn, sleeps = make(replay)

    assert len(list(conn.read(ObjectType.ACCOUNT))) == 1
    assert len(sleeps) == 1 and sleeps[0] < 1.0  # jittered backoff (base 0.5 s), not 10 s
