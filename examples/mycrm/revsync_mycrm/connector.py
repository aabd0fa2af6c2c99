"""MyCRM: organisations and people behind a small JSON REST API.

The API (what the example stub in revsync's tests serves):

- ``POST /oauth/token`` ``{"client_id", "client_secret"}`` → ``{"access_token", "expires_in"}``;
  every other call sends ``Authorization: Bearer <token>``; an expired token gets
  ``401 {"error": "token_expired"}``.
- ``GET /v1/<collection>?since=<ISO>&limit=<n>[&next=<token>][&include_deleted=true]``
  → ``{"items": [...], "next": <token or null>}``, oldest ``updated_at`` first, ties
  by id; ``since`` is inclusive. Deleted records carry ``deleted_at`` and are listed
  only with ``include_deleted=true``.
- ``POST /v1/<collection>/batch`` ``{"upsert": [...]}`` (at most ``MYCRM_BATCH``
  records, keyed by ``revsync_id`` or ``id``) → ``{"results": [{"id", "created"} |
  {"error": {"code", "field", "message"}}]}`` one per item, in order.
- ``DELETE /v1/<collection>/<id>``; ``429`` with ``Retry-After``; ``5xx`` may happen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import requests

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
    RetriableError,
    RetryPolicy,
    WriteOp,
    WriteResult,
    chunked,
    retrying,
)
from connectors.schema import FieldSpec, spec
from mapping.canonical import ObjectType

SYSTEM = "mycrm"
#: the API refuses a batch of more records than this
MYCRM_BATCH = 50
MYCRM_PAGE = 100
COLLECTIONS = {"Org": "orgs", "Person": "people"}

_SYSTEM_FIELDS = (
    spec("id", "id", updateable=False),
    spec("created_at", "datetime", updateable=False),
    spec("updated_at", "datetime", updateable=False),
    spec("deleted_at", "datetime", updateable=False),
    spec("revsync_id", "string", length=36, unique=True, external_id=True),
)
SCHEMA: dict[str, tuple[FieldSpec, ...]] = {
    "Org": (
        *_SYSTEM_FIELDS,
        spec("name", "string", length=120, nillable=False),
        spec("web_domain", "string", length=255),
        spec("headcount", "int"),
        spec("country_code", "string", length=2),
    ),
    "Person": (
        *_SYSTEM_FIELDS,
        spec("org_id", "reference"),
        spec("email", "email", length=254),
        spec("given_name", "string", length=80),
        spec("family_name", "string", length=80),
        spec("job", "string", length=128),
        spec("phone", "phone", length=40),
        spec("stage", "picklist", length=20),
    ),
}
#: MyCRM's person stages, by canonical lifecycle stage (a picklist revsync's tables
#: do not know: the connector declares it)
PERSON_STAGES = {
    "subscriber": "Newsletter", "lead": "Lead", "mql": "Marketing qualified",
    "sql": "Sales qualified", "opportunity": "In deal", "customer": "Client",
    "evangelist": "Champion", "other": "Other",
}
#: (native field, canonical field, transform, direction)
FIELD_MAPS: dict[str, tuple[ObjectType, tuple[tuple[str, str, str, str], ...]]] = {
    "Org": (ObjectType.ACCOUNT, (
        ("name", "name", "string", "both"),
        ("web_domain", "domain", "domain", "both"),
        ("headcount", "employees", "int", "both"),
        ("country_code", "country", "country_code", "both"),
    )),
    "Person": (ObjectType.CONTACT, (
        ("email", "email", "email", "both"),
        ("given_name", "first_name", "string", "both"),
        ("family_name", "last_name", "string", "both"),
        ("job", "title", "string", "both"),
        ("phone", "phone", "phone", "both"),
        ("stage", "lifecycle_stage", "lifecycle_stage", "both"),
    )),
}


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


class MyCrmConnector(Connector):
    """MyCRM organisations (accounts) and people (contacts)."""

    name: ClassVar[str] = SYSTEM
    option_keys: ClassVar[frozenset[str] | None] = frozenset({"base_url", "timeout", "page_size", "batch_size"})
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {
        ObjectType.ACCOUNT: ("Org",),
        ObjectType.CONTACT: ("Person",),
    }
    schema = SCHEMA
    field_maps = FIELD_MAPS
    key_field = "revsync_id"
    revsync_id_fields = ("revsync_id",)
    stamp_field = "revsync_id"
    writable_associations = {"Person": frozenset({"account"}), "Org": frozenset()}
    picklists = {"lifecycle_stage": PERSON_STAGES}

    def __init__(
        self,
        session: requests.Session,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        budget: ApiBudget | None = None,
        retry: RetryPolicy | None = None,
        page_size: int = MYCRM_PAGE,
        batch_size: int = MYCRM_BATCH,
        timeout: float = 30.0,
        connection: str = SYSTEM,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._client = (client_id, client_secret)
        self.budget = budget or ApiBudget()
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.batch_size = min(batch_size, MYCRM_BATCH)
        self.timeout = timeout
        self.connection = connection
        self._token: str | None = None

    @classmethod
    def from_settings(
        cls, settings: ConnectionSettings, *, budget: ApiBudget, retry: RetryPolicy | None = None
    ) -> MyCrmConnector:
        opts = settings.options
        if not opts.get("base_url"):
            raise FatalError(f"connection {settings.name!r}: set the option 'base_url'")
        return cls(
            requests.Session(),
            base_url=str(opts["base_url"]),
            client_id=settings.secret("client_id"),
            client_secret=settings.secret("client_secret"),
            budget=budget,
            retry=retry,
            page_size=int(opts.get("page_size", MYCRM_PAGE)),
            batch_size=int(opts.get("batch_size", MYCRM_BATCH)),
            timeout=float(opts.get("timeout", 30)),
            connection=settings.name,
        )

    # ------------------------------------------------------------------ HTTP

    def _authenticate(self) -> str:
        self.budget.spend(self.connection)
        r = self.session.post(f"{self.base_url}/oauth/token", timeout=self.timeout,
                              json={"client_id": self._client[0], "client_secret": self._client[1]})
        if r.status_code != 200:
            raise AuthError(f"{self.connection}: MyCRM refused the client credentials ({r.status_code})")
        self._token = str(r.json()["access_token"])
        return self._token

    def _once(self, method: str, path: str, **kw: Any) -> Any:
        """One call; a 401 re-authenticates once, 429/5xx become ``RetriableError``."""
        for attempt in (1, 2):
            token = self._token or self._authenticate()
            self.budget.spend(self.connection)
            try:
                r = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {token}"}, **kw)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise RetriableError(f"{self.connection}: {exc}") from exc
            if r.status_code == 401:
                self._token = None
                if attempt == 1:
                    continue
                raise AuthError(f"{self.connection}: MyCRM refused a fresh token")
            if r.status_code == 429 or r.status_code >= 500:
                after = r.headers.get("Retry-After")
                raise RetriableError(f"{self.connection}: HTTP {r.status_code}",
                                     retry_after=float(after) if after else None)
            if r.status_code >= 400:
                raise FatalError(f"{self.connection}: {method} {path}: HTTP {r.status_code} {r.text[:200]}")
            return r.json() if r.content else None
        raise AuthError(f"{self.connection}: not authenticated")  # pragma: no cover

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return retrying(lambda: self._once(method, path, **kw), policy=self.retry,
                        what=f"{self.connection} {method} {path}")

    # ------------------------------------------------------------------ read

    def _native(self, object_type: ObjectType, native: str | None) -> str:
        return native or self.objects[object_type][0]

    def _record(self, object_type: ObjectType, native: str, item: Mapping[str, Any]) -> RemoteRecord:
        assoc = {"account": (str(item["org_id"]),)} if native == "Person" and item.get("org_id") else {}
        return RemoteRecord(
            system=self.name, object_type=object_type, remote_id=str(item["id"]),
            modstamp=_parse_time(item.get("updated_at")), fields=dict(item), native_type=native,
            deleted=bool(item.get("deleted_at")), associations=assoc,
        )

    def _pages(self, object_type: ObjectType, since: Cursor | None, native: str | None,
               deleted: bool) -> Iterator[list[RemoteRecord]]:
        name = self._native(object_type, native)
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["since"] = since.modstamp.isoformat()
        if deleted:
            params["include_deleted"] = "true"
        seen: set[str] = set()
        while True:
            body = self._call("GET", f"/v1/{COLLECTIONS[name]}", params=dict(params))
            yield [self._record(object_type, name, item) for item in body.get("items", [])]
            token = body.get("next")
            if not token:
                return
            if token in seen:  # a server that repeats its token would loop forever
                raise FatalError(f"{self.connection}: MyCRM repeated page token {token!r}")
            seen.add(token)
            params["next"] = token

    def read_pages(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[Sequence[RemoteRecord]]:
        yield from self._pages(object_type, since, native, deleted=False)

    def read_deleted(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        for page in self._pages(object_type, since, native, deleted=True):
            yield from (r for r in page if r.deleted)

    def check(self) -> dict[str, Any]:
        self._authenticate()
        return {"base_url": self.base_url}

    # ------------------------------------------------------------------ write

    def _item(self, op: WriteOp, native: str) -> dict[str, Any]:
        item = {k: v for k, v in op.fields.items() if not k.startswith("_")}
        if op.remote_id:
            item["id"] = op.remote_id
        if op.kind in (OpKind.CREATE, OpKind.UPSERT) or not op.remote_id:
            item["revsync_id"] = op.key
        if native == "Person" and op.associations.get("account"):
            item["org_id"] = op.associations["account"][0]
        return item

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        results: dict[int, WriteResult] = {}
        upserts: list[tuple[int, WriteOp]] = []
        for i, op in enumerate(ops):
            native = op.native_type or self.objects[object_type][0]
            if op.kind is OpKind.DELETE and op.remote_id:
                self._call("DELETE", f"/v1/{COLLECTIONS[native]}/{op.remote_id}")
                results[i] = WriteResult(op, True, remote_id=op.remote_id)
            elif op.kind is OpKind.MERGE:
                results[i] = WriteResult.failed(op, RecordError(
                    "MyCRM has no merge", category=ErrorCategory.VALIDATION))
            else:
                upserts.append((i, op))
        for batch in chunked(upserts, self.batch_size):
            native = batch[0][1].native_type or self.objects[object_type][0]
            body = self._call("POST", f"/v1/{COLLECTIONS[native]}/batch",
                              json={"upsert": [self._item(op, native) for _, op in batch]})
            for (i, op), res in zip(batch, body["results"], strict=True):
                err = res.get("error")
                if err:
                    category = ErrorCategory.DUPLICATE if err.get("code") == "duplicate" else ErrorCategory.VALIDATION
                    results[i] = WriteResult.failed(op, RecordError(
                        str(err.get("message") or err.get("code")), category=category, field=err.get("field")))
                else:
                    results[i] = WriteResult(op, True, remote_id=str(res["id"]), created=bool(res.get("created")))
        return [results[i] for i in range(len(ops))]
