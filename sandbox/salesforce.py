"""Salesforce REST API emulator (API v59+; any ``vXX.X`` in paths is accepted).

Serves what revsync and simple-salesforce use: the OAuth token endpoint, SOQL
``query``/``queryAll`` with server-side cursors, describe, single-record CRUD and
upsert by external id, sObject Collections, getUpdated/getDeleted, ``/limits`` with
``Sforce-Limit-Info`` on every response, and Bulk API 2.0 (``sandbox/salesforce_bulk.py``).
Shapes and error bodies follow Salesforce's own documentation (``sandbox/README.md`` lists them).

The data lives in ``sandbox/salesforce_store.py`` (``Org``); SOQL is compiled by
``sandbox/salesforce_soql.py``. One lock serialises every request: the emulator is a
test double, correctness before concurrency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.salesforce_schema import SALESFORCE
from sandbox import salesforce_jwt, salesforce_metadata, salesforce_soap
from sandbox.core import Fault, SandboxContext, json_response
from sandbox.salesforce_bulk import BulkJobs
from sandbox.salesforce_soql import (
    REFERENCES,
    field_value,
    parse_sf_datetime,
    sf_datetime,
)
from sandbox.salesforce_state import (
    SYSTEM,
    Call,
    QueryCursor,
    SalesforceState,
    SfError,
    not_found,
)
from sandbox.salesforce_store import (
    EDIT_KINDS,
    EXTERNAL_ID_FIELD,
    KEY_PREFIXES,
    Change,
    MultipleMatches,
    RecordFailure,
    apply_edit,
    with_checksum,
)

# Query pages: 2,000 by default; Sforce-Query-Options batchSize is a hint between 200 and 2,000.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
SOQL_PAGE = 2000
SOQL_MIN_BATCH = 200
# Query cursors: a user keeps at most 10 open (the oldest is released) and an idle one
# expires after 15 minutes.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_limits.htm
MAX_OPEN_CURSORS = 10
CURSOR_TTL_SECONDS = 15 * 60
# sObject Collections: at most 200 records per call.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
SF_COLLECTION = 200
# getUpdated covers 30 days back, getDeleted 15 (the delete log is purged after that).
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getupdated.htm
# https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getdeleted.md
UPDATED_WINDOW_DAYS = 30
DELETED_WINDOW_DAYS = 15
# Versions listed by GET /services/data (any vXX.X is accepted in paths).
API_VERSIONS = (
    ("58.0", "Summer '23"),
    ("59.0", "Winter '24"),
    ("60.0", "Spring '24"),
    ("61.0", "Summer '24"),
    ("62.0", "Winter '25"),
)
_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_LOCATOR = re.compile(r"^(01g[0-9A-Za-z]{15})-(\d+)$")
_NO_BODY = {204}


MERGEABLE_OBJECTS = frozenset({"Account", "Contact", "Lead"})


class SalesforceEmulator(SalesforceState):
    """An in-memory Salesforce org behind the REST and Bulk 2.0 APIs."""

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.bulk = BulkJobs(self)










    def endpoint_name(self, request: Request) -> str:
        path = request.path
        if path.startswith("/services/oauth2/"):
            return "oauth"
        if path.rstrip("/") == "/services/data":
            return "versions"
        if path.startswith("/services/Soap/u/"):
            return "soap.merge"
        if path.startswith("/services/Soap/m/"):
            return "soap.metadata"
        m = _DATA.match(path)
        if m is None:
            return "other"
        parts = [p for p in (m.group(2) or "").split("/") if p]
        if not parts:
            return "versions"
        head = parts[0]
        if head in ("query", "queryAll"):
            return "queryMore" if len(parts) > 1 else "query"
        if head == "limits":
            return "limits"
        if head == "jobs" and len(parts) > 1:
            return f"bulk2.{parts[1]}"
        if head == "composite":
            return (
                "composite/sobjects" if len(parts) > 1 and parts[1] == "sobjects" else "composite"
            )
        if head == "sobjects":
            if len(parts) == 1:
                return "describeGlobal"
            if len(parts) == 2:
                return "sobject"
            if parts[2] in ("describe", "updated", "deleted"):
                return parts[2]
            if len(parts) == 4:
                return "upsert" if request.method == "PATCH" else "sobject.byExternalId"
            return "sobject"
        return head

    # ------------------------------------------------------------------ entry point
    def handle(self, request: Request, fault: Fault | None) -> Response:
        endpoint = self.endpoint_name(request)
        with self.lock:
            try:
                resp = self._handle(request, fault)
            except SfError as exc:
                resp = json_response(exc.body(), exc.status)
            if endpoint != "oauth":
                resp.headers["Sforce-Limit-Info"] = f"api-usage={self._used()}/{self.daily_max}"
        self.ctx.stats.call(SYSTEM, endpoint, resp.status_code)
        return resp

    def _used(self) -> int:
        if self.daily is None:
            return self.calls_made
        return self.daily_max - self.daily.remaining()

    def _handle(self, request: Request, fault: Fault | None) -> Response:
        path = request.path
        if path.rstrip("/") == "/services/oauth2/token":
            if request.method != "POST":
                raise SfError(
                    405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed. Allowed are POST"
                )
            return self._oauth(request)
        if path.rstrip("/") == "/services/data" and request.method == "GET":
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_versions.htm
            return json_response(
                [
                    {"label": label, "url": f"/services/data/v{v}", "version": v}
                    for v, label in API_VERSIONS
                ]
            )
        if path.startswith("/services/Soap/u/"):
            return salesforce_soap.handle(self, request, fault)
        if path.startswith("/services/Soap/m/"):
            return salesforce_metadata.handle(self, request, fault)
        m = _DATA.match(path)
        if m is None:
            raise not_found()
        token = self._authenticate(request)
        if fault is not None:
            early = self._fault_response(fault, token)
            if early is not None:
                return early
        self._spend()
        call = Call(request, m.group(1), (m.group(2) or "").rstrip("/"), fault)
        return self._route(call)

    # ------------------------------------------------------------------ auth, limits, faults
    def _oauth(self, request: Request) -> Response:
        """POST /services/oauth2/token (password and refresh_token grants).

        https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
        """
        creds = self.ctx.credentials.get(SYSTEM, {})
        form = request.form
        grant = form.get("grant_type", "")
        if grant == salesforce_jwt.GRANT_TYPE:
            return salesforce_jwt.grant(self, request, self._token_reply)
        if grant not in ("password", "refresh_token"):
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        if not hmac.compare_digest(form.get("client_id", ""), creds.get("client_id", "")):
            return json_response(
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
                400,
            )
        secret = form.get("client_secret")
        if (grant == "password" or secret is not None) and not hmac.compare_digest(
            secret or "", creds.get("client_secret", "")
        ):
            return json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
            )
        if grant == "password":
            ok = hmac.compare_digest(
                form.get("username", ""), creds.get("username", "")
            ) and hmac.compare_digest(form.get("password", ""), creds.get("password", ""))
        else:
            ok = hmac.compare_digest(form.get("refresh_token", ""), creds.get("refresh_token", ""))
        if not ok:
            return json_response(
                {"error": "invalid_grant", "error_description": "authentication failure"}, 400
            )
        return self._token_reply(request)

    def _token_reply(self, request: Request) -> Response:
        """A new access token, as the token endpoint answers a granted request."""
        creds = self.ctx.credentials.get(SYSTEM, {})
        token = self.issue_token()
        instance = f"https://{request.host}"
        issued = str(int(self.ctx.clock.timestamp() * 1000))
        signature = base64.b64encode(
            hmac.new(
                creds.get("client_secret", "").encode(),
                f"{instance}{issued}".encode(),
                hashlib.sha256,
            ).digest()
        ).decode()
        return json_response(
            {
                "access_token": token,
                "instance_url": instance,
                "id": f"{instance}/id/00DRs0000000001AAA/005Rs0000000001AAA",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
            }
        )

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "oauth") or token not in self.tokens:
            raise SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return token



    def _fault_response(self, fault: Fault, token: str) -> Response | None:
        """Faults that replace the whole response; per-record kinds return None."""
        kind = fault.kind
        if kind == "expired_token":
            self.tokens.discard(token)
            self.ctx.stats.fault(SYSTEM, kind)
            return json_response(
                SfError(401, "INVALID_SESSION_ID", "Session expired or invalid").body(), 401
            )
        if kind == "rate_limit":
            # Salesforce has no burst 429: only the daily allocation, as a 403.
            if not fault.get("daily"):
                return None
            self.ctx.stats.fault(SYSTEM, kind)
            return json_response(
                SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").body(), 403
            )
        if kind == "server_error":
            self.ctx.stats.fault(SYSTEM, kind)
            return json_response(
                [
                    {
                        "message": "An unexpected error occurred. Please include this ErrorId if you "
                        "contact support: 1947013742-151542 (-1198365483)",
                        "errorCode": "UNKNOWN_EXCEPTION",
                    }
                ],
                500,
            )
        if kind == "unavailable":
            self.ctx.stats.fault(SYSTEM, kind)
            return json_response(
                [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
                503,
                {"Retry-After": str(fault.get("retry_after", 1))},
            )
        return None

    # ------------------------------------------------------------------ routing
    def _route(self, call: Call) -> Response:
        parts = [p for p in call.rest.split("/") if p]
        method = call.method
        if not parts:
            return json_response(self._resources(call.version))
        head = parts[0]
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) == 1:
                return self._query(call, include_deleted=head == "queryAll")
            if len(parts) == 2:
                return self._query_more(call, parts[1])
        if head == "limits" and method == "GET" and len(parts) == 1:
            return json_response(self._limits())
        if head == "sobjects":
            return self._sobjects(call, parts[1:])
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            return self._collections(call, parts[2:])
        if head == "jobs" and len(parts) >= 2:
            return self.bulk.route(call, parts[1:])
        raise not_found()

    def _resources(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}"
        return {
            "sobjects": f"{base}/sobjects",
            "query": f"{base}/query",
            "queryAll": f"{base}/queryAll",
            "limits": f"{base}/limits",
            "composite": f"{base}/composite",
            "jobs": f"{base}/jobs",
        }



    def _batch_size(self, request: Request) -> int:
        header = request.headers.get("Sforce-Query-Options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", header)
        if m is None:
            return SOQL_PAGE
        return max(SOQL_MIN_BATCH, min(SOQL_PAGE, int(m.group(1))))

    def _query(self, call: Call, *, include_deleted: bool) -> Response:
        """GET /query?q= and /queryAll?q=.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        """
        soql = call.request.args.get("q")
        if soql is None:
            raise SfError(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = self.compile(soql)
        ids = self.run(query, include_deleted=include_deleted)
        if query.count_only:
            return json_response({"totalSize": len(ids), "done": True, "records": []})
        batch = self._batch_size(call.request)
        cursor = QueryCursor("", query, ids, batch, self.ctx.clock.timestamp())
        if len(ids) > batch:
            self._expire_cursors()
            cursor.locator = self.org.new_id("01g")
            self.cursors[cursor.locator] = cursor
            while len(self.cursors) > MAX_OPEN_CURSORS:
                self.cursors.popitem(last=False)
        return self._page(call, cursor, 0)

    def _query_more(self, call: Call, token: str) -> Response:
        m = _LOCATOR.match(token)
        cursor = self.cursors.get(m.group(1)) if m else None
        if m is None or cursor is None:
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        now = self.ctx.clock.timestamp()
        if now - cursor.touched > CURSOR_TTL_SECONDS:
            self.cursors.pop(cursor.locator, None)
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.touched = now
        self.cursors.move_to_end(cursor.locator)
        return self._page(call, cursor, int(m.group(2)))

    def _page(self, call: Call, cursor: QueryCursor, start: int) -> Response:
        ids = cursor.ids
        end = min(len(ids), start + cursor.batch)
        store = self.org.records[cursor.query.obj]
        version = call.version
        records = [
            cursor.query.render(store[rid], version) for rid in ids[start:end] if rid in store
        ]
        body: dict[str, Any] = {"totalSize": len(ids), "done": end >= len(ids)}
        if end < len(ids):
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.locator}-{end}"
        # A finished cursor stays until it expires or is pushed out: a client that lost
        # the last page's response may ask for it again.
        body["records"] = records
        self.ctx.stats.served(SYSTEM, len(records))
        return json_response(body)

    def _expire_cursors(self) -> None:
        now = self.ctx.clock.timestamp()
        for loc in [k for k, c in self.cursors.items() if now - c.touched > CURSOR_TTL_SECONDS]:
            del self.cursors[loc]

    # ------------------------------------------------------------------ limits
    def _limits(self) -> dict[str, Any]:
        """GET /limits.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
        """
        remaining = self.daily_max - self._used()
        return {
            "DailyApiRequests": {"Max": self.daily_max, "Remaining": max(0, remaining)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - self.bulk.query_jobs},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - self.bulk.ingest_jobs},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        }

    # ------------------------------------------------------------------ sobjects
    def _object(self, name: str) -> str:
        obj = self.org.canonical_object(name)
        if obj is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def _sobjects(self, call: Call, parts: list[str]) -> Response:
        method = call.method
        if not parts:
            if method != "GET":
                raise SfError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{method}' not allowed. Allowed are GET",
                )
            return json_response(self._describe_global(call.version))
        obj = self._object(parts[0])
        if len(parts) == 1:
            if method == "POST":
                return self._create_one(call, obj)
            if method == "GET":
                return json_response(
                    {"objectDescribe": self._object_summary(obj, call.version), "recentItems": []}
                )
            raise SfError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are GET,POST",
            )
        second = parts[1]
        if len(parts) == 2 and second == "describe" and method == "GET":
            return json_response(self._describe(obj, call.version))
        if len(parts) == 2 and second == "updated" and method == "GET":
            return json_response(self._updated(call, obj))
        if len(parts) == 2 and second == "deleted" and method == "GET":
            return json_response(self._deleted(call, obj))
        if len(parts) == 2:
            return self._record(call, obj, second)
        if len(parts) == 3:
            return self._by_external(call, obj, parts[1], parts[2])
        raise not_found()

    def _object_summary(self, obj: str, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj}"
        return {
            "name": obj,
            "label": obj,
            "labelPlural": f"{obj}s",
            "keyPrefix": KEY_PREFIXES[obj],
            "custom": False,
            # SOAP merge() takes Lead, Contact and Account (API_NOTES A9)
            "mergeable": obj in MERGEABLE_OBJECTS,
            "createable": obj != "User",
            "updateable": True,
            "deletable": obj != "User",
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def _describe_global(self, version: str) -> dict[str, Any]:
        """GET /sobjects: describeGlobal."""
        return {
            "encoding": "UTF-8",
            "maxBatchSize": SF_COLLECTION,
            "sobjects": [self._object_summary(obj, version) for obj in SALESFORCE],
        }

    def _describe(self, obj: str, version: str) -> dict[str, Any]:
        """GET /sobjects/{T}/describe, built from connectors/salesforce_schema.py.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
        """
        fields = []
        for spec in self.org.schema[obj].values():
            picks = self.org.picklists.get((obj, spec.name), [])
            ref = REFERENCES.get(spec.name)
            target = (ref[1] or obj) if ref else None
            system = spec.name in (
                "Id",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
            )
            fields.append(
                {
                    "name": spec.name,
                    "label": spec.label or spec.name,
                    "type": spec.type,
                    "soapType": _SOAP_TYPES.get(spec.type, "xsd:string"),
                    "length": spec.length,
                    "byteLength": spec.length * 3,
                    "precision": 18 if spec.type in ("currency", "double", "percent") else 0,
                    "scale": 2 if spec.type in ("currency", "double", "percent") else 0,
                    "digits": 9 if spec.type == "int" else 0,
                    "nillable": spec.nillable and spec.type != "boolean",
                    "updateable": spec.updateable and not system,
                    "createable": spec.updateable and not system,
                    "defaultedOnCreate": system or spec.type == "boolean",
                    "calculated": False,
                    "unique": spec.unique,
                    "externalId": spec.external_id,
                    "idLookup": spec.name == "Id" or spec.external_id,
                    "custom": spec.custom,
                    "filterable": True,
                    "sortable": True,
                    "restrictedPicklist": bool(picks),
                    "picklistValues": [
                        {
                            "active": True,
                            "defaultValue": False,
                            "label": v,
                            "validFor": None,
                            "value": v,
                        }
                        for v in picks
                    ],
                    "nameField": spec.name == "Name",
                    "referenceTo": [target] if target else [],
                    "relationshipName": ref[0] if ref else None,
                }
            )
        return {**self._object_summary(obj, version), "fields": fields,
                "childRelationships": self._child_relationships(obj)}

    def _child_relationships(self, obj: str) -> list[dict[str, Any]]:
        """describe's ``childRelationships``: the lookups of other objects that point here."""
        out = []
        for child, specs in self.org.schema.items():
            for spec in specs.values():
                ref = REFERENCES.get(spec.name)
                if ref is None or (ref[1] or child) != obj or spec.name == "MasterRecordId":
                    continue
                out.append({
                    "childSObject": child, "field": spec.name,
                    "relationshipName": None if child == "User" else f"{child}s",
                    "cascadeDelete": obj == "Account" and child in ("Contact", "Opportunity"),
                    "deprecatedAndHidden": False, "restrictedDelete": False,
                })
        return out

    def _record_json(
        self, obj: str, rec: Mapping[str, Any], version: str, only: list[str] | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj,
                "url": f"/services/data/v{version}/sobjects/{obj}/{rec['Id']}",
            }
        }
        schema = self.org.schema[obj]
        names = (
            [schema[n.lower()].name for n in only if n.lower() in schema]
            if only
            else [s.name for s in schema.values()]
        )
        for name in names:
            out[name] = field_value(obj, rec, name)
        return out

    def _fields_param(self, call: Call, obj: str) -> list[str] | None:
        raw = call.request.args.get("fields")
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        schema = self.org.schema[obj]
        for n in names:
            if n.lower() not in schema:
                raise SfError(400, "INVALID_FIELD", f"No such column '{n}' on entity '{obj}'")
        return names


    def _row_rule(self, call: Call) -> Mapping[str, Any] | None:
        fault = call.fault
        if fault is not None and fault.kind == "validation":
            self.ctx.stats.fault(SYSTEM, "validation")
            return fault.params
        return None

    def _single_lock(self, call: Call) -> None:
        fault = call.fault
        if fault is not None and fault.kind == "lock":
            self.ctx.stats.fault(SYSTEM, "lock")
            raise SfError(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records: (single)",
                [],
            )

    def _fail_one(self, exc: RecordFailure) -> SfError:
        return SfError(400, exc.code, exc.message, exc.fields)

    def _create_one(self, call: Call, obj: str) -> Response:
        """POST /sobjects/{T}.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_create.htm
        """
        body = self._body(call)
        if not isinstance(body, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject")
        self._single_lock(call)
        try:
            change = self.org.prepare_create(obj, body, {}, self._row_rule(call))
        except RecordFailure as exc:
            raise self._fail_one(exc) from None
        rid = self.org.commit(change, self.now())
        self.ctx.stats.written(SYSTEM, 1)
        return json_response({"id": rid, "success": True, "errors": []}, 201)

    def _record(self, call: Call, obj: str, rid: str) -> Response:
        """GET/PATCH/DELETE /sobjects/{T}/{id}.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_retrieve.htm
        """
        method = call.method
        if len(rid) == 15:
            rid = with_checksum(rid)
        rec = self.org.records[obj].get(rid)
        if method == "GET":
            if rec is None or rec.get("IsDeleted"):
                raise not_found()
            self.ctx.stats.served(SYSTEM, 1)
            return json_response(
                self._record_json(obj, rec, call.version, self._fields_param(call, obj))
            )
        if method == "PATCH":
            if rec is None:
                raise not_found()
            if rec.get("IsDeleted"):
                raise SfError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            body = self._body(call)
            if not isinstance(body, dict):
                raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject")
            self._single_lock(call)
            try:
                change = self.org.prepare_update(obj, rid, body, {}, self._row_rule(call))
            except RecordFailure as exc:
                raise self._fail_one(exc) from None
            self.org.commit(change, self.now())
            self.ctx.stats.written(SYSTEM, 1)
            return Response(status=204)
        if method == "DELETE":
            if rec is None:
                raise not_found()
            if rec.get("IsDeleted"):
                raise SfError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            self._single_lock(call)
            deleted = self.org.soft_delete(obj, rid, self.now())
            self.ctx.stats.written(SYSTEM, len(deleted))
            return Response(status=204)
        raise SfError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE",
        )


    def _by_external(self, call: Call, obj: str, field_name: str, value: str) -> Response:
        """GET/PATCH(upsert)/DELETE /sobjects/{T}/{ExtField}/{value}.

        https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html
        """
        ext = self._ext_field(obj, field_name)
        if ext is None:
            # [doc] a field that is not an external id: 404 NOT_FOUND.
            raise not_found()
        method = call.method
        matches = self.org.find_by_ext(obj, ext, value)
        if method == "GET" or method == "DELETE":
            if not matches:
                raise not_found()
            if len(matches) > 1:
                return self._multiple(call, obj, matches)
            rid = matches[0]
            if method == "GET":
                self.ctx.stats.served(SYSTEM, 1)
                return json_response(
                    self._record_json(obj, self.org.records[obj][rid], call.version, None)
                )
            self._single_lock(call)
            deleted = self.org.soft_delete(obj, rid, self.now())
            self.ctx.stats.written(SYSTEM, len(deleted))
            return Response(status=204)
        if method not in ("PATCH", "POST"):
            raise SfError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE",
            )
        body = self._body(call)
        if not isinstance(body, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject")
        self._single_lock(call)
        update_only = call.request.args.get("updateOnly", "").lower() == "true"
        try:
            change = self.org.prepare_upsert(
                obj, ext, value, body, {}, self._row_rule(call), update_only=update_only
            )
        except MultipleMatches as exc:
            return self._multiple(call, obj, exc.ids)
        except RecordFailure as exc:
            if exc.code == "NOT_FOUND":
                raise not_found() from None
            raise self._fail_one(exc) from None
        rid = self.org.commit(change, self.now())
        self.ctx.stats.written(SYSTEM, 1)
        created = change.kind == "create"
        if not created and float(call.version) < 46.0:
            return Response(status=204)
        return json_response(
            {"id": rid, "success": True, "errors": [], "created": created}, 201 if created else 200
        )

    def _multiple(self, call: Call, obj: str, ids: list[str]) -> Response:
        return json_response(
            [f"/services/data/v{call.version}/sobjects/{obj}/{rid}" for rid in ids], 300
        )

    # ------------------------------------------------------------------ getUpdated / getDeleted
    def _window(
        self, call: Call, days: int, *, clamp: bool = False
    ) -> tuple[datetime, datetime, datetime]:
        """(start, end, now) of a getUpdated/getDeleted call. A start further back than
        ``days`` is refused with INVALID_REPLICATION_DATE, or with ``clamp`` moved up to
        the oldest date kept (getDeleted then says so in ``earliestDateAvailable``)."""
        args = call.request.args
        try:
            start = parse_sf_datetime(args["start"]).replace(second=0, microsecond=0)
            end = parse_sf_datetime(args["end"]).replace(second=0, microsecond=0)
        except (KeyError, ValueError):
            raise SfError(
                400, "MALFORMED_QUERY", "start and end must be ISO-8601 datetimes"
            ) from None
        now = self.ctx.clock.now()
        if start < now - timedelta(days=days) and clamp:
            start = (now - timedelta(days=days)).replace(second=0, microsecond=0)
        if start < now - timedelta(days=days):
            raise SfError(
                400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago"
            )
        if end <= start:
            raise SfError(
                400, "INVALID_REPLICATION_DATE", "EndDate must chronologically follow the StartDate"
            )
        return start, end, now

    def _updated(self, call: Call, obj: str) -> dict[str, Any]:
        """GET /sobjects/{T}/updated/?start=&end= (by SystemModstamp, ≤30 days back)."""
        start, end, now = self._window(call, UPDATED_WINDOW_DAYS)
        latest = min(end, now.replace(second=0, microsecond=0))
        lo, hi = sf_datetime(start), sf_datetime(latest)
        store = self.org.records[obj]
        ids = [
            rid
            for rid in self.org.modstamps[obj].ids_from(store, lo, True)
            if store[rid]["SystemModstamp"] < hi and not store[rid].get("IsDeleted")
        ]
        # The index yields ids in stamp order; stop scanning beyond hi cheaply is not needed here.
        return {"ids": ids, "latestDateCovered": sf_datetime(latest)}

    def _deleted(self, call: Call, obj: str) -> dict[str, Any]:
        """GET /sobjects/{T}/deleted/?start=&end= (the delete log, 15 days).

        A start older than the log reaches is answered 200 with a later
        ``earliestDateAvailable`` (what Salesforce does), or, with
        ``deleted_too_old = "error"``, refused with INVALID_REPLICATION_DATE (also seen).
        """
        start, end, now = self._window(
            call, DELETED_WINDOW_DAYS, clamp=self.deleted_too_old == "answer"
        )
        latest = min(end, now.replace(second=0, microsecond=0))
        lo, hi = sf_datetime(start), sf_datetime(latest)
        log = self.org.delete_log[obj]
        store = self.org.records[obj]
        rows = [
            {"id": rid, "deletedDate": when}
            for when, rid in log
            if lo <= when < hi and rid in store and store[rid].get("IsDeleted")
        ]
        # "Timestamp of the last physically deleted object": the log reaches back to the
        # last purge (set_earliest_deleted), never further than the retention window.
        retained = now - timedelta(days=DELETED_WINDOW_DAYS)
        earliest = max(self.org.earliest_deleted.get(obj) or retained, retained)
        return {
            "deletedRecords": rows,
            "earliestDateAvailable": sf_datetime(earliest.replace(second=0, microsecond=0)),
            "latestDateCovered": sf_datetime(latest),
        }

    # ------------------------------------------------------------------ collections
    def _collections(self, call: Call, parts: list[str]) -> Response:
        """sObject Collections: POST create, PATCH update, PATCH /{T}/{ExtId} upsert, DELETE.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
        """
        method = call.method
        if method == "DELETE" and not parts:
            args = call.request.args
            ids = [i for i in args.get("ids", "").split(",") if i]
            all_or_none = args.get("allOrNone", "false").lower() == "true"
            self._check_count(len(ids))
            items: list[tuple[str, Any]] = [("delete", rid) for rid in ids]
            return self._run_collection(call, items, all_or_none, upsert=False)
        if method == "GET" and len(parts) == 1:
            obj = self._object(parts[0])
            ids = [i for i in call.request.args.get("ids", "").split(",") if i]
            self._check_count(len(ids))
            only = self._fields_param(call, obj)
            out = []
            for rid in ids:
                rec = self.org.live(obj, rid) if rid[:3] == KEY_PREFIXES[obj] else None
                out.append(
                    self._record_json(obj, rec, call.version, only) if rec is not None else None
                )
            self.ctx.stats.served(SYSTEM, sum(1 for r in out if r is not None))
            return json_response(out)
        body = self._body(call)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SfError(
                400, "JSON_PARSER_ERROR", "The request body must contain a 'records' array"
            )
        records = body["records"]
        all_or_none = bool(body.get("allOrNone", False))
        self._check_count(len(records))
        if method == "POST" and not parts:
            return self._run_collection(
                call, [("create", r) for r in records], all_or_none, upsert=False
            )
        if method == "PATCH" and not parts:
            return self._run_collection(
                call, [("update", r) for r in records], all_or_none, upsert=False
            )
        if method == "PATCH" and len(parts) == 2:
            obj = self._object(parts[0])
            ext = self._ext_field(obj, parts[1])
            if ext is None:
                raise SfError(
                    400,
                    "INVALID_FIELD",
                    f"Field name provided, {parts[1]} is not an External ID or indexed field for {obj}",
                )
            return self._run_collection(
                call,
                [("upsert", r) for r in records],
                all_or_none,
                upsert=True,
                upsert_key=(obj, ext),
            )
        raise not_found()

    @staticmethod
    def _check_count(n: int) -> None:
        if n > SF_COLLECTION:
            # [verify] the HTTP status of this refusal is inferred (400); the body is as observed.
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {SF_COLLECTION} records into this call",
            )

    def _fault_rows(self, call: Call, n: int) -> dict[int, RecordFailure]:
        """Per-item failures from ``lock`` / ``partial`` faults, chosen by the seeded rng."""
        fault = call.fault
        if fault is None or fault.kind not in ("lock", "partial") or n == 0:
            return {}
        fraction = float(fault.get("fraction", 0.1))
        count = max(1, min(n, round(n * fraction)))
        picks = sorted(self.rng.sample(range(n), count))
        self.ctx.stats.fault(SYSTEM, fault.kind)
        return {i: self.row_fault(fault.kind) for i in picks}


    def _run_collection(
        self,
        call: Call,
        items: Sequence[tuple[str, Any]],
        all_or_none: bool,
        *,
        upsert: bool,
        upsert_key: tuple[str, str] | None = None,
    ) -> Response:
        rule = self._row_rule(call)
        forced = self._fault_rows(call, len(items))
        pending: dict[tuple[str, str], str] = {}
        prepared: list[Change | RecordFailure] = []
        ids_in: list[str | None] = []
        touched: set[str] = set()
        for i, (kind, item) in enumerate(items):
            rid_hint: str | None = None
            try:
                if kind == "delete":
                    rid_hint = str(item)
                change, rid_hint = self._prepare_item(kind, item, pending, rule, upsert_key)
                if change.record_id is not None:
                    if change.record_id in touched:
                        # [verify] a record twice in one call: Salesforce refuses the repeat.
                        raise RecordFailure(
                            "INVALID_ID_FIELD", f"duplicate id in list: {change.record_id}", []
                        )
                    touched.add(change.record_id)
                if i in forced:
                    fail = forced[i]
                    if fail.code == "UNABLE_TO_LOCK_ROW":
                        fail = self.row_fault("lock", change.record_id or rid_hint)
                    raise fail
                prepared.append(change)
            except RecordFailure as exc:
                prepared.append(exc)
            ids_in.append(rid_hint)
        any_failed = any(isinstance(p, RecordFailure) for p in prepared)
        results: list[dict[str, Any]] = []
        now = self.now()
        written = 0
        for p, rid_hint in zip(prepared, ids_in, strict=True):
            if isinstance(p, RecordFailure):
                res: dict[str, Any] = {"success": False, "errors": [p.as_error()]}
                if rid_hint and items[0][0] == "delete":
                    res = {"id": rid_hint, **res}
            elif all_or_none and any_failed:
                res = {
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                            "message": "Record rolled back because not all records were valid and the "
                            "request was using AllOrNone header",
                            "fields": [],
                        }
                    ],
                }
            else:
                rid = self.org.commit(p, now)
                written += 1
                res = {"id": rid, "success": True, "errors": []}
                if upsert:
                    res["created"] = p.kind == "create"
            if upsert and not res["success"]:
                res = {"id": None, **res, "created": False}
            results.append(res)
        self.ctx.stats.written(SYSTEM, written)
        return json_response(results)

    def _prepare_item(
        self,
        kind: str,
        item: Any,
        pending: dict[tuple[str, str], str],
        rule: Mapping[str, Any] | None,
        upsert_key: tuple[str, str] | None,
    ) -> tuple[Change, str | None]:
        org = self.org
        if kind == "delete":
            rid = str(item)
            return org.prepare_delete(org.object_of_id(rid), rid), rid
        if not isinstance(item, dict):
            raise RecordFailure("JSON_PARSER_ERROR", "each record must be a JSON object", [])
        attrs = item.get("attributes")
        type_name = attrs.get("type") if isinstance(attrs, dict) else None
        if kind == "upsert" and upsert_key is not None:
            obj, ext = upsert_key
            if type_name is not None and org.canonical_object(str(type_name)) != obj:
                raise RecordFailure(
                    "INVALID_TYPE", f"Record type {type_name} does not match {obj}", []
                )
            value = next((v for k, v in item.items() if k.lower() == ext.lower()), None)
            if value in (None, ""):
                raise RecordFailure("MISSING_ARGUMENT", f"{ext} not specified", [])
            change = org.prepare_upsert(obj, ext, str(value), item, pending, rule)
            return change, change.record_id
        if kind == "update":
            raw_id = next((v for k, v in item.items() if k.lower() == "id"), None)
            if not isinstance(raw_id, str) or not raw_id:
                raise RecordFailure("MISSING_ARGUMENT", "Id not specified in an update call", [])
            target = org.canonical_object(str(type_name)) if type_name else org.object_of_id(raw_id)
            if target is None:
                raise RecordFailure("MALFORMED_ID", f"malformed id {raw_id}", [])
            return org.prepare_update(target, raw_id, item, pending, rule), raw_id
        if type_name is None:
            raise RecordFailure(
                "INVALID_TYPE",
                "When creating records, the sObject type must be given in attributes.type",
                [],
            )
        new_obj = org.canonical_object(str(type_name))
        if new_obj is None:
            raise RecordFailure("INVALID_TYPE", f"sObject type '{type_name}' is not supported.", [])
        return org.prepare_create(new_obj, item, pending, rule), None

    # ------------------------------------------------------------------ edits
    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Realistic changes made by "users" of the org, for the control endpoint."""
        kinds = [k for k in kinds if k in EDIT_KINDS] or list(EDIT_KINDS)
        out: list[dict[str, Any]] = []
        with self.lock:
            for _ in range(n):
                edit = apply_edit(self.org, rng, rng.choice(kinds), self.now())
                if edit is not None:
                    out.append(edit)
        return out


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

__all__ = ["EXTERNAL_ID_FIELD", "SF_COLLECTION", "SOQL_PAGE", "SalesforceEmulator", "SfError"]
