"""Salesforce writes: sObject Collections (``SF_COLLECTION`` a call, ``allOrNone=false``)
and Bulk API 2.0 ingest above ``bulk_threshold``; one ``WriteResult`` per op, in order.

Creates upsert on the external-id field (``key`` is its value), so a retried create
never duplicates; ops with a ``remote_id`` update by Id; deletes go by Id. Per-record
failures become failed results with a category, never exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from simple_salesforce import Salesforce

from connectors.base import (
    ErrorCategory,
    OpKind,
    QuotaExhausted,
    RetriableError,
    RetryPolicy,
    WriteOp,
    WriteResult,
    chunked,
)
from connectors.salesforce_bulk import BulkRow, parse_results, read_csv, to_csv_value
from connectors.salesforce_errors import SalesforceApiError, SessionExpired, category_for
from connectors.salesforce_soap import (
    MAX_REQUESTS,
    MERGEABLE,
    MergeRequest,
    MergeResult,
    SoapFault,
    merge_envelope,
    parse_fault,
    parse_merge_response,
    requests_for,
)
from mapping.canonical import ObjectType

log = logging.getLogger("connectors.salesforce")

T = TypeVar("T")

# Records per sObject Collections call.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
SF_COLLECTION = 200
# Id key prefixes: how an update/delete of a "contact" finds out it is a Lead.
# https://help.salesforce.com/s/articleView?id=000385203&type=1
KEY_PREFIXES = {"001": "Account", "003": "Contact", "00Q": "Lead", "006": "Opportunity"}


def _json_value(value: Any) -> Any:
    """A field value the JSON encoder accepts (dates as ISO text, decimals as numbers)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class SalesforceWriter:
    """The write half of ``SalesforceConnector`` (a mixin; the connector provides the
    client, the call layer, describe and the owner lookup)."""

    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]]
    client: Salesforce
    retry: RetryPolicy
    connection: str
    external_id_field: str
    bulk_threshold: int
    bulk_poll_seconds: float
    create_contacts_as: str
    #: native bodies of the ops of the current ``write`` call, by ``id(op)``
    _bodies: dict[int, dict[str, Any]]

    if TYPE_CHECKING:  # provided by SalesforceConnector; declared here for the type checker

        def _call(self, fn: Callable[[], T], what: str) -> T: ...

        def describe(self, native: str) -> dict[str, Mapping[str, Any]]: ...

        def _native(self, object_type: ObjectType, native: str | None) -> str: ...

        def _owner_id(self, email: Any) -> str | None: ...

        def _warn_missing(self, native: str, name: str, why: str) -> None: ...

        def _bulk2(self, native: str) -> Any: ...

        def _opportunity_contacts(self, opp_ids: list[str]) -> dict[str, list[str]]: ...

    def _op_native(self, object_type: ObjectType, op: WriteOp) -> str:
        """The sObject an op writes to: ``op.native_type``, else the Id's key prefix
        (an ``00Q`` Id is a Lead), else Contact/Lead per ``create_contacts_as`` for
        contacts, else the object type's sObject."""
        natives = self.objects.get(object_type, ())
        if op.native_type:
            return self._native(object_type, op.native_type)
        if op.remote_id:
            native = KEY_PREFIXES.get(op.remote_id[:3])
            if native in natives:
                return native
        if object_type is ObjectType.CONTACT:
            return self.create_contacts_as
        return self._native(object_type, None)

    def _body(self, native: str, op: WriteOp) -> dict[str, Any]:
        """The native fields of ``op`` that exist in describe; owner email → OwnerId
        (memoised for the duration of one ``write`` call, so warnings come once)."""
        if id(op) not in self._bodies:
            self._bodies[id(op)] = self._make_body(native, op)
        return self._bodies[id(op)]

    def _make_body(self, native: str, op: WriteOp) -> dict[str, Any]:
        described = self.describe(native)
        body: dict[str, Any] = {}
        for name, value in op.fields.items():
            if name == "_owner_email":
                if not value:
                    continue
                owner = self._owner_id(value)
                if owner is None:
                    log.warning(
                        "%s: no Salesforce user has the owner email of %s %s; "
                        "owner left unchanged", self.connection, native, op.key,
                    )
                elif "OwnerId" in described:
                    body["OwnerId"] = owner
            elif name.startswith("_") or name in ("Id", "attributes") or (
                    # an update may write the revsync id into a record that lacks it
                    name == self.external_id_field and op.kind is not OpKind.UPDATE):
                continue
            elif name not in described:
                self._warn_missing(native, name, "is mapped but not in describe")
            else:
                spec = described[name]
                if spec.get("createable") is False and spec.get("updateable") is False:
                    self._warn_missing(native, name, "is read-only")
                    continue
                body[name] = _json_value(value)
        account = op.associations.get("account")
        if account and native in ("Contact", "Opportunity") and "AccountId" in described:
            body["AccountId"] = account[0]
        if "parent" in op.associations and native == "Account" and "ParentId" in described:
            parent = op.associations["parent"]
            # an empty ``parent`` removes the account's parent (ParentId null)
            body["ParentId"] = parent[0] if parent else None
        return body

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Upsert creates on the external id, update by Id, delete by Id; one result per op."""
        self._bodies = {}
        try:
            return self._write(object_type, ops)
        finally:
            self._bodies = {}

    def _write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(ops)
        groups: dict[tuple[str, str], list[int]] = {}
        merges: list[int] = []
        for i, op in enumerate(ops):
            if op.kind is OpKind.MERGE:
                merges.append(i)
                continue
            if op.kind is OpKind.DELETE and not op.remote_id:
                results[i] = self._fail(
                    op, "NOT_FOUND", "delete needs the record's Salesforce Id", ErrorCategory.NOT_FOUND
                )
                continue
            native = self._op_native(object_type, op)
            action = "delete" if op.kind is OpKind.DELETE else ("update" if op.remote_id else "upsert")
            if action == "update" and not self._body(native, op):
                # Nothing this sObject can hold changes (e.g. only a contact-role link):
                # no call, so no needless SystemModstamp bump.
                results[i] = WriteResult(op=op, success=True, remote_id=op.remote_id)
                continue
            groups.setdefault((action, native), []).append(i)
        for (action, native), idxs in groups.items():
            group = [ops[i] for i in idxs]
            if self.bulk_threshold > 0 and len(group) > self.bulk_threshold:
                done = self._bulk_write(action, native, group)
            else:
                done = self._collections_write(action, native, group)
            for i, res in zip(idxs, done, strict=True):
                results[i] = res
        if merges:
            for i, res in zip(merges, self._merge(object_type, [ops[i] for i in merges]), strict=True):
                results[i] = res
        final = [r for r in results if r is not None]
        if object_type is ObjectType.OPPORTUNITY:
            final = self._link_contact_roles(final)
        return final

    # ------------------------------------------------------------------ merge (SOAP)

    def _merge(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Merge each op's ``merge_from`` records into its ``remote_id`` (the master
        keeps its Id and its values; children are re-parented; the others end deleted
        with ``MasterRecordId`` set). One result per op: failed if any request failed."""
        fails: dict[int, WriteResult] = {}
        reqs: list[tuple[int, MergeRequest]] = []
        for j, op in enumerate(ops):
            native = self._op_native(object_type, op) if op.remote_id else ""
            if native not in MERGEABLE or not op.remote_id or not op.merge_from:
                fails[j] = self._fail(op, "INVALID_OPERATION", f"merge() takes Account, Contact or Lead "
                                      f"records and a master Id (got {native or 'none'})", ErrorCategory.VALIDATION)
                continue
            reqs.extend((j, r) for r in requests_for(native, op.remote_id, op.merge_from))
        for chunk in chunked(reqs, MAX_REQUESTS):
            answers = self._call(lambda c=chunk: self._soap_merge([r for _, r in c]),  # type: ignore[misc]
                                 what=f"merge {chunk[0][1].native}")
            for n, (j, req) in enumerate(chunk):
                res = answers[n] if n < len(answers) else MergeResult(False, None, errors=(
                    ("UNKNOWN_EXCEPTION", "no result for this merge request", ()),))
                if res.success or j in fails:
                    continue
                code, message, fields = res.errors[0] if res.errors else ("UNKNOWN_EXCEPTION", "merge failed", ())
                fails[j] = self._fail(ops[j], code, f"merge of {', '.join(req.victims)} into {req.master}: "
                                      f"{message}", field=fields[0] if fields else None)
        return [fails.get(j) or WriteResult(op=op, success=True, remote_id=op.remote_id)
                for j, op in enumerate(ops)]

    def _soap_merge(self, requests: list[MergeRequest]) -> list[MergeResult]:
        """One SOAP ``merge`` call on the client's session (see ``connectors.salesforce_soap``)."""
        base = self.client.base_url.split("/services/data/")[0]
        resp = self.client.session.post(
            f"{base}/services/Soap/u/{self.client.sf_version}",
            data=merge_envelope(str(self.client.session_id), requests).encode("utf-8"),
            headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
        )
        if resp.status_code == 200:
            return parse_merge_response(resp.text)
        raise self._soap_error(parse_fault(resp.text, resp.status_code))

    def _soap_error(self, fault: SoapFault) -> Exception:
        where = f"{self.connection}: merge"
        if fault.code == "INVALID_SESSION_ID":
            return SessionExpired(f"{where}: session expired or invalid")
        if fault.code == "REQUEST_LIMIT_EXCEEDED":
            return QuotaExhausted(f"{where}: Salesforce API request limit exceeded ({fault.message})")
        if fault.status >= 500 and fault.code in ("", "UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE"):
            return RetriableError(f"{where}: HTTP {fault.status} {fault.code}".rstrip())
        return SalesforceApiError(f"{where}: {fault}", code=fault.code or str(fault.status), status=fault.status)

    def _link_contact_roles(self, results: list[WriteResult]) -> list[WriteResult]:
        """Create the OpportunityContactRole rows an op's ``contact`` association asks for
        and that do not exist yet (links are added, never removed)."""
        wanted: list[tuple[int, str, str]] = []
        for i, res in enumerate(results):
            contacts = res.op.associations.get("contact") or ()
            if res.success and res.remote_id and res.op.kind is not OpKind.DELETE:
                wanted.extend((i, res.remote_id, c) for c in contacts)
        if not wanted:
            return results
        existing = self._opportunity_contacts(sorted({opp for _, opp, _ in wanted}))
        missing = [(i, opp, c) for i, opp, c in wanted if c not in existing.get(opp, [])]
        out = list(results)
        for chunk in chunked(missing, SF_COLLECTION):
            records = [
                {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": opp,
                 "ContactId": contact}
                for _, opp, contact in chunk
            ]
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
            items = self._call(
                lambda r=records: self.client.restful(  # type: ignore[misc]
                    "composite/sobjects", method="POST", json={"allOrNone": False, "records": r}
                ),
                what="create OpportunityContactRole",
            ) or []
            for (i, _, contact), item in zip(chunk, items, strict=False):
                if item.get("success"):
                    continue
                failed = self._collection_result(out[i].op, item)
                out[i] = WriteResult(
                    op=out[i].op, success=False, remote_id=out[i].remote_id,
                    created=out[i].created, category=failed.category, field="ContactId",
                    message=f"contact role for {contact}: {failed.message}",
                )
        return out

    @staticmethod
    def _fail(
        op: WriteOp, code: str, message: str, category: ErrorCategory | None = None,
        field: str | None = None,
    ) -> WriteResult:
        return WriteResult(
            op=op,
            success=False,
            remote_id=op.remote_id,
            category=category or category_for(code),
            message=f"{code}: {message}" if code else message,
            field=field,
        )

    def _collection_call(self, action: str, native: str, ops: list[WriteOp]) -> list[Any]:
        """One sObject Collections call (≤ SF_COLLECTION records, allOrNone=false)."""
        if action == "delete":
            ids = ",".join(str(op.remote_id) for op in ops)
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
            result = self._call(
                lambda: self.client.restful(
                    "composite/sobjects", params={"ids": ids, "allOrNone": "false"}, method="DELETE"
                ),
                what=f"delete {native}",
            )
        elif action == "update":
            records = [
                {"attributes": {"type": native}, "id": op.remote_id, **self._body(native, op)}
                for op in ops
            ]
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
            result = self._call(
                lambda: self.client.restful(
                    "composite/sobjects", method="PATCH",
                    json={"allOrNone": False, "records": records},
                ),
                what=f"update {native}",
            )
        else:
            ext = self.external_id_field
            records = [
                {"attributes": {"type": native}, **self._body(native, op), ext: op.key}
                for op in ops
            ]
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
            result = self._call(
                lambda: self.client.restful(
                    f"composite/sobjects/{native}/{ext}", method="PATCH",
                    json={"allOrNone": False, "records": records},
                ),
                what=f"upsert {native}",
            )
        return list(result or [])

    def _collections_write(self, action: str, native: str, ops: list[WriteOp]) -> list[WriteResult]:
        """Write in chunks of SF_COLLECTION; records failing on UNABLE_TO_LOCK_ROW are sent
        again with backoff, then reported as ``locked``."""
        out: list[WriteResult | None] = [None] * len(ops)
        pending = list(range(len(ops)))
        attempt = 1
        while pending:
            locked: list[int] = []
            for chunk in chunked(pending, SF_COLLECTION):
                chunk_ops = [ops[i] for i in chunk]
                try:
                    items = self._collection_call(action, native, chunk_ops)
                except SalesforceApiError as exc:  # the whole call was refused
                    for i in chunk:
                        out[i] = self._fail(ops[i], exc.code, str(exc))
                    continue
                if len(items) != len(chunk):
                    for i in chunk:
                        out[i] = self._fail(
                            ops[i], "UNKNOWN",
                            f"{len(items)} results for {len(chunk)} records", ErrorCategory.UNKNOWN,
                        )
                    continue
                for i, item in zip(chunk, items, strict=True):
                    res = self._collection_result(ops[i], item)
                    retry_lock = (
                        res.category is ErrorCategory.LOCKED and attempt < self.retry.attempts
                    )
                    if retry_lock:
                        locked.append(i)
                    else:
                        out[i] = res
            if locked:
                log.warning(
                    "%s: %d %s records locked (UNABLE_TO_LOCK_ROW); retrying them",
                    self.connection, len(locked), native,
                )
                self.retry.sleep(min(self.retry.cap, self.retry.base * 2 ** (attempt - 1)))
            pending = locked
            attempt += 1
        return [r for r in out if r is not None]

    def _collection_result(self, op: WriteOp, item: Mapping[str, Any]) -> WriteResult:
        if item.get("success"):
            return WriteResult(
                op=op,
                success=True,
                remote_id=str(item.get("id") or op.remote_id or "") or None,
                created=bool(item.get("created")),
            )
        errors = item.get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], Mapping) else {}
        code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN")
        fields = first.get("fields") or []
        return self._fail(op, code, str(first.get("message") or ""), field=fields[0] if fields else None)

    def _bulk_write(self, action: str, native: str, ops: list[WriteOp]) -> list[WriteResult]:
        """Write through one Bulk API 2.0 ingest job (split by simple-salesforce past
        100 MB); result rows are matched back to ops by external id (upsert) or Id."""
        ext = self.external_id_field
        key_col = ext if action == "upsert" else "Id"
        rows: list[dict[str, str]] = []
        slots: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            if action == "delete":
                row = {"Id": str(op.remote_id)}
            elif action == "update":
                row = {"Id": str(op.remote_id)}
                row.update({k: to_csv_value(v) for k, v in self._body(native, op).items()})
            else:
                row = {k: to_csv_value(v) for k, v in self._body(native, op).items()}
                row[ext] = op.key
            rows.append(row)
            slots.setdefault(row[key_col], []).append(i)
        poll = self.bulk_poll_seconds
        bulk_args: dict[str, Any] = {"records": rows, "wait": poll}
        if action == "upsert":
            bulk_args["external_id_field"] = ext
        # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/create_job.htm
        jobs = self._call(
            lambda: getattr(self._bulk2(native), action)(**bulk_args),
            what=f"bulk {action} {native}",
        )
        out: list[WriteResult | None] = [None] * len(ops)
        lock_retry: list[int] = []
        for job in jobs:
            job_id = str(job["job_id"])
            for kind in ("successful", "failed", "unprocessed"):
                # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm
                text = self._call(
                    lambda k=kind, j=job_id: getattr(  # type: ignore[misc]
                        self._bulk2(native), f"get_{k}_records"
                    )(j),
                    what=f"bulk {action} {native} ({kind} results)",
                )
                parsed: Iterator[BulkRow]
                if kind == "unprocessed":
                    parsed = (
                        BulkRow(key=r.get(key_col) or "", success=False,
                                status_code="NOT_PROCESSED", message="not processed by the Bulk job")
                        for r in read_csv(str(text or ""))
                    )
                else:
                    parsed = parse_results(str(text or ""), key_column=key_col,
                                           success=kind == "successful")
                for result_row in parsed:
                    free = slots.get(result_row.key)
                    if not free:
                        log.warning("%s: bulk result row for an unknown key; ignored", self.connection)
                        continue
                    i = free.pop(0)
                    op = ops[i]
                    if result_row.success:
                        out[i] = WriteResult(op=op, success=True,
                                             remote_id=result_row.record_id or op.remote_id,
                                             created=result_row.created)
                    elif result_row.status_code == "UNABLE_TO_LOCK_ROW":
                        lock_retry.append(i)
                    else:
                        out[i] = self._fail(
                            op, result_row.status_code or "UNKNOWN", result_row.message or ""
                        )
        if lock_retry:
            again = self._collections_write(action, native, [ops[i] for i in lock_retry])
            for i, res in zip(lock_retry, again, strict=True):
                out[i] = res
        return [
            r if r is not None
            else self._fail(ops[i], "UNKNOWN", "no Bulk result row for this record",
                            ErrorCategory.UNKNOWN)
            for i, r in enumerate(out)
        ]
