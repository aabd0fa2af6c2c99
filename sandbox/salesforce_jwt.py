"""Salesforce OAuth 2.0 JWT bearer flow on the emulator's token endpoint.

``POST /services/oauth2/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
and ``assertion=<JWT>``: RS256, ``iss`` the connected app's consumer key, ``sub`` the
username, ``aud`` the login host (``https://login.salesforce.com``,
``https://test.salesforce.com``, or here the emulator's own origin), ``exp`` within
3 minutes. The signature is verified with the certificate (public key) registered
on the connected app (``register``). Errors as Salesforce documents them:
``invalid_grant`` / ``invalid_client_id`` (400).
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import jwt
from werkzeug.wrappers import Request, Response

from sandbox.core import json_response

if TYPE_CHECKING:
    from sandbox.salesforce_state import SalesforceState

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: a JWT's ``exp`` may lie at most this far ahead (Salesforce: 3 minutes)
MAX_LIFETIME_SECONDS = 3 * 60
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")

_KEYS: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def register(emu: SalesforceState, consumer_key: str, public_key_pem: str) -> None:
    """Register a connected app's certificate/public key (PEM) for the JWT flow."""
    with emu.lock:
        _KEYS.setdefault(emu, {})[consumer_key] = public_key_pem


def _refuse(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)


def grant(emu: SalesforceState, request: Request, issue: Any) -> Response:
    """Verify the assertion; on success ``issue(request)`` renders the token reply."""
    assertion = request.form.get("assertion", "")
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return _refuse("invalid_grant", "invalid assertion")
    consumer = str(claims.get("iss") or "")
    key = _KEYS.get(emu, {}).get(consumer)
    if key is None:
        return _refuse("invalid_client_id", "client identifier invalid")
    if header.get("alg") != "RS256":
        return _refuse("invalid_grant", "invalid assertion")
    origin = f"https://{request.host}"
    try:
        claims = jwt.decode(
            assertion, key, algorithms=["RS256"], audience=[*LOGIN_AUDIENCES, origin],
            options={"require": ["iss", "sub", "aud", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        return _refuse("invalid_grant", "expired authorization code")
    except jwt.InvalidAudienceError:
        return _refuse("invalid_grant", "audience is invalid")
    except jwt.PyJWTError:
        return _refuse("invalid_grant", "invalid assertion")
    if float(claims["exp"]) - emu.ctx.clock.timestamp() > MAX_LIFETIME_SECONDS + 30:
        return _refuse("invalid_grant", "invalid assertion: exp too far in the future")
    if str(claims.get("sub")) != emu.ctx.credentials.get("salesforce", {}).get("username"):
        return _refuse("invalid_grant", "user hasn't approved this consumer")
    result: Response = issue(request)
    return result
