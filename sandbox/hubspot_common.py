"""Shared pieces of the HubSpot emulator: limits, error bodies and paging cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from sandbox.core import Clock, RateWindow, json_response
from sandbox.hubspot_store import StoreError

# https://developers.hubspot.com/docs/api/crm/contacts : list limit defaults to 10, max 100.
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100  # over 100 is capped silently [verify]: the spec sets no maximum.
# "Batch operations are limited to 100 records at a time" (contacts guide, Limits).
BATCH_MAX = 100
# Batch read with propertiesWithHistory: ≤50 inputs, else 400 (quoted in activepieces#9359).
BATCH_HISTORY_MAX = 50
# https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api
ASSOC_READ_MAX = 1000
ASSOC_WRITE_MAX = 100  # [verify]: the v4 write limit is not stated; we use the CRM batch size.
ASSOC_PAGE = 500
# https://developers.hubspot.com/docs/api/crm/owners : limit defaults to 100, max 500.
OWNERS_LIMIT_DEFAULT = 100
OWNERS_LIMIT_MAX = 500
# https://developers.hubspot.com/changelog/upcoming-expiration-of-oauth-access-tokens-is-changing
OAUTH_EXPIRES_IN = 1800
# https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
# (tier → burst per 10 s, daily); the Search API has its own 5 req/s per account.
RATE_TIERS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "pro": (190, 625_000),
    "enterprise": (190, 1_000_000),
}
BURST_SECONDS = 10.0
SEARCH_PER_SECOND = 5
# OAuth (public) apps: 110 per 10 s per installing account, no daily cap, search excluded.
OAUTH_APP_BURST = 110
DAY_SECONDS = 86_400
PRIMARY = "Primary"


def error_response(
    status: int,
    category: str,
    message: str,
    *,
    context: Mapping[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    sub_category: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """HubSpot's standard error body (``status``, ``message``, ``correlationId``, ``category``)."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if sub_category:
        body["subCategory"] = sub_category
    if context:
        body["context"] = dict(context)
    if errors:
        body["errors"] = errors
    return json_response(body, status, headers)


def item_error(
    category: str,
    message: str,
    context: Mapping[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One ``errors[]`` entry of a 207 (the SDK's StandardError needs every key here)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": dict(context or {}),
        "links": {},
        "errors": errors or [],
    }


def no_duplicates(inputs: list[Any]) -> None:
    keys = [str((i or {}).get("id", "")) for i in inputs]
    dupes = sorted({k for k in keys if keys.count(k) > 1 and k})
    if dupes:
        raise StoreError(
            400,
            "VALIDATION_ERROR",
            f"Duplicate IDs found in batch input: {dupes}. IDs must be unique",
        )


def encode_after(value: int) -> str:
    """An opaque paging cursor (base64 of the next id), like HubSpot's ``NTI1Cg==``."""
    return base64.b64encode(f"{value}\n".encode()).decode()


def decode_after(raw: str | None) -> int:
    """The id (or offset) a cursor stands for; plain numbers are accepted too."""
    if not raw:
        return 0
    text = raw.strip()
    if text.isdigit():
        return int(text)
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode().strip()
        return int(decoded)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise StoreError(400, "VALIDATION_ERROR", f"Invalid paging cursor after={raw}") from None


class AppLimiter:
    """One app's rate windows: the 10-second burst (plus the deprecated secondly
    counter, reported only) and, for private apps, the account's daily window."""

    def __init__(self, burst: int, daily: RateWindow | None, clock: Clock) -> None:
        self.burst = RateWindow(burst, BURST_SECONDS, clock)
        self.secondly = RateWindow(max(1, burst // 10), 1.0, clock)
        self.daily = daily

    def hit(self) -> tuple[str | None, float, dict[str, str]]:
        """Spend one call: (refusing policy or None, seconds to wait, headers)."""
        ok, remaining, wait = self.burst.hit()
        if not ok:
            return "TEN_SECONDLY_ROLLING", wait, self.headers(0)
        if self.daily is not None:
            ok_day, _, wait_day = self.daily.hit()
            if not ok_day:
                return "DAILY", wait_day, self.headers(remaining)
        self.secondly.hit()
        return None, 0.0, self.headers(remaining)

    def headers(self, remaining: int) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers (Daily ones only where a daily cap applies)."""
        out = {}
        if self.daily is not None:
            out["X-HubSpot-RateLimit-Daily"] = str(self.daily.limit)
            out["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily.remaining())
        out["X-HubSpot-RateLimit-Max"] = str(self.burst.limit)
        out["X-HubSpot-RateLimit-Remaining"] = str(remaining)
        out["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(BURST_SECONDS * 1000))
        out["X-HubSpot-RateLimit-Secondly"] = str(self.secondly.limit)
        out["X-HubSpot-RateLimit-Secondly-Remaining"] = str(self.secondly.remaining())
        return out
