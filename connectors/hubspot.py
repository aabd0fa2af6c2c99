"""HubSpot CRM connector (hubspot-api-client 12, CRM v3 objects + v4 associations).

Reads: full listings through ``basic_api.get_page`` (cursor ``after``), incremental
reads through ``search_api.do_search`` on the last-modified property, re-anchored
before the 10,000-result cap. Writes: ``batch_api`` upsert/update/archive, 100 a call,
with 207 partial results mapped op by op (``connectors.hubspot_write``). Every call
goes through ``Transport.call`` (``connectors.hubspot_http``): budget, one retry layer
(``connectors.base.retrying``), error translation, limit headers, OAuth refresh. The
client's own urllib3 retries are switched off (``NO_URLLIB3_RETRY``).

Calls are made with ``_preload_content=False`` so the connector sees the raw JSON the
API returned (exact property strings) and the response headers (rate limits).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from hubspot import HubSpot

from connectors import hubspot_map
from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    Connector,
    Cursor,
    FatalError,
    RemoteRecord,
    RetryPolicy,
    WriteOp,
    WriteResult,
    chunked,
)
from connectors.hubspot_http import (
    EPOCH,
    NO_URLLIB3_RETRY,
    SYSTEM,
    OAuthCredentials,
    Transport,
    parse_time,
    to_ms,
)
from connectors.hubspot_schema import HUBSPOT
from connectors.hubspot_write import (
    HUBSPOT_BATCH,
    OWNER_EMAIL,
    OWNER_PROPERTY,
    Writer,
)
from connectors.schema import NativeSchema
from connectors.values import StringValues
from mapping.canonical import ObjectType

__all__ = [
    "HUBSPOT_ASSOC_READ",
    "HUBSPOT_BATCH",
    "HUBSPOT_LIST_PAGE",
    "HUBSPOT_SEARCH_CAP",
    "HUBSPOT_SEARCH_PAGE",
    "NO_URLLIB3_RETRY",
    "HubSpotConnector",
    "OAuthCredentials",
    "needs_reanchor",
]

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
# Associations v4 batch read: ≤ 1,000 inputs (since 2025-02-10).
# https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api
HUBSPOT_ASSOC_READ = 1_000
# Owners: GET /crm/v3/owners/, limit ≤ 100.
# https://developers.hubspot.com/docs/api/crm/owners
OWNERS_PAGE = 100
MERGED_PROPERTY = "hs_merged_object_ids"
# A company's parent company id, calculated by HubSpot from its "child to parent
# company" association (type 14); read-only: the parent is written with the v4
# associations (connectors/hubspot_write.py). [verify] on a live portal.
PARENT_PROPERTY = "hs_parent_company_id"
OBJECT_ID_PROPERTY = "hs_object_id"

MODSTAMP_PROPERTY: Mapping[str, str] = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
#: associations read per native object: (HubSpot object to, canonical key)
ASSOCIATIONS_READ: Mapping[str, tuple[tuple[str, str], ...]] = {
    # a company's parent is read from its calculated property PARENT_PROPERTY (no call)
    "companies": (),
    "contacts": (("companies", "account"),),
    "deals": (("companies", "account"), ("contacts", "contact")),
}


def needs_reanchor(fetched: int, page: int = HUBSPOT_SEARCH_PAGE, cap: int = HUBSPOT_SEARCH_CAP) -> bool:
    """True when the next search page would pass the result cap (start a new search)."""
    return fetched + page > cap


def _id_key(remote_id: str) -> tuple[int, int, str]:
    return (0, int(remote_id), "") if remote_id.isdigit() else (1, 0, remote_id)


def _next_after(body: Mapping[str, Any]) -> str | None:
    nxt = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(nxt) if nxt not in (None, "") else None


class HubSpotConnector(Connector):
    """HubSpot companies, contacts and deals."""

    name: ClassVar[str] = "hubspot"
    option_keys: ClassVar[frozenset[str] | None] = frozenset({
        "host", "ca_bundle", "timeout", "properties"
    })
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {
        ObjectType.ACCOUNT: ("companies",),
        ObjectType.CONTACT: ("contacts",),
        ObjectType.OPPORTUNITY: ("deals",),
    }
    # POST /crm/v3/objects/{type}/merge (connectors/hubspot_write.py). Deals could be
    # merged too, but revsync only finds duplicate contacts and companies.
    mergeable: ClassVar[frozenset[str]] = frozenset({"contacts", "companies"})
    schema: ClassVar[NativeSchema] = HUBSPOT
    field_maps = hubspot_map.TABLES
    picklists = hubspot_map.PICKLISTS
    picklist_reads = hubspot_map.PICKLIST_READS
    pipelines = hubspot_map.PIPELINES
    owner_field = hubspot_map.OWNER_FIELD
    key_field = "revsync_id"
    revsync_id_fields = ("revsync_id",)
    stamp_field = "revsync_id"
    # a contact's email is unique in HubSpot: of two linked duplicates only the holder keeps it
    unique_fields = {"contacts": frozenset({"email"})}
    write_with = {"companies": {"country": ("phone",)}}
    writable_associations = {
        "contacts": frozenset({"account"}),
        "deals": frozenset({"account", "contact"}),
        "companies": frozenset({"parent"}),  # the parent company (type 14)
    }
    merges_by_default = True
    default_rank = 20
    secret_env: ClassVar[Mapping[str, str]] = {"access_token": "REVSYNC_HUBSPOT_TOKEN"}
    url_options: ClassVar[Mapping[str, str]] = {"host": "{url}"}
    starter_budget = 200000
    # every property value is a string; dates and date-times as epoch milliseconds
    # https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis
    native_values = StringValues()
    readiness_factory = "connectors.hubspot_setup:readiness_for"
    # class attributes so tests can shrink them
    LIST_PAGE: ClassVar[int] = HUBSPOT_LIST_PAGE
    SEARCH_PAGE: ClassVar[int] = HUBSPOT_SEARCH_PAGE
    SEARCH_CAP: ClassVar[int] = HUBSPOT_SEARCH_CAP
    SEARCH_INTERVAL: ClassVar[float] = SEARCH_MIN_INTERVAL
    BATCH: ClassVar[int] = HUBSPOT_BATCH
    ASSOC_READ: ClassVar[int] = HUBSPOT_ASSOC_READ

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
        self.transport = Transport(client, budget=budget, retry=self.retry, timeout=timeout,
                                   oauth=oauth, clock=clock)
        self.writer = Writer(self.transport, owner_id=self.owner_id, batch=self.BATCH)
        self._configured = {k: list(v) for k, v in (properties or {}).items()}
        self._props: dict[str, list[str]] = {}
        self._owner_email: dict[str, str] | None = None
        self._owner_id: dict[str, str] = {}

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
        api = self.transport.api("properties")
        _, body = self.transport.call(
            f"properties {native}",
            partial(api.get_all, native, archived=False, _preload_content=False,
                    _request_timeout=self.transport.timeout),
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

    #: HubSpot property types in the sandbox schema's (and Salesforce describe's) words
    _LIVE_TYPES: ClassVar[Mapping[str, str]] = {"number": "double", "enumeration": "picklist", "bool": "boolean",
                                      "date": "date", "datetime": "datetime"}

    def live_schema(self, native: str) -> dict[str, dict[str, Any]]:
        """The live properties of ``native`` (for the schema pre-flight): name → {type,
        updateable, createable, picklist (option values of an enumeration, or None)}.

        GET /crm/v3/properties/{objectType} https://developers.hubspot.com/docs/api/crm/properties
        """
        api = self.transport.api("properties")
        _, body = self.transport.call(
            f"properties {native}",
            partial(api.get_all, native, archived=False, _preload_content=False,
                    _request_timeout=self.transport.timeout),
        )
        out: dict[str, dict[str, Any]] = {}
        for p in body.get("results") or []:
            kind = self._LIVE_TYPES.get(str(p.get("type")), "string")
            writable = not (p.get("modificationMetadata") or {}).get("readOnlyValue", False) \
                and not p.get("calculated", False)
            opts = [str(o.get("value")) for o in p.get("options") or [] if not o.get("hidden")]
            out[str(p.get("name"))] = {"type": kind, "updateable": writable, "createable": writable,
                                       "picklist": opts if kind == "picklist" and opts else None}
        return out

    def _owners(self) -> dict[str, str]:
        """Owner id → email, loaded once per connector (one run).

        GET /crm/v3/owners/ https://developers.hubspot.com/docs/api/crm/owners
        """
        if self._owner_email is not None:
            return self._owner_email
        api = self.transport.api("owners")
        by_id: dict[str, str] = {}
        after: str | None = None
        seen: set[str] = set()
        while True:
            _, body = self.transport.call(
                "owners",
                partial(api.get_page, limit=OWNERS_PAGE, after=after, archived=False,
                        _preload_content=False, _request_timeout=self.transport.timeout),
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

        Objects with associations gather listing/search pages until the next page could
        take the group past ``ASSOC_READ`` ids, read the group's associations in one
        batch call per association pair, then yield its pages in order, each complete.
        """
        ot = ObjectType(object_type)
        nat = self._native(ot, native)
        props = self.properties(nat)
        if since is None:
            raw_pages, page_max = self._list(nat, props), self.LIST_PAGE
        else:
            raw_pages, page_max = self._search(nat, props, since=since), self.SEARCH_PAGE
        if not ASSOCIATIONS_READ[nat]:
            for raw in raw_pages:
                yield self._records(ot, nat, raw, assoc={})
            return
        for group in self._grouped(raw_pages, page_max):
            ids = list(dict.fromkeys(str(r["id"]) for raw in group for r in raw))
            assoc = self._associations(nat, ids)
            for raw in group:
                yield self._records(ot, nat, raw, assoc=assoc)

    def _grouped(
        self, raw_pages: Iterator[list[dict[str, Any]]], page_max: int
    ) -> Iterator[list[list[dict[str, Any]]]]:
        """Consecutive pages, grouped so a group holds at most ``ASSOC_READ`` records
        whenever pages hold at most ``page_max`` (one association read per group)."""
        group: list[list[dict[str, Any]]] = []
        held = 0
        for raw in raw_pages:
            group.append(raw)
            held += len(raw)
            if held + page_max > self.ASSOC_READ:
                yield group
                group, held = [], 0
        if group:
            yield group

    def _list(self, native: str, props: Sequence[str], *, archived: bool = False) -> Iterator[list[dict[str, Any]]]:
        """GET /crm/v3/objects/{type}?limit=100&after=…&archived=…

        https://developers.hubspot.com/docs/api/crm/contacts
        """
        api = self.transport.api(f"basic:{native}")
        after: str | None = None
        seen: set[str] = set()
        while True:
            _, body = self.transport.call(
                f"list {native}",
                partial(api.get_page, limit=self.LIST_PAGE, after=after, properties=list(props),
                        archived=archived, _preload_content=False, _request_timeout=self.transport.timeout),
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
        api = self.transport.api(f"search:{native}")
        request: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": sorts,
            "properties": list(props),
            "limit": self.SEARCH_PAGE,
        }
        if after is not None:
            request["after"] = after

        def call() -> Any:
            self.transport.pace("search", self.SEARCH_INTERVAL)
            return api.do_search(request, _preload_content=False, _request_timeout=self.transport.timeout)

        _, body = self.transport.call(f"search {native}", call)
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
                if not results:
                    return
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
                if not results:
                    return
                fetched += len(results)
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
        """POST /crm/v4/associations/{from}/{to}/batch/read, ``ASSOC_READ`` ids a call.

        https://developers.hubspot.com/docs/api/crm/associations
        """
        out: dict[str, dict[str, tuple[str, ...]]] = {i: {} for i in ids}
        api = self.transport.api("assoc")
        for to_native, key in ASSOCIATIONS_READ[native]:
            pending: list[dict[str, str]] = [{"id": i} for i in ids]
            while pending:
                more: list[dict[str, str]] = []
                for chunk in chunked(pending, self.ASSOC_READ):
                    _, body = self.transport.call(
                        f"associations {native}->{to_native}",
                        partial(api.get_page, native, to_native, {"inputs": chunk},
                                _preload_content=False, _request_timeout=self.transport.timeout),
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
        *, deleted: bool = False, assoc: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
    ) -> list[RemoteRecord]:
        """RemoteRecords of one raw page; ``assoc`` (id → key → ids) when already read."""
        if assoc is None:
            wanted = not deleted and ASSOCIATIONS_READ[native]
            assoc = self._associations(native, [str(r["id"]) for r in raw]) if wanted else {}
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
                    associations=self._with_parent(native, props, assoc.get(rid, {})),
                )
            )
        records.sort(key=lambda rec: (rec.modstamp or EPOCH, _id_key(rec.remote_id)))
        return records

    @staticmethod
    def _with_parent(native: str, props: Mapping[str, Any],
                     assoc: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """A record's associations; a company's parent company from PARENT_PROPERTY."""
        out = {k: v for k, v in assoc.items() if v}
        if native == "companies" and PARENT_PROPERTY in props:
            # an empty parent: the property was read and names none (sync.hierarchy)
            parent = props.get(PARENT_PROPERTY)
            out["parent"] = (str(parent),) if parent not in (None, "") else ()
        return out

    def read_deleted(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        """Archived records (``archived=true`` listing, archivedAt ≥ since) and records
        merged away (survivors' ``hs_merged_object_ids``; ``merged_into`` = survivor)."""
        ot = ObjectType(object_type)
        nat = self._native(ot, native)
        ts = MODSTAMP_PROPERTY[nat]
        for raw in self._list(nat, [ts, MERGED_PROPERTY], archived=True):
            for rec in self._records(ot, nat, raw, deleted=True):
                if since is None or (rec.modstamp is not None and rec.modstamp >= since.modstamp):
                    yield rec
                    # a survivor archived after a merge still names the records merged into it
                    yield from self._merged_away(ot, nat, rec.remote_id, rec.fields, rec.modstamp)
        has_merged = [{"propertyName": MERGED_PROPERTY, "operator": "HAS_PROPERTY"}]
        for raw in self._search(nat, [MERGED_PROPERTY, ts], since=since, extra=has_merged):
            for r in raw:
                props = r.get("properties") or {}
                modstamp = parse_time(props.get(ts)) or parse_time(r.get("updatedAt"))
                yield from self._merged_away(ot, nat, str(r["id"]), props, modstamp)

    @staticmethod
    def _merged_away(
        ot: ObjectType, nat: str, survivor: str, props: Mapping[str, Any], modstamp: datetime | None
    ) -> Iterator[RemoteRecord]:
        """The ids in a survivor's ``hs_merged_object_ids`` ("a;b") as merged-away records."""
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
        api = self.transport.api("owners")
        _, body = self.transport.call(
            "check",
            partial(api.get_page, limit=1, archived=False, _preload_content=False,
                    _request_timeout=self.transport.timeout),
        )
        return {"system": SYSTEM, "ok": True, "owners_visible": len(body.get("results") or []),
                "budget": self.budget.snapshot().get(SYSTEM, {})}

    def reset_caches(self) -> None:
        """Forget owners and checked properties (call at the start of each run)."""
        self._owner_email = None
        self._owner_id = {}
        self._props = {}

    # ----------------------------------------------------------------- writes

    def owner_id(self, email: str) -> str | None:
        """The HubSpot owner id of ``email`` (None when no owner has it)."""
        self._owners()
        return self._owner_id.get(email.lower())

    def owner_known(self, email: str) -> bool | None:
        """Whether a HubSpot owner has this email (the owner a write can set)."""
        return self.owner_id(email) is not None

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` (see ``connectors.hubspot_write``); one result per op, in order."""
        return self.writer.write(self._native(object_type, None), ops)
