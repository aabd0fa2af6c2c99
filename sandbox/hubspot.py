"""HubSpot CRM emulator: CRM v3 objects, search, batch, merge, owners, properties,
associations v4 and OAuth, served to the real hubspot-api-client 12.

Shapes, limits and error bodies follow the vendor's docs (see the shared API notes,
section B); where a fact is not documented the choice is marked ``[verify]``. The
data structures live in ``sandbox/hubspot_store.py``, search in
``sandbox/hubspot_search.py``, the batch endpoints in ``hubspot_batch.py``,
associations v4 in ``hubspot_assoc.py``, OAuth/owners/properties in
``hubspot_account.py`` and the control-endpoint edits in ``hubspot_edits.py``.
This module is the HTTP core: auth, rate limits, faults, routing, the single-object
endpoints, search and merge.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import uuid
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from sandbox.core import Emulator, Fault, RateWindow, SandboxContext, json_response
from sandbox.hubspot_account import oauth_token, owners, properties, usage
from sandbox.hubspot_assoc import (
    apply_create_assocs,
    assoc_archive,
    assoc_create,
    assoc_default,
    assoc_list,
    assoc_put_default,
    assoc_read,
    parse_create_assocs,
)
from sandbox.hubspot_batch import (
    batch_archive,
    batch_create,
    batch_read,
    batch_update,
    batch_upsert,
)
from sandbox.hubspot_common import (
    ASSOC_READ_MAX,
    BATCH_MAX,
    DAY_SECONDS,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OAUTH_APP_BURST,
    OAUTH_EXPIRES_IN,
    RATE_TIERS,
    SEARCH_PER_SECOND,
    AppLimiter,
    decode_after,
    encode_after,
    error_response,
    item_error,
)
from sandbox.hubspot_edits import apply_edits
from sandbox.hubspot_search import SEARCH_CAP, SEARCH_LIMIT_MAX, search
from sandbox.hubspot_setup import create_property, scope_denied, token_info
from sandbox.hubspot_store import (
    ALWAYS,
    ASSOC_TYPES,
    DEFAULT_PROPERTIES,
    DERIVED,
    OBJECT_TYPES,
    SCHEMAS,
    SINGULAR,
    TYPE_ALIASES,
    Associations,
    Rec,
    StoreError,
    Table,
    ValueProblem,
    fold,
    iso_ms,
    iter_json_array,
    normalize_value,
    now_ms,
    problems_error,
    read_json_array,
    record_from_seed,
    to_int,
    validation_error,
)

_AUTH_MISSING = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

__all__ = [
    "ASSOC_READ_MAX",
    "BATCH_MAX",
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "OAUTH_EXPIRES_IN",
    "SEARCH_CAP",
    "SEARCH_LIMIT_MAX",
    "HubSpotEmulator",
]

Handler = Callable[[Request, dict[str, str], "Fault | None"], Response]
# Handlers that live in the sibling modules take the emulator as first argument.
ModuleHandler = Callable[["HubSpotEmulator", Request, dict[str, str], "Fault | None"], Response]
_MODULE_HANDLERS: dict[str, ModuleHandler] = {
    "_oauth_token": oauth_token,
    "_owners": owners,
    "_properties": properties,
    "_properties_create": create_property,
    "_usage": usage,
    "_batch_read": batch_read,
    "_batch_create": batch_create,
    "_batch_update": batch_update,
    "_batch_upsert": batch_upsert,
    "_batch_archive": batch_archive,
    "_assoc_read": assoc_read,
    "_assoc_create": assoc_create,
    "_assoc_default": assoc_default,
    "_assoc_archive": assoc_archive,
    "_assoc_put_default": assoc_put_default,
    "_assoc_list": assoc_list,
}


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: str  # method name on the emulator, or a key of _MODULE_HANDLERS


def _r(method: str, path: str, endpoint: str, handler: str) -> _Route:
    return _Route(method, re.compile("^" + path + "$"), endpoint, handler)


_OBJ = r"(?P<obj>[A-Za-z0-9_-]+)"
_ROUTES = (
    _r("POST", r"/oauth/v1/token", "oauth", "_oauth_token"),
    _r("GET", r"/crm/v3/owners/?", "owners", "_owners"),
    _r("GET", r"/crm/v3/properties/" + _OBJ, "properties", "_properties"),
    _r("POST", r"/crm/v3/properties/" + _OBJ, "properties.create", "_properties_create"),
    _r("GET", r"/oauth/v1/access-tokens/(?P<token>[^/]+)", "oauth.tokeninfo", "_token_info"),
    _r("GET", r"/account-info/v3/api-usage/daily/private-apps", "usage", "_usage"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/search", "crm.search", "_search"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/merge", "crm.merge", "_merge"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/gdpr-delete", "crm.gdpr_delete", "_gdpr_delete"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/batch/read", "crm.batch.read", "_batch_read"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/batch/create", "crm.batch.create", "_batch_create"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/batch/update", "crm.batch.update", "_batch_update"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/batch/upsert", "crm.batch.upsert", "_batch_upsert"),
    _r(
        "POST",
        r"/crm/v3/objects/" + _OBJ + r"/batch/archive",
        "crm.batch.archive",
        "_batch_archive",
    ),
    _r("GET", r"/crm/v3/objects/" + _OBJ + r"/?", "crm.list", "_list"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/?", "crm.create", "_create"),
    _r("GET", r"/crm/v3/objects/" + _OBJ + r"/(?P<id>[^/]+)", "crm.get", "_get"),
    _r("PATCH", r"/crm/v3/objects/" + _OBJ + r"/(?P<id>[^/]+)", "crm.update", "_update"),
    _r("DELETE", r"/crm/v3/objects/" + _OBJ + r"/(?P<id>[^/]+)", "crm.archive", "_archive"),
    _r(
        "POST",
        r"/crm/v4/associations/(?P<frm>[^/]+)/(?P<to>[^/]+)/batch/read",
        "assoc.batch.read",
        "_assoc_read",
    ),
    _r(
        "POST",
        r"/crm/v4/associations/(?P<frm>[^/]+)/(?P<to>[^/]+)/batch/create",
        "assoc.batch.create",
        "_assoc_create",
    ),
    _r(
        "POST",
        r"/crm/v4/associations/(?P<frm>[^/]+)/(?P<to>[^/]+)/batch/associate/default",
        "assoc.batch.default",
        "_assoc_default",
    ),
    _r(
        "POST",
        r"/crm/v4/associations/(?P<frm>[^/]+)/(?P<to>[^/]+)/batch/archive",
        "assoc.batch.archive",
        "_assoc_archive",
    ),
    _r(
        "PUT",
        r"/crm/v4/objects/(?P<frm>[^/]+)/(?P<id>[^/]+)/associations/default/(?P<to>[^/]+)/(?P<to_id>[^/]+)",
        "assoc.put_default",
        "_assoc_put_default",
    ),
    _r(
        "GET",
        r"/crm/v4/objects/(?P<frm>[^/]+)/(?P<id>[^/]+)/associations/(?P<to>[^/]+)",
        "assoc.list",
        "_assoc_list",
    ),
)
_WRITE_ENDPOINTS = frozenset(
    {"crm.create", "crm.update", "crm.batch.create", "crm.batch.update", "crm.batch.upsert"}
)


class HubSpotEmulator(Emulator):
    """The HubSpot emulator (one portal/account)."""

    system = "hubspot"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self._lock = threading.RLock()
        self.tables: dict[str, Table] = {t: Table(SCHEMAS[t]) for t in OBJECT_TYPES}
        self.assoc = Associations()
        self.owners: list[dict[str, Any]] = []
        self._next_id = 1
        self._oauth: dict[str, float] = {}  # access token → expiry (POSIX seconds)
        self._rng = random.Random(ctx.seed)
        limits = RATE_TIERS.get(ctx.tier)
        clock = ctx.clock
        self._daily: RateWindow | None = None
        self._private: AppLimiter | None = None
        self._oauth_app: AppLimiter | None = None
        self._search_window: RateWindow | None = None
        if limits is not None:  # tier "off": no limits at all
            burst, daily = limits
            self._daily = RateWindow(daily, DAY_SECONDS, clock)
            self._private = AppLimiter(burst, self._daily, clock)
            self._oauth_app = AppLimiter(OAUTH_APP_BURST, None, clock)
            self._search_window = RateWindow(SEARCH_PER_SECOND, 1.0, clock)

    # ------------------------------------------------------------ data in

    @property
    def _creds(self) -> dict[str, str]:
        return self.ctx.credentials.get(self.system, {})

    def load(self, data_dir: Path) -> None:
        """Read ``<data_dir>/hubspot/*.json`` (owners, objects, associations)."""
        base = Path(data_dir) / self.system
        with self._lock:
            self.owners = read_json_array(base / "owners.json")
            for obj in OBJECT_TYPES:
                table = self.tables[obj]
                recs = [
                    record_from_seed(table.schema, d) for d in iter_json_array(base / f"{obj}.json")
                ]
                self._bulk_insert(table, recs)
            self.assoc.bulk_load(iter_json_array(base / "associations.json"))

    def _bulk_insert(self, table: Table, recs: list[Rec]) -> None:
        for rec in recs:
            table.recs[rec.id] = rec
            self._next_id = max(self._next_id, rec.id + 1)
        live = [r for r in table.recs.values() if r.live]
        table.live = sorted(r.id for r in live)
        table.archived = sorted(r.id for r in table.recs.values() if r.archived_ms is not None)
        table.by_mod = sorted((r.updated_ms, r.id) for r in live)
        for prop, index in table.uniq.items():
            i = table.schema.index[prop]
            for r in live:
                v = r.vals[i]
                if v:
                    index[fold(v)] = r.id

    def add(self, obj: str, record: Mapping[str, Any]) -> str:
        """Add one record in the seed format (``id`` optional); returns its id."""
        with self._lock:
            table = self.tables[TYPE_ALIASES[obj]]
            doc = dict(record)
            if "id" not in doc:
                doc["id"] = str(self._new_id())
            stamp = iso_ms(self._now())
            doc.setdefault("createdAt", stamp)
            doc.setdefault("updatedAt", doc["createdAt"])
            rec = record_from_seed(table.schema, doc)
            self._next_id = max(self._next_id, rec.id + 1)
            if rec.archived_ms is not None:
                table.recs[rec.id] = rec
                table.archived.append(rec.id)
                table.archived.sort()
            else:
                table.insert(rec)
            return str(rec.id)

    def counts(self) -> dict[str, int]:
        """Live records per object type (plus owners and association pairs, as in the manifest)."""
        with self._lock:
            out = {obj: len(t.live) for obj, t in self.tables.items()}
            out["owners"] = sum(1 for o in self.owners if not o.get("archived"))
            out["associations"] = self.assoc.count()
            return out

    # ------------------------------------------------------------ plumbing

    def _now(self) -> int:
        return now_ms(self.ctx.clock.now())

    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def _table(self, obj: str) -> tuple[str, Table]:
        name = TYPE_ALIASES.get(obj.lower())
        if name is None:
            raise StoreError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {obj}")
        return name, self.tables[name]

    def _match(self, request: Request) -> tuple[_Route | None, dict[str, str]]:
        for route in _ROUTES:
            if route.method == request.method:
                m = route.pattern.match(request.path)
                if m:
                    return route, m.groupdict()
        return None, {}

    def endpoint_name(self, request: Request) -> str:
        """Stable labels: ``crm.list``, ``crm.search``, ``crm.batch.upsert``, ``assoc.batch.read`` …"""
        route, _ = self._match(request)
        return route.endpoint if route else "unknown"

    def handle(self, request: Request, fault: Fault | None) -> Response:
        """Auth, rate limits, faults, routing and stats for one call."""
        route, params = self._match(request)
        endpoint = route.endpoint if route else "unknown"
        try:
            resp = self._dispatch(request, fault, route, params)
        except StoreError as e:
            resp = error_response(
                e.status,
                e.category,
                e.message,
                context=e.context,
                errors=e.errors,
                sub_category=e.sub_category,
            )
        self.ctx.stats.call(self.system, endpoint, resp.status_code)
        return resp

    def _fault(self, kind: str) -> None:
        self.ctx.stats.fault(self.system, kind)

    def _dispatch(
        self, request: Request, fault: Fault | None, route: _Route | None, params: dict[str, str]
    ) -> Response:
        if route is not None and route.endpoint == "oauth":
            early = self._generic_fault(fault)
            return early or oauth_token(self, request, params, fault)
        if route is not None and route.endpoint == "oauth.tokeninfo":
            return token_info(self, request, params, fault)
        denied, oauth = self._authenticate(request, fault)
        if denied is None and route is not None:
            denied = scope_denied(self, route.endpoint, request.method, params)
        if denied is not None:
            return denied
        is_search = route is not None and route.endpoint == "crm.search"
        limited, headers = self._rate_limit(is_search, oauth)
        if limited is not None:
            return limited
        resp = self._generic_fault(fault)
        if resp is None:
            if route is None:
                resp = error_response(
                    404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}"
                )
            else:
                method: Handler | None = getattr(self, route.handler, None)
                try:
                    with self._lock:
                        if method is not None:
                            resp = method(request, params, fault)
                        else:
                            resp = _MODULE_HANDLERS[route.handler](self, request, params, fault)
                except StoreError as e:
                    resp = error_response(
                        e.status,
                        e.category,
                        e.message,
                        context=e.context,
                        errors=e.errors,
                        sub_category=e.sub_category,
                    )
        for key, value in headers.items():
            resp.headers[key] = value
        return resp

    def _authenticate(self, request: Request, fault: Fault | None) -> tuple[Response | None, bool]:
        """(401 or None, whether the caller used an OAuth token rather than the private-app one)."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        private = self._creds.get("access_token")
        now = self.ctx.clock.timestamp()
        with self._lock:
            expiry = self._oauth.get(token)
            if fault is not None and fault.kind == "expired_token" and token:
                self._fault("expired_token")
                # An OAuth token is revoked for good; the private-app token never expires,
                # so for it the fault is a one-off 401.
                if expiry is not None:
                    self._oauth[token] = min(expiry, now)
                return self._expired(0), expiry is not None
        if token and token == private:
            return None, False
        if expiry is None:
            return error_response(401, "INVALID_AUTHENTICATION", _AUTH_MISSING), False
        if expiry <= now:
            return self._expired(int(now - expiry)), True
        return None, True

    @staticmethod
    def _expired(seconds: int) -> Response:
        # https://developers.hubspot.com/docs/api/oauth/tokens (EXPIRED_AUTHENTICATION)
        return error_response(
            401,
            "EXPIRED_AUTHENTICATION",
            f"The OAuth token used to make this call expired {seconds} second(s) ago.",
        )

    def _rate_limit(self, is_search: bool, oauth: bool) -> tuple[Response | None, dict[str, str]]:
        """(429 or None, headers). Search is exempt from the 10-s window and has no headers."""
        app = self._oauth_app if oauth else self._private
        if app is None or self._search_window is None:
            return None, {}
        if is_search:
            ok, _, wait = self._search_window.hit()
            if not ok:
                return self._too_many("SECONDLY", wait, {}), {}
            if not oauth and self._daily is not None:
                ok, _, wait = self._daily.hit()
                if not ok:
                    return self._too_many("DAILY", wait, {}), {}
            return None, {}
        policy, wait, headers = app.hit()
        if policy is not None:
            return self._too_many(policy, wait, headers), headers
        return None, headers

    @staticmethod
    def _too_many(policy: str, wait: float, headers: Mapping[str, str]) -> Response:
        # 429 body: https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
        # Retry-After is sent in seconds; the usage guidelines ask clients to honour it
        # (quoted in PostHog/posthog#64726) [verify].
        label = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "SECONDLY": "secondly"}.get(policy)
        message = (
            f"You have reached your {label} limit."
            if label
            else "You have reached your daily limit."
        )
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        out = dict(headers)
        out["Retry-After"] = str(max(1, math.ceil(wait)))
        return json_response(body, 429, out)

    def _generic_fault(self, fault: Fault | None) -> Response | None:
        if fault is None:
            return None
        if fault.kind == "rate_limit":
            self._fault("rate_limit")
            policy = str(fault.get("policy", "TEN_SECONDLY_ROLLING")).upper()
            return self._too_many(policy, float(fault.get("retry_after", 1)), {})
        if fault.kind == "server_error":
            self._fault("server_error")
            return error_response(500, "INTERNAL_ERROR", "internal error")
        if fault.kind == "unavailable":
            self._fault("unavailable")
            retry = str(fault.get("retry_after", 1))
            return error_response(
                503, "SERVICE_UNAVAILABLE", "Service Unavailable", headers={"Retry-After": retry}
            )
        return None

    # ------------------------------------------------------------ request helpers

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(request.get_data() or b"{}")
        except ValueError as e:
            raise StoreError(400, "VALIDATION_ERROR", f"Invalid input JSON: {e}") from None
        if not isinstance(data, dict):
            raise StoreError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        return data

    @staticmethod
    def _inputs(body: Mapping[str, Any], limit: int) -> list[Any]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise StoreError(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be a list")
        if len(inputs) > limit:
            # The body for an oversized batch is not documented [verify]; same shape as
            # the documented property-history limit error.
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                f"The maximum number of inputs supported in a batch request is {limit}. "
                "Please reduce the number of items and try again",
                context={"maxInputs": [str(limit)], "inputs": [str(len(inputs))]},
            )
        return inputs

    def _read_props(self, obj: str, requested: Sequence[str] | None) -> list[str]:
        schema = self.tables[obj].schema  # per portal: a fresh one lacks revsync_id
        wanted = [p for p in requested or () if p in schema.index]
        base = wanted if requested else list(DEFAULT_PROPERTIES[obj])
        return list(dict.fromkeys([*base, *ALWAYS[obj]]))

    @staticmethod
    def _arg_list(request: Request, name: str) -> list[str]:
        out: list[str] = []
        for raw in request.args.getlist(name):
            out.extend(p.strip() for p in raw.split(",") if p.strip())
        return out

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return request.args.get(name, "false").lower() == "true"

    def _written_props(self, obj: str, rec: Rec) -> list[str]:
        table = self.tables[obj]
        names = [
            f.name for f in table.schema.fields if rec.vals[table.schema.index[f.name]] is not None
        ]
        return list(dict.fromkeys([*names, *ALWAYS[obj]]))

    def _check_props(
        self, obj: str, props: Any, fault: Fault | None
    ) -> tuple[dict[str, str | None], list[ValueProblem]]:
        """Validated values to store and the per-item problems; unknown names fail the call."""
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise StoreError(
                400, "VALIDATION_ERROR", "Invalid input JSON: properties must be an object"
            )
        schema = self.tables[obj].schema
        unknown = [p for p in props if p not in schema.index]
        if unknown:
            body = problems_error(
                [
                    ValueProblem(p, "PROPERTY_DOESNT_EXIST", f'Property "{p}" does not exist')
                    for p in unknown
                ]
            )
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                body["message"],
                context=body["context"],
                errors=body["errors"],
            )
        values: dict[str, str | None] = {}
        problems: list[ValueProblem] = []
        for name, raw in props.items():
            spec = schema.fields[schema.index[name]]
            if not spec.updateable:
                if name in DERIVED:
                    continue  # HubSpot ignores writes to its own stamps
                problems.append(
                    ValueProblem(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
                )
                continue
            norm = normalize_value(spec, schema.options.get(name, ()), raw)
            if isinstance(norm, ValueProblem):
                problems.append(norm)
            else:
                values[name] = None if norm == "" else norm
        if fault is not None and fault.kind == "validation":
            field = str(fault.get("field", "")).lower()
            for name, raw in props.items():
                if name.lower() == field and str(raw) == str(fault.get("value")):
                    self._fault("validation")
                    problems.append(
                        ValueProblem(
                            name, "INVALID_OPTION", f"{raw} was not one of the allowed options"
                        )
                    )
        return values, problems

    def _partial_victims(self, fault: Fault | None, n: int) -> set[int]:
        if fault is None or fault.kind != "partial" or n == 0:
            return set()
        self._fault("partial")
        k = max(1, round(float(fault.get("fraction", 0.1)) * n))
        return set(self._rng.sample(range(n), min(k, n)))

    def _partial_error(self, fault: Fault, context: Mapping[str, Any]) -> dict[str, Any]:
        category = str(fault.get("category", "VALIDATION_ERROR"))
        return item_error(
            category, str(fault.get("message", "Property values were not valid")), context
        )

    def _batch_response(
        self,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        started: int,
        ok_status: int,
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return json_response(body, 207)
        return json_response(body, ok_status)

    def _locate(self, obj: str, key: str, id_property: str | None) -> Rec | None:
        table = self.tables[obj]
        if id_property and id_property != "hs_object_id":
            if id_property not in table.schema.unique:
                raise StoreError(
                    400,
                    "VALIDATION_ERROR",
                    f"Property {id_property} is not a unique identifier property",
                )
            return table.find_unique(id_property, key)
        rid = to_int(key)
        rec = table.resolve(rid) if rid is not None else None
        return rec

    def _conflict(
        self, obj: str, values: Mapping[str, str | None], exclude: int | None = None
    ) -> Rec | None:
        table = self.tables[obj]
        for prop in table.schema.unique:
            v = values.get(prop)
            if v:
                other = table.find_unique(prop, v)
                if other is not None and other.id != exclude:
                    return other
        return None

    def _conflict_error(self, obj: str, existing: Rec) -> StoreError:
        noun = SINGULAR[obj].capitalize()
        return StoreError(409, "CONFLICT", f"{noun} already exists. Existing ID: {existing.id}")

    def _create_rec(self, obj: str, values: Mapping[str, str | None]) -> Rec:
        table = self.tables[obj]
        vals: list[str | None] = [None] * len(table.schema.fields)
        for k, v in values.items():
            vals[table.schema.index[k]] = v
        ms = self._now()
        rec = Rec(self._new_id(), vals, ms, ms)
        table.insert(rec)
        return rec

    # ------------------------------------------------------------ objects

    def _list(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``GET /crm/v3/objects/{type}``. https://developers.hubspot.com/docs/api/crm/contacts"""
        obj, table = self._table(params["obj"])
        limit = to_int(request.args.get("limit", LIST_LIMIT_DEFAULT))
        if limit is None:
            raise StoreError(400, "VALIDATION_ERROR", "limit must be a positive integer")
        limit = min(limit, LIST_LIMIT_MAX)
        start = decode_after(request.args.get("after"))
        archived = self._flag(request, "archived")
        ids = table.archived if archived else table.live
        i = bisect_left(ids, start)
        chunk = ids[i : i + limit + 1]
        props = self._read_props(obj, self._arg_list(request, "properties") or None)
        assoc_to = [
            TYPE_ALIASES[a] for a in self._arg_list(request, "associations") if a in TYPE_ALIASES
        ]
        results = []
        for rid in chunk[:limit]:
            rec = table.recs[rid]
            item = table.render(rec, props, with_archived=archived)
            if assoc_to:
                item["associations"] = self._v3_assocs(obj, rec.id, assoc_to)
            results.append(item)
        body: dict[str, Any] = {"results": results}
        if len(chunk) > limit:
            after = encode_after(chunk[limit])
            link = f"{request.host_url.rstrip('/')}{request.path}?after={quote(after)}"
            body["paging"] = {"next": {"after": after, "link": link}}
        self.ctx.stats.served(self.system, len(results))
        return json_response(body)

    def _v3_assocs(self, obj: str, rid: int, to_types: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for to in to_types:
            if (obj, to) not in ASSOC_TYPES:
                continue
            name = f"{SINGULAR[obj].lower()}_to_{SINGULAR[to].lower()}"
            items: list[dict[str, str]] = []
            for b, primary in self.assoc.targets(obj, to, rid):
                if not self._alive(to, b):
                    continue
                has_primary = ASSOC_TYPES[(obj, to)][1] is not None
                if primary or not has_primary:
                    items.append({"id": str(b), "type": name})
                if has_primary:
                    items.append({"id": str(b), "type": f"{name}_unlabeled"})
            if items:
                out[to] = {"results": items}
        return out

    def _alive(self, obj: str, rid: int) -> bool:
        rec = self.tables[obj].recs.get(rid)
        return rec is not None and rec.live

    def _get(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``GET /crm/v3/objects/{type}/{id}`` (``idProperty``, ``archived``)."""
        obj, table = self._table(params["obj"])
        archived = self._flag(request, "archived")
        id_property = request.args.get("idProperty")
        rec = self._locate(obj, params["id"], id_property)
        if rec is None or (rec.archived_ms is not None) != archived:
            raise StoreError(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                context={"id": [params["id"]]},
            )  # fmt: skip
        props = self._read_props(obj, self._arg_list(request, "properties") or None)
        item = table.render(rec, props, with_archived=archived)
        assoc_to = [
            TYPE_ALIASES[a] for a in self._arg_list(request, "associations") if a in TYPE_ALIASES
        ]
        if assoc_to:
            item["associations"] = self._v3_assocs(obj, rec.id, assoc_to)
        self.ctx.stats.served(self.system, 1)
        return json_response(item)

    def _create(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``POST /crm/v3/objects/{type}`` → 201."""
        obj, table = self._table(params["obj"])
        body = self._json(request)
        values, problems = self._check_props(obj, body.get("properties"), fault)
        if problems:
            raise validation_error(problems)
        existing = self._conflict(obj, values)
        if existing is not None:
            raise self._conflict_error(obj, existing)
        assocs = parse_create_assocs(self, obj, body.get("associations"))
        rec = self._create_rec(obj, values)
        apply_create_assocs(self, obj, rec.id, assocs)
        self.ctx.stats.written(self.system, 1)
        return json_response(table.render(rec, self._written_props(obj, rec)), 201)

    def _update(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``PATCH /crm/v3/objects/{type}/{id}``."""
        obj, table = self._table(params["obj"])
        rec = self._locate(obj, params["id"], request.args.get("idProperty"))
        if rec is None or not rec.live:
            raise StoreError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                             context={"id": [params["id"]]})  # fmt: skip
        values, problems = self._check_props(obj, self._json(request).get("properties"), fault)
        if problems:
            raise validation_error(problems)
        other = self._conflict(obj, values, exclude=rec.id)
        if other is not None:
            raise self._conflict_error(obj, other)
        table.set_values(rec, values, self._now())
        self.ctx.stats.written(self.system, 1)
        return json_response(table.render(rec, self._written_props(obj, rec)))

    def _archive(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``DELETE /crm/v3/objects/{type}/{id}`` → 204 (also for unknown ids)."""
        obj, table = self._table(params["obj"])
        rec = self._locate(obj, params["id"], None)
        if rec is not None and rec.live:
            table.archive(rec, self._now())
            self.ctx.stats.written(self.system, 1)
        return Response(status=204)

    # ------------------------------------------------------------ search, merge

    def _search(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``POST /crm/v3/objects/{type}/search``. https://developers.hubspot.com/docs/api/crm/search"""
        obj, table = self._table(params["obj"])
        body = self._json(request)
        page = search(table, obj, body)
        props = self._read_props(obj, body.get("properties") or None)
        out: dict[str, Any] = {
            "total": page.total,
            "results": [table.render(r, props) for r in page.records],
        }
        if page.next_after is not None:
            out["paging"] = {"next": {"after": str(page.next_after)}}
        self.ctx.stats.served(self.system, len(page.records))
        return json_response(out)

    def _gdpr_delete(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST /crm/v3/objects/contacts/gdpr-delete`` → 204; the contact is gone for good.

        https://developers.hubspot.com/docs/api/crm/contacts (GDPR delete)
        """
        obj, table = self._table(params["obj"])
        if obj != "contacts":
            raise StoreError(400, "VALIDATION_ERROR", "GDPR delete is only available for contacts")
        body = self._json(request)
        key = str(body.get("objectId", ""))
        rec = self._locate(obj, key, body.get("idProperty"))
        if rec is not None and rec.merged_into is None:
            for to in ("companies", "deals"):
                for b, _ in self.assoc.targets(obj, to, rec.id):
                    self.assoc.remove(obj, to, rec.id, b)
            table.purge(rec)
            self.ctx.stats.written(self.system, 1)
        return Response(status=204)

    def _merge(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``POST /crm/v3/objects/{type}/merge`` → the merged record under a new id.

        https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies
        """
        obj, table = self._table(params["obj"])
        body = self._json(request)
        a, b = str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", ""))
        primary, other = self._locate(obj, a, None), self._locate(obj, b, None)
        for key, rec in ((a, primary), (b, other)):
            if rec is None or not rec.live:
                raise StoreError(400, "VALIDATION_ERROR", f"Object {key} does not exist or is not active",
                                 context={"id": [key]})  # fmt: skip
        assert primary is not None and other is not None
        if primary.id == other.id:
            raise StoreError(400, "VALIDATION_ERROR", "Cannot merge an object with itself")
        merged = self.merge_records(obj, primary, other)
        self.ctx.stats.written(self.system, 3)
        return json_response(table.render(merged, self._written_props(obj, merged)))

    def merge_records(self, obj: str, primary: Rec, other: Rec) -> Rec:
        """Merge ``other`` into ``primary`` as HubSpot does: a NEW record survives."""
        table = self.tables[obj]
        idx = table.schema.index
        vals = list(primary.vals)
        for i, v in enumerate(other.vals):
            if vals[i] in (None, ""):
                vals[i] = v
        ids: list[str] = []
        for rec in (primary, other):
            prior = rec.vals[idx["hs_merged_object_ids"]]
            ids.extend(x for x in (prior or "").split(";") if x)
            ids.append(str(rec.id))
        vals[idx["hs_merged_object_ids"]] = ";".join(dict.fromkeys(ids))
        now = self._now()
        new = Rec(self._new_id(), vals, min(primary.created_ms, other.created_ms), now)
        secondary_uniques = {p: other.vals[idx[p]] for p in table.schema.unique}
        table.merge_away(primary, new.id)
        table.merge_away(other, new.id)
        table.insert(new)
        for prop, v in secondary_uniques.items():
            if v and fold(v) not in table.uniq[prop]:
                table.uniq[prop][fold(v)] = new.id  # the old value still finds it
        self.assoc.move(obj, primary.id, new.id)
        self.assoc.move(obj, other.id, new.id)
        return new

    # ------------------------------------------------------------ edits

    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """``n`` realistic edits made inside HubSpot (as users and workflows would)."""
        with self._lock:
            return apply_edits(self, rng, n, kinds)
