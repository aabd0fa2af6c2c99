"""HubSpot OAuth token, owners, properties and API-usage endpoints of the emulator."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from sandbox.core import Fault, json_response
from sandbox.hubspot_common import (
    OAUTH_EXPIRES_IN,
    OWNERS_LIMIT_DEFAULT,
    OWNERS_LIMIT_MAX,
    decode_after,
    encode_after,
)
from sandbox.hubspot_store import iso_ms, property_definitions, to_int

if TYPE_CHECKING:
    from sandbox.hubspot_state import HubSpotState


def oauth_token(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST /oauth/v1/token`` (refresh_token grant). https://developers.hubspot.com/docs/api/oauth/tokens"""
    form = request.form
    creds = emu._creds
    if form.get("client_id") != creds.get("client_id") or form.get("client_secret") != creds.get(
        "client_secret"
    ):
        return json_response(
            {
                "status": "BAD_CLIENT_ID",
                "message": "missing or unknown client id",
                "correlationId": str(uuid.uuid4()),
                "error": "invalid_client",
                "error_description": "missing or unknown client id",
            },
            400,
        )
    if (
        form.get("grant_type") != "refresh_token"
        or not creds.get("refresh_token")
        or (form.get("refresh_token") != creds.get("refresh_token"))
    ):
        return json_response(
            {
                "status": "BAD_REFRESH_TOKEN",
                "message": "missing or invalid refresh token",
                "correlationId": str(uuid.uuid4()),
                "error": "invalid_grant",
                "error_description": "refresh token is invalid, expired or revoked",
            },
            400,
        )
    token = "hs-oauth-" + uuid.uuid4().hex
    with emu._lock:
        emu._oauth[token] = emu.ctx.clock.timestamp() + OAUTH_EXPIRES_IN
    return json_response(
        {
            "access_token": token,
            "refresh_token": creds["refresh_token"],
            "expires_in": OAUTH_EXPIRES_IN,
            "token_type": "bearer",
        }
    )


def owners(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``GET /crm/v3/owners`` (paged, ``email`` filter). https://developers.hubspot.com/docs/api/crm/owners"""
    limit = min(
        to_int(request.args.get("limit", OWNERS_LIMIT_DEFAULT)) or OWNERS_LIMIT_DEFAULT,
        OWNERS_LIMIT_MAX,
    )
    archived = emu._flag(request, "archived")
    email = request.args.get("email")
    rows = [
        o for o in emu.owners
        if bool(o.get("archived")) == archived and (email is None or str(o.get("email", "")).lower() == email.lower())
    ]  # fmt: skip
    start = decode_after(request.args.get("after"))  # an offset for owners
    start = max(0, start - 1)
    page = rows[start : start + limit]
    results = [
        {
            "id": str(o["id"]),
            "email": o.get("email"),
            "firstName": o.get("firstName"),
            "lastName": o.get("lastName"),
            "userId": o.get("userId"),
            "type": "PERSON",
            "createdAt": o.get("createdAt", "2026-01-01T00:00:00.000Z"),
            "updatedAt": o.get("updatedAt", "2026-01-01T00:00:00.000Z"),
            "archived": bool(o.get("archived")),
            "teams": o.get("teams", []),
        }
        for o in page
    ]
    body: dict[str, Any] = {"results": results}
    if start + limit < len(rows):
        after = encode_after(start + limit + 1)
        link = f"{request.host_url.rstrip('/')}{request.path}?after={quote(after)}"
        body["paging"] = {"next": {"after": after, "link": link}}
    return json_response(body)


def properties(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``GET /crm/v3/properties/{type}``. https://developers.hubspot.com/docs/api/crm/properties"""
    obj, table = emu._table(params["obj"])
    schema = table.schema  # the portal's own (a fresh portal lacks revsync_id)
    results = [p for p in property_definitions(obj, schema) if p["name"] in schema.index]
    for p in results:
        spec = schema.spec(p["name"])
        p["hasUniqueValue"] = bool(spec and spec.unique)
        p["label"] = spec.label if spec else p["label"]
    return json_response({"results": results})


def usage(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``GET /account-info/v3/api-usage/daily/private-apps``."""
    if emu._daily is None:
        return json_response({"results": []})
    used = emu._daily.limit - emu._daily.remaining()
    return json_response(
        {"results": [{"name": "private-apps-api-calls-daily", "usageLimit": emu._daily.limit,
                      "currentUsage": used, "collectedAt": iso_ms(emu._now()),
                      "fetchStatus": "SUCCESS", "resetsAt": iso_ms(emu._now() + 86_400_000)}]}
    )  # fmt: skip
