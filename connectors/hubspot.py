"""HubSpot CRM connector (hubspot-api-client 12, CRM v3 objects + v4 associations).

Reads: full listings through ``basic_api.get_page`` (cursor ``after``), incremental
reads through ``search_api.do_search`` on the last-modified property, re-anchored
before the 10,000-result cap. Writes: ``batch_api`` upsert/update/archive, 100 a call,
with 207 partial results mapped op by op. Every call goes through ``_call``: budget,
one retry layer (``connectors.base.retrying``), error translation, limit headers.
The client's own urllib3 retries are switched off (``NO_URLLIB3_RETRY``).

Calls are made with ``_preload_content=False`` so the connector sees the raw JSON the
API returned (exact property strings) and the response headers (rate limits).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

from hubspot import HubSpot
from urllib3.util.retry import Retry

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    Connector,
    Cursor,
    ErrorCategory,
    FatalError,
    OpKind,
    RecordError,
    RemoteRecord,
    RetryPolicy,
    WriteOp,
    WriteResult,
    chunked,
    retrying,
)
from connectors.hubspot_http import (
    EPOCH,
    SYSTEM,
    BatchRejected,
    TokenExpired,
    existing_id,
    observe_headers,
    parse_body,
    parse_time,
    record_error,
    to_ms,
    translate,
)
from mapping.canonical import ObjectType
from sandbox.schema import HUBSPOT

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.hubapi.com"
DEFAULT_TIMEOUT = 60.0

# List: limit defaults to 10, max 100.
# https://developers.hubspot.com/docs/api/crm/contacts
HUBSPOT_LIST_PAGE = 100
# Search: limit ≤ 200, at most 10,000 results per query, 5 requests/s per account.
# https://developers.hubspot.com/docs/api/crm/search
HUBSPOT_SEARCH_PAGE = 200
HUBSPOT_SEARCH_CAP = 10_000
SEARCH_MIN_INTERVAL = 0.2
# Batch read/create/update/upsert/archive: 100 inputs a call.
# https://developers.hubspot.com/docs/api/crm/contacts#limits
HUBSPOT_BATCH = 100
# Associations v4 batch read: ≤ 1,000 inputs (since 2025-02-10).
# https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api
HUBSPOT_ASSOC_READ = 1_000
# Owners: GET /crm/v3/owners/, limit ≤ 100.
# https://developers.hubspot.com/docs/api/crm/owners
OWNERS_PAGE = 100
# OAuth access tokens live 1800 s; refresh a minute early.
# https://developers.hubspot.com/docs/api/oauth/tokens
TOKEN_EARLY_REFRESH_S = 60.0
TOKEN_DEFAULT_TTL_S = 1800.0

#: urllib3 retries OFF: with the urllib3 default (3) a 429 carrying Retry-After and a
#: connection reset are silently repeated under our own retry layer.
NO_URLLIB3_RETRY = Retry(total=0, redirect=0)

OWNER_PROPERTY = "hubspot_owner_id"
OWNER_EMAIL = "_owner_email"
MERGED_PROPERTY = "hs_merged_object_ids"
EXTERNAL_ID_PROPERTY = "revsync_id"
OBJECT_ID_PROPERTY = "hs_object_id"
EMAIL_PROPERTY = "email"

MODSTAMP_PROPERTY: Mapping[str, str] = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
#: associations read per native object: (HubSpot object to, canonical key)
ASSOCIATIONS_READ: Mapping[str, tuple[tuple[str, str], ...]] = {
    "companies": (),
    "contacts": (("companies", "account"),),
    "deals": (("companies", "account"), ("contacts", "contact")),
}
CANONICAL_NATIVE: Mapping[str, str] = {
    "account": "companies",
    "contact": "contacts",
    "opportunity": "deals",
}


@dataclass(frozen=True)
class OAuthCredentials:
    """OAuth app credentials; ``repr`` never shows them."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Item:
    """One op on its way into a batch call."""

    index: int
    op: WriteOp
    props: Mapping[str, str]
    id_value: str
    id_property: str | None = None  # None: update/archive by HubSpot id


def needs_reanchor(fetched: int, page: int = HUBSPOT_SEARCH_PAGE, cap: int = HUBSPOT_SEARCH_CAP) -> bool:
    """True when the next search page would pass the result cap (start a new search)."""
    return fetched + page > cap


def _id_key(remote_id: str) -> tuple[int, int, str]:
    return (0, int(remote_id), "") if remote_id.isdigit() else (1, 0, remote_id)


def _trace(pos: int) -> str:
    """objectWriteTraceId of the input at ``pos`` (never confusable with a numeric id)."""
    return f"rs-{pos}"


def _to_str(value: Any) -> str:
    """A property value as HubSpot expects it (every value travels as a string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _next_after(body: Mapping[str, Any]) -> str | None:
    nxt = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(nxt) if nxt not in (None, "") else None


class HubSpotConnector(Connector):
    """HubSpot companies, contacts and deals."""

    name: ClassVar[str] = "hubspot"
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {
        ObjectType.ACCOUNT: ("companies",),
        ObjectType.CONTACT: ("contacts",),
        ObjectType.OPPORTUNITY: ("deals",),
    }
    # class attributes so tests can shrink them
    LIST_PAGE: ClassVar[int] = HUBSPOT_LIST_PAGE
    SEARCH_PAGE: ClassVar[int] = HUBSPOT_SEARCH_PAGE
    SEARCH_CAP: ClassVar[int] = HUBSPOT_SEARCH_CAP
    SEARCH_INTERVAL: ClassVar[float] = SEARCH_MIN_INTERVAL
    BATCH: ClassVar[int] = HUBSPOT_BATCH

    def __init__(
        self,
        client: HubSpot,
        *,
        budget: ApiBudget,
        retry: RetryPolicy | None = None,
        properties: Mapping[str, Sequence[str]] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        oauth: OAuthCredentials | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._configured = {k: list(v) for k, v in (properties or {}).items()}
        self._oauth = oauth
        self._clock = clock
        self._apis: dict[str, Any] = {}
        self._props: dict[str, list[str]] = {}
        self._owner_email: dict[str, str] | None = None
        self._owner_id: dict[str, str] = {}
        self._last_search = float("-inf")
        self._token_expires: float | None = None if client.access_token else float("-inf")

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_settings(
        cls, settings: ConnectionSettings, *, budget: ApiBudget, retry: RetryPolicy | None = None
    ) -> HubSpotConnector:
        """Build the client from options (host, ca_bundle, timeout, properties) and secrets
        (``access_token`` for a private app, or ``client_id``/``client_secret``/``refresh_token``)."""
        opts = settings.options
        oauth: OAuthCredentials | None = None
        token = settings.secrets.get("access_token")
        if "refresh_token" in settings.secrets:
            oauth = OAuthCredentials(
                client_id=settings.secret("client_id"),
                client_secret=settings.secret("client_secret"),
                refresh_token=settings.secret("refresh_token"),
            )
        elif not token:
            settings.secret("access_token")  # raises FatalError naming the missing secret
        client = HubSpot(
            access_token=token,
            host=str(opts.get("host") or DEFAULT_HOST).rstrip("/"),
            ssl_ca_cert=opts.get("ca_bundle"),
            retry=NO_URLLIB3_RETRY,
        )
        props = opts.get("properties")
        if props is not None and not isinstance(props, Mapping):
            raise FatalError(f"connection {settings.name!r}: option 'properties' must be a table")
        timeout = opts.get("timeout", DEFAULT_TIMEOUT)
        return cls(
            client,
            budget=budget,
            retry=retry,
            properties=props,
            timeout=float(timeout) if timeout is not None else None,
            oauth=oauth,
        )

    # ----------------------------------------------------------------- plumbing

    def _api(self, key: str) -> Any:
        """The generated API object for ``key`` (built once; each build is a new pool)."""
        api = self._apis.get(key)
        if api is None:
            kind, _, obj = key.partition(":")
            crm = self.client.crm
            if kind == "basic":
                api = getattr(crm, obj).basic_api
            elif kind == "batch":
                api = getattr(crm, obj).batch_api
            elif kind == "search":
                api = getattr(crm, obj).search_api
            elif kind == "properties":
                api = crm.properties.core_api
            elif kind == "owners":
                api = crm.owners.owners_api
            elif kind == "assoc":
                api = crm.associations.v4.batch_api
            elif kind == "oauth":
                api = self.client.oauth.tokens_api
            else:  # pragma: no cover - programming error
                raise KeyError(key)
            self._apis[key] = api
        return api

    def _call(self, what: str, fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
        """One API call through the retry layer: (status, parsed JSON body)."""
        self._ensure_token()
        attempt = partial(self._attempt, what, fn)
        try:
            return retrying(attempt, policy=self.retry, what=what)
        except TokenExpired as exc:
            if self._oauth is None:
                raise AuthError(f"{what}: HubSpot rejected the access token (401)") from exc
        self._refresh_token()
        try:
            return retrying(attempt, policy=self.retry, what=what)
        except TokenExpired as exc:
            raise AuthError(f"{what}: still unauthorised after an OAuth refresh") from exc

    def _attempt(self, what: str, fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
        self.budget.spend(SYSTEM)
        try:
            resp = fn()
        except Exception as exc:
            raise translate(exc, what) from exc
        observe_headers(self.budget, getattr(resp, "headers", None))
        return int(resp.status), parse_body(resp.data)

    def _ensure_token(self) -> None:
        if self._oauth is None or self._token_expires is None:
            return
        if self._clock() >= self._token_expires - TOKEN_EARLY_REFRESH_S:
            self._refresh_token()

    def _refresh_token(self) -> None:
        """POST /oauth/v1/token (grant_type=refresh_token); update every API object.

        https://developers.hubspot.com/docs/api/oauth/tokens
        """
        creds = self._oauth
        if creds is None:
            raise AuthError("HubSpot access token rejected and no OAuth refresh token is set")
        api = self._api("oauth")

        def attempt() -> dict[str, Any]:
            self.budget.spend(SYSTEM)
            try:
                resp = api.create(
                    grant_type="refresh_token",
                    client_id=creds.client_id,
                    client_secret=creds.client_secret,
                    refresh_token=creds.refresh_token,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            except Exception as exc:
                err = translate(exc, "oauth token refresh")
                if isinstance(err, BatchRejected | TokenExpired):
                    raise AuthError(
                        f"HubSpot OAuth refresh failed: {err.body.get('error') if isinstance(err, BatchRejected) else 401}"
                    ) from None
                raise err from None
            return parse_body(resp.data)

        body = retrying(attempt, policy=self.retry, what="oauth token refresh")
        token = body.get("access_token")
        if not token:
            raise AuthError("HubSpot OAuth refresh returned no access token")
        if body.get("refresh_token") and body["refresh_token"] != creds.refresh_token:
            self._oauth = dataclasses.replace(creds, refresh_token=str(body["refresh_token"]))
        self._token_expires = self._clock() + float(body.get("expires_in") or TOKEN_DEFAULT_TTL_S)
        self.client.access_token = token
        for api_obj in self._apis.values():
            api_obj.api_client.configuration.access_token = token
        log.info("hubspot: OAuth access token refreshed")

    def _native(self, object_type: ObjectType, native: str | None) -> str:
        natives = self.objects.get(ObjectType(object_type))
        if not natives:
            raise FatalError(f"hubspot: no object for {object_type!r}")
        if native is None:
            return natives[0]
        if native not in natives:
            raise FatalError(f"hubspot: {native!r} is not read for {object_type!r}")
        return native

    # ----------------------------------------------------------------- schema and owners

    def properties(self, native: str) -> list[str]:
        """Properties requested for ``native``: configured or the schema's, minus unknown ones.

        GET /crm/v3/properties/{objectType}
        https://developers.hubspot.com/docs/api/crm/properties
        """
        cached = self._props.get(native)
        if cached is not None:
            return cached
        wanted = self._configured.get(native) or [f.name for f in HUBSPOT[native]]
        api = self._api("properties")
        _, body = self._call(
            f"properties {native}",
            partial(api.get_all, native, archived=False, _preload_content=False,
                    _request_timeout=self.timeout),
        )
        known = {str(p.get("name")) for p in body.get("results") or []}
        unknown = [p for p in wanted if p not in known]
        if unknown:
            log.warning("hubspot %s: skipping properties the portal does not have: %s",
                        native, ", ".join(unknown))
        props = [p for p in wanted if p in known]
        for must in (MODSTAMP_PROPERTY[native], MERGED_PROPERTY, OWNER_PROPERTY):
            if must in known and must not in props:
                props.append(must)
        self._props[native] = props
        return props

    def _owners(self) -> dict[str, str]:
        """Owner id → email, loaded once per connector (one run).

        GET /crm/v3/owners/ https://developers.hubspot.com/docs/api/crm/owners
        """
        if self._owner_email is not None:
            return self._owner_email
        api = self._api("owners")
        by_id: dict[str, str] = {}
        after: str | None = None
        seen: set[str] = set()
        while True:
            _, body = self._call(
                "owners",
                partial(api.get_page, limit=OWNERS_PAGE, after=after, archived=False,
                        _preload_content=False, _request_timeout=self.timeout),
            )
            for o in body.get("results") or []:
                if o.get("email"):
                    by_id[str(o["id"])] = str(o["email"])
            after = _next_after(body)
            if after is None or after in seen:
                break
            seen.add(after)
        self._owner_email = by_id
        self._owner_id = {email.lower(): oid for oid, email in by_id.items()}
        return by_id

    # ----------------------------------------------------------------- reads

    def read_pages(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[Sequence[RemoteRecord]]:
        """Pages of live records; full listing when ``since`` is None, else a search.

        A full listing comes in HubSpot's id order (not modstamp order): take the
        cursor from the maximum modstamp once the listing is complete.
        """
        nat = self._native(object_type, native)
        props = self.properties(nat)
        raw_pages = self._list(nat, props) if since is None else self._search(nat, props, since=since)
        for raw in raw_pages:
            yield self._records(ObjectType(object_type), nat, raw)

    def _list(self, native: str, props: Sequence[str], *, archived: bool = False) -> Iterator[list[dict[str, Any]]]:
        """GET /crm/v3/objects/{type}?limit=100&after=…&archived=…

        https://developers.hubspot.com/docs/api/crm/contacts
        """
        api = self._api(f"basic:{native}")
        after: str | None = None
        seen: set[str] = set()
        while True:
            _, body = self._call(
                f"list {native}",
                partial(api.get_page, limit=self.LIST_PAGE, after=after, properties=list(props),
                        archived=archived, _preload_content=False, _request_timeout=self.timeout),
            )
            results = body.get("results") or []
            if results:
                yield results
            after = _next_after(body)
            if after is None:
                return
            if after in seen:
                raise FatalError(f"hubspot list {native}: paging token repeated ({after!r})")
            seen.add(after)

    def _search_call(
        self, native: str, filters: list[dict[str, Any]], sorts: list[dict[str, str]],
        props: Sequence[str], after: str | None,
    ) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/search, paced to the search limit (5 req/s).

        https://developers.hubspot.com/docs/api/crm/search
        """
        api = self._api(f"search:{native}")
        request: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": sorts,
            "properties": list(props),
            "limit": self.SEARCH_PAGE,
        }
        if after is not None:
            request["after"] = after

        def call() -> Any:
            wait = self._last_search + self.SEARCH_INTERVAL - self._clock()
            if wait > 0:
                self.retry.sleep(wait)
            self._last_search = self._clock()
            return api.do_search(request, _preload_content=False, _request_timeout=self.timeout)

        _, body = self._call(f"search {native}", call)
        return body

    def _ms(self, native: str, raw: Mapping[str, Any]) -> int:
        props = raw.get("properties") or {}
        dt = parse_time(props.get(MODSTAMP_PROPERTY[native])) or parse_time(raw.get("updatedAt"))
        return to_ms(dt) if dt else 0

    def _search(
        self, native: str, props: Sequence[str], *, since: Cursor | None,
        extra: Sequence[dict[str, Any]] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Records with modstamp ≥ ``since``, ascending, re-anchored before the cap.

        HubSpot accepts one sort here, so ties on the timestamp are handled by id:
        a new search starts GTE the last timestamp seen and skips the ids already
        yielded at it; a window made of a single timestamp is walked by hs_object_id.
        """
        ts = MODSTAMP_PROPERTY[native]
        anchor = to_ms(since.modstamp) if since else 0
        op = "GTE"
        skip: set[str] = set()
        sorts = [{"propertyName": ts, "direction": "ASCENDING"}]
        while True:
            filters = [{"propertyName": ts, "operator": op, "value": str(anchor)}, *extra]
            after: str | None = None
            fetched = 0
            last_ms: int | None = None
            at_last: set[str] = set()
            while True:
                body = self._search_call(native, filters, sorts, props, after)
                results = body.get("results") or []
                fetched += len(results)
                page = []
                for r in results:
                    rid, ms = str(r["id"]), self._ms(native, r)
                    if ms != last_ms:
                        last_ms, at_last = ms, set()
                    at_last.add(rid)
                    if op == "GTE" and ms == anchor and rid in skip:
                        continue
                    page.append(r)
                if page:
                    yield page
                after = _next_after(body)
                if after is None:
                    return
                if needs_reanchor(fetched, self.SEARCH_PAGE, self.SEARCH_CAP):
                    break
            if last_ms is None:
                return
            if last_ms > anchor:
                log.info("hubspot search %s: re-anchoring at %d after %d results", native, last_ms, fetched)
                anchor, op, skip = last_ms, "GTE", at_last
                continue
            # a whole window at one timestamp: walk it by id, then go strictly past it
            yield from self._walk_tie(native, props, ts, anchor, skip | at_last, extra)
            op, skip = "GT", set()

    def _walk_tie(
        self, native: str, props: Sequence[str], ts: str, ms: int, skip: set[str],
        extra: Sequence[dict[str, Any]],
    ) -> Iterator[list[dict[str, Any]]]:
        sorts = [{"propertyName": OBJECT_ID_PROPERTY, "direction": "ASCENDING"}]
        last_id: str | None = None
        while True:
            filters = [{"propertyName": ts, "operator": "EQ", "value": str(ms)}, *extra]
            if last_id is not None:
                filters.append({"propertyName": OBJECT_ID_PROPERTY, "operator": "GT", "value": last_id})
            after: str | None = None
            fetched = 0
            while True:
                body = self._search_call(native, filters, sorts, props, after)
                results = body.get("results") or []
                fetched += len(results)
                if results:
                    last_id = str(results[-1]["id"])
                page = [r for r in results if str(r["id"]) not in skip]
                if page:
                    yield page
                after = _next_after(body)
                if after is None:
                    return
                if needs_reanchor(fetched, self.SEARCH_PAGE, self.SEARCH_CAP):
                    break

    def _associations(self, native: str, ids: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        """POST /crm/v4/associations/{from}/{to}/batch/read for one page of records.

        https://developers.hubspot.com/docs/api/crm/associations
        """
        out: dict[str, dict[str, tuple[str, ...]]] = {i: {} for i in ids}
        api = self._api("assoc")
        for to_native, key in ASSOCIATIONS_READ[native]:
            pending: list[dict[str, str]] = [{"id": i} for i in ids]
            while pending:
                more: list[dict[str, str]] = []
                for chunk in chunked(pending, HUBSPOT_ASSOC_READ):
                    _, body = self._call(
                        f"associations {native}->{to_native}",
                        partial(api.get_page, native, to_native, {"inputs": chunk},
                                _preload_content=False, _request_timeout=self.timeout),
                    )
                    for res in body.get("results") or []:
                        fid = str((res.get("from") or {}).get("id"))
                        found = out.setdefault(fid, {}).get(key, ())
                        new = [str(t["toObjectId"]) for t in res.get("to") or []]
                        out[fid][key] = found + tuple(t for t in new if t not in found)
                        after = _next_after(res)
                        if after:
                            more.append({"id": fid, "after": after})
                pending = more
        return out

    def _records(
        self, object_type: ObjectType, native: str, raw: Sequence[Mapping[str, Any]],
        *, deleted: bool = False,
    ) -> list[RemoteRecord]:
        ids = [str(r["id"]) for r in raw]
        assoc = self._associations(native, ids) if not deleted and ASSOCIATIONS_READ[native] else {}
        has_owner = any((r.get("properties") or {}).get(OWNER_PROPERTY) for r in raw)
        owners = self._owners() if has_owner else {}
        ts = MODSTAMP_PROPERTY[native]
        records = []
        for r in raw:
            rid = str(r["id"])
            props = dict(r.get("properties") or {})
            oid = props.get(OWNER_PROPERTY)
            if oid and str(oid) in owners:
                props[OWNER_EMAIL] = owners[str(oid)]
            modstamp = parse_time(props.get(ts)) or parse_time(r.get("updatedAt"))
            if deleted:
                modstamp = parse_time(r.get("archivedAt")) or modstamp
            records.append(
                RemoteRecord(
                    system=SYSTEM,
                    object_type=object_type,
                    remote_id=rid,
                    modstamp=modstamp,
                    fields=props,
                    native_type=native,
                    deleted=deleted,
                    associations={k: v for k, v in assoc.get(rid, {}).items() if v},
                )
            )
        records.sort(key=lambda rec: (rec.modstamp or EPOCH, _id_key(rec.remote_id)))
        return records

    def read_deleted(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        """Archived records (``archived=true`` listing, archivedAt ≥ since) and records
        merged away (survivors' ``hs_merged_object_ids``; ``merged_into`` = survivor)."""
        ot = ObjectType(object_type)
        nat = self._native(ot, native)
        ts = MODSTAMP_PROPERTY[nat]
        for raw in self._list(nat, [ts], archived=True):
            for rec in self._records(ot, nat, raw, deleted=True):
                if since is None or (rec.modstamp is not None and rec.modstamp >= since.modstamp):
                    yield rec
        has_merged = [{"propertyName": MERGED_PROPERTY, "operator": "HAS_PROPERTY"}]
        for raw in self._search(nat, [MERGED_PROPERTY, ts], since=since, extra=has_merged):
            for r in raw:
                survivor = str(r["id"])
                props = r.get("properties") or {}
                modstamp = parse_time(props.get(ts)) or parse_time(r.get("updatedAt"))
                for merged in str(props.get(MERGED_PROPERTY) or "").split(";"):
                    merged = merged.strip()
                    if merged and merged != survivor:
                        yield RemoteRecord(
                            system=SYSTEM, object_type=ot, remote_id=merged, modstamp=modstamp,
                            fields={MERGED_PROPERTY: props.get(MERGED_PROPERTY)},
                            native_type=nat, deleted=True, merged_into=survivor,
                        )

    def list_ids(self, object_type: ObjectType, *, native: str | None = None) -> Iterator[str]:
        """Every live id, from a listing that asks for hs_object_id only."""
        nat = self._native(object_type, native)
        for raw in self._list(nat, [OBJECT_ID_PROPERTY]):
            for r in raw:
                yield str(r["id"])

    def check(self) -> dict[str, Any]:
        """One cheap authenticated call (owners, limit 1)."""
        api = self._api("owners")
        _, body = self._call(
            "check",
            partial(api.get_page, limit=1, archived=False, _preload_content=False,
                    _request_timeout=self.timeout),
        )
        return {"system": SYSTEM, "ok": True, "owners_visible": len(body.get("results") or []),
                "budget": self.budget.snapshot().get(SYSTEM, {})}

    # ----------------------------------------------------------------- writes

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Archive, update by id, upsert by unique property (100 a call); then associate."""
        nat = self._native(object_type, None)
        results: list[WriteResult | None] = [None] * len(ops)
        deletes: list[_Item] = []
        updates: list[_Item] = []
        upserts: dict[str, list[_Item]] = {}
        for i, op in enumerate(ops):
            if op.kind == OpKind.DELETE:
                if op.remote_id:
                    deletes.append(_Item(i, op, {}, op.remote_id))
                else:
                    results[i] = WriteResult.failed(op, RecordError(
                        "delete without a HubSpot id", category=ErrorCategory.NOT_FOUND))
                continue
            if op.kind == OpKind.MERGE:
                results[i] = WriteResult.failed(op, RecordError(
                    "merge is not supported by the HubSpot connector (merges are linked)",
                    category=ErrorCategory.UNKNOWN))
                continue
            props = self._native_props(op)
            if op.remote_id:
                updates.append(_Item(i, op, props, op.remote_id))
                continue
            email = props.get(EMAIL_PROPERTY, "").strip()
            if nat == "contacts" and email:
                props = {k: v for k, v in props.items() if k != EMAIL_PROPERTY}
                props[EXTERNAL_ID_PROPERTY] = op.key
                upserts.setdefault(EMAIL_PROPERTY, []).append(_Item(i, op, props, email, EMAIL_PROPERTY))
            else:
                props = {k: v for k, v in props.items() if k != EXTERNAL_ID_PROPERTY}
                upserts.setdefault(EXTERNAL_ID_PROPERTY, []).append(
                    _Item(i, op, props, op.key, EXTERNAL_ID_PROPERTY))
        for chunk in chunked(deletes, self.BATCH):
            self._archive(nat, chunk, results)
        for chunk in chunked(updates, self.BATCH):
            self._write_batch(nat, chunk, results)
        for items in upserts.values():
            for chunk in chunked(items, self.BATCH):
                self._write_batch(nat, chunk, results)
        self._associate(nat, ops, results)
        missing = [i for i, r in enumerate(results) if r is None]
        for i in missing:  # pragma: no cover - defensive: every op gets a result
            results[i] = WriteResult.failed(ops[i], RecordError("no result", category=ErrorCategory.UNKNOWN))
        return [r for r in results if r is not None]

    def _native_props(self, op: WriteOp) -> dict[str, str]:
        props: dict[str, str] = {}
        for k, v in op.fields.items():
            if k == OWNER_EMAIL:
                if v:
                    self._owners()
                    oid = self._owner_id.get(str(v).lower())
                    if oid:
                        props[OWNER_PROPERTY] = oid
                    else:
                        log.warning("hubspot: owner email of %s is not a HubSpot owner; owner left unchanged", op.key)
                continue
            if k.startswith("_"):
                continue
            props[k] = _to_str(v)
        return props

    def _archive(self, native: str, items: list[_Item], results: list[WriteResult | None]) -> None:
        """POST /crm/v3/objects/{type}/batch/archive → 204.

        https://developers.hubspot.com/docs/api/crm/contacts
        """
        api = self._api(f"batch:{native}")
        body = {"inputs": [{"id": it.id_value} for it in items]}
        try:
            self._call(f"archive {native}", partial(api.archive, body, _preload_content=False,
                                                    _request_timeout=self.timeout))
        except BatchRejected as rej:
            if len(items) > 1:
                mid = len(items) // 2
                self._archive(native, items[:mid], results)
                self._archive(native, items[mid:], results)
                return
            it = items[0]
            results[it.index] = WriteResult.failed(it.op, record_error(rej.body, remote_id=it.id_value))
            return
        for it in items:
            results[it.index] = WriteResult(op=it.op, success=True, remote_id=it.id_value)

    def _write_batch(self, native: str, items: list[_Item], results: list[WriteResult | None]) -> None:
        """POST …/batch/update (by id) or …/batch/upsert (by idProperty); 200 or 207.

        https://developers.hubspot.com/docs/api/crm/contacts (batch update / upsert)
        """
        api = self._api(f"batch:{native}")
        upsert = items[0].id_property is not None
        inputs = []
        for pos, it in enumerate(items):
            entry: dict[str, Any] = {"id": it.id_value, "properties": dict(it.props),
                                     "objectWriteTraceId": _trace(pos)}
            if it.id_property:
                entry["idProperty"] = it.id_property
            inputs.append(entry)
        method = api.upsert if upsert else api.update
        what = f"{'upsert' if upsert else 'update'} {native}"
        try:
            _, body = self._call(what, partial(method, {"inputs": inputs}, _preload_content=False,
                                               _request_timeout=self.timeout))
        except BatchRejected as rej:
            if len(items) > 1:  # one bad input fails the call: split to isolate it
                mid = len(items) // 2
                self._write_batch(native, items[:mid], results)
                self._write_batch(native, items[mid:], results)
                return
            self._rejected_one(native, items[0], rej, results)
            return
        leftover = self._map_batch(items, body, results)
        if leftover and len(items) > 1:
            for it in leftover:
                self._write_batch(native, [it], results)
        elif leftover:
            it = leftover[0]
            results[it.index] = WriteResult.failed(it.op, RecordError(
                "HubSpot returned no result for this record", category=ErrorCategory.UNKNOWN))

    def _rejected_one(self, native: str, it: _Item, rej: BatchRejected, results: list[WriteResult | None]) -> None:
        body = rej.body
        dup = existing_id(str(body.get("message") or "")) if rej.status == 409 else None
        if dup and it.id_property is not None:
            log.info("hubspot %s: %s already exists as %s; linking and updating it", native, it.op.key, dup)
            props = dict(it.props)
            if it.id_property == EXTERNAL_ID_PROPERTY:
                props[EXTERNAL_ID_PROPERTY] = it.id_value
            self._write_batch(native, [_Item(it.index, it.op, props, dup)], results)
            return
        remote = it.id_value if it.id_property is None else None
        results[it.index] = WriteResult.failed(it.op, record_error(body, remote_id=remote))

    def _map_batch(
        self, items: list[_Item], body: Mapping[str, Any], results: list[WriteResult | None]
    ) -> list[_Item]:
        """Match a 200/207 body to the items; return the items nothing matched."""
        by_trace = {_trace(pos): it for pos, it in enumerate(items)}
        by_value = {it.id_value.lower(): it for it in items}
        done: set[int] = set()
        upsert = items[0].id_property is not None

        def find(trace: Any, ident: Any, props: Mapping[str, Any]) -> _Item | None:
            if trace is not None and str(trace) in by_trace:
                return by_trace[str(trace)]
            keys = [ident]
            if upsert and items[0].id_property:
                keys.insert(0, props.get(items[0].id_property))
            for k in keys:
                if k is not None and str(k).lower() in by_value:
                    return by_value[str(k).lower()]
            return None

        for res in body.get("results") or []:
            it = find(res.get("objectWriteTraceId"), res.get("id"), res.get("properties") or {})
            if it is None or it.index in done:
                continue
            done.add(it.index)
            results[it.index] = WriteResult(op=it.op, success=True, remote_id=str(res.get("id")),
                                            created=bool(res.get("new", False)))
        for err in body.get("errors") or []:
            ctx = err.get("context") or {}
            keys = [*(ctx.get("objectWriteTraceId") or []), *(ctx.get("ids") or [])]
            if err.get("id"):
                keys.append(err["id"])
            hit = [it for k in keys if (it := find(k, k, {})) is not None and it.index not in done]
            if not hit:
                rest = [it for it in items if it.index not in done]
                hit = rest if len(rest) == 1 else []
            for it in hit:
                done.add(it.index)
                results[it.index] = WriteResult.failed(
                    it.op, record_error(err, remote_id=None if it.id_property else it.id_value))
        if not body.get("errors") and len(done) < len(items) and len(body.get("results") or []) == len(items):
            # no trace ids and no id matches: HubSpot keeps input order in results
            for it, res in zip(items, body.get("results") or [], strict=True):
                if it.index not in done:
                    done.add(it.index)
                    results[it.index] = WriteResult(op=it.op, success=True, remote_id=str(res.get("id")),
                                                    created=bool(res.get("new", False)))
        return [it for it in items if it.index not in done]

    def _associate(self, native: str, ops: Sequence[WriteOp], results: list[WriteResult | None]) -> None:
        """PUT default associations: POST /crm/v4/associations/{from}/{to}/batch/associate/default.

        https://developers.hubspot.com/docs/api/crm/associations
        """
        pairs: dict[str, list[tuple[int, str, str]]] = {}
        for i, op in enumerate(ops):
            res = results[i]
            if op.kind == OpKind.DELETE or res is None or not res.success or not res.remote_id:
                continue
            for key, to_ids in op.associations.items():
                to_native = CANONICAL_NATIVE.get(key)
                if to_native is None or to_native == native:
                    continue
                for to_id in to_ids:
                    pairs.setdefault(to_native, []).append((i, res.remote_id, str(to_id)))
        api = self._api("assoc")
        for to_native, plist in pairs.items():
            for chunk in chunked(plist, self.BATCH):
                self._associate_chunk(api, native, to_native, chunk, ops, results)

    def _associate_chunk(
        self, api: Any, native: str, to_native: str, chunk: list[tuple[int, str, str]],
        ops: Sequence[WriteOp], results: list[WriteResult | None],
    ) -> None:
        body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for _, f, t in chunk]}
        try:
            _, resp = self._call(
                f"associate {native}->{to_native}",
                partial(api.create_default, native, to_native, body, _preload_content=False,
                        _request_timeout=self.timeout),
            )
        except BatchRejected as rej:
            if len(chunk) > 1:
                mid = len(chunk) // 2
                self._associate_chunk(api, native, to_native, chunk[:mid], ops, results)
                self._associate_chunk(api, native, to_native, chunk[mid:], ops, results)
                return
            i, from_id, _ = chunk[0]
            err = record_error(rej.body, remote_id=from_id)
            results[i] = WriteResult(op=ops[i], success=False, remote_id=from_id,
                                     created=bool(results[i] and results[i].created),  # type: ignore[union-attr]
                                     category=err.category, message=f"association: {err}",
                                     field="associations")
            return
        for err in resp.get("errors") or []:
            log.warning("hubspot associate %s->%s: %s", native, to_native, err.get("message"))
