"""Bulk API 2.0 for the Salesforce emulator: ingest jobs and query jobs, CSV in and out.

Ingest: create (``POST /jobs/ingest``), upload (``PUT /jobs/ingest/{id}/batches``,
text/csv, 201), close (``PATCH {"state":"UploadComplete"}``), which processes the rows
at once (state ``JobComplete``), then ``successfulResults/``, ``failedResults/`` and
``unprocessedrecords/``. Result rows come back in a shuffled (seeded) order: Salesforce
does not keep input order. Query: ``POST /jobs/query`` runs the SOQL immediately;
``GET /jobs/query/{id}/results?locator=&maxRecords=`` pages the CSV with the
``Sforce-NumberOfRecords`` and ``Sforce-Locator`` headers (the string ``null`` on the
last page).

https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm
"""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Response

from sandbox.core import json_response
from sandbox.salesforce_soql import CompiledQuery
from sandbox.salesforce_state import Call, SalesforceState, SfError
from sandbox.salesforce_store import Change, RecordFailure

# Query result pages when the client does not ask for maxRecords.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
BULK_QUERY_DEFAULT_PAGE = 50_000
# Upload limit per job (100 MB of base64 / 150 MB raw; we apply the raw one).
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_common_limits.htm
BULK_MAX_UPLOAD_BYTES = 150 * 1024 * 1024
OPERATIONS_INGEST = ("insert", "update", "upsert", "delete", "hardDelete")
OPERATIONS_QUERY = ("query", "queryAll")
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
CSV_TYPE = "text/csv"


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id: str | None
    delimiter: str
    line_ending: str
    version: str
    created: str
    state: str = "Open"
    data: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    modstamp: str = ""
    fault_kind: str | None = None
    fault_fraction: float = 0.1
    rule: Mapping[str, Any] | None = None


@dataclass
class QueryJob:
    id: str
    operation: str
    soql: str
    query: CompiledQuery
    ids: list[str]
    delimiter: str
    line_ending: str
    version: str
    created: str
    state: str = "UploadComplete"


def _err(status: int, code: str, message: str) -> Response:
    return json_response([{"errorCode": code, "message": message}], status)


def _csv_text(rows: list[list[str]], delimiter: str, line_ending: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=line_ending, quoting=csv.QUOTE_ALL)
    writer.writerows(rows)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class BulkJobs:
    """The Bulk 2.0 jobs of one emulator."""

    def __init__(self, emulator: SalesforceState) -> None:
        self.emu = emulator
        self.ingest: dict[str, IngestJob] = {}
        self.queries: dict[str, QueryJob] = {}
        self.ingest_jobs = 0
        self.query_jobs = 0

    # ------------------------------------------------------------------ routing
    def route(self, call: Call, parts: list[str]) -> Response:
        kind = parts[0]
        rest = parts[1:]
        method = call.method
        if kind == "ingest":
            if not rest:
                if method == "POST":
                    return self._create_ingest(call)
                if method == "GET":
                    return json_response(
                        {"done": True, "records": [self._info(j) for j in self.ingest.values()]}
                    )
            else:
                job = self.ingest.get(rest[0])
                if job is None:
                    return _err(404, "NOT_FOUND", "The requested resource does not exist")
                if len(rest) == 1:
                    if method == "GET":
                        return json_response(self._info(job, full=True))
                    if method == "PATCH":
                        return self._set_state(call, job)
                    if method == "DELETE":
                        del self.ingest[job.id]
                        return Response(status=204)
                if len(rest) == 2 and rest[1] == "batches" and method == "PUT":
                    return self._upload(call, job)
                if len(rest) == 2 and method == "GET":
                    return self._results(job, rest[1])
        if kind == "query":
            if not rest and method == "POST":
                return self._create_query(call)
            if rest:
                qjob = self.queries.get(rest[0])
                if qjob is None:
                    return _err(404, "NOT_FOUND", "The requested resource does not exist")
                if len(rest) == 1 and method == "GET":
                    return json_response(self._query_info(qjob))
                if len(rest) == 1 and method == "PATCH":
                    body = self.emu._body(call)
                    if isinstance(body, dict) and body.get("state") == "Aborted":
                        qjob.state = "Aborted"
                    return json_response(self._query_info(qjob))
                if len(rest) == 1 and method == "DELETE":
                    del self.queries[qjob.id]
                    return Response(status=204)
                if len(rest) == 2 and rest[1] == "results" and method == "GET":
                    return self._query_results(call, qjob)
        return _err(404, "NOT_FOUND", "The requested resource does not exist")

    # ------------------------------------------------------------------ ingest
    def _create_ingest(self, call: Call) -> Response:
        """POST /jobs/ingest.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/create_job.htm
        """
        body = self.emu._body(call)
        if not isinstance(body, dict):
            return _err(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        obj = self.emu.org.canonical_object(str(body.get("object", "")))
        operation = body.get("operation")
        if obj is None:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
        if operation not in OPERATIONS_INGEST:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        ext = body.get("externalIdFieldName")
        if operation == "upsert":
            ext_field = self.emu._ext_field(obj, str(ext or ""))
            if ext_field is None:
                return _err(
                    400, "INVALIDJOB", f"InvalidJob : External ID was blank or invalid for {obj}"
                )
            ext = ext_field
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        if delimiter not in DELIMITERS:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid column delimiter: {delimiter}")
        line_ending = "\r\n" if body.get("lineEnding") == "CRLF" else "\n"
        job = IngestJob(
            id=self.emu.org.new_id("750"),
            object=obj,
            operation=str(operation),
            external_id=str(ext) if ext else None,
            delimiter=DELIMITERS[delimiter],
            line_ending=line_ending,
            version=call.version,
            created=self.emu.now(),
        )
        job.modstamp = job.created
        self.ingest[job.id] = job
        self.ingest_jobs += 1
        return json_response(self._info(job))

    def _info(self, job: IngestJob, *, full: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": "005Rs0000000001AAA",
            "createdDate": job.created,
            "systemModstamp": job.modstamp,
            "state": job.state,
            "externalIdFieldName": job.external_id,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version),
            "contentUrl": f"services/data/v{job.version}/jobs/ingest/{job.id}/batches",
            "lineEnding": "CRLF" if job.line_ending == "\r\n" else "LF",
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == job.delimiter),
        }
        if full:
            info.update(
                {
                    "jobType": "V2Ingest",
                    "numberRecordsProcessed": job.processed,
                    "numberRecordsFailed": job.failed,
                    "retries": 0,
                    "totalProcessingTime": 0,
                    "apiActiveProcessingTime": 0,
                    "apexProcessingTime": 0,
                }
            )
            if job.state == "Failed":
                info["errorMessage"] = "InvalidBatch : no data uploaded"
        return info

    def _remember_fault(self, call: Call, job: IngestJob) -> None:
        fault = call.fault
        if fault is None:
            return
        if fault.kind in ("lock", "partial"):
            job.fault_kind = fault.kind
            job.fault_fraction = float(fault.get("fraction", 0.1))
            self.emu.ctx.stats.fault("salesforce", fault.kind)
        elif fault.kind == "validation":
            job.rule = fault.params
            self.emu.ctx.stats.fault("salesforce", fault.kind)

    def _upload(self, call: Call, job: IngestJob) -> Response:
        """PUT /jobs/ingest/{id}/batches (text/csv) → 201."""
        if job.state != "Open":
            return _err(409, "INVALIDJOBSTATE", f"Job {job.id} is not open for data upload")
        raw = call.request.get_data()
        if len(raw) > BULK_MAX_UPLOAD_BYTES:
            return _err(400, "INVALIDBATCH", "InvalidBatch : The upload is larger than 150 MB")
        if CSV_TYPE not in (call.request.content_type or ""):
            return _err(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be text/csv")
        job.data.append(raw.decode("utf-8-sig"))
        self._remember_fault(call, job)
        return Response(status=201)

    def _set_state(self, call: Call, job: IngestJob) -> Response:
        body = self.emu._body(call)
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted":
            if job.state in ("JobComplete", "Failed"):
                return _err(409, "INVALIDJOBSTATE", f"Job {job.id} is already {job.state}")
            job.state = "Aborted"
        elif state == "UploadComplete":
            if job.state != "Open":
                return _err(409, "INVALIDJOBSTATE", f"Job {job.id} is not open")
            self._remember_fault(call, job)
            job.state = "UploadComplete"
            info = self._info(job)
            self._process(job)
            return json_response(info)
        else:
            return _err(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
        job.modstamp = self.emu.now()
        return json_response(self._info(job))

    def _process(self, job: IngestJob) -> None:
        """Run every uploaded row through the org's DML (as a parallel job would)."""
        emu = self.emu
        org = emu.org
        rows: list[list[str]] = []
        header: list[str] = []
        for chunk in job.data:
            reader = csv.reader(io.StringIO(chunk, newline=""), delimiter=job.delimiter)
            part = [r for r in reader if r]
            if not part:
                continue
            if not header:
                header = part[0]
            rows.extend(part[1:])
        if not header:
            job.state = "Failed"
            return
        job.header = header
        rng = random.Random(f"{emu.ctx.seed}:{job.id}")
        forced: set[int] = set()
        if job.fault_kind is not None and rows:
            count = max(1, min(len(rows), round(len(rows) * job.fault_fraction)))
            forced = set(rng.sample(range(len(rows)), count))
        now = emu.now()
        pending: dict[tuple[str, str], str] = {}
        written = 0
        for i, row in enumerate(rows):
            values = {header[j].strip(): row[j] for j in range(min(len(header), len(row)))}
            # Bulk CSV: an empty cell leaves the field alone, #N/A sets it to null.
            body = {k: (None if v == "#N/A" else v) for k, v in values.items() if v != ""}
            rid_hint = next((v for k, v in values.items() if k.lower() == "id"), "") or ""
            try:
                change = self._prepare(job, body, rid_hint, pending)
                if i in forced:
                    raise emu.row_fault(job.fault_kind or "partial", change.record_id)
                created = change.kind == "create"
                if job.operation == "hardDelete" and change.record_id:
                    org.hard_delete(job.object, change.record_id)
                    rid = change.record_id
                else:
                    rid = org.commit(change, now)
                written += 1
                job.successes.append([rid, "true" if created else "false", *row])
            except RecordFailure as exc:
                fields = ",".join(exc.fields)
                job.failures.append([rid_hint, f"{exc.code}:{exc.message}:{fields} --", *row])
        job.processed = len(rows)
        job.failed = len(job.failures)
        rng.shuffle(job.successes)
        rng.shuffle(job.failures)
        job.state = "JobComplete"
        job.modstamp = emu.now()
        job.data = []
        emu.ctx.stats.written("salesforce", written)

    def _prepare(
        self, job: IngestJob, body: dict[str, Any], rid: str, pending: dict[tuple[str, str], str]
    ) -> Change:
        org = self.emu.org
        obj = job.object
        op = job.operation
        if op == "insert":
            return org.prepare_create(obj, body, pending, job.rule)
        if op in ("delete", "hardDelete"):
            if rid and org.object_of_id(rid) != obj:
                raise RecordFailure(
                    "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {rid}", []
                )
            return org.prepare_delete(obj, rid)
        if op == "update":
            if not rid:
                raise RecordFailure("MISSING_ARGUMENT", "Id not specified in an update call", [])
            return org.prepare_update(obj, rid, body, pending, job.rule)
        ext = job.external_id or "Id"
        value = next((v for k, v in body.items() if k.lower() == ext.lower()), None)
        if not value:
            raise RecordFailure("MISSING_ARGUMENT", f"{ext} not specified", [])
        return org.prepare_upsert(obj, ext, str(value), body, pending, job.rule)

    def _results(self, job: IngestJob, which: str) -> Response:
        """GET successfulResults/ failedResults/ unprocessedrecords/ (CSV)."""
        kind = which.lower()
        if kind == "successfulresults":
            rows = [["sf__Id", "sf__Created", *job.header], *job.successes]
        elif kind == "failedresults":
            rows = [["sf__Id", "sf__Error", *job.header], *job.failures]
        elif kind == "unprocessedrecords":
            rows = [job.header, *job.unprocessed] if job.header else []
        else:
            return _err(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state not in ("JobComplete", "Failed", "Aborted") and kind != "unprocessedrecords":
            return _err(409, "INVALIDJOBSTATE", f"Job {job.id} is not complete")
        text = _csv_text(rows, job.delimiter, job.line_ending) if rows else ""
        return Response(text, status=200, mimetype=CSV_TYPE)

    # ------------------------------------------------------------------ query
    def _create_query(self, call: Call) -> Response:
        """POST /jobs/query: the query runs at once; results are a snapshot of ids.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
        """


        body = self.emu._body(call)
        if not isinstance(body, dict):
            return _err(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        operation = body.get("operation", "query")
        if operation not in OPERATIONS_QUERY:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        soql = str(body.get("query") or "")
        try:
            query = self.emu.compile(soql)
        except SfError as exc:
            # [verify] Bulk 2.0 reports SOQL problems at job creation with the SOQL errorCode.
            return _err(400, exc.code, exc.message)
        if query.count_only or query.offset:
            return _err(
                400,
                "INVALIDJOB",
                "InvalidJob : COUNT() and OFFSET are not supported by Bulk API 2.0 query",
            )
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        if delimiter not in DELIMITERS:
            return _err(400, "INVALIDJOB", f"InvalidJob : Invalid column delimiter: {delimiter}")
        ids = self.emu.run(query, include_deleted=operation == "queryAll")
        job = QueryJob(
            id=self.emu.org.new_id("750"),
            operation=str(operation),
            soql=soql,
            query=query,
            ids=ids,
            delimiter=DELIMITERS[delimiter],
            line_ending="\r\n" if body.get("lineEnding") == "CRLF" else "\n",
            version=call.version,
            created=self.emu.now(),
        )
        self.queries[job.id] = job
        self.query_jobs += 1
        return json_response(self._query_info(job, created=True))

    def _query_info(self, job: QueryJob, *, created: bool = False) -> dict[str, Any]:
        if not created and job.state == "UploadComplete":
            job.state = "JobComplete"  # it ran at creation: the first poll sees it done
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.query.obj,
            "createdById": "005Rs0000000001AAA",
            "createdDate": job.created,
            "systemModstamp": job.created,
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version),
            "lineEnding": "CRLF" if job.line_ending == "\r\n" else "LF",
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == job.delimiter),
        }
        if job.state == "JobComplete":
            info.update(
                {
                    "jobType": "V2Query",
                    "numberRecordsProcessed": len(job.ids),
                    "retries": 0,
                    "totalProcessingTime": 0,
                }
            )
        return info

    def _query_results(self, call: Call, job: QueryJob) -> Response:
        """GET /jobs/query/{id}/results?locator=&maxRecords= (CSV pages)."""
        if job.state != "JobComplete":
            if job.state == "Aborted":
                return _err(409, "INVALIDJOBSTATE", f"Job {job.id} was aborted")
            job.state = "JobComplete"
        if call.version != job.version:
            return _err(409, "INVALIDJOBSTATE", "The job was created with a different API version")
        args = call.request.args
        start = 0
        locator = args.get("locator")
        if locator:
            try:
                start = int(base64.b64decode(locator.encode()).decode())
            except ValueError:
                return _err(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
        try:
            size = int(args.get("maxRecords") or BULK_QUERY_DEFAULT_PAGE)
        except ValueError:
            return _err(400, "INVALIDPARAMETER", "maxRecords must be a positive integer")
        size = max(1, size)
        end = min(len(job.ids), start + size)
        org = self.emu.org
        store = org.records[job.query.obj]
        rows: list[list[str]] = [[col.path for col in job.query.columns]]
        for rid in job.ids[start:end]:
            rec = store.get(rid)
            if rec is not None:
                rows.append([_cell(v) for v in job.query.flat(rec)])
        text = _csv_text(rows, job.delimiter, job.line_ending)
        next_locator = (
            base64.b64encode(str(end).encode()).decode() if end < len(job.ids) else "null"
        )
        self.emu.ctx.stats.served("salesforce", len(rows) - 1)
        resp = Response(text, status=200, mimetype=CSV_TYPE)
        resp.headers["Sforce-NumberOfRecords"] = str(len(rows) - 1)
        resp.headers["Sforce-Locator"] = next_locator
        return resp


__all__ = ["BULK_QUERY_DEFAULT_PAGE", "BulkJobs"]
