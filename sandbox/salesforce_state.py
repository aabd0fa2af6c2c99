"""Salesforce emulator state: the org, tokens, query cursors, the daily allocation and
the helpers every endpoint module shares (request errors, SOQL compile and run, bodies).

The endpoint modules (``salesforce_bulk``, ``salesforce_jwt``, ``salesforce_metadata``,
``salesforce_soap``) take a ``SalesforceState``; ``sandbox/salesforce.py`` builds the
emulator on it and routes REST requests. Nothing here imports an endpoint module, so
no two Salesforce sandbox modules import each other.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from werkzeug.wrappers import Request

from connectors.salesforce_schema import SALESFORCE
from sandbox.core import Emulator, Fault, RateWindow, SandboxContext
from sandbox.salesforce_soql import (
    CompiledQuery,
    SoqlError,
    compile_soql,
    sf_datetime,
    sort_records,
)
from sandbox.salesforce_store import Org, RecordFailure

SYSTEM = "salesforce"

# Daily API request allocation (rolling 24 h) by sandbox tier: Developer edition,
# Enterprise (100,000 base), Unlimited-sized org; "off" counts but never refuses.
# https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html
DAILY_API_REQUESTS = {"free": 15_000, "pro": 100_000, "enterprise": 1_000_000, "off": 5_000_000}
DAY_SECONDS = 24 * 3600


class SfError(Exception):
    """A whole request refused: HTTP status plus Salesforce's ``[{message, errorCode}]``."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        err: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            err["fields"] = self.fields
        return [err]


def not_found() -> SfError:
    return SfError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class QueryCursor:
    """A server-side query locator: the matching ids, fixed when the query ran."""

    locator: str
    query: CompiledQuery
    ids: list[str]
    batch: int
    touched: float


@dataclass
class Call:
    """One request, parsed once."""

    request: Request
    version: str  # "59.0"
    rest: str  # path after /services/data/vXX.X, without trailing slash
    fault: Fault | None

    @property
    def method(self) -> str:
        return self.request.method



class SalesforceState(Emulator):
    """An in-memory Salesforce org and what its endpoints share."""

    system: ClassVar[str] = SYSTEM
    #: getDeleted with a start older than the log: "answer" 200 with a later
    #: earliestDateAvailable, or "error" INVALID_REPLICATION_DATE (both are seen)
    deleted_too_old: str = "answer"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.org = Org(ctx.seed)
        self.lock = threading.RLock()
        self.tokens: set[str] = set()
        self.cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self.rng = random.Random(ctx.seed * 7919 + 1)
        self.daily_max = DAILY_API_REQUESTS.get(ctx.tier, DAILY_API_REQUESTS["pro"])
        self.daily: RateWindow | None = (
            None if ctx.tier == "off" else RateWindow(self.daily_max, DAY_SECONDS, ctx.clock)
        )
        self.calls_made = 0

    # ------------------------------------------------------------------ contract
    def load(self, data_dir: Path) -> None:
        """Read ``<data_dir>/salesforce/<Object>.json`` (missing files: no records)."""
        base = Path(data_dir) / SYSTEM
        with self.lock:
            for obj in SALESFORCE:
                path = base / f"{obj}.json"
                if path.is_file():
                    self.org.load_file(obj, path)

    def add(self, obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store one record as seed data (tests): no validation, defaults and stamps filled."""
        with self.lock:
            return self.org.add(obj, record, self.now())

    def get(self, obj: str, record_id: str) -> dict[str, Any] | None:
        """The stored record (deleted ones included), or None."""
        return self.org.records[obj].get(record_id)

    def counts(self) -> dict[str, int]:
        with self.lock:
            return self.org.counts()

    def drop_field(self, obj: str, field_name: str) -> None:
        """Schema drift: the field disappears from describe, SOQL and DML (data stays)."""
        with self.lock:
            self.org.schema[obj].pop(field_name.lower(), None)

    def set_earliest_deleted(self, obj: str, when: datetime) -> None:
        """Simulate a purged delete log: getDeleted reports ``earliestDateAvailable=when``."""
        with self.lock:
            self.org.earliest_deleted[obj] = when

    def issue_token(self) -> str:
        """A valid access token, as the token endpoint would hand out."""
        token = f"00DRs0000000001!{secrets.token_urlsafe(48)}"
        with self.lock:
            self.tokens.add(token)
        return token

    def now(self) -> str:
        return sf_datetime(self.ctx.clock.now())

    def spend_soap(self) -> bool:
        """Count a SOAP call against the daily allocation; False once it is used up."""
        try:
            self._spend()
        except SfError:
            return False
        return True

    def _spend(self) -> None:
        self.calls_made += 1
        if self.daily is None:
            return
        allowed, _, _ = self.daily.hit()
        if not allowed:
            raise SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    # ------------------------------------------------------------------ query
    def compile(self, soql: str) -> CompiledQuery:
        """Compile SOQL against the org's current schema; SfError 400 when refused."""
        try:
            return compile_soql(soql, self.org)
        except SoqlError as exc:
            raise SfError(400, exc.code, exc.message) from None

    def run(self, query: CompiledQuery, *, include_deleted: bool) -> list[str]:
        """The ids a query selects, in its order, once (pages are slices of this)."""
        org = self.org
        store = org.records[query.obj]
        pred = query.predicate
        floor = query.modstamp_floor
        if floor is not None or query.index_order:
            source = org.modstamps[query.obj].ids_from(
                store, floor[0] if floor else None, floor[1] if floor else True
            )
            if pred is None and include_deleted:
                ids = source
            elif pred is None:
                gone = org.deleted_ids[query.obj]
                ids = [rid for rid in source if rid not in gone] if gone else source
            else:
                ids = [
                    rid
                    for rid in source
                    if (include_deleted or not store[rid].get("IsDeleted")) and pred(store[rid])
                ]
        else:
            ids = [
                rid
                for rid, rec in store.items()
                if (include_deleted or not rec.get("IsDeleted")) and (pred is None or pred(rec))
            ]
        if query.order and not query.index_order:
            ids = [r["Id"] for r in sort_records([store[i] for i in ids], query.order)]
        if query.offset:
            ids = ids[query.offset :]
        if query.limit is not None:
            ids = ids[: query.limit]
        return ids

    def _body(self, call: Call) -> Any:
        raw = call.request.get_data(as_text=True)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise SfError(
                400, "JSON_PARSER_ERROR", "Unexpected character: was expecting JSON"
            ) from None

    def _ext_field(self, obj: str, name: str) -> str | None:
        spec = self.org.schema[obj].get(name.lower())
        if spec is None or not (spec.external_id or spec.name == "Id"):
            return None
        return spec.name

    @staticmethod
    def row_fault(kind: str, rid: str | None = None) -> RecordFailure:
        if kind == "lock":
            return RecordFailure(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {rid or ''}".rstrip(),
                [],
            )
        return RecordFailure(
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred processing this record (sandbox partial failure)",
            [],
        )
