"""HubSpot CRM emulator: CRM v3 objects, search, batch, merge, owners, properties,
associations v4 and OAuth, served to the real hubspot-api-client 12.

Shapes, limits and error bodies follow the vendor's docs (see the shared API notes,
section B); where a fact is not documented the choice is marked ``[verify]``. The
data structures live in ``sandbox/hubspot_store.py``, search in
``sandbox/hubspot_search.py``; this module is the HTTP layer: auth, rate limits,
faults, routing and the handlers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from sandbox.core import Emulator, Fault, RateWindow, SandboxContext, json_response
from sandbox.hubspot_search import search
from sandbox.hubspot_store import (
    ALWAYS,
    ASSOC_TYPES,
    DEFAULT_PROPERTIES,
    DERIVED,
    OBJECT_TYPES,
    SCHEMAS,
    SINGULAR,
    TYPE_ALIASES,
    TYPE_IDS,
    Associations,
    Rec,
    StoreError,
    Table,
    ValueProblem,
    assoc_type_ok,
    fold,
    iso_ms,
    iter_json_array,
    normalize_value,
    now_ms,
    problems_error,
    property_definitions,
    read_json_array,
    record_from_seed,
    to_int,
)

# https://developers.hubspot.com/docs/api/crm/contacts : list limit defaults to 10, max 100.
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100  # over 100 is capped silently [verify]: the spec sets no maximum.
# "Batch operations are limited to 100 records at a time" (contacts guide, Limits).
BATCH_MAX = 100
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

_AUTH_MISSING = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

Handler = Callable[[Request, dict[str, str], "Fault | None"], Response]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: str  # method name on the emulator


def _r(method: str, path: str, endpoint: str, handler: str) -> _Route:
    return _Route(method, re.compile("^" + path + "$"), endpoint, handler)


_OBJ = r"(?P<obj>[A-Za-z0-9_-]+)"
_ROUTES = (
    _r("POST", r"/oauth/v1/token", "oauth", "_oauth_token"),
    _r("GET", r"/crm/v3/owners/?", "owners", "_owners"),
    _r("GET", r"/crm/v3/properties/" + _OBJ, "properties", "_properties"),
    _r("GET", r"/account-info/v3/api-usage/daily/private-apps", "usage", "_usage"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/search", "crm.search", "_search"),
    _r("POST", r"/crm/v3/objects/" + _OBJ + r"/merge", "crm.merge", "_merge"),
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


def _err(
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


def _item_error(
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
        if limits is None:  # tier "off": no limits
            self._burst = self._daily = self._secondly = self._search_window = None
        else:
            burst, daily = limits
            self._burst = RateWindow(burst, BURST_SECONDS, clock)
            self._daily = RateWindow(daily, 86_400, clock)
            # -Secondly headers are still sent though deprecated: a tenth of the burst.
            self._secondly = RateWindow(max(1, burst // 10), 1.0, clock)
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
            resp = _err(
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
            return early or self._oauth_token(request, params, fault)
        denied = self._authenticate(request, fault)
        if denied is not None:
            return denied
        is_search = route is not None and route.endpoint == "crm.search"
        limited, headers = self._rate_limit(is_search)
        if limited is not None:
            return limited
        resp = self._generic_fault(fault)
        if resp is None:
            if route is None:
                resp = _err(
                    404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}"
                )
            else:
                handler: Handler = getattr(self, route.handler)
                try:
                    with self._lock:
                        resp = handler(request, params, fault)
                except StoreError as e:
                    resp = _err(
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

    def _authenticate(self, request: Request, fault: Fault | None) -> Response | None:
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
                return self._expired(0)
        if token and token == private:
            return None
        if expiry is None:
            return _err(401, "INVALID_AUTHENTICATION", _AUTH_MISSING)
        if expiry <= now:
            return self._expired(int(now - expiry))
        return None

    @staticmethod
    def _expired(seconds: int) -> Response:
        # https://developers.hubspot.com/docs/api/oauth/tokens (EXPIRED_AUTHENTICATION)
        return _err(
            401,
            "EXPIRED_AUTHENTICATION",
            f"The OAuth token used to make this call expired {seconds} second(s) ago.",
        )

    def _rate_limit(self, is_search: bool) -> tuple[Response | None, dict[str, str]]:
        """(429 or None, headers). Search is exempt from the 10-s window and has no headers."""
        if (
            self._burst is None
            or self._daily is None
            or self._secondly is None
            or self._search_window is None
        ):
            return None, {}
        if is_search:
            ok, _, wait = self._search_window.hit()
            if not ok:
                return self._too_many("SECONDLY", wait, {}), {}
            ok, _, wait = self._daily.hit()
            if not ok:
                return self._too_many("DAILY", wait, {}), {}
            return None, {}
        ok, remaining, wait = self._burst.hit()
        if not ok:
            headers = self._headers(0)
            return self._too_many("TEN_SECONDLY_ROLLING", wait, headers), headers
        ok_day, _, wait_day = self._daily.hit()
        headers = self._headers(remaining)
        if not ok_day:
            return self._too_many("DAILY", wait_day, headers), headers
        self._secondly.hit()
        return None, headers

    def _headers(self, remaining: int) -> dict[str, str]:
        assert self._burst is not None and self._daily is not None and self._secondly is not None
        return {
            "X-HubSpot-RateLimit-Daily": str(self._daily.limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self._daily.remaining()),
            "X-HubSpot-RateLimit-Max": str(self._burst.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(BURST_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Secondly": str(self._secondly.limit),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(self._secondly.remaining()),
        }

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
            return _err(500, "INTERNAL_ERROR", "internal error")
        if fault.kind == "unavailable":
            self._fault("unavailable")
            retry = str(fault.get("retry_after", 1))
            return _err(
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
        schema = SCHEMAS[obj]
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
        schema = SCHEMAS[obj]
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
        return _item_error(
            category, str(fault.get("message", "Property values were not valid")), context
        )

    @staticmethod
    def _problem_item(problems: list[ValueProblem], context: Mapping[str, Any]) -> dict[str, Any]:
        body = problems_error(problems)
        return _item_error(
            "VALIDATION_ERROR", body["message"], {**body["context"], **context}, body["errors"]
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

    # ------------------------------------------------------------ OAuth

    def _oauth_token(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST /oauth/v1/token`` (refresh_token grant). https://developers.hubspot.com/docs/api/oauth/tokens"""
        form = request.form
        creds = self._creds
        if form.get("client_id") != creds.get("client_id") or form.get(
            "client_secret"
        ) != creds.get("client_secret"):
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
        with self._lock:
            self._oauth[token] = self.ctx.clock.timestamp() + OAUTH_EXPIRES_IN
        return json_response(
            {
                "access_token": token,
                "refresh_token": creds["refresh_token"],
                "expires_in": OAUTH_EXPIRES_IN,
                "token_type": "bearer",
            }
        )

    # ------------------------------------------------------------ objects

    def _list(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``GET /crm/v3/objects/{type}``. https://developers.hubspot.com/docs/api/crm/contacts"""
        obj, table = self._table(params["obj"])
        limit = to_int(request.args.get("limit", LIST_LIMIT_DEFAULT))
        if limit is None:
            raise StoreError(400, "VALIDATION_ERROR", "limit must be a positive integer")
        limit = min(limit, LIST_LIMIT_MAX)
        start = _decode_after(request.args.get("after"))
        archived = self._flag(request, "archived")
        ids = table.archived if archived else table.live
        from bisect import bisect_left

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
            after = _encode_after(chunk[limit])
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
            err = problems_error(problems)
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                err["message"],
                context=err["context"],
                errors=err["errors"],
            )
        existing = self._conflict(obj, values)
        if existing is not None:
            raise self._conflict_error(obj, existing)
        assocs = self._parse_create_assocs(obj, body.get("associations"))
        rec = self._create_rec(obj, values)
        self._apply_create_assocs(obj, rec.id, assocs)
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
            err = problems_error(problems)
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                err["message"],
                context=err["context"],
                errors=err["errors"],
            )
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

    # ------------------------------------------------------------ batch

    def _batch_read(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/read``: 200, or 207 with OBJECT_NOT_FOUND for unknown ids."""
        started = self._now()
        obj, table = self._table(params["obj"])
        body = self._json(request)
        inputs = self._inputs(body, BATCH_MAX)
        archived = self._flag(request, "archived")
        id_property = body.get("idProperty")
        props = self._read_props(obj, body.get("properties") or None)
        results, missing, seen = [], [], set()
        for item in inputs:
            key = str((item or {}).get("id", ""))
            rec = self._locate(obj, key, id_property)
            if rec is None or (rec.archived_ms is not None) != archived:
                missing.append(key)
                continue
            if rec.id in seen:
                continue
            seen.add(rec.id)
            results.append(table.render(rec, props, with_archived=archived))
        errors = []
        if missing:
            errors.append(
                _item_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {SINGULAR[obj]} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    {"ids": missing},
                )
            )
        self.ctx.stats.served(self.system, len(results))
        return self._batch_response(results, errors, started, 200)

    def _batch_create(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/create`` → 201; 207 per-item errors; 409 if a unique value exists."""
        started = self._now()
        obj, table = self._table(params["obj"])
        inputs = self._inputs(self._json(request), BATCH_MAX)
        checked = []
        claimed: dict[tuple[str, str], int] = {}
        for n, item in enumerate(inputs):
            item = item or {}
            values, problems = self._check_props(obj, item.get("properties"), fault)
            existing = self._conflict(obj, values)
            if existing is not None:
                raise self._conflict_error(obj, existing)
            for prop in table.schema.unique:
                v = values.get(prop)
                if v:
                    key = (prop, fold(v))
                    if key in claimed:
                        raise StoreError(
                            409, "CONFLICT",
                            f"Duplicate value for unique property {prop} in inputs {claimed[key]} and {n}",
                        )  # fmt: skip
                    claimed[key] = n
            assocs = self._parse_create_assocs(obj, item.get("associations"))
            checked.append((item, values, problems, assocs))
        victims = self._partial_victims(fault, len(checked))
        results, errors = [], []
        for n, (item, values, problems, assocs) in enumerate(checked):
            ctx: dict[str, Any] = {}
            if item.get("objectWriteTraceId"):
                ctx["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
            if problems:
                errors.append(self._problem_item(problems, ctx))
                continue
            if n in victims and fault is not None:
                errors.append(self._partial_error(fault, ctx))
                continue
            rec = self._create_rec(obj, values)
            self._apply_create_assocs(obj, rec.id, assocs)
            results.append(table.render(rec, self._written_props(obj, rec)))
        self.ctx.stats.written(self.system, len(results))
        return self._batch_response(results, errors, started, 201)

    def _batch_update(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/update``: 200, or 207 (OBJECT_NOT_FOUND, VALIDATION_ERROR)."""
        started = self._now()
        obj, table = self._table(params["obj"])
        inputs = self._inputs(self._json(request), BATCH_MAX)
        _no_duplicates(inputs)
        checked = [
            (item or {}, *self._check_props(obj, (item or {}).get("properties"), fault))
            for item in inputs
        ]
        victims = self._partial_victims(fault, len(checked))
        results, errors, missing = [], [], []
        now = self._now()
        for n, (item, values, problems) in enumerate(checked):
            key = str(item.get("id", ""))
            rec = self._locate(obj, key, item.get("idProperty"))
            if rec is None or not rec.live:
                missing.append(key)
                continue
            ctx = {"ids": [key]}
            if problems:
                errors.append(self._problem_item(problems, ctx))
                continue
            if n in victims and fault is not None:
                errors.append(self._partial_error(fault, ctx))
                continue
            other = self._conflict(obj, values, exclude=rec.id)
            if other is not None:
                errors.append(
                    _item_error(
                        "CONFLICT",
                        f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                        ctx,
                    )
                )
                continue
            table.set_values(rec, values, now)
            results.append(table.render(rec, self._written_props(obj, rec)))
        if missing:
            errors.append(
                _item_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {SINGULAR[obj]} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    {"ids": missing},
                )
            )
        self.ctx.stats.written(self.system, len(results))
        return self._batch_response(results, errors, started, 200)

    def _batch_upsert(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/upsert`` by a unique ``idProperty``; results carry ``new``."""
        started = self._now()
        obj, table = self._table(params["obj"])
        inputs = self._inputs(self._json(request), BATCH_MAX)
        _no_duplicates(inputs)
        checked = []
        for item in inputs:
            item = item or {}
            id_prop = item.get("idProperty") or "hs_object_id"
            if id_prop != "hs_object_id" and id_prop not in table.schema.unique:
                raise StoreError(
                    400, "VALIDATION_ERROR",
                    f"Property {id_prop} is not a unique identifier property and cannot be used as idProperty",
                )  # fmt: skip
            values, problems = self._check_props(obj, item.get("properties"), fault)
            checked.append((item, id_prop, values, problems))
        if obj == "contacts" and any(p for _, ip, _, p in checked if ip == "email"):
            # "Partial upserts are not supported when using email as the idProperty" (contacts guide).
            problems = [p for _, ip, _, ps in checked if ip == "email" for p in ps]
            err = problems_error(problems)
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                err["message"],
                context=err["context"],
                errors=err["errors"],
            )
        victims = self._partial_victims(fault, len(checked))
        results, errors = [], []
        now = self._now()
        for n, (item, id_prop, values, problems) in enumerate(checked):
            key = str(item.get("id", ""))
            ctx = {"ids": [key]}
            if problems:
                errors.append(self._problem_item(problems, ctx))
                continue
            if n in victims and fault is not None:
                errors.append(self._partial_error(fault, ctx))
                continue
            rec = table.find_unique(id_prop, key) if key else None
            if rec is None and id_prop == "hs_object_id":
                errors.append(_item_error("OBJECT_NOT_FOUND", f"Object {key} not found", ctx))
                continue
            if rec is None:
                values = {**values, id_prop: key}
                other = self._conflict(obj, values)
                if other is not None:
                    errors.append(
                        _item_error(
                            "CONFLICT",
                            f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                            ctx,
                        )
                    )
                    continue
                rec = self._create_rec(obj, values)
                is_new = True
            else:
                other = self._conflict(obj, values, exclude=rec.id)
                if other is not None:
                    errors.append(
                        _item_error(
                            "CONFLICT",
                            f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                            ctx,
                        )
                    )
                    continue
                table.set_values(rec, values, now)
                is_new = False
            out = table.render(rec, self._written_props(obj, rec))
            out["new"] = is_new
            results.append(out)
        self.ctx.stats.written(self.system, len(results))
        return self._batch_response(results, errors, started, 200)

    def _batch_archive(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/archive`` → 204."""
        obj, table = self._table(params["obj"])
        inputs = self._inputs(self._json(request), BATCH_MAX)
        now = self._now()
        n = 0
        for item in inputs:
            rec = self._locate(obj, str((item or {}).get("id", "")), None)
            if rec is not None and rec.live:
                table.archive(rec, now)
                n += 1
        self.ctx.stats.written(self.system, n)
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

    # ------------------------------------------------------------ owners, properties, usage

    def _owners(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``GET /crm/v3/owners`` (paged, ``email`` filter). https://developers.hubspot.com/docs/api/crm/owners"""
        limit = min(
            to_int(request.args.get("limit", OWNERS_LIMIT_DEFAULT)) or OWNERS_LIMIT_DEFAULT,
            OWNERS_LIMIT_MAX,
        )
        archived = self._flag(request, "archived")
        email = request.args.get("email")
        rows = [
            o for o in self.owners
            if bool(o.get("archived")) == archived and (email is None or str(o.get("email", "")).lower() == email.lower())
        ]  # fmt: skip
        start = _decode_after(request.args.get("after"))  # an offset for owners
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
            after = _encode_after(start + limit + 1)
            link = f"{request.host_url.rstrip('/')}{request.path}?after={quote(after)}"
            body["paging"] = {"next": {"after": after, "link": link}}
        return json_response(body)

    def _properties(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``GET /crm/v3/properties/{type}``. https://developers.hubspot.com/docs/api/crm/properties"""
        obj, _ = self._table(params["obj"])
        return json_response({"results": property_definitions(obj)})

    def _usage(self, request: Request, params: dict[str, str], fault: Fault | None) -> Response:
        """``GET /account-info/v3/api-usage/daily/private-apps``."""
        if self._daily is None:
            return json_response({"results": []})
        used = self._daily.limit - self._daily.remaining()
        return json_response(
            {"results": [{"name": "private-apps-api-calls-daily", "usageLimit": self._daily.limit,
                          "currentUsage": used, "collectedAt": iso_ms(self._now()),
                          "fetchStatus": "SUCCESS", "resetsAt": iso_ms(self._now() + 86_400_000)}]}
        )  # fmt: skip

    # ------------------------------------------------------------ associations v4

    def _pair(self, params: Mapping[str, str]) -> tuple[str, str]:
        frm, to = TYPE_ALIASES.get(params["frm"].lower()), TYPE_ALIASES.get(params["to"].lower())
        if frm is None or to is None or (frm, to) not in ASSOC_TYPES:
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                f"Unknown object type pair {params['frm']} → {params['to']}",
            )
        return frm, to

    def _parse_create_assocs(self, obj: str, raw: Any) -> list[tuple[str, int, bool]]:
        """``associations`` of a create input → (to type, to id, primary)."""
        out: list[tuple[str, int, bool]] = []
        for a in raw or []:
            to_id = to_int(((a or {}).get("to") or {}).get("id"))
            types = (a or {}).get("types") or []
            if to_id is None or not types:
                raise StoreError(400, "VALIDATION_ERROR", "Each association needs to.id and types")
            for t in types:
                type_id = int(t.get("associationTypeId", 0))
                match = [(to, p) for (f, to) in ASSOC_TYPES if f == obj
                         if (p := assoc_type_ok(obj, to, type_id)) is not None]  # fmt: skip
                if not match:
                    raise StoreError(
                        400,
                        "VALIDATION_ERROR",
                        f"associationTypeId {type_id} is not valid from {obj}",
                    )
                to, primary = match[0]
                if not self._alive(to, to_id):
                    raise StoreError(400, "VALIDATION_ERROR", f"{SINGULAR[to]} {to_id} does not exist",
                                     context={"id": [str(to_id)]})  # fmt: skip
                out.append((to, to_id, primary))
        return out

    def _apply_create_assocs(self, obj: str, rid: int, assocs: list[tuple[str, int, bool]]) -> None:
        for to, to_id, primary in assocs:
            self.assoc.add(obj, to, rid, to_id, primary=primary)

    def _assoc_read(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST /crm/v4/associations/{from}/{to}/batch/read`` (≤1,000 inputs)."""
        started = self._now()
        frm, to = self._pair(params)
        inputs = self._inputs(self._json(request), ASSOC_READ_MAX)
        results, errors = [], []
        for item in inputs:
            key = str((item or {}).get("id", ""))
            rid = to_int(key)
            targets = [
                (b, p)
                for b, p in (
                    self.assoc.targets(frm, to, rid) if rid and self._alive(frm, rid) else []
                )
                if self._alive(to, b)
            ]
            if not targets:
                # Ids without associations (or unknown ids) come back as errors [verify]:
                # HubSpot reports "No {to} is associated with {from} {id}" in a 207.
                errors.append(
                    _item_error(
                        "OBJECT_NOT_FOUND",
                        f"No {SINGULAR[to].lower()} is associated with {SINGULAR[frm].lower()} {key}.",
                        {"fromObjectId": [key]},
                    )
                )
                errors[-1]["subCategory"] = "crm.associations.NO_ASSOCIATIONS_FOUND"
                continue
            results.append(
                {
                    "from": {"id": key},
                    "to": [
                        {"toObjectId": b, "associationTypes": self.assoc.type_entries(frm, to, p)}
                        for b, p in sorted(targets)
                    ],
                }
            )
        return self._batch_response(results, errors, started, 200)

    def _assoc_pairs(
        self, frm: str, to: str, inputs: list[Any]
    ) -> list[tuple[int, int, list[Any]]]:
        out = []
        for item in inputs:
            item = item or {}
            a = to_int((item.get("from") or {}).get("id"))
            b_raw = item.get("to")
            b = to_int(b_raw.get("id")) if isinstance(b_raw, dict) else None
            if a is None or b is None:
                raise StoreError(400, "VALIDATION_ERROR", "Each input needs from.id and to.id")
            out.append((a, b, item.get("types") or []))
        return out

    def _assoc_create(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST /crm/v4/associations/{from}/{to}/batch/create`` → 201 / 207."""
        started = self._now()
        frm, to = self._pair(params)
        pairs = self._assoc_pairs(frm, to, self._inputs(self._json(request), ASSOC_WRITE_MAX))
        victims = self._partial_victims(fault, len(pairs))
        results, errors = [], []
        for n, (a, b, types) in enumerate(pairs):
            ctx = {"fromObjectId": [str(a)], "toObjectId": [str(b)]}
            if not self._alive(frm, a) or not self._alive(to, b):
                errors.append(
                    _item_error(
                        "OBJECT_NOT_FOUND",
                        f"{SINGULAR[frm]} {a} or {SINGULAR[to]} {b} does not exist",
                        ctx,
                    )
                )
                continue
            primary = False
            for t in types:
                ok = assoc_type_ok(frm, to, int((t or {}).get("associationTypeId", 0)))
                if ok is None:
                    raise StoreError(
                        400,
                        "VALIDATION_ERROR",
                        f"associationTypeId {(t or {}).get('associationTypeId')} is not valid for {frm} → {to}",
                    )
                primary = primary or ok
            if n in victims and fault is not None:
                errors.append(self._partial_error(fault, ctx))
                continue
            self.assoc.add(frm, to, a, b, primary=primary)
            results.append(
                {
                    "fromObjectTypeId": TYPE_IDS[frm],
                    "fromObjectId": a,
                    "toObjectTypeId": TYPE_IDS[to],
                    "toObjectId": b,
                    "labels": [PRIMARY] if primary else [],
                }
            )
        return self._batch_response(results, errors, started, 201)

    def _default_result(self, frm: str, to: str, a: int, b: int) -> dict[str, Any]:
        return {
            "from": {"id": str(a)},
            "to": {"id": str(b)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": ASSOC_TYPES[(frm, to)][0],
            },
        }

    def _assoc_default(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/associate/default``: unlabeled associations."""
        started = self._now()
        frm, to = self._pair(params)
        pairs = self._assoc_pairs(frm, to, self._inputs(self._json(request), ASSOC_WRITE_MAX))
        results, errors = [], []
        for a, b, _ in pairs:
            if not self._alive(frm, a) or not self._alive(to, b):
                errors.append(_item_error("OBJECT_NOT_FOUND", f"{SINGULAR[frm]} {a} or {SINGULAR[to]} {b} does not exist",
                                          {"fromObjectId": [str(a)], "toObjectId": [str(b)]}))  # fmt: skip
                continue
            self.assoc.add(frm, to, a, b)
            results.append(self._default_result(frm, to, a, b))
        return self._batch_response(results, errors, started, 200)

    def _assoc_archive(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``POST …/batch/archive`` (``{"inputs":[{"from":{"id"},"to":[{"id"}]}]}``) → 204."""
        frm, to = self._pair(params)
        for item in self._inputs(self._json(request), ASSOC_WRITE_MAX):
            a = to_int(((item or {}).get("from") or {}).get("id"))
            targets = (item or {}).get("to") or []
            if isinstance(targets, dict):
                targets = [targets]
            for t in targets:
                b = to_int((t or {}).get("id"))
                if a is not None and b is not None:
                    self.assoc.remove(frm, to, a, b)
        return Response(status=204)

    def _assoc_put_default(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``PUT /crm/v4/objects/{type}/{id}/associations/default/{toType}/{toId}``."""
        started = self._now()
        frm, to = self._pair(params)
        a, b = to_int(params["id"]), to_int(params["to_id"])
        if a is None or b is None or not self._alive(frm, a) or not self._alive(to, b):
            raise StoreError(
                404,
                "OBJECT_NOT_FOUND",
                f"{SINGULAR[frm]} {params['id']} or {SINGULAR[to]} {params['to_id']} does not exist",
            )
        self.assoc.add(frm, to, a, b)
        return self._batch_response([self._default_result(frm, to, a, b)], [], started, 200)

    def _assoc_list(
        self, request: Request, params: dict[str, str], fault: Fault | None
    ) -> Response:
        """``GET /crm/v4/objects/{type}/{id}/associations/{toType}`` (paged by 500)."""
        frm, to = self._pair(params)
        a = to_int(params["id"])
        targets = sorted(
            (b, p)
            for b, p in (self.assoc.targets(frm, to, a) if a and self._alive(frm, a) else [])
            if self._alive(to, b)
        )
        limit = min(to_int(request.args.get("limit", ASSOC_PAGE)) or ASSOC_PAGE, ASSOC_PAGE)
        start = _decode_after(request.args.get("after"))
        chunk = [t for t in targets if t[0] >= start][: limit + 1]
        body: dict[str, Any] = {
            "results": [
                {"toObjectId": b, "associationTypes": self.assoc.type_entries(frm, to, p)}
                for b, p in chunk[:limit]
            ]
        }
        if len(chunk) > limit:
            body["paging"] = {"next": {"after": _encode_after(chunk[limit][0])}}
        return json_response(body)

    # ------------------------------------------------------------ edits

    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """``n`` realistic edits made inside HubSpot (as users and workflows would)."""
        from sandbox.hubspot_edits import apply_edits

        with self._lock:
            return apply_edits(self, rng, n, kinds)


PRIMARY = "Primary"


def _no_duplicates(inputs: list[Any]) -> None:
    keys = [str((i or {}).get("id", "")) for i in inputs]
    dupes = sorted({k for k in keys if keys.count(k) > 1 and k})
    if dupes:
        raise StoreError(
            400,
            "VALIDATION_ERROR",
            f"Duplicate IDs found in batch input: {dupes}. IDs must be unique",
        )


def _encode_after(value: int) -> str:
    """An opaque paging cursor (base64 of the next id), like HubSpot's ``NTI1Cg==``."""
    return base64.b64encode(f"{value}\n".encode()).decode()


def _decode_after(raw: str | None) -> int:
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
