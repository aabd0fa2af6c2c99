"""Salesforce OAuth 2.0 JWT bearer flow: a connected app, its certificate, a private key.

The integration signs a short-lived JWT (RS256; ``iss`` the connected app's consumer
key, ``sub`` the integration user's username, ``aud`` the login host, ``exp`` three
minutes ahead) and trades it for an access token at the token endpoint; no refresh
token and no client secret are involved. simple-salesforce builds the same assertion
(``SalesforceLogin(privatekey=...)``) but always posts it to
``https://{domain}.salesforce.com``, so revsync signs it with PyJWT (a dependency of
simple-salesforce) and posts it to the configured ``token_url`` on its own session,
as it does for the refresh-token grant.
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm

Secrets: ``client_id`` (consumer key), ``username``, ``private_key`` (PEM text, from the
environment or the secrets file; never logged, never in a ``repr``). Options:
``token_url``, ``jwt_audience`` (default ``https://login.salesforce.com``; use
``https://test.salesforce.com`` for a Salesforce sandbox org).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

from connectors.base import ConnectionSettings, FatalError
from connectors.salesforce_auth import DEFAULT_TOKEN_URL, SalesforceAuth

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_AUDIENCE = "https://login.salesforce.com"
#: Salesforce accepts an assertion whose ``exp`` is at most 3 minutes away
ASSERTION_LIFETIME_S = 180


@dataclass(frozen=True)
class SalesforceJwtAuth(SalesforceAuth):
    """JWT bearer credentials; ``fetch`` (inherited) signs a fresh assertion each time."""

    private_key: str = field(default="", repr=False)
    audience: str = DEFAULT_AUDIENCE

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> SalesforceJwtAuth:
        """``client_id``, ``username`` and ``private_key`` from the secrets."""
        secrets = settings.secrets
        key = secrets.get("private_key", "")
        if "PRIVATE KEY" not in key:
            raise FatalError(
                f"connection {settings.name!r}: the secret 'private_key' is not a PEM private key "
                "(-----BEGIN PRIVATE KEY----- ...)"
            )
        username = secrets.get("username")
        if not username:
            raise FatalError(f"connection {settings.name!r}: the JWT bearer flow needs the secret 'username'")
        return cls(
            token_url=str(settings.options.get("token_url") or DEFAULT_TOKEN_URL),
            client_id=settings.secret("client_id"),
            client_secret="",
            username=username,
            private_key=key,
            audience=str(settings.options.get("jwt_audience") or DEFAULT_AUDIENCE),
            connection=settings.name,
        )

    @property
    def grant_type(self) -> str:
        return "jwt-bearer"

    def assertion(self, now: float | None = None) -> str:
        """The signed JWT (RS256)."""
        issued = time.time() if now is None else now
        claims = {"iss": self.client_id, "sub": self.username, "aud": self.audience,
                  "exp": int(issued) + ASSERTION_LIFETIME_S}
        try:
            return jwt.encode(claims, self.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # the key's text never goes into the message
            raise FatalError(
                f"connection {self.connection!r}: the private key cannot sign the JWT ({type(exc).__name__})"
            ) from None

    def _form(self) -> dict[str, str]:
        return {"grant_type": GRANT_TYPE, "assertion": self.assertion()}


def auth_from_settings(settings: ConnectionSettings) -> SalesforceAuth:
    """The connection's credentials: a ``private_key`` secret selects the JWT bearer
    flow, else the refresh-token / username-password flows of ``SalesforceAuth``."""
    if settings.secrets.get("private_key"):
        return SalesforceJwtAuth.from_settings(settings)
    return SalesforceAuth.from_settings(settings)
