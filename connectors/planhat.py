"""Planhat connector: companies (accounts) and endusers (contacts).

Reads list every record with ``limit``/``offset`` paging in ``_id`` order: Planhat has
no modified-since filter (https://docs.planhat.com; Airbyte's source is full-refresh
only), so ``since`` is not used to filter and the engine compares content hashes.
Deletes have no feed either: the engine finds them as absences in a full listing
(``list_ids``). Companies already carry the ``arr``/``mrr``/``renewalDate`` Planhat
derives from their licenses, so licenses are not read separately.

Writes go through the bulk upsert ``PUT /{model}`` (≤ ``PLANHAT_BULK`` items): creates
carry ``sourceId`` = the canonical id (so a retried create updates instead of
duplicating), updates carry ``_id``. Results are mapped op by op from ``insertsKeys`` /
``updatesKeys`` and ``createdErrors`` / ``updatedErrors`` / ``permissionErrors``: Planhat
answers 206 when some items failed, 400 when every item failed and 403 when some
items lacked permission (the others went through), all with that same body. A key
repeated inside one request is a 400 for the whole request, so no chunk ever carries
the same ``sourceId`` or ``_id`` twice. A 400 with no per-item detail is split in
halves until the bad item is alone (it fails; the others are written).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar

from connectors import planhat_map
from connectors.base import (
    CUSTOMER_SUCCESS,
    ApiBudget,
    ConnectionSettings,
    Connector,
    Cursor,
    ErrorCategory,
    FatalError,
    OpKind,
    RemoteRecord,
    RetryPolicy,
    WriteOp,
    WriteResult,
    retrying,
)
from connectors.planhat_client import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    PlanhatBadRequest,
    PlanhatClient,
    PlanhatForbidden,
    PlanhatNotFound,
)
from connectors.planhat_schema import PLANHAT
from connectors.schema import NativeSchema
from connectors.values import NativeValues
from mapping.canonical import ObjectType

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM = "planhat"

# https://www.planhat.com/developers/api/bulk-upsert — at most 5,000 items per call.
PLANHAT_BULK = 5000

# https://docs.planhat.com/#get_companies — list paging by limit/offset. Page sizes are
# the largest the API serves per model [verify]: companies 5,000 (Airbyte and
# robocorp-planhat read companies by 5,000), every other model 2,000 (robocorp-planhat).
# A page shorter than the limit is the last one, so the limit must never exceed what
# the server serves: a configured ``page_size`` is clamped to these.
PLANHAT_PAGE: Mapping[str, int] = {"companies": 5000}
PLANHAT_PAGE_OTHER = 2000

# The license fields a closed-won handoff writes and compares when it reads them back.
LICENSE_FIELDS = ("_id", "externalId", "companyId", "product", "_currency", "fromDate", "toDate",
                  "fixedPeriod", "mrr")

# Records re-read at each page boundary so a delete between two calls skips nothing.
PAGE_OVERLAP = 50

OWNER_EMAIL = "_owner_email"
# Planhat's own field names that start with "_" (everything else with "_" is ours).
NATIVE_UNDERSCORE = frozenset({"_currency"})
# Models whose documents point at a company (associations {"account": (companyId,)}).
CHILD_MODELS = frozenset({"endusers", "licenses"})

# A company's parent company: the parent's Planhat ``_id`` (one id; null for none).
# Planhat documents company groups ("parents and children in a tree like structure",
# https://www.planhat.com/developers/api/company) with the calculated ``orgRootId`` /
# ``orgPath`` / ``orgLevel`` / ``orgUnits`` and a "Parent Org" system field
# (http://support.planhat.com/en/articles/2899058); the API key of that field is not in
# the reference we could read [verify], so it is a connection option (``parent_field``)
# with this default. See docs/hierarchies.md.
PARENT_FIELD = "parentId"


def parse_modstamp(value: Any) -> datetime | None:
    """Planhat ``lastUpdated`` (ISO-8601, ``Z``) → aware UTC datetime; None if absent."""
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def categorize(message: str) -> ErrorCategory:
    """An error-ledger category from Planhat's (free-text) per-item error."""
    text = message.lower()
    if "unique" in text or "duplicate" in text or "already exists" in text:
        return ErrorCategory.DUPLICATE
    if "not found" in text or "does not exist" in text:
        return ErrorCategory.NOT_FOUND
    if "permission" in text or "not allowed" in text or "forbidden" in text:
        return ErrorCategory.PERMISSION
    if "too long" in text:
        return ErrorCategory.TOO_LONG
    if "internal" in text or "server" in text:
        return ErrorCategory.SERVER
    return ErrorCategory.VALIDATION


def _error_text(entry: Any) -> str:
    if isinstance(entry, Mapping):
        for key in ("error", "message", "msg"):
            if entry.get(key):
                return str(entry[key])
    return json.dumps(entry, default=str)[:300]


def _owner_id(value: Any) -> str | None:
    """Company ``owner``: an id string (GET one) or ``{"_id","nickName"}`` (lists)."""
    if isinstance(value, Mapping):
        value = value.get("_id")
    return str(value) if value else None


class PlanhatConnector(Connector):
    """Planhat over ``PlanhatClient`` (requests)."""

    name: ClassVar[str] = SYSTEM
    option_keys: ClassVar[frozenset[str] | None] = frozenset({
        "base_url", "ca_bundle", "timeout", "page_size", "bulk_size", "parent_field"
    })
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {
        ObjectType.ACCOUNT: ("companies",),
        ObjectType.CONTACT: ("endusers",),
    }
    schema: ClassVar[NativeSchema] = PLANHAT
    field_maps = planhat_map.TABLES
    picklists = planhat_map.PICKLISTS
    picklist_reads = planhat_map.PICKLIST_READS
    owner_field = planhat_map.OWNER_FIELD
    # records revsync created carry the revsync id in sourceId; records it linked (whose
    # sourceId may hold another system's id) get it in externalId
    key_field = "sourceId"
    revsync_id_fields = ("externalId", "sourceId")
    stamp_field = "externalId"
    write_with = {"companies": {"country": ("phone",)}}
    # a company's parent company (``PARENT_FIELD``) is written as the parent's ``_id``
    writable_associations = {"endusers": frozenset({"account"}), "companies": frozenset({"parent"})}
    # Planhat follows the CRM: new entities are created there only when create_in says so
    creates_by_default = False
    # customer success: last in the default source priority, but it owns health, ARR,
    # renewal and status, and the closed-won handoff writes its licenses here
    default_rank = 30
    authoritative_for: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "account": ("health", "arr", "renewal_date", "customer_status")}
    roles: ClassVar[frozenset[str]] = frozenset({CUSTOMER_SUCCESS})
    secret_env: ClassVar[Mapping[str, str]] = {"api_token": "REVSYNC_PLANHAT_TOKEN"}
    url_options: ClassVar[Mapping[str, str]] = {"base_url": "{url}"}
    # custom fields live in the ``custom`` object: ``custom.Score`` is a path
    native_values = NativeValues(nested=True)
    readiness_factory = "connectors.planhat_setup:readiness_for"

    def __init__(
        self,
        client: PlanhatClient,
        *,
        budget: ApiBudget | None = None,
        retry: RetryPolicy | None = None,
        page_size: int | None = None,
        bulk_size: int = PLANHAT_BULK,
        parent_field: str = PARENT_FIELD,
    ) -> None:
        self.client = client
        self.parent_field = parent_field
        self.budget = budget or ApiBudget()
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.bulk_size = max(1, min(bulk_size, PLANHAT_BULK))
        self._owners: tuple[dict[str, str], dict[str, str]] | None = None

    @classmethod
    def from_settings(
        cls, settings: ConnectionSettings, *, budget: ApiBudget, retry: RetryPolicy | None = None
    ) -> PlanhatConnector:
        """Options: ``base_url``, ``ca_bundle``, ``timeout``, ``page_size``, ``bulk_size``,
        ``parent_field`` (the company field holding the parent's ``_id``, default
        ``PARENT_FIELD``); secret: ``api_token`` (a service-account token; they never expire)."""
        opts = settings.options
        client = PlanhatClient(
            settings.secret("api_token"),
            base_url=str(opts.get("base_url") or DEFAULT_BASE_URL),
            timeout=float(opts.get("timeout", DEFAULT_TIMEOUT)),
            ca_bundle=str(opts["ca_bundle"]) if opts.get("ca_bundle") else None,
        )
        page = opts.get("page_size")
        return cls(
            client,
            budget=budget,
            retry=retry,
            page_size=int(page) if page else None,
            bulk_size=int(opts.get("bulk_size", PLANHAT_BULK)),
            parent_field=str(opts.get("parent_field") or PARENT_FIELD),
        )

    # ------------------------------------------------------------------ plumbing

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One API call: budget spent per attempt, retried by the single retry layer."""

        def attempt() -> T:
            self.budget.spend(SYSTEM)
            return fn()

        return retrying(attempt, policy=self.retry, what=f"planhat {what}")

    def _model(self, object_type: ObjectType, native: str | None) -> str:
        natives = self.objects.get(object_type)
        if not natives:
            raise FatalError(f"planhat has no native object for {object_type.value}")
        if native is None:
            return natives[0]
        if native not in natives:
            raise FatalError(f"planhat: {native!r} is not read for {object_type.value} (one of {natives})")
        return native

    def _limit(self, model: str) -> int:
        cap = PLANHAT_PAGE.get(model, PLANHAT_PAGE_OTHER)
        return max(1, min(self.page_size or cap, cap))

    def _pages(
        self, model: str, select: Sequence[str] | None = None, *, limit: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Raw pages in ``_id`` order, each record once; refuses a paging loop.

        Offset paging over a live listing skips a record whenever one before the
        offset is deleted between two calls. Each request therefore starts
        ``PAGE_OVERLAP`` records early, and records at or below the last ``_id``
        already yielded are dropped (ObjectIds sort as their hex strings).
        """
        limit = limit or self._limit(model)
        overlap = min(PAGE_OVERLAP, limit // 4)
        offset = 0
        last = ""
        previous_first: str | None = None
        while True:
            page = self._call(
                f"list {model} offset={offset}",
                partial(self.client.list_page, model, offset=offset, limit=limit, sort="_id", select=select),
            )
            if not page:
                return
            first = str(page[0].get("_id"))
            if first == previous_first:
                raise FatalError(f"planhat list {model}: offset {offset} served the previous page again")
            previous_first = first
            fresh = [doc for doc in page if str(doc.get("_id")) > last]
            if fresh:
                last = str(fresh[-1].get("_id"))
                yield fresh
            if len(page) < limit:
                return
            offset += len(page) - overlap

    def owners(self) -> tuple[dict[str, str], dict[str, str]]:
        """(user id → email, lower-case email → user id), read once per connector."""
        if self._owners is None:
            by_id: dict[str, str] = {}
            by_email: dict[str, str] = {}
            users_page = PLANHAT_PAGE.get("users", PLANHAT_PAGE_OTHER)
            for page in self._pages("users", select=("_id", "email"), limit=users_page):
                for user in page:
                    if user.get("_id") and user.get("email"):
                        by_id[str(user["_id"])] = str(user["email"])
                        by_email.setdefault(str(user["email"]).lower(), str(user["_id"]))
            self._owners = (by_id, by_email)
        return self._owners

    def owner_known(self, email: str) -> bool | None:
        """Whether a Planhat user has this email (the owner a company write can set)."""
        return str(email).lower() in self.owners()[1]

    def reset_caches(self) -> None:
        """Forget the owner lookup (call at the start of a run)."""
        self._owners = None

    # ------------------------------------------------------------------ reads

    def _record(self, object_type: ObjectType, model: str, doc: Mapping[str, Any]) -> RemoteRecord:
        fields = dict(doc)
        associations: dict[str, tuple[str, ...]] = {}
        if model == "companies":
            owner = _owner_id(doc.get("owner"))
            fields[OWNER_EMAIL] = self.owners()[0].get(owner) if owner else None
            if self.parent_field in doc:
                # an empty parent: the field is there and names none (sync.hierarchy); a
                # document without the field says nothing about its parent
                parent = doc.get(self.parent_field)
                associations["parent"] = (str(parent),) if parent not in (None, "") else ()
        if model in CHILD_MODELS and doc.get("companyId"):
            associations["account"] = (str(doc["companyId"]),)
        return RemoteRecord(
            system=SYSTEM,
            object_type=object_type,
            remote_id=str(doc["_id"]),
            modstamp=parse_modstamp(doc.get("lastUpdated")),
            fields=fields,
            native_type=model,
            associations=associations,
        )

    def read_pages(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[Sequence[RemoteRecord]]:
        """Every record, page by page (``since`` cannot be pushed down: see module doc)."""
        model = self._model(object_type, native)
        for page in self._pages(model):
            yield [self._record(object_type, model, doc) for doc in page]

    def list_ids(self, object_type: ObjectType, *, native: str | None = None) -> Iterator[str]:
        """Every live ``_id`` with ``select=_id`` (small pages of ids)."""
        model = self._model(object_type, native)
        for page in self._pages(model, select=("_id",)):
            for doc in page:
                yield str(doc["_id"])

    def check(self) -> dict[str, Any]:
        """One cheap list call proves the token and the host."""
        page = self._call("check", lambda: self.client.list_page("companies", offset=0, limit=1, select=("_id",)))
        return {"system": SYSTEM, "base_url": self.client.base_url, "companies_visible": bool(page)}

    # ------------------------------------------------------------------ writes

    def _item(self, model: str, op: WriteOp) -> dict[str, Any]:
        item = {
            k: v for k, v in op.fields.items()
            if k != "_id" and (not k.startswith("_") or k in NATIVE_UNDERSCORE)
        }
        if OWNER_EMAIL in op.fields and model == "companies":
            email = op.fields.get(OWNER_EMAIL)
            uid = self.owners()[1].get(str(email).lower()) if email else None
            if uid:
                item["owner"] = uid
            elif email:
                log.warning("planhat: no user has the owner email of %s; owner left unchanged", op.key)
        account = op.associations.get("account")
        if account and model in CHILD_MODELS:
            item["companyId"] = account[0]
        if "parent" in op.associations and model == "companies":
            parent = op.associations["parent"]
            item[self.parent_field] = parent[0] if parent else None  # empty: no parent any more
        if op.remote_id:
            item["_id"] = op.remote_id
        else:
            item["sourceId"] = op.key
        return item

    # ------------------------------------------------------------------ licenses

    def read_licenses(self) -> Iterator[list[dict[str, Any]]]:
        """Pages of every license (``GET /licenses``, ``_id`` order).
        https://www.planhat.com/developers/api/license"""
        yield from self._pages("licenses")

    def license(self, external_id: str) -> dict[str, Any] | None:
        """One license by its ``externalId`` (``GET /licenses/extid-…``; None: absent)."""
        from connectors.planhat_client import PlanhatNotFound

        try:
            return self._call(f"get license {external_id}",
                              partial(self.client.get, "licenses", f"extid-{external_id}"))
        except PlanhatNotFound:
            return None

    def licenses(self, external_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The licenses among ``external_ids`` that exist, by ``externalId``.

        One walk of the documented listing (``GET /licenses?limit&offset&select``,
        only the fields a handoff compares), so a batch of handoffs costs one call per
        page of licenses, not a call per license (Planhat documents no filter by
        ``externalId`` on lists)."""
        want = {str(e) for e in external_ids}
        if not want:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for page in self._pages("licenses", select=LICENSE_FIELDS):
            for doc in page:
                ext = doc.get("externalId")
                if ext is not None and str(ext) in want:
                    out[str(ext)] = doc
        return out

    def write_licenses(self, items: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """Bulk upsert of licenses keyed by ``externalId`` (``PUT /licenses``, at most
        ``bulk_size`` a call): per item, None when saved, else Planhat's reason.
        Licenses need ``companyId``, ``_currency`` and ``fromDate``.
        https://www.planhat.com/developers/api/license , https://www.planhat.com/developers/api/bulk-upsert"""
        out: list[str | None] = []
        for start in range(0, len(items), self.bulk_size):
            chunk = [dict(i) for i in items[start:start + self.bulk_size]]
            _status, body = self._call(f"upsert {len(chunk)} licenses",
                                       partial(self.client.bulk_upsert, "licenses", chunk))
            why: list[str | None] = [None] * len(chunk)
            keys = {str(i.get("externalId")): n for n, i in enumerate(chunk)}
            for entry in [*(body.get("createdErrors") or []), *(body.get("updatedErrors") or []),
                          *(body.get("permissionErrors") or [])]:
                item = entry.get("item") if isinstance(entry, Mapping) else None
                at = entry.get("index") if isinstance(entry, Mapping) else None
                n = at if isinstance(at, int) and 0 <= at < len(chunk) else keys.get(
                    str((item or {}).get("externalId") if isinstance(item, Mapping) else ""))
                if n is None:  # an error we cannot place: no item of the chunk is known saved
                    why = [_error_text(entry)] * len(chunk)
                    break
                why[n] = _error_text(entry)
            out.extend(why)
        return out

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Bulk upserts in chunks of ``bulk_size``; deletes one by one; one result per op."""
        model = self._model(object_type, None)
        results: list[WriteResult | None] = [None] * len(ops)
        upserts: list[tuple[int, WriteOp]] = []
        for i, op in enumerate(ops):
            if op.kind in (OpKind.CREATE, OpKind.UPDATE, OpKind.UPSERT):
                upserts.append((i, op))
            elif op.kind == OpKind.DELETE:
                results[i] = self._delete(model, op)
            else:
                results[i] = WriteResult(
                    op=op, success=False, remote_id=op.remote_id, category=ErrorCategory.UNKNOWN,
                    message=f"planhat has no {op.kind.value} API",
                )
        for chunk in self._chunks(model, upserts):
            for i, res in self._bulk(model, chunk):
                results[i] = res
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # pragma: no cover - every branch above fills its slots
            raise AssertionError(f"planhat write left ops without a result: {missing}")
        return [r for r in results if r is not None]

    def _chunks(self, model: str, upserts: list[tuple[int, WriteOp]]) -> Iterator[list[tuple[int, WriteOp]]]:
        """Chunks of at most ``bulk_size`` in which no key (``_id`` / ``sourceId``) repeats:
        Planhat refuses a request that carries a key twice. A repeat waits for the next
        chunk, so a later op on the same record is applied after the earlier one."""
        pending = list(upserts)
        while pending:
            chunk: list[tuple[int, WriteOp]] = []
            keys: set[str] = set()
            later: list[tuple[int, WriteOp]] = []
            for i, op in pending:
                key = op.remote_id or f"srcid-{op.key}"
                if key in keys or len(chunk) >= self.bulk_size:
                    later.append((i, op))
                    continue
                keys.add(key)
                chunk.append((i, op))
            yield chunk
            pending = later

    def _delete(self, model: str, op: WriteOp) -> WriteResult:
        key = op.remote_id or f"srcid-{op.key}"
        try:
            # https://docs.planhat.com/#delete_company
            self._call(f"delete {model}", lambda: self.client.delete(model, key))
        except PlanhatNotFound:
            return WriteResult(op=op, success=True, remote_id=op.remote_id, message="already deleted")
        except PlanhatBadRequest as e:
            return WriteResult(op=op, success=False, remote_id=op.remote_id,
                               category=categorize(str(e)), message=str(e))
        except PlanhatForbidden as e:  # this record only (Planhat permissions are per item)
            return WriteResult(op=op, success=False, remote_id=op.remote_id,
                               category=ErrorCategory.PERMISSION, message=str(e))
        return WriteResult(op=op, success=True, remote_id=op.remote_id)

    def _bulk(self, model: str, chunk: list[tuple[int, WriteOp]]) -> list[tuple[int, WriteResult]]:
        items = [self._item(model, op) for _, op in chunk]
        try:
            _status, body = self._call(
                f"bulk upsert {model} ({len(items)} items)",
                lambda: self.client.bulk_upsert(model, items),
            )
        except PlanhatBadRequest as e:
            return self._bad_request(model, chunk, items, e)
        return self._map_bulk(model, chunk, items, body)

    def _bad_request(
        self, model: str, chunk: list[tuple[int, WriteOp]], items: list[dict[str, Any]], e: PlanhatBadRequest
    ) -> list[tuple[int, WriteResult]]:
        """A 400 without per-item lists: one item's failure when attributable, else the
        chunk is split in halves until the bad item is alone (never the whole batch lost)."""
        pos = self._position(e.body, chunk, items) if e.body is not None else None
        if pos is None and len(chunk) == 1:
            pos = 0
        if pos is None:
            mid = len(chunk) // 2
            log.info("planhat bulk upsert %s: 400 for %d items without detail; splitting", model, len(chunk))
            return self._bulk(model, chunk[:mid]) + self._bulk(model, chunk[mid:])
        i, op = chunk[pos]
        out = [(i, WriteResult(op=op, success=False, remote_id=op.remote_id,
                               category=categorize(str(e)), message=str(e)))]
        rest = chunk[:pos] + chunk[pos + 1:]
        if rest:
            out += self._bulk(model, rest)
        return out

    @staticmethod
    def _position(entry: Any, chunk: list[tuple[int, WriteOp]], items: list[dict[str, Any]]) -> int | None:
        """Which item of the chunk an error entry is about: by its keys, else by index.

        The entry shape is undocumented [verify]; we accept ``{"item": {keys…}}``, the
        keys at the top level, and an ``index``.
        """
        if not isinstance(entry, Mapping):
            return None
        keys = entry.get("item") if isinstance(entry.get("item"), Mapping) else entry
        assert isinstance(keys, Mapping)
        for name in ("_id", "sourceId", "externalId"):
            value = keys.get(name)
            if value:
                for pos, item in enumerate(items):
                    if item.get(name) == value:
                        return pos
        idx = entry.get("index")
        if isinstance(idx, int) and 0 <= idx < len(chunk):
            return idx
        return None

    def _map_bulk(
        self, model: str, chunk: list[tuple[int, WriteOp]], items: list[dict[str, Any]], body: Mapping[str, Any]
    ) -> list[tuple[int, WriteResult]]:
        inserted: dict[str, str] = {}  # sourceId → _id
        updated: dict[str, str] = {}
        confirmed: set[str] = set()  # every _id Planhat echoed
        for key_list, into in ((body.get("insertsKeys") or [], inserted), (body.get("updatesKeys") or [], updated)):
            for keys in key_list:
                if isinstance(keys, Mapping) and keys.get("_id"):
                    confirmed.add(str(keys["_id"]))
                    if keys.get("sourceId"):
                        into[str(keys["sourceId"])] = str(keys["_id"])
        confirmed.update(str(i) for i in body.get("modified") or [])
        failed: dict[int, tuple[ErrorCategory, str, str | None]] = {}
        unattributed: list[str] = []
        for bucket, forced in (("createdErrors", None), ("updatedErrors", None),
                               ("permissionErrors", ErrorCategory.PERMISSION)):
            for entry in body.get(bucket) or []:
                text = _error_text(entry)
                pos = self._position(entry, chunk, items)
                if pos is None:
                    unattributed.append(text)
                    continue
                field = entry.get("field") if isinstance(entry, Mapping) else None
                failed[pos] = (forced or categorize(text), text, str(field) if field else None)
        out: list[tuple[int, WriteResult]] = []
        for pos, (i, op) in enumerate(chunk):
            if pos in failed:
                category, text, field = failed[pos]
                out.append((i, WriteResult(op=op, success=False, remote_id=op.remote_id,
                                           category=category, message=text, field=field)))
            elif op.remote_id and (op.remote_id in confirmed or not unattributed):
                # an update Planhat did not echo was a "nonupdate" (nothing changed)
                out.append((i, WriteResult(op=op, success=True, remote_id=op.remote_id)))
            elif op.key in inserted:
                out.append((i, WriteResult(op=op, success=True, remote_id=inserted[op.key], created=True)))
            elif op.key in updated:
                out.append((i, WriteResult(op=op, success=True, remote_id=updated[op.key])))
            elif unattributed:
                # errors we cannot tie to an item: every unconfirmed op may be one of them
                out.append((i, WriteResult(op=op, success=False, remote_id=op.remote_id,
                                           category=ErrorCategory.UNKNOWN,
                                           message="; ".join(unattributed)[:500])))
            else:
                out.append((i, self._confirm(model, op)))
        return out

    def _confirm(self, model: str, op: WriteOp) -> WriteResult:
        """A create Planhat did not echo a key for: find it by ``srcid-``."""
        try:
            # https://docs.planhat.com/#get_company (keyable srcid-)
            doc = self._call(f"get {model} by sourceId", lambda: self.client.get(model, f"srcid-{op.key}"))
        except PlanhatNotFound:
            return WriteResult(op=op, success=False, category=ErrorCategory.UNKNOWN,
                               message="planhat accepted the item but it cannot be found by sourceId")
        return WriteResult(op=op, success=True, remote_id=str(doc["_id"]))
