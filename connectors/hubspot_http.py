"""HubSpot plumbing: the call transport, error translation, limit headers, times.

hubspot-api-client 12 raises one ``ApiException(status, reason, body, headers)`` family
per generated package (``hubspot.crm.contacts``, ``hubspot.crm.associations.v4``, …),
so errors are recognised by duck typing (``status`` + ``body`` + ``headers``) rather
than by class. urllib3 errors (timeouts, resets, ``MaxRetryError`` because the client's
own retries are off) are retriable, except a failed certificate check, which is fatal.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectorError,
    ErrorCategory,
    FatalError,
    QuotaExhausted,
    RecordError,
    RetriableError,
    RetryPolicy,
    Unreachable,
    retrying,
    unreachable_cause,
)

log = logging.getLogger(__name__)

SYSTEM = "hubspot"

# Rate-limit headers and 429 policies:
# https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
H_DAILY = "X-HubSpot-RateLimit-Daily"
H_DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"
H_MAX = "X-HubSpot-RateLimit-Max"
H_REMAINING = "X-HubSpot-RateLimit-Remaining"
H_INTERVAL_MS = "X-HubSpot-RateLimit-Interval-Milliseconds"
#: how long a burst window lasts when the response does not say
POLICY_WINDOW_S: Mapping[str, float] = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}
DAILY_POLICIES = frozenset({"DAILY"})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)", re.IGNORECASE)
_PROP_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


class TokenExpired(AuthError):
    """A 401: the access token is invalid or expired (OAuth connections refresh once)."""


class BatchRejected(FatalError):
    """A call refused as a whole (400/404/409/413/422). Writes split the batch to find
    the bad record; anywhere else it is what it derives from, a ``FatalError``."""

    def __init__(self, message: str, *, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What a HubSpot error body says."""

    status: int
    category: str = ""
    policy: str = ""
    message: str = ""
    body: Mapping[str, Any] | None = None


def parse_body(raw: Any) -> dict[str, Any]:
    """A JSON error/response body as a dict (``{}`` when it is not JSON)."""
    if raw is None:
        return {}
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup on an HTTPHeaderDict or a plain mapping."""
    if not headers:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is not None:
        return str(value)
    lname = name.lower()
    for k, v in headers.items():
        if str(k).lower() == lname:
            return str(v)
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def observe_headers(budget: ApiBudget, headers: Any) -> None:
    """Report the limit headers a response carries to the shared budget."""
    daily_left = _int(header(headers, H_DAILY_REMAINING))
    if daily_left is not None:
        budget.observe(SYSTEM, limit=_int(header(headers, H_DAILY)), remaining=daily_left)
        return
    burst_left = _int(header(headers, H_REMAINING))
    if burst_left is not None:
        budget.observe(
            SYSTEM, limit=_int(header(headers, H_MAX)), remaining=burst_left, window="ten_secondly"
        )


def error_info(exc: Any) -> ErrorInfo:
    """Status, category, policy name and message of an SDK ``ApiException``."""
    body = parse_body(getattr(exc, "body", None))
    return ErrorInfo(
        status=int(getattr(exc, "status", 0) or 0),
        category=str(body.get("category") or body.get("errorType") or ""),
        policy=str(body.get("policyName") or ""),
        message=str(body.get("message") or getattr(exc, "reason", "") or ""),
        body=body,
    )


def is_api_exception(exc: BaseException) -> bool:
    """True for any generated package's ``ApiException`` (they share no base class)."""
    return type(exc).__name__.endswith("Exception") and hasattr(exc, "status") and hasattr(
        exc, "body"
    )


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (None when absent or not a number)."""
    ra = header(headers, "Retry-After")
    if ra is None:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        return None


def rate_limit_wait(policy: str, headers: Any) -> float | None:
    """How long to wait after a burst 429: ``Retry-After``, else the policy's window,
    else the window the headers announce (``X-HubSpot-RateLimit-Interval-Milliseconds``)."""
    wait = retry_after(headers)
    if wait is None:
        wait = POLICY_WINDOW_S.get(policy)
    if wait is None:
        interval = _int(header(headers, H_INTERVAL_MS))
        wait = interval / 1000.0 if interval is not None else None
    return wait


def translate(exc: BaseException, what: str) -> ConnectorError:
    """Map a client exception to the connector error families (never leaks secrets)."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, urllib3.exceptions.HTTPError):
        reason = getattr(exc, "reason", None) or exc
        text = f"{type(reason).__name__}: {reason}"
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return FatalError(f"{what}: TLS certificate check failed ({type(reason).__name__})")
        cause = unreachable_cause(exc)
        if cause:
            return Unreachable(f"{what}: {cause}")
        return RetriableError(f"{what}: network error ({type(reason).__name__})")
    if not is_api_exception(exc):
        return FatalError(f"{what}: unexpected {type(exc).__name__}: {exc}")
    info = error_info(exc)
    headers = getattr(exc, "headers", None)
    label = f"{what}: HTTP {info.status} {info.category or ''} {info.message}".strip()
    if info.status == 0:
        reason = str(getattr(exc, "reason", ""))
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            return FatalError(f"{what}: TLS certificate check failed")
        return RetriableError(f"{what}: transport error")
    if info.status == 429:
        if info.policy in DAILY_POLICIES:
            return QuotaExhausted(f"{what}: HubSpot daily API limit reached ({info.message})")
        return RetriableError(label, retry_after=rate_limit_wait(info.policy, headers))
    if info.status >= 500 or info.status == 408:
        return RetriableError(label, retry_after=retry_after(headers))
    if info.status == 401:
        return TokenExpired(label)
    if info.status == 403:
        # MISSING_SCOPES and the like: the token may not do this (ends HubSpot's part)
        return AuthError(label)
    if info.status in (400, 404, 409, 413, 422):
        return BatchRejected(label, status=info.status, body=info.body or {})
    return FatalError(label)


# --------------------------------------------------------------------------- record errors

_CATEGORIES: Mapping[str, ErrorCategory] = {
    "VALIDATION_ERROR": ErrorCategory.VALIDATION,
    "CONFLICT": ErrorCategory.DUPLICATE,
    "OBJECT_NOT_FOUND": ErrorCategory.NOT_FOUND,
    "MISSING_SCOPES": ErrorCategory.PERMISSION,
    "RATE_LIMITS": ErrorCategory.RATE_LIMIT,
    "RATE_LIMIT": ErrorCategory.RATE_LIMIT,
}


def existing_id(message: str) -> str | None:
    """The id in "Contact already exists. Existing ID: N", if any."""
    m = _EXISTING_ID.search(message or "")
    return m.group(1) if m else None


def error_field(err: Mapping[str, Any]) -> str | None:
    """The property an error is about (``errors[].context.propertyName``, or the message)."""
    details = err.get("errors") or []
    for d in details:
        ctx = d.get("context") or {} if isinstance(d, Mapping) else {}
        names = ctx.get("propertyName") if isinstance(ctx, Mapping) else None
        if names:
            return str(names[0] if isinstance(names, list) else names)
        if isinstance(d, Mapping) and d.get("name"):
            return str(d["name"])
    ctx = err.get("context") or {}
    if isinstance(ctx, Mapping) and ctx.get("propertyName"):
        names = ctx["propertyName"]
        return str(names[0] if isinstance(names, list) else names)
    m = _PROP_NAME.search(str(err.get("message") or ""))
    return m.group(1) if m else None


def record_error(err: Mapping[str, Any], *, remote_id: str | None = None) -> RecordError:
    """One batch ``errors[]`` entry (or a whole error body) as a ``RecordError``."""
    category = _CATEGORIES.get(str(err.get("category") or ""), ErrorCategory.UNKNOWN)
    message = str(err.get("message") or err.get("category") or "HubSpot rejected the record")
    code = " ".join(
        str(d.get("code")) for d in err.get("errors") or [] if isinstance(d, Mapping) and d.get("code")
    )
    if "too long" in message.lower() or "TOO_LONG" in code:
        category = ErrorCategory.TOO_LONG
    return RecordError(message, category=category, remote_id=remote_id, field=error_field(err))


# --------------------------------------------------------------------------- times


def parse_time(value: Any) -> datetime | None:
    """A HubSpot instant (ISO-8601 or epoch-ms string) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware (or UTC-naive) datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------- transport

#: urllib3 retries OFF: with the urllib3 default (3) a 429 carrying Retry-After and a
#: connection reset are silently repeated under our own retry layer. ``Retry(0)`` and
#: ``False`` both disable them (tested against a local server).
NO_URLLIB3_RETRY = Retry(total=0, redirect=0)
# OAuth access tokens live 1800 s (``expires_in``); refresh a minute early.
# https://developers.hubspot.com/docs/api/oauth/tokens
TOKEN_EARLY_REFRESH_S = 60.0
TOKEN_DEFAULT_TTL_S = 1800.0


@dataclass(frozen=True)
class OAuthCredentials:
    """OAuth app credentials; ``repr`` never shows them."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


class Transport:
    """The HubSpot client plus everything around one call: API objects built once,
    budget, the single retry layer, error translation, limit headers, OAuth refresh,
    pacing. Every call asks for the raw response (``_preload_content=False``)."""

    def __init__(
        self,
        client: HubSpot,
        *,
        budget: ApiBudget,
        retry: RetryPolicy,
        timeout: float | None,
        oauth: OAuthCredentials | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.budget = budget
        self.retry = retry
        self.timeout = timeout
        self.oauth = oauth
        self.clock = clock
        self._apis: dict[str, Any] = {}
        self._paced_at: dict[str, float] = {}
        self._token_expires: float | None = None if client.access_token else float("-inf")

    def api(self, key: str) -> Any:
        """The generated API object for ``key`` (built once: each build is a new pool)."""
        api = self._apis.get(key)
        if api is None:
            kind, _, obj = key.partition(":")
            crm = self.client.crm
            if kind == "basic":
                api = getattr(crm, obj).basic_api
            elif kind == "batch":
                api = getattr(crm, obj).batch_api
            elif kind == "search":
                api = getattr(crm, obj).search_api
            elif kind == "properties":
                api = crm.properties.core_api
            elif kind == "owners":
                api = crm.owners.owners_api
            elif kind == "assoc":
                api = crm.associations.v4.batch_api
            elif kind == "oauth":
                api = self.client.oauth.tokens_api
            else:  # pragma: no cover - programming error
                raise KeyError(key)
            self._apis[key] = api
        return api

    def pace(self, lane: str, interval: float) -> None:
        """Wait so that calls in ``lane`` are at least ``interval`` seconds apart."""
        last = self._paced_at.get(lane)
        if last is not None:
            wait = last + interval - self.clock()
            if wait > 0:
                self.retry.sleep(wait)
        self._paced_at[lane] = self.clock()

    def call(self, what: str, fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
        """One API call through the retry layer: (status, parsed JSON body).

        A 401 refreshes an OAuth token once and repeats the call; otherwise AuthError.
        """
        self._ensure_token()
        attempt = partial(self._attempt, what, fn)
        try:
            return retrying(attempt, policy=self.retry, what=what)
        except TokenExpired as exc:
            if self.oauth is None:
                raise AuthError(f"{what}: HubSpot rejected the access token (401)") from exc
        self.refresh_token()
        try:
            return retrying(attempt, policy=self.retry, what=what)
        except TokenExpired as exc:
            raise AuthError(f"{what}: still unauthorised after an OAuth refresh") from exc

    def _attempt(self, what: str, fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
        self.budget.spend(SYSTEM)
        try:
            resp = fn()
        except Exception as exc:
            raise translate(exc, what) from exc
        observe_headers(self.budget, getattr(resp, "headers", None))
        return int(resp.status), parse_body(resp.data)

    def _ensure_token(self) -> None:
        if self.oauth is None or self._token_expires is None:
            return
        if self.clock() >= self._token_expires - TOKEN_EARLY_REFRESH_S:
            self.refresh_token()

    def refresh_token(self) -> None:
        """POST /oauth/v1/token (grant_type=refresh_token); update every API object.

        https://developers.hubspot.com/docs/api/oauth/tokens
        """
        creds = self.oauth
        if creds is None:
            raise AuthError("HubSpot access token rejected and no OAuth refresh token is set")
        api = self.api("oauth")

        def attempt() -> dict[str, Any]:
            self.budget.spend(SYSTEM)
            try:
                resp = api.create(
                    grant_type="refresh_token",
                    client_id=creds.client_id,
                    client_secret=creds.client_secret,
                    refresh_token=creds.refresh_token,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            except Exception as exc:
                err = translate(exc, "oauth token refresh")
                if isinstance(err, BatchRejected):
                    raise AuthError(f"HubSpot OAuth refresh failed: {err.body.get('error')}") from None
                if isinstance(err, TokenExpired):
                    raise AuthError("HubSpot OAuth refresh failed: 401") from None
                raise err from None
            return parse_body(resp.data)

        body = retrying(attempt, policy=self.retry, what="oauth token refresh")
        token = body.get("access_token")
        if not token:
            raise AuthError("HubSpot OAuth refresh returned no access token")
        if body.get("refresh_token") and body["refresh_token"] != creds.refresh_token:
            self.oauth = dataclasses.replace(creds, refresh_token=str(body["refresh_token"]))
        self._token_expires = self.clock() + float(body.get("expires_in") or TOKEN_DEFAULT_TTL_S)
        self.client.access_token = token
        for api_obj in self._apis.values():
            api_obj.api_client.configuration.access_token = token
        log.info("hubspot: OAuth access token refreshed")
