"""HubSpot batch writes: archive, update by id, upsert by a unique property, associate.

``POST /crm/v3/objects/{type}/batch/{archive|update|upsert}`` take 100 inputs a call
(``HUBSPOT_BATCH``). Each input carries an ``objectWriteTraceId`` so a 207 body maps
back op by op (results and errors), with the id / idProperty value and, last, the
position as fallbacks. A call refused as a whole (400/404/409: one bad input fails
the batch) is split in halves until the bad op is alone; a lone 409 "Contact already
exists. Existing ID: N" links the op to N and updates N instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from connectors.base import (
    ErrorCategory,
    OpKind,
    RecordError,
    WriteOp,
    WriteResult,
    chunked,
)
from connectors.hubspot_http import BatchRejected, Transport, existing_id, record_error

log = logging.getLogger("connectors.hubspot")

# Batch read/create/update/upsert/archive: 100 inputs a call.
# https://developers.hubspot.com/docs/api/crm/contacts#limits
HUBSPOT_BATCH = 100

OWNER_PROPERTY = "hubspot_owner_id"
OWNER_EMAIL = "_owner_email"
EXTERNAL_ID_PROPERTY = "revsync_id"
EMAIL_PROPERTY = "email"
# Company hierarchies: HubSpot-defined company → company association types.
# https://developers.hubspot.com/changelog/2018-9-11-parent-child-associations
PARENT_TO_CHILD_TYPE = 13
CHILD_TO_PARENT_TYPE = 14
CANONICAL_NATIVE: Mapping[str, str] = {
    "account": "companies",
    "contact": "contacts",
    "opportunity": "deals",
}


@dataclass(frozen=True, slots=True)
class _Item:
    """One op on its way into a batch call."""

    index: int
    op: WriteOp
    props: Mapping[str, str]
    id_value: str
    id_property: str | None = None  # None: update/archive by HubSpot id


def _trace(pos: int) -> str:
    """objectWriteTraceId of the input at ``pos`` (never confusable with a numeric id)."""
    return f"rs-{pos}"


def to_property_value(value: Any) -> str:
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


class Writer:
    """Batch writes for one connector (shares its transport and owner cache)."""

    def __init__(self, transport: Transport, *, owner_id: Callable[[str], str | None],
                 batch: int = HUBSPOT_BATCH) -> None:
        self.t = transport
        self.owner_id = owner_id
        self.batch = batch

    def write(self, nat: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Archive, update by id, upsert by unique property (100 a call); then associate."""
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
                results[i] = self._merge(nat, op)
                continue
            props = self._native_props(op)
            if op.remote_id and not props:  # nothing to set (e.g. only associations change)
                results[i] = WriteResult(op=op, success=True, remote_id=op.remote_id)
                continue
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
        for chunk in chunked(deletes, self.batch):
            self._archive(nat, chunk, results)
        for chunk in chunked(updates, self.batch):
            self._write_batch(nat, chunk, results)
        for items in upserts.values():
            for chunk in chunked(items, self.batch):
                self._write_batch(nat, chunk, results)
        self._associate(nat, ops, results)
        if nat == "companies":
            self._set_parents(ops, results)
        missing = [i for i, r in enumerate(results) if r is None]
        for i in missing:  # pragma: no cover - defensive: every op gets a result
            results[i] = WriteResult.failed(ops[i], RecordError("no result", category=ErrorCategory.UNKNOWN))
        return [r for r in results if r is not None]

    def _merge(self, native: str, op: WriteOp) -> WriteResult:
        """POST /crm/v3/objects/{type}/merge, once per id in ``merge_from`` (into
        ``remote_id``). HubSpot gives the merged record a NEW id: the result carries it.

        https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies
        """
        if not op.remote_id or not op.merge_from:
            return WriteResult.failed(op, RecordError(
                "merge needs remote_id (the primary) and merge_from", category=ErrorCategory.MAPPING))
        api = self.t.api(f"basic:{native}")
        survivor = op.remote_id
        for other in op.merge_from:
            request = {"primaryObjectId": survivor, "objectIdToMerge": str(other)}
            try:
                _, body = self.t.call(f"merge {native}", partial(
                    api.merge, request, _preload_content=False, _request_timeout=self.t.timeout))
            except BatchRejected as rej:
                err = record_error(rej.body, remote_id=survivor)
                return WriteResult(op=op, success=False, remote_id=survivor, category=err.category,
                                   message=f"merge of {other}: {err}", field=err.field)
            survivor = str(body.get("id") or survivor)
        return WriteResult(op=op, success=True, remote_id=survivor)

    def _native_props(self, op: WriteOp) -> dict[str, str]:
        props: dict[str, str] = {}
        for k, v in op.fields.items():
            if k == OWNER_EMAIL:
                if v:
                    oid = self.owner_id(str(v))
                    if oid:
                        props[OWNER_PROPERTY] = oid
                    else:
                        log.warning("hubspot: owner email of %s is not a HubSpot owner; owner left unchanged", op.key)
                continue
            if k.startswith("_"):
                continue
            props[k] = to_property_value(v)
        return props

    def _archive(self, native: str, items: list[_Item], results: list[WriteResult | None]) -> None:
        """POST /crm/v3/objects/{type}/batch/archive → 204.

        https://developers.hubspot.com/docs/api/crm/contacts
        """
        api = self.t.api(f"batch:{native}")
        body = {"inputs": [{"id": it.id_value} for it in items]}
        try:
            self.t.call(f"archive {native}", partial(api.archive, body, _preload_content=False,
                                                    _request_timeout=self.t.timeout))
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
        api = self.t.api(f"batch:{native}")
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
            _, body = self.t.call(what, partial(method, {"inputs": inputs}, _preload_content=False,
                                               _request_timeout=self.t.timeout))
        except BatchRejected as rej:
            if len(items) > 1:  # one bad input fails the call: split to isolate it
                mid = len(items) // 2
                self._write_batch(native, items[:mid], results)
                self._write_batch(native, items[mid:], results)
                return
            self._rejected_one(native, items[0], rej, results)
            return
        links: list[_Item] = []
        leftover = self._map_batch(native, items, body, results, links)
        if links:
            self._write_batch(native, links, results)
        if leftover and len(items) > 1:
            for it in leftover:
                self._write_batch(native, [it], results)
        elif leftover:
            it = leftover[0]
            results[it.index] = WriteResult.failed(it.op, RecordError(
                "HubSpot returned no result for this record", category=ErrorCategory.UNKNOWN))

    def _rejected_one(self, native: str, it: _Item, rej: BatchRejected, results: list[WriteResult | None]) -> None:
        body = rej.body
        link = self._link(native, it, body) if rej.status == 409 else None
        if link is not None:
            self._write_batch(native, [link], results)
            return
        remote = it.id_value if it.id_property is None else None
        results[it.index] = WriteResult.failed(it.op, record_error(body, remote_id=remote))

    @staticmethod
    def _link(native: str, it: _Item, err: Mapping[str, Any]) -> _Item | None:
        """For a CONFLICT "… Existing ID: N" on a create/upsert: the op as an update of N."""
        dup = existing_id(str(err.get("message") or ""))
        if not dup or it.id_property is None or err.get("category", "CONFLICT") != "CONFLICT":
            return None
        log.info("hubspot %s: %s already exists as %s; linking and updating it", native, it.op.key, dup)
        props = dict(it.props)
        if it.id_property == EXTERNAL_ID_PROPERTY:
            props[EXTERNAL_ID_PROPERTY] = it.id_value
        return _Item(it.index, it.op, props, dup)

    def _map_batch(
        self, native: str, items: list[_Item], body: Mapping[str, Any],
        results: list[WriteResult | None], links: list[_Item],
    ) -> list[_Item]:
        """Match a 200/207 body to the items; CONFLICT items with an existing id go to
        ``links``; return the items nothing matched."""
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
                link = self._link(native, it, err)
                if link is not None:
                    links.append(link)
                    continue
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
        api = self.t.api("assoc")
        for to_native, plist in pairs.items():
            for chunk in chunked(plist, self.batch):
                self._associate_chunk(api, native, to_native, chunk, ops, results)

    def _set_parents(self, ops: Sequence[WriteOp], results: list[WriteResult | None]) -> None:
        """An op's ``parent`` association: the company's parent company. A company has
        one parent, so the current one (read first) is archived, then the new one made
        with type 14 (child to parent company). v4 batch read / archive / create:
        https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide
        https://developers.hubspot.com/changelog/2018-9-11-parent-child-associations
        """
        # child id → (op index, parent id); parent "": the op removes the parent (an
        # empty ``parent`` association), so only the archive below runs
        want: dict[str, tuple[int, str]] = {}
        fresh: set[str] = set()  # companies this call created: no parent yet
        for i, op in enumerate(ops):
            res = results[i]
            if "parent" not in op.associations:
                continue
            parent = (op.associations.get("parent") or ("",))[0]
            if res is not None and res.success and res.remote_id and op.kind != OpKind.DELETE:
                if not parent and res.created:
                    continue  # a new company has no parent to remove
                want[res.remote_id] = (i, str(parent))
                if res.created:
                    fresh.add(res.remote_id)
        if not want:
            return
        api = self.t.api("assoc")

        def failed(children: Sequence[str], rej: BatchRejected) -> None:
            for c in children:
                i = want[c][0]
                err = record_error(rej.body, remote_id=c)
                results[i] = WriteResult(op=ops[i], success=False, remote_id=c, category=err.category,
                                         message=f"parent company: {err}", field="parent_id")
                want.pop(c)

        current: dict[str, str] = {}
        for ids in chunked(sorted(set(want) - fresh), self.batch):
            try:
                _, body = self.t.call("parents companies->companies", partial(
                    api.get_page, "companies", "companies", {"inputs": [{"id": c} for c in ids]},
                    _preload_content=False, _request_timeout=self.t.timeout))
            except BatchRejected as rej:
                failed(ids, rej)
                continue
            for res in body.get("results") or []:
                for to in res.get("to") or []:
                    if any(int(t.get("typeId", 0)) == CHILD_TO_PARENT_TYPE for t in to.get("associationTypes") or []):
                        current[str((res.get("from") or {}).get("id"))] = str(to.get("toObjectId"))
        stale = [(c, current[c]) for c in sorted(want) if c in current and current[c] != want[c][1]]
        for gone in chunked(stale, self.batch):
            try:
                self.t.call("unparent companies->companies", partial(
                    api.archive, "companies", "companies",
                    {"inputs": [{"from": {"id": c}, "to": [{"id": p}]} for c, p in gone]},
                    _preload_content=False, _request_timeout=self.t.timeout))
            except BatchRejected as rej:
                failed([c for c, _ in gone], rej)
        new = [(c, want[c][1]) for c in sorted(want) if want[c][1] and current.get(c) != want[c][1]]
        for links in chunked(new, self.batch):
            body_in = {"inputs": [{"from": {"id": c}, "to": {"id": p}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CHILD_TO_PARENT_TYPE}]}
                for c, p in links]}
            try:
                _, resp = self.t.call("parent companies->companies", partial(
                    api.create, "companies", "companies", body_in,
                    _preload_content=False, _request_timeout=self.t.timeout))
            except BatchRejected as rej:
                failed([c for c, _ in links], rej)
                continue
            for err in resp.get("errors") or []:
                ctx = err.get("context") or {}
                child = str((ctx.get("fromObjectId") or [""])[0])
                if child in want:
                    i = want[child][0]
                    results[i] = WriteResult(op=ops[i], success=False, remote_id=child,
                                             category=ErrorCategory.VALIDATION,
                                             message=f"parent company: {err.get('message')}", field="parent_id")

    def _associate_chunk(
        self, api: Any, native: str, to_native: str, chunk: list[tuple[int, str, str]],
        ops: Sequence[WriteOp], results: list[WriteResult | None],
    ) -> None:
        body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for _, f, t in chunk]}
        try:
            _, resp = self.t.call(
                f"associate {native}->{to_native}",
                partial(api.create_default, native, to_native, body, _preload_content=False,
                        _request_timeout=self.t.timeout),
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
