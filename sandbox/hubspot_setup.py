"""What connecting a new HubSpot portal needs from the emulator: creating a property,
OAuth token info, scopes, and the fresh-portal mode.

- ``POST /crm/v3/properties/{objectType}`` creates a property (201); a name that
  exists is a 409 ``OBJECT_ALREADY_EXISTS``. The sandbox creates the properties its
  schema knows but a fresh portal lacks (``revsync_id``); with ``hasUniqueValue``
  the property is then accepted as ``idProperty``.
  https://developers.hubspot.com/docs/api/crm/properties
- ``GET /oauth/v1/access-tokens/{token}``: the token's hub, user, app and scopes
  (no Authorization header; an unknown token is a 404).
  https://developers.hubspot.com/docs/api/oauth/tokens
- Scopes: ``granted_scopes`` (None: every scope) is checked on each call; a missing
  one is a 403 ``MISSING_SCOPES`` naming the scope, for private-app and OAuth tokens alike.
  https://developers.hubspot.com/docs/api/scopes
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.core import Fault, json_response
from sandbox.hubspot_common import error_response
from sandbox.hubspot_store import OBJECT_TYPES, SCHEMAS, TypeSchema, iso_ms

if TYPE_CHECKING:
    from sandbox.hubspot_state import HubSpotState

#: the property revsync keys records on; a fresh portal does not have it
EXTERNAL_ID_PROPERTY = "revsync_id"
#: every scope the emulator knows (what a token is granted unless told otherwise)
ALL_SCOPES = tuple(
    [f"crm.objects.{o}.{rw}" for o in OBJECT_TYPES for rw in ("read", "write")]
    + [f"crm.schemas.{o}.{rw}" for o in OBJECT_TYPES for rw in ("read", "write")]
    + ["crm.objects.owners.read", "oauth"]
)
HUB_ID = 24_681_357
APP_ID = 3_141_592

_SCOPES: weakref.WeakKeyDictionary[Any, set[str] | None] = weakref.WeakKeyDictionary()


def set_scopes(emu: HubSpotState, scopes: set[str] | None) -> None:
    """Grant only ``scopes`` to every token (None: all of them)."""
    _SCOPES[emu] = set(scopes) if scopes is not None else None


def granted(emu: HubSpotState) -> set[str]:
    scopes = _SCOPES.get(emu)
    return set(ALL_SCOPES) if scopes is None else set(scopes)


def required_scope(endpoint: str, method: str, params: dict[str, str]) -> str | None:
    """The scope a call needs (None: none checked)."""
    obj = params.get("obj")
    if endpoint == "owners":
        return "crm.objects.owners.read"
    if endpoint == "properties":
        return f"crm.schemas.{obj}.read"
    if endpoint == "properties.create":
        return f"crm.schemas.{obj}.write"
    if endpoint.startswith("crm.") and obj:
        reads = endpoint in ("crm.list", "crm.get", "crm.search", "crm.batch.read")
        return f"crm.objects.{obj}.{'read' if reads else 'write'}"
    return None


def scope_denied(emu: HubSpotState, endpoint: str, method: str, params: dict[str, str]) -> Response | None:
    """A 403 ``MISSING_SCOPES`` when the token lacks the call's scope."""
    if _SCOPES.get(emu) is None:
        return None
    scope = required_scope(endpoint, method, params)
    if scope is None or scope in granted(emu):
        return None
    return error_response(
        403, "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. "
        "Read more about required scopes here: https://developers.hubspot.com/scopes.",
        errors=[{"message": "One or more of the following scopes are required.",
                 "context": {"requiredGranularScopes": [scope]}}],
    )


# ---------------------------------------------------------------------------- fresh portal


def _without(schema: TypeSchema, prop: str) -> TypeSchema:
    if schema.fields[-1].name != prop:
        raise ValueError(f"{prop} must be the last property of {schema.name}")
    return dataclasses.replace(
        schema, fields=schema.fields[:-1],
        index={k: v for k, v in schema.index.items() if k != prop},
        unique=tuple(u for u in schema.unique if u != prop),
        stored={k: v for k, v in schema.stored.items() if k != prop},
    )


def make_fresh(emu: HubSpotState) -> None:
    """A portal without ``revsync_id`` on contacts, companies and deals."""
    with emu._lock:
        for obj in OBJECT_TYPES:
            table = emu.tables[obj]
            if EXTERNAL_ID_PROPERTY not in table.schema.index:
                continue
            table.schema = _without(table.schema, EXTERNAL_ID_PROPERTY)
            table.uniq.pop(EXTERNAL_ID_PROPERTY, None)
            for rec in table.recs.values():
                del rec.vals[len(table.schema.fields):]


def create_property(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST /crm/v3/properties/{objectType}``."""
    obj, table = emu._table(params["obj"])
    body = emu._json(request)
    name = str(body.get("name") or "")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        return error_response(400, "VALIDATION_ERROR", f"Missing required field(s): {', '.join(missing)}")
    if name in table.schema.index:
        return error_response(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.",
                              sub_category="PropertyValidationError.PROPERTY_EXISTS")
    full = SCHEMAS[obj]
    spec = full.spec(name)
    if spec is None or full.fields[-1].name != name:
        return error_response(400, "VALIDATION_ERROR",
                              f"the sandbox creates only the properties its schema knows ({EXTERNAL_ID_PROPERTY})")
    if body.get("type") != "string":
        return error_response(400, "VALIDATION_ERROR", f"{name} must be of type string in the sandbox")
    unique = bool(body.get("hasUniqueValue"))
    spec = dataclasses.replace(spec, label=str(body["label"]), unique=unique)
    fields = (*table.schema.fields, spec)
    table.schema = dataclasses.replace(
        table.schema, fields=fields, index={**table.schema.index, name: len(fields) - 1},
        unique=(*table.schema.unique, name) if unique else table.schema.unique,
        stored={**table.schema.stored, name: len(fields) - 1},
    )
    if unique:
        table.uniq[name] = {}
    for rec in table.recs.values():
        rec.vals.extend([None] * (len(fields) - len(rec.vals)))
    now = iso_ms(emu._now())
    return json_response({
        "name": name, "label": spec.label, "type": "string", "fieldType": str(body["fieldType"]),
        "groupName": str(body["groupName"]), "description": str(body.get("description") or ""),
        "hasUniqueValue": unique, "hidden": False, "hubspotDefined": False, "formField": bool(body.get("formField")),
        "calculated": False, "externalOptions": False, "archived": False, "options": [],
        "displayOrder": -1, "createdAt": now, "updatedAt": now,
        "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
    }, 201)


def token_info(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``GET /oauth/v1/access-tokens/{token}`` (OAuth access tokens only)."""
    token = params["token"]
    now = emu.ctx.clock.timestamp()
    with emu._lock:
        expiry = emu._oauth.get(token)
    if expiry is None or expiry <= now:
        return error_response(404, "OBJECT_NOT_FOUND", "Token not found, or expired")
    return json_response({
        "token": token, "user": "integration@revsync-sandbox.example.com",
        "hub_domain": "revsync-sandbox.example.com", "scopes": sorted(granted(emu)),
        "hub_id": HUB_ID, "app_id": APP_ID, "expires_in": int(expiry - now),
        "user_id": 1001, "token_type": "access",
    })
