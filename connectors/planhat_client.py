"""A small Planhat REST client over ``requests.Session``.

One method per HTTP call; each call either returns the parsed body or raises one of
the connector error families (``connectors.base``), so the connector can wrap every
call in ``retrying`` and spend its API budget once per attempt. Docs:
https://docs.planhat.com (models, list paging, bulk upsert, keyables) and
https://www.planhat.com/developers/api/http-response-codes (status codes).
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.base import AuthError, FatalError, RetriableError, Unreachable, unreachable_cause

log = logging.getLogger(__name__)

# https://docs.planhat.com — default host; regional tenants use api-<region>.planhat.com.
DEFAULT_BASE_URL = "https://api.planhat.com"
DEFAULT_TIMEOUT = 60.0
# The per-item lists of a bulk upsert answer (200, 206, and 400 / 403 as well).
PER_ITEM_KEYS = ("createdErrors", "updatedErrors", "permissionErrors")


class PlanhatBadRequest(FatalError):
    """HTTP 400: a payload or key problem. ``body`` is the parsed error body."""

    def __init__(self, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.body = body


class PlanhatNotFound(FatalError):
    """HTTP 404 on a single-record call."""


class PlanhatForbidden(AuthError):
    """HTTP 403: the service account may not do this (a whole listing: the run's part
    ends; one record's write: that record fails with a permission error)."""


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _message(resp: requests.Response) -> str:
    """A short description of an error response (never the request's headers)."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    if isinstance(body, Mapping):
        text = body.get("error") or body.get("message") or json.dumps(body)[:200]
        return f"HTTP {resp.status_code}: {text}"
    return f"HTTP {resp.status_code}: {json.dumps(body)[:200]}"


class PlanhatClient:
    """Planhat's REST API: list pages, get, create, bulk upsert, delete.

    ``session`` may be injected (tests); otherwise one is made with ``verify`` set to
    ``ca_bundle`` (TLS verification is never turned off). The token is only ever put
    in the ``Authorization`` header and never appears in ``repr`` or errors.
    """

    def __init__(
        self,
        api_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        # Passed on every request too: a request-level ``verify`` is the only one that
        # REQUESTS_CA_BUNDLE in the environment cannot override.
        self.verify: str | bool = ca_bundle or True
        if ca_bundle:
            self.session.verify = ca_bundle
        self.session.headers["Authorization"] = f"Bearer {api_token}"
        self.session.headers.setdefault("Accept", "application/json")

    def __repr__(self) -> str:
        return f"PlanhatClient(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ transport

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
        per_item: bool = False,
    ) -> tuple[int, Any]:
        """One call → (status, parsed body); errors raised as connector error families.

        ``per_item`` (bulk upsert): a 400 or 403 whose body carries the per-item lists
        (``createdErrors`` / ``updatedErrors`` / ``permissionErrors``) is an answer,
        not an error: Planhat says 400 when every item failed and 403 when some items
        lacked permission (the others went through).
        https://www.planhat.com/developers/api/http-response-codes
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            resp = self.session.request(
                method, url, params=params, json=body, timeout=self.timeout,
                verify=self.verify if self.verify is not True else None,
            )
        except (requests.Timeout, requests.ConnectionError) as e:
            cause = unreachable_cause(e)
            if cause:  # refused / unknown host: deferred after a few tries
                raise Unreachable(f"planhat {method} {path}: {cause} ({self.base_url})") from None
            # ConnectTimeout/ReadTimeout/ConnectionError (incl. resets): try again later.
            raise RetriableError(f"planhat {method} {path}: {type(e).__name__}: {str(e)[:200]}") from None
        except OSError as e:  # e.g. a CA bundle that cannot be read
            raise FatalError(f"planhat {method} {path}: {e}") from None
        status = resp.status_code
        if status in (200, 201, 206):
            try:
                return status, resp.json()
            except ValueError:
                raise RetriableError(f"planhat {method} {path}: HTTP {status} with a body that is not JSON") from None
        if status == 204:
            return status, None
        if per_item and status in (400, 403):
            try:
                parsed = resp.json()
            except ValueError:
                parsed = None
            if isinstance(parsed, Mapping) and any(
                isinstance(parsed.get(k), list) for k in PER_ITEM_KEYS
            ):
                return status, parsed
        msg = f"planhat {method} {path}: {_message(resp)}"
        if status == 429 or status >= 500:
            raise RetriableError(msg, retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        if status == 401:
            # Service-account tokens never expire: a 401 means a wrong or revoked token.
            raise AuthError(msg)
        if status == 403:
            raise PlanhatForbidden(f"{msg} (the service account lacks permission)")
        if status == 404:
            raise PlanhatNotFound(msg)
        if status == 400:
            try:
                parsed = resp.json()
            except ValueError:
                parsed = None
            raise PlanhatBadRequest(msg, parsed)
        raise FatalError(msg)

    # ------------------------------------------------------------------ endpoints

    def list_page(
        self,
        model: str,
        *,
        offset: int,
        limit: int,
        sort: str | None = "_id",
        select: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One page of ``GET /{model}?limit&offset&sort&select`` (a JSON array)."""
        # https://docs.planhat.com/#get_companies (same paging for every model)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if sort:
            params["sort"] = sort
        if select:
            params["select"] = ",".join(select)
        _, body = self._request("GET", model, params=params)
        if not isinstance(body, list):
            raise FatalError(f"planhat GET {model}: expected a JSON array, got {type(body).__name__}")
        return body

    def get(self, model: str, key: str) -> dict[str, Any]:
        """``GET /{model}/{key}``; ``key`` may be ``extid-…`` / ``srcid-…``."""
        # https://docs.planhat.com/#get_company
        _, body = self._request("GET", f"{model}/{key}")
        return dict(body)

    def create(self, model: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{model}`` → the created document."""
        # https://docs.planhat.com/#create_company
        _, body = self._request("POST", model, body=dict(doc))
        return dict(body)

    def bulk_upsert(self, model: str, items: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
        """``PUT /{model}`` with a JSON array → (200, 206, 400 or 403, the upsert summary).

        400 (every item failed) and 403 (some items lacked permission) come back with
        the same summary as 206; any other 400 raises ``PlanhatBadRequest``."""
        # https://www.planhat.com/developers/api/bulk-upsert
        status, body = self._request("PUT", model, body=[dict(i) for i in items], per_item=True)
        if not isinstance(body, Mapping):
            raise FatalError(f"planhat PUT {model}: unexpected bulk response {json.dumps(body)[:200]}")
        return status, dict(body)

    def delete(self, model: str, key: str) -> dict[str, Any]:
        """``DELETE /{model}/{key}`` → ``{"n","ok","deletedCount"}``."""
        # https://docs.planhat.com/#delete_company
        _, body = self._request("DELETE", f"{model}/{key}")
        return dict(body or {})
