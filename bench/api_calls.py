"""API calls per 1,000 records, measured against a fresh sandbox (issue 4).

``python bench/api_calls.py [--accounts N] [--seed S]`` starts the sandbox, builds each
connector exactly as ``revsync`` does (``cli.sandbox_settings``), and for every system
and native object: a full read, an update of every record read (the value it already
has), and ``N`` creates (upsert on a fresh key). Calls are taken from the sandbox's own
counters (``GET /__sandbox/stats``, ``POST /__sandbox/stats/reset``) and set against
the minimum the page and batch sizes allow. It prints ONE JSON object.

Per system: ``read_calls_per_1k`` (listing/query pages), ``read_min_per_1k``,
``read_assoc_calls_per_1k`` / ``read_assoc_min_per_1k`` (association reads),
``read_overhead_calls`` (fixed: token, describe, properties, owner/user lookups, counts),
``write_calls_per_1k``, ``write_min_per_1k``; plus absolute counts, the sandbox's
``by_endpoint`` per phase, and ``by_object``.

Salesforce's ``query``/``queryMore`` endpoint serves data pages, ``SELECT COUNT()``,
user lookups and OpportunityContactRole lookups alike, so a response hook on the
connector's session sorts those calls by their SOQL (and ``nextRecordsUrl`` for
queryMore); the sandbox's totals are checked against the hook's.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import (
    ApiBudget,
    Connector,
    OpKind,
    RetryPolicy,
    WriteOp,
    WriteResult,
    load_connector_class,
)
from connectors.hubspot import ASSOCIATIONS_READ as HUBSPOT_ASSOCIATIONS
from connectors.hubspot import HUBSPOT_ASSOC_READ, HUBSPOT_BATCH, HUBSPOT_LIST_PAGE
from connectors.planhat import PLANHAT_BULK, PLANHAT_PAGE, PLANHAT_PAGE_OTHER
from connectors.salesforce import (
    BULK_QUERY_PAGE,
    DEFAULT_BULK_THRESHOLD,
    SF_COLLECTION,
    SOQL_PAGE,
)
from mapping.canonical import ObjectType

SYSTEMS = ("salesforce", "hubspot", "planhat")
PER = 1000  # figures are per this many records
DEFAULT_ACCOUNTS = 200
DEFAULT_SEED = 42

# Calls of one Bulk API 2.0 ingest job at best: create, upload, close, one status poll,
# then successful / failed / unprocessed results.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/walkthrough_upload_data.htm
SF_BULK_INGEST_CALLS = 7
# Salesforce objects whose reads also look up OpportunityContactRole (contact links).
SF_ASSOC_NATIVES = frozenset({"Opportunity"})
# Calls of one Bulk API 2.0 query job besides its results pages: create, one status poll.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
SF_BULK_QUERY_JOB_CALLS = 2

#: the field every record gets written back with its own value (an update that changes
#: nothing but still costs the calls a real change would)
UPDATE_FIELD: Mapping[tuple[str, str], str] = {
    ("salesforce", "Account"): "Name",
    ("salesforce", "Contact"): "LastName",
    ("salesforce", "Lead"): "LastName",
    ("salesforce", "Opportunity"): "Name",
    ("hubspot", "companies"): "name",
    ("hubspot", "contacts"): "lastname",
    ("hubspot", "deals"): "dealname",
    ("planhat", "companies"): "name",
    ("planhat", "endusers"): "lastName",
}
#: the fields a create copies from a sample record (the required ones, see connectors/*_schema.py,
#: plus picklists the emulators check)
CREATE_FIELDS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("salesforce", "Account"): ("Name",),
    ("salesforce", "Contact"): ("LastName",),
    ("salesforce", "Lead"): ("LastName", "Company"),
    ("salesforce", "Opportunity"): ("Name", "StageName", "CloseDate"),
    ("hubspot", "companies"): ("name",),
    ("hubspot", "contacts"): ("lastname",),
    ("hubspot", "deals"): ("dealname", "pipeline", "dealstage"),
    ("planhat", "companies"): ("name",),
    ("planhat", "endusers"): ("lastName",),
}
#: unique email fields a create gets a fresh value for
EMAIL_FIELD: Mapping[tuple[str, str], str] = {
    ("salesforce", "Contact"): "Email",
    ("salesforce", "Lead"): "Email",
    ("hubspot", "contacts"): "email",
    ("planhat", "endusers"): "email",
}


def per_1k(calls: int, records: int) -> float:
    """Calls per ``PER`` records (0 records: 0.0)."""
    return round(calls * PER / records, 2) if records else 0.0


def pages(n: int, size: int) -> int:
    """Calls to page through ``n`` records when the last page says it is the last."""
    return max(1, math.ceil(n / size))


def offset_pages(n: int, size: int) -> int:
    """Calls for limit/offset paging with no total: only a short page ends the listing."""
    return n // size + 1


def batches(n: int, size: int) -> int:
    """Calls to write ``n`` records in batches of ``size`` (0 records: no call)."""
    return math.ceil(n / size)


# --------------------------------------------------------------------------- sandbox stats


class StatsClient:
    """The sandbox's control endpoints (``GET /__sandbox/stats``, ``POST .../reset``)."""

    def __init__(self, stats_url: str, ca_cert: str) -> None:
        self.url = stats_url
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        self.session.verify = ca_cert

    def reset(self) -> None:
        self.session.post(f"{self.url}/reset", timeout=30).raise_for_status()

    def get(self) -> dict[str, Any]:
        resp = self.session.get(self.url, timeout=30)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def close(self) -> None:
        self.session.close()


@dataclass
class Phase:
    """What one phase cost in one system: the sandbox's counts and the client's split."""

    calls: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    records: int = 0
    client: Counter[str] = field(default_factory=Counter)

    def add(self, other: Phase) -> None:
        self.calls += other.calls
        self.by_endpoint.update(other.by_endpoint)
        self.records += other.records
        self.client.update(other.client)


# --------------------------------------------------------------------------- Salesforce split


def soql_kind(soql: str) -> str:
    """What a Salesforce query is for: ``count``, ``owners``, ``assoc`` or ``page``."""
    text = " ".join(soql.split()).upper()
    if text.startswith("SELECT COUNT()"):
        return "count"
    if " FROM USER" in text:
        return "owners"
    if " FROM OPPORTUNITYCONTACTROLE" in text:
        return "assoc"
    return "page"


class SalesforceCallLog:
    """A response hook that sorts the connector's Salesforce calls by purpose."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._cursors: dict[str, str] = {}

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(str(response.request.url)).path
        query = urlsplit(str(response.request.url)).query
        kind = self._kind(path, query)
        self.counts[kind] += 1
        if kind in ("page", "count", "owners", "assoc") and response.ok:
            try:
                nxt = response.json().get("nextRecordsUrl")
            except ValueError:
                nxt = None
            if nxt:
                self._cursors[str(nxt).rstrip("/")] = kind

    def _kind(self, path: str, query: str) -> str:
        if path.startswith("/services/oauth2/"):
            return "auth"
        parts = [p for p in path.split("/") if p]
        if "query" in parts or "queryAll" in parts:
            if path.rstrip("/").endswith(("/query", "/queryAll")):
                return soql_kind((parse_qs(query).get("q") or [""])[0])
            return self._cursors.get(path.rstrip("/"), "page")
        if "describe" in parts:
            return "describe"
        if "jobs" in parts:
            return "bulk"
        if "composite" in parts:
            return "write"
        return "other"

    def take(self) -> Counter[str]:
        """The counts since the last take (and start afresh)."""
        out, self.counts = self.counts, Counter()
        return out


# --------------------------------------------------------------------------- the run


@dataclass
class ObjectRun:
    """One native object of one system: its reads and writes."""

    object_type: ObjectType
    native: str
    read: Phase = field(default_factory=Phase)
    update: Phase = field(default_factory=Phase)
    create: Phase = field(default_factory=Phase)
    failed_writes: int = 0
    write_errors: list[str] = field(default_factory=list)


def build_connector(system: str, settings: Any) -> Connector:
    """The connector of ``system`` built the way the CLI builds it."""
    cls = load_connector_class(settings.connections[system].kind)
    return cls.from_settings(settings.connections[system], budget=ApiBudget(), retry=RetryPolicy())


def _measure(stats: StatsClient, system: str, fn: Callable[[], int],
             client: Callable[[], Counter[str]] | None = None) -> Phase:
    """Reset the counters, run ``fn`` (returns records handled), read the counters."""
    stats.reset()
    if client is not None:
        client()  # drop anything counted before the reset
    records = fn()
    snap = stats.get().get(system) or {}
    return Phase(
        calls=int(snap.get("calls", 0)),
        by_endpoint=Counter({str(k): int(v) for k, v in (snap.get("by_endpoint") or {}).items()}),
        records=records,
        client=client() if client is not None else Counter(),
    )


#: values a create uses when no record read has them (e.g. a tiny sandbox with no Leads)
FALLBACK: Mapping[str, str] = {
    "Name": "Bench", "LastName": "Bench", "Company": "Bench Inc", "name": "Bench",
    "lastname": "Bench", "lastName": "Bench", "dealname": "Bench",
}


def _sample(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Mapping[str, Any]:
    """A record with every one of ``names`` set, else the fallback values."""
    for rec in records:
        if all(rec.get(n) not in (None, "") for n in names):
            return rec
    missing = [n for n in names if n not in FALLBACK]
    if missing:
        raise RuntimeError(f"no record to copy {', '.join(missing)} from")
    return FALLBACK


def update_ops(system: str, run: ObjectRun, read: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteOp]:
    """Every record read, written back with its own value of one field."""
    name = UPDATE_FIELD[(system, run.native)]
    return [
        WriteOp(kind=OpKind.UPDATE, object_type=run.object_type, key=rid, remote_id=rid,
                fields={name: fields.get(name)}, native_type=run.native)
        for rid, fields in read
    ]


def create_ops(system: str, run: ObjectRun, read: Sequence[tuple[str, Mapping[str, Any]]],
               sample_assoc: Mapping[str, tuple[str, ...]], n: int) -> list[WriteOp]:
    """``n`` creates keyed by fresh uuids, with the required fields of a sample record."""
    names = CREATE_FIELDS[(system, run.native)]
    sample = _sample([f for _, f in read], names)
    email = EMAIL_FIELD.get((system, run.native))
    ops = []
    for _ in range(n):
        key = str(uuid.uuid4())
        fields = {k: sample[k] for k in names}
        if email:
            fields[email] = f"bench-{key}@example.com"
        ops.append(WriteOp(kind=OpKind.UPSERT, object_type=run.object_type, key=key, fields=fields,
                           native_type=run.native, associations=dict(sample_assoc)))
    return ops


def _note_failures(run: ObjectRun, results: Sequence[WriteResult]) -> None:
    for res in results:
        if not res.success:
            run.failed_writes += 1
            if len(run.write_errors) < 3:
                run.write_errors.append(f"{res.category}: {res.message}"[:200])


def bench_system(system: str, settings: Any, stats: StatsClient, creates: int) -> dict[str, Any]:
    """Read, update and create every native object of one system; the figures."""
    sf_log = SalesforceCallLog() if system == "salesforce" else None
    take = sf_log.take if sf_log is not None else None
    box: dict[str, Connector] = {}

    def connect() -> int:
        box["c"] = build_connector(system, settings)
        if sf_log is not None:
            box["c"].client.session.hooks.setdefault("response", []).append(sf_log.hook)  # type: ignore[attr-defined]
        return 0

    connect_phase = _measure(stats, system, connect)
    if sf_log is not None:
        connect_phase.client = Counter({"auth": connect_phase.calls})
    connector = box["c"]
    runs: list[ObjectRun] = []
    for object_type, natives in connector.objects.items():
        for native in natives:
            run = ObjectRun(ObjectType(object_type), native)
            read: list[tuple[str, Mapping[str, Any]]] = []
            assoc_sample: dict[str, tuple[str, ...]] = {}

            def do_read(run: ObjectRun = run, read: list[tuple[str, Mapping[str, Any]]] = read,
                        assoc_sample: dict[str, tuple[str, ...]] = assoc_sample) -> int:
                for page in connector.read_pages(run.object_type, native=run.native):
                    for rec in page:
                        read.append((rec.remote_id, dict(rec.fields)))
                        if not assoc_sample and rec.associations.get("account"):
                            assoc_sample["account"] = tuple(rec.associations["account"])
                return len(read)

            run.read = _measure(stats, system, do_read, take)
            ups = update_ops(system, run, read)
            news = create_ops(system, run, read, {"account": assoc_sample["account"]}
                              if system == "planhat" and "account" in assoc_sample else {}, creates)

            def do_write(ops: list[WriteOp], run: ObjectRun = run) -> int:
                _note_failures(run, connector.write(run.object_type, ops))
                return len(ops)

            run.update = _measure(stats, system, lambda ops=ups: do_write(ops), take)  # type: ignore[misc]
            run.create = _measure(stats, system, lambda ops=news: do_write(ops), take)  # type: ignore[misc]
            runs.append(run)
    return summarize(system, connect_phase, runs)


# --------------------------------------------------------------------------- figures


def _read_split(system: str, run: ObjectRun) -> tuple[int, int]:
    """(page calls, association calls) of one read phase."""
    ph = run.read
    if system == "salesforce":
        return ph.client["page"] + ph.client["bulk"], ph.client["assoc"]
    if system == "hubspot":
        return ph.by_endpoint["crm.list"], ph.by_endpoint["assoc.batch.read"]
    return ph.by_endpoint[f"{run.native}.list"], 0


def _read_min(system: str, run: ObjectRun) -> tuple[int, int]:
    """(minimum page calls, minimum association calls) for the records read."""
    n = run.read.records
    if system == "salesforce":
        # contact roles: one OpportunityContactRole query per page of opportunities
        # (a semi-join on the page; a relationship subquery would even make it 0)
        if n > DEFAULT_BULK_THRESHOLD:  # a Bulk query job: create, one poll, results pages
            page_min, page_size = SF_BULK_QUERY_JOB_CALLS + pages(n, BULK_QUERY_PAGE), BULK_QUERY_PAGE
        else:
            page_min, page_size = pages(n, SOQL_PAGE), SOQL_PAGE
        return page_min, batches(n, page_size) if run.native in SF_ASSOC_NATIVES else 0
    if system == "hubspot":
        pairs = len(HUBSPOT_ASSOCIATIONS.get(run.native, ()))
        return pages(n, HUBSPOT_LIST_PAGE), pairs * batches(n, HUBSPOT_ASSOC_READ)
    return offset_pages(n, PLANHAT_PAGE.get(run.native, PLANHAT_PAGE_OTHER)), 0


def _write_min(system: str, n: int) -> int:
    if system == "salesforce":
        return SF_BULK_INGEST_CALLS if n > DEFAULT_BULK_THRESHOLD else batches(n, SF_COLLECTION)
    if system == "hubspot":
        return batches(n, HUBSPOT_BATCH)
    return batches(n, PLANHAT_BULK)


def summarize(system: str, connect: Phase, runs: Sequence[ObjectRun]) -> dict[str, Any]:
    """The per-system JSON: per-1k figures against the minimum, plus the detail."""
    read_n = read_pages = read_assoc = read_min = assoc_min = read_total = 0
    write_n = write_calls = write_min = 0
    overhead = connect.calls
    endpoints: dict[str, Counter[str]] = {"connect": Counter(connect.by_endpoint), "read": Counter(),
                                          "write": Counter()}
    client: Counter[str] = Counter(connect.client)
    by_object: dict[str, Any] = {}
    for run in runs:
        page_calls, assoc_calls = _read_split(system, run)
        pmin, amin = _read_min(system, run)
        over = run.read.calls - page_calls - assoc_calls
        read_n += run.read.records
        read_pages += page_calls
        read_assoc += assoc_calls
        read_min += pmin
        assoc_min += amin
        overhead += over
        read_total += run.read.calls
        wmin = _write_min(system, run.update.records) + _write_min(system, run.create.records)
        wcalls = run.update.calls + run.create.calls
        write_n += run.update.records + run.create.records
        write_calls += wcalls
        write_min += wmin
        endpoints["read"].update(run.read.by_endpoint)
        endpoints["write"].update(run.update.by_endpoint)
        endpoints["write"].update(run.create.by_endpoint)
        for ph in (run.read, run.update, run.create):
            client.update(ph.client)
        by_object[run.native] = {
            "object_type": run.object_type.value,
            "records_read": run.read.records,
            "read_page_calls": page_calls, "read_page_min": pmin,
            "read_assoc_calls": assoc_calls, "read_assoc_min": amin,
            "read_overhead_calls": over,
            "updates": run.update.records, "update_calls": run.update.calls,
            "update_min": _write_min(system, run.update.records),
            "creates": run.create.records, "create_calls": run.create.calls,
            "create_min": _write_min(system, run.create.records),
            "failed_writes": run.failed_writes,
            **({"write_errors": run.write_errors} if run.write_errors else {}),
        }
    sandbox_total = connect.calls + read_total + write_calls
    out: dict[str, Any] = {
        "records_read": read_n,
        "read_calls": read_pages,
        "read_calls_per_1k": per_1k(read_pages, read_n),
        "read_min_per_1k": per_1k(read_min, read_n),
        "read_assoc_calls": read_assoc,
        "read_assoc_calls_per_1k": per_1k(read_assoc, read_n),
        "read_assoc_min_per_1k": per_1k(assoc_min, read_n),
        "read_overhead_calls": overhead,
        "records_written": write_n,
        "write_calls": write_calls,
        "write_calls_per_1k": per_1k(write_calls, write_n),
        "write_min_per_1k": per_1k(write_min, write_n),
        "total_calls": sandbox_total,
        "by_endpoint": {k: dict(sorted(v.items())) for k, v in endpoints.items()},
        "by_object": by_object,
    }
    if system == "salesforce":
        out["client_calls"] = dict(sorted(client.items()))
        # every call the sandbox counted was seen by the hook (or the token fetch)
        out["client_matches_sandbox"] = sum(client.values()) == sandbox_total
    return out


def run_bench(accounts: int = DEFAULT_ACCOUNTS, *, seed: int = DEFAULT_SEED,
              creates: int | None = None, systems: Sequence[str] = SYSTEMS) -> dict[str, Any]:
    """Start a fresh sandbox and measure every system; the JSON object the CLI prints."""
    from cli import sandbox_settings
    from sandbox.server import Sandbox

    n_creates = accounts if creates is None else creates
    result: dict[str, Any] = {"accounts": accounts, "seed": seed, "creates_per_object": n_creates,
                              "per": PER}
    with Sandbox(accounts=accounts, seed=seed, tier="off", systems=systems) as sb:
        info = sb.info
        settings = sandbox_settings(info, "sqlite://")
        stats = StatsClient(str(info["stats"]), str(info["ca_cert"]))
        try:
            for system in systems:
                result[system] = bench_system(system, settings, stats, n_creates)
        finally:
            stats.close()
    return result


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS, help="sandbox size (companies)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--creates", type=int, default=None, help="creates per object (default: --accounts)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    print(json.dumps(run_bench(args.accounts, seed=args.seed, creates=args.creates), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
