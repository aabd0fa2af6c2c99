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

import math
import random
import re
import uuid
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from sandbox.core import Fault, json_response
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
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OAUTH_EXPIRES_IN,
    decode_after,
    encode_after,
    error_response,
)
from sandbox.hubspot_edits import apply_edits
from sandbox.hubspot_search import SEARCH_CAP, SEARCH_LIMIT_MAX, search
from sandbox.hubspot_setup import create_property, scope_denied, token_info
from sandbox.hubspot_state import HubSpotState
from sandbox.hubspot_store import (
    TYPE_ALIASES,
    StoreError,
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


class HubSpotEmulator(HubSpotState):
    """The HubSpot emulator (one portal/account): routing, auth, rate limits, the
    single-object endpoints, search and merge over ``HubSpotState``."""

    # ------------------------------------------------------------ data in

    # ------------------------------------------------------------ plumbing

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

    # ------------------------------------------------------------ edits

    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """``n`` realistic edits made inside HubSpot (as users and workflows would)."""
        with self._lock:
            return apply_edits(self, rng, n, kinds)
