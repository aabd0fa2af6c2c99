"""HubSpot readiness: what ``revsync check`` inspects and ``revsync setup`` provisions.

- Credentials: one owners call (a 401 is a bad token; a refused OAuth refresh too).
- Scopes: for an OAuth app, the token's scopes from the access-token info endpoint
  (``GET /oauth/v1/access-tokens/{token}``); a private-app token has no such endpoint,
  so each object and its properties are read once (a 403 ``MISSING_SCOPES`` names the
  scope). Private-app write scopes cannot be read without writing: check says so.
- External id: the ``revsync_id`` property on contacts, companies and deals, with
  ``hasUniqueValue`` (only then is it accepted as ``idProperty`` of a batch upsert).
- Headroom: the ``X-HubSpot-RateLimit-Daily(-Remaining)`` headers (private apps; OAuth
  apps have a burst limit only).

``setup --apply`` creates the missing property with ``POST /crm/v3/properties/{objectType}``
(``core_api.create`` of hubspot-api-client); a 409 means it already exists.
https://developers.hubspot.com/docs/api/crm/properties
https://developers.hubspot.com/docs/api/oauth/tokens
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from hubspot.crm.properties import PropertyCreate

from connectors.base import AuthError, Connector, ConnectorError
from connectors.hubspot import HubSpotConnector
from connectors.hubspot_http import SYSTEM, error_info, is_api_exception, translate
from connectors.hubspot_write import EXTERNAL_ID_PROPERTY
from connectors.readiness import FAIL, OK, WARN, Change, Finding

log = logging.getLogger(__name__)

OBJECTS = ("companies", "contacts", "deals")
#: scopes a sync needs (read and write the three objects, read their schemas and the owners)
REQUIRED_SCOPES = (
    *(f"crm.objects.{o}.{rw}" for o in OBJECTS for rw in ("read", "write")),
    *(f"crm.schemas.{o}.read" for o in OBJECTS),
    "crm.objects.owners.read",
)
#: what `setup --apply` needs on top, to create the property
SETUP_SCOPES = tuple(f"crm.schemas.{o}.write" for o in OBJECTS)
HEADROOM_WARN = 0.10


def _missing_scopes(exc: BaseException) -> list[str]:
    info = error_info(exc)
    if info.category != "MISSING_SCOPES":
        return []
    out: list[str] = []
    for err in (info.body or {}).get("errors") or []:
        ctx = err.get("context") or {}
        out.extend(ctx.get("requiredGranularScopes") or ctx.get("requiredScopes") or [])
    return out or ["(unnamed)"]


class HubSpotReadiness:
    """Checks and provisioning for one HubSpot connection."""

    def __init__(self, connector: HubSpotConnector, *, name: str = SYSTEM) -> None:
        self.hs = connector
        self.name = name
        self.t = connector.transport

    def _f(self, check: str, level: str, message: str, fixable: bool = False) -> Finding:
        return Finding(self.name, check, level, message, fixable)

    def _raw(self, what: str, fn: Any) -> tuple[int, dict[str, Any], BaseException | None]:
        """One call outside the retry layer's error mapping: (status, body, api exception)."""
        try:
            status, body = self.t.call(what, fn)
            return status, body, None
        except ConnectorError as exc:
            cause = exc.__cause__
            if cause is not None and is_api_exception(cause):
                return int(getattr(cause, "status", 0) or 0), dict(error_info(cause).body or {}), cause
            raise

    # ------------------------------------------------------------------ check

    def check(self, mapped: Mapping[str, Sequence[tuple[str, bool]]]) -> list[Finding]:
        """Every finding for this connection."""
        try:
            status, _, exc = self._raw("check owners", partial(
                self.t.api("owners").get_page, limit=1, archived=False, _preload_content=False,
                _request_timeout=self.t.timeout))
        except AuthError as e:
            return [self._f("credentials", FAIL, f"HubSpot rejected the token ({e}); set a valid access token "
                            "(private app) or re-authorize the OAuth app")]
        out: list[Finding] = []
        if exc is not None and status == 403:
            out.append(self._f("credentials", OK, "token accepted"))
            out.append(self._f("scopes", FAIL, "missing scope " + ", ".join(_missing_scopes(exc))
                               + ": add it to the app (owners are read to map record owners)"))
        elif exc is not None:
            raise translate(exc, "check owners")
        else:
            out.append(self._f("credentials", OK, "token accepted"))
        out.append(self._f("api_version", OK, "CRM v3 objects and properties, v4 associations"))
        if self.t.oauth is not None:
            out.extend(self._oauth_scopes())
        else:
            out.extend(self._probe_scopes(mapped))
        out.extend(self._external_ids())
        out.append(self._headroom())
        return out

    def _oauth_scopes(self) -> list[Finding]:
        token = str(self.hs.client.access_token or "")
        api = self.hs.client.oauth.access_tokens_api
        status, body, exc = self._raw("token info", partial(api.get, token, _preload_content=False,
                                                              _request_timeout=self.t.timeout))
        if exc is not None:
            return [self._f("scopes", WARN, f"cannot read the token's scopes (HTTP {status})")]
        granted = set(body.get("scopes") or [])
        missing = [s for s in REQUIRED_SCOPES if s not in granted]
        out = []
        if missing:
            out.append(self._f("scopes", FAIL, f"OAuth token lacks scope(s) {', '.join(missing)}: add them to the "
                               "app's scopes and re-authorize it"))
        else:
            out.append(self._f("scopes", OK, f"OAuth token of hub {body.get('hub_id')} has every scope a sync needs"))
        lacking_setup = [s for s in SETUP_SCOPES if s not in granted]
        if lacking_setup:
            out.append(self._f("scopes", WARN, f"no {', '.join(lacking_setup)}: `revsync setup --apply` cannot "
                               "create properties (create them by hand, or add the scopes)"))
        return out

    def _probe_scopes(self, mapped: Mapping[str, Sequence[tuple[str, bool]]]) -> list[Finding]:
        out: list[Finding] = []
        missing: list[str] = []
        for obj in OBJECTS:
            api = self.t.api(f"basic:{obj}")
            status, _, exc = self._raw(f"read {obj}", partial(api.get_page, limit=1, archived=False,
                                                              _preload_content=False, _request_timeout=self.t.timeout))
            if exc is not None:
                if status != 403:
                    raise translate(exc, f"read {obj}")
                missing.extend(_missing_scopes(exc))
            props = self._properties(obj)
            if props is None:
                missing.append(f"crm.schemas.{obj}.read")
                continue
            unknown = [n for n, _ in mapped.get(obj, ()) if not n.startswith("_") and n not in props]
            if unknown:
                out.append(self._f("access", FAIL, f"{obj}: mapped propert(ies) the portal does not have: "
                                   f"{', '.join(unknown)}; create them or unmap them under [mapping]"))
            read_only = [n for n, w in mapped.get(obj, ()) if w and n in props
                         and (props[n].get("modificationMetadata") or {}).get("readOnlyValue")]
            if read_only:
                out.append(self._f("access", FAIL, f"{obj}: mapped properties revsync writes are read-only: "
                                   f"{', '.join(read_only)}; set their direction to read under [mapping]"))
        if missing:
            out.append(self._f("scopes", FAIL, f"private app lacks scope(s) {', '.join(dict.fromkeys(missing))}: "
                               "add them in the app's settings (Auth > Scopes)"))
        else:
            out.append(self._f("scopes", OK, "private app can read companies, contacts, deals and their properties"))
            out.append(self._f("scopes", WARN, "a private-app token's write scopes cannot be read without writing: "
                               "make sure it has " + ", ".join(f"crm.objects.{o}.write" for o in OBJECTS)))
        return out

    def _properties(self, obj: str) -> dict[str, dict[str, Any]] | None:
        """Property definitions by name (None: refused for lack of scope)."""
        api = self.t.api("properties")
        status, body, exc = self._raw(f"properties {obj}", partial(
            api.get_all, obj, archived=False, _preload_content=False, _request_timeout=self.t.timeout))
        if exc is not None:
            if status == 403:
                return None
            raise translate(exc, f"properties {obj}")
        return {str(p.get("name")): p for p in body.get("results") or []}

    def external_id_state(self) -> dict[str, str]:
        """Per object: ``ok``, ``missing``, ``not_unique``, or ``unknown`` (cannot read properties)."""
        states: dict[str, str] = {}
        for obj in OBJECTS:
            props = self._properties(obj)
            if props is None:
                states[obj] = "unknown"
            elif EXTERNAL_ID_PROPERTY not in props:
                states[obj] = "missing"
            elif not props[EXTERNAL_ID_PROPERTY].get("hasUniqueValue"):
                states[obj] = "not_unique"
            else:
                states[obj] = "ok"
        return states

    def _external_ids(self) -> list[Finding]:
        out = []
        p = EXTERNAL_ID_PROPERTY
        for obj, state in self.external_id_state().items():
            if state == "ok":
                out.append(self._f("external_id", OK, f"{obj}.{p} exists with hasUniqueValue"))
            elif state == "missing":
                out.append(self._f("external_id", FAIL, f"{obj}.{p} does not exist: run `revsync setup --apply` "
                                   "(string, hasUniqueValue)", True))
            elif state == "not_unique":
                out.append(self._f("external_id", FAIL, f"{obj}.{p} exists without hasUniqueValue (HubSpot cannot "
                                   "change that): archive it in Settings > Properties, then `revsync setup --apply`"))
            else:
                out.append(self._f("external_id", FAIL, f"{obj}: cannot read its properties (scope "
                                   f"crm.schemas.{obj}.read)"))
        return out

    def _headroom(self) -> Finding:
        if self.t.oauth is not None:
            return self._f("headroom", OK, "OAuth apps have no daily API cap (burst limit only)")
        snap = self.hs.budget.snapshot().get(SYSTEM, {})
        limit, left = snap.get("limit"), snap.get("remaining")
        if limit is None or left is None or snap.get("window") not in (None, "daily"):
            return self._f("headroom", WARN, "HubSpot sent no daily-limit headers; headroom unknown")
        if left <= 0:
            return self._f("headroom", FAIL, f"daily API limit used up (0 of {limit} left); wait for midnight "
                           "(portal time zone)")
        if left < HEADROOM_WARN * limit:
            return self._f("headroom", WARN, f"only {left} of {limit} daily API calls left")
        return self._f("headroom", OK, f"{left} of {limit} daily API calls left")

    # ------------------------------------------------------------------ setup

    def setup(self, *, apply: bool) -> list[Change]:
        """Create ``revsync_id`` (string, unique) where it is missing."""
        changes: list[Change] = []
        for obj, state in self.external_id_state().items():
            what = f"property {obj}.{EXTERNAL_ID_PROPERTY}"
            if state == "ok":
                changes.append(Change(self.name, what, "exists"))
            elif state == "not_unique":
                changes.append(Change(self.name, what, "manual", "exists without hasUniqueValue: archive it first"))
            elif state == "unknown":
                changes.append(Change(self.name, what, "manual", f"cannot read properties (crm.schemas.{obj}.read)"))
            elif not apply:
                changes.append(Change(self.name, what, "missing", "string, hasUniqueValue"))
            else:
                changes.append(self._create(obj, what))
        return changes

    def _create(self, obj: str, what: str) -> Change:
        body = PropertyCreate(name=EXTERNAL_ID_PROPERTY, label="Revsync Id", type="string", field_type="text",
                              group_name=f"{obj[:-1] if obj != 'companies' else 'company'}information",
                              description="Canonical revsync id (a UUID); revsync upserts on it.",
                              has_unique_value=True, form_field=False, hidden=False)
        api = self.t.api("properties")
        status, resp, exc = self._raw(f"create property {obj}", partial(
            api.create, obj, body, _preload_content=False, _request_timeout=self.t.timeout))
        if exc is None:
            return Change(self.name, what, "created", "string, hasUniqueValue")
        if status == 409:
            return Change(self.name, what, "exists")
        if status == 403:
            return Change(self.name, what, "failed", f"missing scope {', '.join(_missing_scopes(exc))}")
        return Change(self.name, what, "failed", f"HTTP {status}: {resp.get('message', '')}")


def readiness_for(connector: Connector, *, name: str, options: Mapping[str, Any]) -> HubSpotReadiness:
    """The checker ``Connector.readiness`` builds (``readiness_factory``)."""
    return HubSpotReadiness(connector, name=name)  # type: ignore[arg-type]
