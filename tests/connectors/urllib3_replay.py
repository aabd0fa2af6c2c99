"""A strict replay of HTTP exchanges at the urllib3 level, for hubspot-api-client.

The generated HubSpot APIs send through ``urllib3.PoolManager`` (``rest.py``), which
``responses`` cannot see. ``Replay.api_factory`` builds the real API object exactly as
the SDK does (``DiscoveryBase._default_api_factory``) and swaps its pool manager for
this replay, so everything above the socket (serialisation, auth headers, exceptions)
is the real client.

Rules (after the Airbyte CDK's HttpMocker): registered exchanges are served in order;
a request that does not match the next one fails the test; every registered exchange
must be used (``assert_done`` at teardown). An exchange's body is a fixture file name,
inline JSON, or a function of the request (a tiny server-side simulation).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hubspot import HubSpot
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3 import HTTPResponse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hubspot"
TEST_HOST = "https://api.hubapi.test"


class ReplayMismatch(BaseException):
    """Raised for an unexpected request. A BaseException, so no ``except Exception``
    in the code under test can swallow it."""


@dataclass(frozen=True)
class Request:
    """One request the client sent."""

    method: str
    url: str
    path: str
    query: Mapping[str, list[str]]
    body: Any  # parsed JSON, or the form fields as a dict, or None
    headers: Mapping[str, str]


Body = str | dict[str, Any] | list[Any] | bytes | None | Callable[[Request], Any]


@dataclass
class Exchange:
    """One expected request and the response to serve."""

    method: str
    path: str  # regex, full match on the URL path
    status: int = 200
    body: Body = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] | None = None  # required query values (first value)
    raises: BaseException | None = None


class Replay:
    """A PoolManager stand-in serving ``Exchange``s in order."""

    def __init__(self, fixtures: Path = FIXTURES) -> None:
        self.fixtures = fixtures
        self.expected: list[Exchange] = []
        self.requests: list[Request] = []
        self.errors: list[str] = []

    # -------------------------------------------------------------- registration

    def add(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        raises: BaseException | None = None,
    ) -> Replay:
        self.expected.append(Exchange(method.upper(), path, status, body, dict(headers or {}), query, raises))
        return self

    def fixture(self, name: str) -> Any:
        return json.loads((self.fixtures / name).read_text())

    # -------------------------------------------------------------- the client side

    def api_factory(self, api_client_package: Any, api_name: str, config: Mapping[str, Any]) -> Any:
        """``HubSpot(api_factory=...)`` hook: the SDK's own factory, then our pool."""
        api = DiscoveryBase._default_api_factory(api_client_package, api_name, config)
        api.api_client.rest_client.pool_manager = self
        return api

    def client(self, access_token: str | None = "test-token", **kw: Any) -> HubSpot:
        return HubSpot(access_token=access_token, host=TEST_HOST, api_factory=self.api_factory, **kw)

    def request(
        self,
        method: str,
        url: str,
        fields: Sequence[tuple[str, Any]] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        preload_content: bool = True,
        timeout: Any = None,
        encode_multipart: bool = True,
        **_: Any,
    ) -> HTTPResponse:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        parsed: Any = None
        if method.upper() in ("GET", "HEAD"):
            for k, v in fields or ():
                query.setdefault(k, []).append(str(v))
        elif fields:
            parsed = dict(fields)
        elif body is not None:
            parsed = json.loads(body)
        req = Request(method.upper(), url, parts.path, query, parsed, dict(headers or {}))
        self.requests.append(req)
        if not self.expected:
            self._fail(f"unexpected request (nothing left to serve): {req.method} {req.path}")
        exp = self.expected.pop(0)
        if exp.method != req.method or not re.fullmatch(exp.path, req.path):
            self._fail(f"request {req.method} {req.path} does not match the next exchange {exp.method} {exp.path}")
        for k, v in (exp.query or {}).items():
            if query.get(k, [None])[0] != v:
                self._fail(f"{req.method} {req.path}: query {k}={query.get(k)} expected {v!r}")
        if exp.raises is not None:
            raise exp.raises
        payload = exp.body(req) if callable(exp.body) else exp.body
        data = self._data(payload)
        hdrs = {"Content-Type": "application/json;charset=utf-8", **exp.headers}
        return HTTPResponse(
            body=io.BytesIO(data),
            headers=hdrs,
            status=exp.status,
            reason="",
            preload_content=preload_content,
            decode_content=True,
        )

    def _data(self, payload: Any) -> bytes:
        if payload is None:
            return b""
        if isinstance(payload, bytes):
            return payload
        if isinstance(payload, str):
            return (self.fixtures / payload).read_bytes()
        return json.dumps(payload).encode()

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        raise ReplayMismatch(message)

    # -------------------------------------------------------------- teardown

    def assert_done(self) -> None:
        assert not self.errors, self.errors
        left = [f"{e.method} {e.path}" for e in self.expected]
        assert not left, f"registered exchanges never requested: {left}"
