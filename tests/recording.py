"""Recorded APIs: the real clients' HTTP traffic captured to cassettes, replayed strictly.

One tool covers all three clients: **vcrpy** patches urllib3's connection pools, and
that is where simple-salesforce and the Planhat client (both over ``requests``) and
hubspot-api-client (urllib3 directly) all end up. ``python -m tests.record`` records
the scenarios below against a fresh sandbox (or a real org, see the README section
"Recording against a real org"); the tests in ``tests/connectors/test_recorded_*.py``
replay them offline.

Replay is strict: ``record_mode="none"`` makes a request that matches no recorded one
fail, a recorded exchange is served once (``allow_playback_repeats=False``), and
``replay`` asserts at the end that every recorded exchange was requested. Requests
match on method, URL (scheme, host, port, path, query) and body.

Scrubbed before anything is written: ``Authorization`` and cookie headers, OAuth form
fields (client id and secret, refresh token, JWT assertion, password), token
responses' ``access_token``/``refresh_token``/``id``/``signature``, and Salesforce org
ids (``00D…``). Each system's base URL is replaced by a fixed placeholder host
(``https://salesforce.recorded.test`` …), in requests and response bodies alike, so a
cassette never names the org's host and replays without a network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import vcr
from vcr.cassette import Cassette

#: where cassettes are read from: the committed sandbox recordings, or
#: ``REVSYNC_CASSETTES`` (a directory recorded against a real org, see the README)
CASSETTES = Path(os.environ.get("REVSYNC_CASSETTES") or Path(__file__).resolve().parent / "cassettes")

#: the host each system's base URL is recorded under
PLACEHOLDERS: dict[str, str] = {
    "salesforce": "https://salesforce.recorded.test",
    "hubspot": "https://hubspot.recorded.test",
    "planhat": "https://planhat.recorded.test",
}
SCRUBBED = "SCRUBBED"
#: form fields and JSON keys whose values are secrets
SECRET_KEYS = frozenset({
    "client_id", "client_secret", "refresh_token", "access_token", "assertion", "password",
    "code", "signature", "id_token",
})
#: response JSON keys that name the org or user (Salesforce's identity URL)
IDENTITY_KEYS = frozenset({"id"})
SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "x-sfdc-session")
ORG_ID = re.compile(r"\b00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?\b")
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")


class Scrubber:
    """Rewrites a request or a response for a cassette: hosts to placeholders, secrets out."""

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        # real base URL -> placeholder (empty when replaying: the clients already use placeholders)
        self.hosts = {k.rstrip("/"): v for k, v in (hosts or {}).items()}

    def text(self, s: str) -> str:
        for real, placeholder in self.hosts.items():
            s = s.replace(real, placeholder)
        return ORG_ID.sub("00D000000000000AAA", s)

    def request(self, request: Any) -> Any:
        request.uri = self.text(request.uri)
        for h in list(request.headers):
            if h.lower() in SECRET_HEADERS:
                del request.headers[h]
        body = request.body
        if body:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            request.body = self._body(raw, request.headers.get("Content-Type", "")).encode()
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        self._learn_instance(response)
        response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() not in SECRET_HEADERS}
        body = response.get("body", {}).get("string")
        if body:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            ctype = next((v[0] for k, v in response["headers"].items() if k.lower() == "content-type"), "")
            response["body"]["string"] = self._body(raw, ctype, response=True).encode()
            for k in list(response["headers"]):
                if k.lower() == "content-length":
                    response["headers"][k] = [str(len(response["body"]["string"]))]
        return response

    def _learn_instance(self, response: Mapping[str, Any]) -> None:
        """A Salesforce token reply names the org's instance: it is scrubbed like the login host."""
        body = response.get("body", {}).get("string") or b""
        if not self.hosts or b'"instance_url"' not in (body if isinstance(body, bytes) else body.encode()):
            return
        try:
            url = json.loads(body)["instance_url"].rstrip("/")
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if url not in self.hosts and url.startswith("https://"):
            # the placeholder of the host the token request went to (one system per cassette)
            self.hosts[url] = next(iter(self.hosts.values()))

    def _body(self, raw: str, ctype: str, *, response: bool = False) -> str:
        raw = self.text(raw)
        if "x-www-form-urlencoded" in ctype:
            pairs = [(k, SCRUBBED if k in SECRET_KEYS else v) for k, v in parse_qsl(raw, keep_blank_values=True)]
            return urlencode(pairs)
        if "json" in ctype or raw[:1] in "{[":
            try:
                data = json.loads(raw)
            except ValueError:
                return raw
            keys = SECRET_KEYS | (IDENTITY_KEYS if response and _is_token_reply(data) else frozenset())
            return json.dumps(_scrub_json(data, keys), separators=(",", ":"))
        return raw


def _is_token_reply(data: Any) -> bool:
    return isinstance(data, dict) and "access_token" in data


def _scrub_json(data: Any, keys: frozenset[str]) -> Any:
    if isinstance(data, dict):
        return {k: (SCRUBBED if k in keys and isinstance(v, str) else _scrub_json(v, keys)) for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub_json(v, keys) for v in data]
    return data


def _vcr(scrubber: Scrubber, mode: str) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=mode,
        match_on=MATCH_ON,
        before_record_request=scrubber.request,
        before_record_response=scrubber.response,
        decode_compressed_response=True,
    )


@contextmanager
def record(name: str, hosts: Mapping[str, str], directory: Path = CASSETTES) -> Iterator[Cassette]:
    """Capture every request made inside the block to ``<directory>/<name>.yaml`` (overwritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").unlink(missing_ok=True)
    recorder = _vcr(Scrubber(hosts), "all")
    recorder.cassette_library_dir = str(directory)
    with recorder.use_cassette(f"{name}.yaml", allow_playback_repeats=False) as cassette:
        yield cassette


@contextmanager
def replay(name: str, directory: Path = CASSETTES) -> Iterator[Cassette]:
    """Serve ``<name>.yaml`` strictly: an unmatched request fails, every exchange must be used."""
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no cassette {path.name} (record it: python -m tests.record)")
    player = _vcr(Scrubber(), "none")
    player.cassette_library_dir = str(directory)
    with player.use_cassette(path.name, allow_playback_repeats=False) as cassette:
        yield cassette
    unplayed = [f"{r.method} {r.uri}" for i, r in enumerate(cassette.requests) if not cassette.play_counts[i]]
    assert not unplayed, f"recorded exchanges never requested: {unplayed}"
