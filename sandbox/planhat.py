"""Planhat REST API emulator: companies, endusers, licenses and users.

Faithful to the public reference (https://docs.planhat.com) where it is specific, and
to what the open-source clients observed where it is not (each such choice is marked
``[verify]`` in a comment). Documents are held in memory as plain dicts, indexed by
``_id`` and by the keyables ``sourceId`` / ``externalId`` (and enduser ``email``);
listing order is ``_id`` ascending (ObjectIds grow with time), kept in a sorted list
so a page is a slice, never a scan.

Endpoints (per model ``m`` in companies, endusers, licenses; users is read-only):

- ``GET /m?limit=&offset=&sort=&select=`` → JSON array
- ``GET|PUT|DELETE /m/{id}`` where ``id`` may be ``extid-{externalId}`` or ``srcid-{sourceId}``
- ``POST /m`` create one
- ``PUT /m`` bulk upsert of a JSON array (≤ ``BULK_MAX`` items): 200 when every item
  is saved, 206 when some fail, **400 when every item fails** (the per-item entries in
  ``createdErrors`` / ``updatedErrors``), **400 when a ``sourceId`` appears twice in one
  request** (duplicated key, nothing saved), **403 with ``permissionErrors``** when the
  service account may not write some items (the others go through).
  https://www.planhat.com/developers/api/http-response-codes ,
  https://www.planhat.com/developers/api/bulk-upsert
"""

from __future__ import annotations

import bisect
import json
import logging
import random
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from sandbox.core import Emulator, Fault, RateWindow, SandboxContext

log = logging.getLogger(__name__)

SYSTEM = "planhat"
MODELS = ("companies", "endusers", "licenses", "users")
WRITABLE = ("companies", "endusers", "licenses")

# https://docs.planhat.com/#bulk_upsert — "up to 5,000 items per request" (the Go
# client's comment says 50,000; the current reference and robocorp-planhat use 5,000).
BULK_MAX = 5000

# https://docs.planhat.com/#get_companies — ``limit`` / ``offset`` paging. [verify]
# The reference shows no default; 100 is what an unparameterised call returns in the
# clients' tests. Max: robocorp-planhat pages companies by 5,000 and every other model
# by 2,000 (Airbyte reads companies by 5,000 too); a larger limit is clamped.
LIST_DEFAULT = 100
LIST_MAX: Mapping[str, int] = {"companies": 5000}
LIST_MAX_OTHER = 2000

# https://www.planhat.com/developers/api/authentication-limits — soft limit 200 calls
# per minute (hard 150 rps / 50 parallel is far above it). Planhat has no plan tiers
# for its API, so every tier but "off" gets the same soft limit.
RATE_PER_MINUTE = 200
RATE_RETRY_AFTER = 60

# Read-only, derived fields: Planhat computes them, writes ignore them.
DERIVED: Mapping[str, frozenset[str]] = {
    "companies": frozenset({"_id", "h", "arr", "mrr", "renewalDate", "createDate", "lastUpdated", "status",
                            *("orgRootId", "orgPath", "orgLevel")}),
    "endusers": frozenset({"_id", "createDate", "lastUpdated"}),
    "licenses": frozenset({"_id", "arr", "companyName"}),
    "users": frozenset({"_id"}),
}

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}

# Company groups (https://www.planhat.com/developers/api/company: "parents and children
# in a tree like structure"). The parent is held as the parent's ``_id`` in
# ``PARENT_FIELD`` (the key of Planhat's "Parent Org" field is not in the reference we
# could read [verify]); a parent must exist, and a company can be neither its own
# ancestor nor its own parent. The reference's calculated ``orgRootId`` (the top
# company's id), ``orgPath`` and ``orgLevel`` are derived on every read: the path's
# format is not documented [verify]; here it is the ancestors' ids, root first, joined
# by ``,``, and the root's level is 1. ``orgUnits`` and the group ARR/MRR are not
# emulated. See docs/hierarchies.md.
PARENT_FIELD = "parentId"
ORG_MAX_DEPTH = 64


def iso(dt: datetime) -> str:
    """Planhat's datetime rendering: ``2026-11-02T10:15:30.123Z``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_day(value: Any) -> date | None:
    """A date from ``YYYY-MM-DD`` or an ISO datetime string; None if absent/bad."""
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


class ItemError(Exception):
    """One item of a write is invalid (rendered 400 single, or in *Errors bulk)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PlanhatEmulator(Emulator):
    """In-memory Planhat with the documented list / keyable / bulk-upsert behaviour."""

    system: ClassVar[str] = SYSTEM

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.ctx = ctx
        self._lock = threading.RLock()
        self._docs: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODELS}
        self._order: dict[str, list[str]] = {m: [] for m in MODELS}  # _ids, sorted
        self._by_source: dict[str, dict[str, str]] = {m: {} for m in MODELS}
        self._by_external: dict[str, dict[str, str]] = {m: {} for m in MODELS}
        self._by_email: dict[str, set[str]] = {}  # enduser email (lower) → _ids
        self._by_domain: dict[str, str] = {}  # company domain (lower) → _id
        self._licenses_of: dict[str, set[str]] = {}  # companyId → license _ids
        self._sort_cache: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self._version = 0
        self._counter = 0
        self._fault_rng = random.Random(ctx.seed)
        # what the service account may not write (tests): model → _ids; "*" = no creates
        self._denied: dict[str, set[str]] = {m: set() for m in MODELS}
        self._rate: RateWindow | None = (
            None if ctx.tier == "off" else RateWindow(RATE_PER_MINUTE, 60.0, ctx.clock)
        )

    # ------------------------------------------------------------------ data

    def load(self, data_dir: Path) -> None:
        """Read ``<data_dir>/planhat/{users,companies,endusers,licenses}.json``.

        Companies keep the ``arr``/``mrr``/``renewalDate`` the generator wrote (that is
        Planhat's derived state at generation time); later license writes recompute them.
        """
        base = Path(data_dir) / SYSTEM
        if not base.is_dir():
            return
        with self._lock:
            for model in ("users", "companies", "endusers", "licenses"):
                path = base / f"{model}.json"
                if not path.exists():
                    continue
                docs = json.loads(path.read_text(encoding="utf-8"))
                for doc in docs:
                    self._insert(model, doc, presort=False)
            for model in MODELS:
                self._order[model].sort()  # once, rather than an insort per document

    def add(self, model: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one document as-is (tests); assigns ``_id``/timestamps if missing."""
        with self._lock:
            d = dict(doc)
            now = iso(self.ctx.clock.now())
            d.setdefault("_id", self._new_id())
            if model != "users":
                d.setdefault("createDate", now)
                d.setdefault("lastUpdated", now)
            self._insert(model, d)
            if model == "licenses" and d.get("companyId"):
                self._derive_company(str(d["companyId"]), touch=False)
            return d

    def deny(self, model: str, remote_id: str | None = None) -> None:
        """Take the service account's write permission away for one record, or (no id)
        for creating records of ``model`` (tests of the documented 403)."""
        with self._lock:
            self._denied[model].add(remote_id or "*")

    def get(self, model: str, remote_id: str) -> dict[str, Any] | None:
        """The live document (tests), or None."""
        with self._lock:
            return self._docs[model].get(remote_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {m: len(self._docs[m]) for m in MODELS}

    def _new_id(self) -> str:
        """A 24-hex ObjectId: 4-byte seconds, 3-byte seed part, 5-byte counter."""
        self._counter += 1
        secs = int(self.ctx.clock.now().timestamp()) & 0xFFFFFFFF
        return f"{secs:08x}{self.ctx.seed & 0xFFFFFF:06x}{self._counter & 0xFFFFFFFFFF:010x}"

    def _insert(self, model: str, doc: dict[str, Any], *, presort: bool = True) -> None:
        _id = str(doc["_id"])
        self._docs[model][_id] = doc
        order = self._order[model]
        if not presort or not order or order[-1] < _id:
            order.append(_id)
        else:
            bisect.insort(order, _id)
        self._index(model, _id, doc)
        self._version += 1

    def _index(self, model: str, _id: str, doc: Mapping[str, Any]) -> None:
        if doc.get("sourceId"):
            self._by_source[model][str(doc["sourceId"])] = _id
        if doc.get("externalId"):
            self._by_external[model][str(doc["externalId"])] = _id
        if model == "endusers" and doc.get("email"):
            self._by_email.setdefault(str(doc["email"]).lower(), set()).add(_id)
        elif model == "companies":
            for dom in self._domains(doc):
                self._by_domain.setdefault(dom, _id)
        elif model == "licenses" and doc.get("companyId"):
            self._licenses_of.setdefault(str(doc["companyId"]), set()).add(_id)

    def _unindex(self, model: str, _id: str, doc: Mapping[str, Any]) -> None:
        if doc.get("sourceId") and self._by_source[model].get(str(doc["sourceId"])) == _id:
            del self._by_source[model][str(doc["sourceId"])]
        if doc.get("externalId") and self._by_external[model].get(str(doc["externalId"])) == _id:
            del self._by_external[model][str(doc["externalId"])]
        if model == "endusers" and doc.get("email"):
            ids = self._by_email.get(str(doc["email"]).lower())
            if ids:
                ids.discard(_id)
        elif model == "companies":
            for dom in self._domains(doc):
                if self._by_domain.get(dom) == _id:
                    del self._by_domain[dom]
        elif model == "licenses" and doc.get("companyId"):
            lic = self._licenses_of.get(str(doc["companyId"]))
            if lic:
                lic.discard(_id)

    @staticmethod
    def _domains(doc: Mapping[str, Any]) -> list[str]:
        doms = doc.get("domains")
        if isinstance(doms, str):
            doms = [doms]
        return [str(d).lower() for d in doms or () if d]

    def _remove(self, model: str, _id: str) -> dict[str, Any] | None:
        doc = self._docs[model].pop(_id, None)
        if doc is None:
            return None
        order = self._order[model]
        i = bisect.bisect_left(order, _id)
        if i < len(order) and order[i] == _id:
            del order[i]
        self._unindex(model, _id, doc)
        self._version += 1
        if model == "licenses" and doc.get("companyId"):
            self._derive_company(str(doc["companyId"]))
        return doc

    def _resolve(self, model: str, key: str) -> str | None:
        """``_id``, ``extid-…`` or ``srcid-…`` → ``_id`` (None when unknown)."""
        if key.startswith("extid-"):
            return self._by_external[model].get(key[6:])
        if key.startswith("srcid-"):
            return self._by_source[model].get(key[6:])
        return key if key in self._docs[model] else None

    def _derive_company(self, company_id: str, *, touch: bool = True) -> None:
        """Planhat's derivation: arr = 12 * sum(mrr of active licenses); renewal = latest toDate."""
        company = self._docs["companies"].get(company_id)
        if company is None:
            return
        today = self.ctx.clock.now().date()
        mrr = 0.0
        latest: date | None = None
        for lid in self._licenses_of.get(company_id, ()):
            lic = self._docs["licenses"][lid]
            start, end = _parse_day(lic.get("fromDate")), _parse_day(lic.get("toDate"))
            if (start is None or start <= today) and (end is None or end >= today):
                mrr += float(lic.get("mrr") or 0)
            if end is not None and (latest is None or end > latest):
                latest = end
        company["mrr"] = round(mrr, 2)
        company["arr"] = round(mrr * 12, 2)
        company["renewalDate"] = latest.isoformat() if latest else None
        if touch:
            company["lastUpdated"] = iso(self.ctx.clock.now())

    # ------------------------------------------------------------------ writes

    def _validate(self, model: str, doc: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
        """The documented required fields (on the merged document)."""
        merged = {**(existing or {}), **doc}
        own = existing.get("_id") if existing else None
        # http://support.planhat.com/en/articles/8146372-data-uniqueness-and-keyables-in-planhat
        # sourceId is unique per model; externalId per model for companies (per company
        # for child models, which the emulator does not enforce).
        unique = [("sourceId", self._by_source[model])]
        if model == "companies":
            unique.append(("externalId", self._by_external[model]))
        for key, index in unique:
            holder = index.get(str(doc.get(key))) if doc.get(key) else None
            if holder is not None and holder != own:
                raise ItemError(f"{key} must be unique: {doc[key]} is used by {holder}", key)
        if model == "companies":
            if not merged.get("name"):
                raise ItemError("name is required", "name")
            if doc.get(PARENT_FIELD):
                self._check_parent(own, str(doc[PARENT_FIELD]))
        elif model == "endusers":
            if not merged.get("email") and not merged.get("companyId"):
                raise ItemError("email or companyId is required", "companyId")
            cid = doc.get("companyId")  # only a companyId being set is checked
            if cid and str(cid) not in self._docs["companies"]:
                raise ItemError(f"company not found: {cid}", "companyId")
        elif model == "licenses":
            for f in ("companyId", "_currency", "fromDate"):
                if not merged.get(f):
                    raise ItemError(f"{f} is required", f)
            if str(merged["companyId"]) not in self._docs["companies"]:
                raise ItemError(f"company not found: {merged['companyId']}", "companyId")

    def _check_parent(self, own: Any, parent: str) -> None:
        """A parent must be a live company, never the company itself nor a descendant."""
        companies = self._docs["companies"]
        if parent not in companies:
            raise ItemError(f"parent company not found: {parent}", PARENT_FIELD)
        cur: Any = parent
        for _ in range(ORG_MAX_DEPTH):
            if cur is None or cur not in companies:
                return
            if own is not None and str(cur) == str(own):
                raise ItemError(f"company {own} cannot be in its own group structure (parent {parent})",
                                PARENT_FIELD)
            cur = companies[cur].get(PARENT_FIELD)

    def _with_org(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A company as served: with the calculated ``orgRootId``, ``orgPath``, ``orgLevel``."""
        out = dict(doc)
        companies = self._docs["companies"]
        path: list[str] = []
        cur = doc.get(PARENT_FIELD)
        while cur and cur in companies and cur not in path and len(path) < ORG_MAX_DEPTH:
            path.append(str(cur))
            cur = companies[cur].get(PARENT_FIELD)
        path.reverse()
        out["orgRootId"] = path[0] if path else doc.get("_id")
        out["orgPath"] = ",".join(path) if path else None
        out["orgLevel"] = len(path) + 1
        return out

    def _create(self, model: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in doc.items() if k not in DERIVED[model]}
        if model == "endusers" and not clean.get("companyId") and clean.get("email"):
            # https://www.planhat.com/developers/api/enduser — without companyId Planhat
            # places the enduser by its email domain matching a company's domains.
            dom = str(clean["email"]).rpartition("@")[2].lower()
            cid = self._by_domain.get(dom)
            if cid is None:
                raise ItemError("companyId is required (no company matches the email domain)", "companyId")
            clean["companyId"] = cid
        self._validate(model, clean, None)
        now = iso(self.ctx.clock.now())
        new: dict[str, Any] = {"_id": self._new_id(), **clean, "createDate": now, "lastUpdated": now}
        if model == "companies":
            new.setdefault("arr", 0.0)
            new.setdefault("mrr", 0.0)
            new.setdefault("renewalDate", None)
        self._insert(model, new)
        if model == "licenses":
            self._derive_license(new)
            self._derive_company(str(new["companyId"]))
        return new

    def _update(self, model: str, _id: str, doc: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Apply ``doc`` to the document; returns (document, changed)."""
        current = self._docs[model][_id]
        clean = {k: v for k, v in doc.items() if k not in DERIVED[model]}
        self._validate(model, clean, current)
        changed = any(current.get(k) != v for k, v in clean.items())
        if not changed:
            return current, False
        old_company = current.get("companyId")
        self._unindex(model, _id, current)
        current.update(clean)
        current["lastUpdated"] = iso(self.ctx.clock.now())
        self._index(model, _id, current)
        self._version += 1
        if model == "licenses":
            self._derive_license(current)
            for cid in {old_company, current.get("companyId")}:
                if cid:
                    self._derive_company(str(cid))
        return current, True

    def _derive_license(self, lic: dict[str, Any]) -> None:
        lic["arr"] = round(float(lic.get("mrr") or 0) * 12, 2)
        company = self._docs["companies"].get(str(lic.get("companyId")))
        lic["companyName"] = company.get("name") if company else None  # autogenerated

    def _match(self, model: str, item: Mapping[str, Any]) -> str | None:
        """Upsert matching: ``_id``, then ``sourceId``, then ``externalId``, then
        (endusers) ``email`` when exactly one enduser has it.
        https://www.planhat.com/developers/api/bulk-upsert"""
        if item.get("_id"):
            _id = str(item["_id"])
            return _id if _id in self._docs[model] else None
        if item.get("sourceId") and str(item["sourceId"]) in self._by_source[model]:
            return self._by_source[model][str(item["sourceId"])]
        if item.get("externalId") and str(item["externalId"]) in self._by_external[model]:
            return self._by_external[model][str(item["externalId"])]
        if model == "endusers" and item.get("email"):
            ids = self._by_email.get(str(item["email"]).lower())
            if ids and len(ids) == 1:
                return next(iter(ids))
        return None

    @staticmethod
    def _keys(item: Mapping[str, Any], _id: str | None = None) -> dict[str, Any]:
        """The keyables of an item as Planhat echoes them in insertsKeys/updatesKeys."""
        out: dict[str, Any] = {"_id": _id} if _id else {}
        for k in ("_id", "sourceId", "externalId", "email"):
            if item.get(k) and k not in out:
                out[k] = item[k]
        return out

    def bulk_upsert(self, model: str, items: Sequence[Any], fault: Fault | None = None) -> dict[str, Any]:
        """The ``PUT /{model}`` body (200 and 206 share it).

        Error entries are undocumented [verify]: ours are ``{"item": <keys sent>,
        "index": <position in the request>, "error": <message>, "field": <name or null>}``.
        """
        out: dict[str, Any] = {
            "created": 0, "createdErrors": [], "insertsKeys": [],
            "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
        }
        fraction = float(fault.params.get("fraction", 0.1)) if fault and fault.kind == "partial" else 0.0
        with self._lock:
            for index, item in enumerate(items):
                if not isinstance(item, Mapping):
                    out["createdErrors"].append({"item": item, "index": index, "error": "item is not an object", "field": None})
                    continue
                _id = self._match(model, item)
                errors = out["createdErrors"] if _id is None else out["updatedErrors"]
                if (_id or "*") in self._denied[model]:
                    what = "create" if _id is None else "update"
                    out["permissionErrors"].append({
                        "item": self._keys(item, _id), "index": index, "field": None,
                        "error": f"the service account has no permission to {what} this {model[:-1]}",
                    })
                    continue
                try:
                    if _id is None and item.get("_id"):
                        # an _id names an existing record: Planhat never inserts with it
                        errors = out["updatedErrors"]
                        raise ItemError(f"record not found: _id {item['_id']}", "_id")
                    if fault is not None and fault.kind == "validation" and self._validation_hit(item, fault):
                        raise ItemError(f"invalid value for {fault.params.get('field')}", str(fault.params.get("field")))
                    if fraction and self._fault_rng.random() < fraction:
                        raise ItemError("Internal error while saving item (injected partial failure)")
                    if _id is None:
                        doc = self._create(model, item)
                        out["created"] += 1
                        out["insertsKeys"].append(self._keys(item, doc["_id"]))
                        out["upsertedIds"].append(doc["_id"])
                    else:
                        _doc, changed = self._update(model, _id, item)
                        # updatesKeys lists every matched item, changed or not [verify].
                        out["updatesKeys"].append(self._keys(item, _id))
                        if changed:
                            out["updated"] += 1
                            out["modified"].append(_id)
                        else:
                            out["nonupdates"] += 1
                except ItemError as e:
                    errors.append({"item": self._keys(item), "index": index, "error": str(e), "field": e.field})
        return out

    @staticmethod
    def bulk_status(out: Mapping[str, Any]) -> int:
        """The status of a bulk upsert: 403 when items lacked permission (the others
        went through), 400 when every item failed, 206 when some did, else 200."""
        if out["permissionErrors"]:
            return 403
        failed = len(out["createdErrors"]) + len(out["updatedErrors"])
        if not failed:
            return 200
        saved = out["created"] + out["updated"] + out["nonupdates"]
        return 206 if saved else 400

    def duplicated_keys(self, items: Sequence[Any]) -> dict[str, Any] | None:
        """The 400 body when a ``sourceId`` repeats inside one request, else None.

        Planhat refuses the request ("a required key is missing or it's duplicated");
        every item carrying a repeated key is listed in ``createdErrors``."""
        seen: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and item.get("sourceId"):
                seen.setdefault(str(item["sourceId"]), []).append(index)
        repeated = {k: v for k, v in seen.items() if len(v) > 1}
        if not repeated:
            return None
        entries = [
            {"item": {"sourceId": key}, "index": index, "field": "sourceId",
             "error": f"sourceId {key} is duplicated in the request"}
            for key, positions in repeated.items() for index in positions
        ]
        return {
            "created": 0, "createdErrors": entries, "insertsKeys": [],
            "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
        }

    @staticmethod
    def _validation_hit(item: Mapping[str, Any], fault: Fault) -> bool:
        field = fault.params.get("field")
        return field is not None and field in item and item[field] == fault.params.get("value")

    # ------------------------------------------------------------------ reads

    def list_page(
        self, model: str, *, offset: int = 0, limit: int = LIST_DEFAULT,
        sort: str | None = None, select: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One page in ``_id`` order (or ``sort``; ``-field`` descending)."""
        limit = max(0, min(limit, LIST_MAX.get(model, LIST_MAX_OTHER)))
        offset = max(0, offset)
        with self._lock:
            ids = self._sorted_ids(model, sort)[offset:offset + limit]
            docs = self._docs[model]
            served = (lambda d: self._with_org(d)) if model == "companies" else dict
            if select:
                fields = ["_id", *(f for f in select if f != "_id")]
                return [{f: v[f] for f in fields if f in v} for i in ids for v in [served(docs[i])]]
            return [served(docs[i]) for i in ids]

    def _sorted_ids(self, model: str, sort: str | None) -> list[str]:
        if not sort or sort in ("_id", "+_id"):
            return self._order[model]
        cache_key = (model, sort)
        cached = self._sort_cache.get(cache_key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        desc = sort.startswith("-")
        field = sort.lstrip("+-")
        docs = self._docs[model]
        ids = sorted(self._order[model], key=lambda i: (docs[i].get(field) is None, str(docs[i].get(field) or ""), i), reverse=desc)
        self._sort_cache[cache_key] = (self._version, ids)
        return ids

    # ------------------------------------------------------------------ HTTP

    def endpoint_name(self, request: Request) -> str:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] not in MODELS:
            return "unknown"
        model, method = parts[0], request.method
        if len(parts) == 1:
            return f"{model}." + {"GET": "list", "PUT": "bulk", "POST": "create"}.get(method, "other")
        return f"{model}." + {"GET": "get", "PUT": "update", "DELETE": "delete"}.get(method, "other")

    def _json(self, request: Request, endpoint: str, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
        self.ctx.stats.call(SYSTEM, endpoint, status)
        return Response(json.dumps(body, separators=(",", ":")), status=status, headers={**JSON_HEADERS, **(headers or {})})

    def _error(self, request: Request, endpoint: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        # Planhat's error bodies are loosely specified
        # (https://www.planhat.com/developers/api/http-response-codes) [verify].
        return self._json(request, endpoint, status, {"error": message, "status": status}, headers)

    def handle(self, request: Request, fault: Fault | None) -> Response:
        endpoint = self.endpoint_name(request)
        # https://www.planhat.com/developers/api/authentication-limits — Bearer token.
        token = self.ctx.credentials.get(SYSTEM, {}).get("api_token")
        auth = request.headers.get("Authorization", "")
        if not token or auth != f"Bearer {token}":
            return self._error(request, endpoint, 401, "Unauthorized")
        if self._rate is not None:
            allowed, _remaining, reset = self._rate.hit()
            if not allowed:
                wait = max(1, int(reset + 0.999)) if reset > 0 else RATE_RETRY_AFTER
                return self._error(request, endpoint, 429, "Too Many Requests: rate limit exceeded", {"Retry-After": str(wait)})
        rendered = self._render_fault(request, endpoint, fault)
        if rendered is not None:
            return rendered
        if endpoint == "unknown":
            return self._error(request, endpoint, 404, "Not found")
        parts = [p for p in request.path.split("/") if p]
        model = parts[0]
        try:
            if len(parts) == 1:
                return self._collection(request, endpoint, model, fault)
            if len(parts) == 2:
                return self._single(request, endpoint, model, parts[1], fault)
        except ValueError as e:
            return self._error(request, endpoint, 400, f"Bad request: {e}")
        return self._error(request, endpoint, 404, "Not found")

    def _render_fault(self, request: Request, endpoint: str, fault: Fault | None) -> Response | None:
        if fault is None:
            return None
        kind = fault.kind
        if kind == "rate_limit":
            self.ctx.stats.fault(SYSTEM, kind)
            ra = str(int(fault.params.get("retry_after", 1)))
            return self._error(request, endpoint, 429, "Too Many Requests: rate limit exceeded", {"Retry-After": ra})
        if kind == "server_error":
            self.ctx.stats.fault(SYSTEM, kind)
            return self._error(request, endpoint, 500, "Internal Server Error")
        if kind == "unavailable":
            self.ctx.stats.fault(SYSTEM, kind)
            ra = str(int(fault.params.get("retry_after", 1)))
            return self._error(request, endpoint, 503, "Service Unavailable", {"Retry-After": ra})
        if kind == "expired_token":
            # Planhat service-account tokens never expire: render the 401 for this call
            # only, without invalidating the token (there is nothing to refresh).
            self.ctx.stats.fault(SYSTEM, kind)
            return self._error(request, endpoint, 401, "Unauthorized")
        # partial / validation are rendered by the write endpoints; lock is SF only;
        # slow / reset are the core server's.
        return None

    def _collection(self, request: Request, endpoint: str, model: str, fault: Fault | None) -> Response:
        if request.method == "GET":
            # https://docs.planhat.com/#get_companies (same shape for every model)
            args = request.args
            limit = int(args.get("limit", LIST_DEFAULT))
            offset = int(args.get("offset", 0))
            select = [s for s in args.get("select", "").split(",") if s] or None
            page = self.list_page(model, offset=offset, limit=limit, sort=args.get("sort"), select=select)
            self.ctx.stats.served(SYSTEM, len(page))
            return self._json(request, endpoint, 200, page)
        if model not in WRITABLE:
            return self._error(request, endpoint, 405, "Method not allowed")
        body = request.get_json(silent=True)
        if request.method == "PUT":
            # https://www.planhat.com/developers/api/bulk-upsert
            if not isinstance(body, list):
                return self._error(request, endpoint, 400, "Body must be an array of objects")
            if len(body) > BULK_MAX:
                return self._error(request, endpoint, 400, f"Too many items: max {BULK_MAX} per request")
            dupes = self.duplicated_keys(body)
            if dupes:
                return self._json(request, endpoint, 400, dupes)
            use = fault if fault is not None and fault.kind in ("partial", "validation") else None
            if use is not None:
                self.ctx.stats.fault(SYSTEM, use.kind)
            out = self.bulk_upsert(model, body, use)
            self.ctx.stats.written(SYSTEM, out["created"] + out["updated"])
            return self._json(request, endpoint, self.bulk_status(out), out)
        if request.method == "POST":
            # https://docs.planhat.com/#create_company
            if not isinstance(body, dict):
                return self._error(request, endpoint, 400, "Body must be an object")
            if "*" in self._denied[model]:
                return self._error(request, endpoint, 403, f"the service account has no permission to create {model}")
            try:
                if fault is not None and fault.kind == "validation" and self._validation_hit(body, fault):
                    self.ctx.stats.fault(SYSTEM, "validation")
                    raise ItemError(f"invalid value for {fault.params.get('field')}")
                with self._lock:
                    doc = self._create(model, body)
                    out_doc = dict(doc)
            except ItemError as e:
                return self._error(request, endpoint, 400, str(e))
            self.ctx.stats.written(SYSTEM, 1)
            return self._json(request, endpoint, 200, out_doc)
        return self._error(request, endpoint, 405, "Method not allowed")

    def _single(self, request: Request, endpoint: str, model: str, key: str, fault: Fault | None) -> Response:
        with self._lock:
            _id = self._resolve(model, key)
            doc = self._docs[model].get(_id) if _id else None
            snapshot = (self._with_org(doc) if model == "companies" else dict(doc)) if doc is not None else None
        if request.method == "GET":
            # https://docs.planhat.com/#get_company (keyables: extid-/srcid- prefixes)
            if snapshot is None:
                return self._error(request, endpoint, 404, "Not found")
            self.ctx.stats.served(SYSTEM, 1)
            return self._json(request, endpoint, 200, snapshot)
        if model not in WRITABLE:
            return self._error(request, endpoint, 405, "Method not allowed")
        if _id is not None and _id in self._denied[model] and request.method in ("PUT", "DELETE"):
            return self._error(request, endpoint, 403, f"the service account has no permission to change this {model[:-1]}")
        if request.method == "DELETE":
            # https://docs.planhat.com/#delete_company → {"n","ok","deletedCount"}
            with self._lock:
                removed = self._remove(model, _id) if _id else None
                if removed is not None and model == "companies":
                    # Planhat deletes a company's endusers and licenses with it.
                    for child in ("endusers", "licenses"):
                        for cid in [i for i, d in self._docs[child].items() if d.get("companyId") == _id]:
                            self._remove(child, cid)
            if removed is None:
                return self._error(request, endpoint, 404, "Not found")
            self.ctx.stats.written(SYSTEM, 1)
            return self._json(request, endpoint, 200, {"n": 1, "ok": 1, "deletedCount": 1})
        if request.method == "PUT":
            # https://docs.planhat.com/#update_company
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return self._error(request, endpoint, 400, "Body must be an object")
            if _id is None:
                return self._error(request, endpoint, 404, "Not found")
            try:
                if fault is not None and fault.kind == "validation" and self._validation_hit(body, fault):
                    self.ctx.stats.fault(SYSTEM, "validation")
                    raise ItemError(f"invalid value for {fault.params.get('field')}")
                with self._lock:
                    updated, _changed = self._update(model, _id, body)
                    out_doc = dict(updated)
            except ItemError as e:
                return self._error(request, endpoint, 400, str(e))
            self.ctx.stats.written(SYSTEM, 1)
            return self._json(request, endpoint, 200, out_doc)
        return self._error(request, endpoint, 405, "Method not allowed")

    # ------------------------------------------------------------------ control

    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Realistic CS-team edits: field updates, new endusers, deletes, moves.

        Planhat has no merge; "merge" edits are skipped. "association" moves an enduser
        to another company (its companyId changes).
        """
        usable = [k for k in kinds if k in ("update", "create", "delete", "association")]
        edits: list[dict[str, Any]] = []
        if not usable:
            return edits
        with self._lock:
            for _ in range(n):
                kind = rng.choice(usable)
                try:
                    edit = self._one_edit(rng, kind)
                except ItemError:  # e.g. a seeded record with a dangling reference
                    continue
                if edit is not None:
                    edits.append(edit)
        return edits

    def _pick(self, rng: random.Random, model: str) -> str | None:
        order = self._order[model]
        return order[rng.randrange(len(order))] if order else None

    def _one_edit(self, rng: random.Random, kind: str) -> dict[str, Any] | None:
        if kind == "update":
            model = rng.choice(("companies", "endusers"))
            _id = self._pick(rng, model)
            if _id is None:
                return None
            if model == "companies":
                changes: dict[str, Any] = rng.choice((
                    {"phase": rng.choice(("onboarding", "adoption", "expansion", "renewal"))},
                    {"phone": f"+1 415 555 {rng.randrange(10000):04d}"},
                    {"country": rng.choice(("US", "GB", "DE", "FR", "SE"))},
                ))
            else:
                changes = rng.choice((
                    {"position": rng.choice(("CTO", "Head of CS", "VP Sales", "Engineer"))},
                    {"phone": f"+44 20 7946 {rng.randrange(10000):04d}"},
                    {"lastName": rng.choice(("Smith", "Jones", "Berg", "Martin")) + "-" + str(rng.randrange(100))},
                ))
            self._update(model, _id, changes)
            return {"system": SYSTEM, "object": model, "id": _id, "kind": kind, "fields": sorted(changes)}
        if kind == "create":
            cid = self._pick(rng, "companies")
            if cid is None:
                return None
            num = rng.randrange(1_000_000)
            doc = self._create("endusers", {
                "email": f"new.user{num}@example.org", "firstName": "New", "lastName": f"User{num}",
                "companyId": cid,
            })
            return {"system": SYSTEM, "object": "endusers", "id": doc["_id"], "kind": kind,
                    "fields": ["companyId", "email", "firstName", "lastName"]}
        if kind == "delete":
            _id = self._pick(rng, "endusers")
            if _id is None:
                return None
            self._remove("endusers", _id)
            return {"system": SYSTEM, "object": "endusers", "id": _id, "kind": kind, "fields": []}
        # association
        _id, cid = self._pick(rng, "endusers"), self._pick(rng, "companies")
        if _id is None or cid is None:
            return None
        self._update("endusers", _id, {"companyId": cid})
        return {"system": SYSTEM, "object": "endusers", "id": _id, "kind": kind, "fields": ["companyId"]}

