"""Salesforce OAuth: the token request and the HTTP session the client runs on.

simple-salesforce cannot do a refresh-token grant against an arbitrary host, so
revsync makes the token request itself, on the same ``requests.Session`` the
``Salesforce`` client then uses (same CA bundle, same timeouts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from connectors.base import (
    AuthError,
    ConnectionSettings,
    FatalError,
    RetriableError,
    Unreachable,
    unreachable_cause,
)

DEFAULT_TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"  # noqa: S105
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class SalesforceToken:
    """An access token and the instance it is valid for."""

    access_token: str = field(repr=False)
    instance_url: str | None = None
    #: a new refresh token, when the connected app rotates them
    refresh_token: str | None = field(default=None, repr=False)


class TimeoutAdapter(HTTPAdapter):
    """Applies a default timeout, and the configured CA bundle, to every request.

    The CA bundle is set per request because requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` from the environment replace a *session's* ``verify``.
    """

    def __init__(self, timeout: float, ca_bundle: str | None = None, **kwargs: Any) -> None:
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


class MeteredAdapter(BaseAdapter):
    """Runs ``before`` (the API budget's ``spend``) ahead of every request it sends.

    ``before`` may raise (``QuotaExhausted``): the request is then never sent.
    """

    def __init__(self, inner: BaseAdapter, before: Callable[[], None]) -> None:
        super().__init__()
        self.inner = inner
        self.before = before

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.before()
        return self.inner.send(request, **kwargs)

    def close(self) -> None:
        self.inner.close()


def meter_session(session: requests.Session, before: Callable[[], None]) -> None:
    """Wrap the session's HTTP(S) adapters so ``before`` runs ahead of every call."""
    for prefix in ("https://", "http://"):
        inner = session.get_adapter(prefix + "x")
        while isinstance(inner, MeteredAdapter):  # never meter twice
            inner = inner.inner
        session.mount(prefix, MeteredAdapter(inner, before))


def build_session(options: Mapping[str, Any]) -> requests.Session:
    """A session that verifies TLS (against ``ca_bundle`` when given) with a default timeout."""
    session = requests.Session()
    ca_bundle = str(options["ca_bundle"]) if options.get("ca_bundle") else None
    # Verification is never turned off: the sandbox hands us its throwaway CA instead.
    session.verify = ca_bundle or True
    adapter = TimeoutAdapter(float(options.get("timeout", DEFAULT_TIMEOUT)), ca_bundle)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class SalesforceAuth:
    """OAuth 2.0 credentials of one connection: refresh-token grant or password grant.

    ``repr`` never shows the secrets.
    """

    token_url: str
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connection: str = "salesforce"

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> SalesforceAuth:
        """Read ``token_url`` from the options and the credentials from the secrets.

        The JWT bearer flow (a ``private_key`` secret) is ``connectors.salesforce_jwt``'s
        ``auth_from_settings``, which picks between the two.
        """
        secrets = settings.secrets
        refresh = secrets.get("refresh_token")
        username = secrets.get("username")
        password = secrets.get("password")
        if not refresh and not (username and password):
            raise FatalError(
                f"connection {settings.name!r}: set the secret 'refresh_token' "
                "(or 'username' and 'password') for Salesforce"
            )
        if password and secrets.get("security_token"):
            password = password + secrets["security_token"]
        return cls(
            token_url=str(settings.options.get("token_url") or DEFAULT_TOKEN_URL),
            client_id=settings.secret("client_id"),
            client_secret=settings.secret("client_secret"),
            refresh_token=refresh or None,
            username=None if refresh else username,
            password=None if refresh else password,
            connection=settings.name,
        )

    @property
    def grant_type(self) -> str:
        return "refresh_token" if self.refresh_token else "password"

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": self.grant_type,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.refresh_token:
            form["refresh_token"] = self.refresh_token
        else:
            form["username"] = self.username or ""
            form["password"] = self.password or ""
        return form

    def fetch(self, session: requests.Session) -> SalesforceToken:
        """Ask the token endpoint for a fresh access token.

        Raises ``AuthError`` when the grant is refused (``invalid_grant``…),
        ``RetriableError`` on 429/5xx/network trouble. Secrets never reach messages.
        """
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
        try:
            resp = session.post(
                self.token_url, data=self._form(), headers={"Accept": "application/json"}
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            cause = unreachable_cause(exc)
            if cause:
                raise Unreachable(
                    f"connection {self.connection!r}: token request to {self.token_url}: {cause}"
                ) from exc
            raise RetriableError(
                f"connection {self.connection!r}: token request failed ({type(exc).__name__})"
            ) from exc
        except OSError as exc:  # e.g. a CA bundle that cannot be read
            raise FatalError(f"connection {self.connection!r}: token request failed: {exc}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = resp.headers.get("Retry-After")
            raise RetriableError(
                f"connection {self.connection!r}: token endpoint answered {resp.status_code}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if resp.status_code != 200 or not body.get("access_token"):
            error = body.get("error") or f"HTTP {resp.status_code}"
            desc = body.get("error_description") or ""
            raise AuthError(
                f"connection {self.connection!r}: Salesforce refused the {self.grant_type} grant "
                f"({error}{': ' + desc if desc else ''}); re-authorize the connection "
                "(new refresh token or credentials)"
            )
        return SalesforceToken(
            access_token=str(body["access_token"]),
            instance_url=body.get("instance_url"),
            refresh_token=body.get("refresh_token") or None,
        )
