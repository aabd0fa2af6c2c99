"""HubSpot CRM v3 batch endpoints (``/crm/v3/objects/{type}/batch/...``) of the emulator.

https://developers.hubspot.com/docs/api/crm/contacts (Batch): ≤100 inputs, 200/201,
409 when a create hits an existing unique value. One invalid property value in any
input fails the whole create/update/upsert call with a 400 ``VALIDATION_ERROR``
(HubSpot's CRM OpenAPI specs and live behaviour: nothing is written; the caller
isolates the bad input by splitting). 207 multi-status with ``errors[]`` is kept for
per-item outcomes: ids not found, conflicts, and the injected ``partial`` fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.core import Fault
from sandbox.hubspot_assoc import apply_create_assocs, parse_create_assocs
from sandbox.hubspot_common import BATCH_HISTORY_MAX, BATCH_MAX, item_error, no_duplicates
from sandbox.hubspot_store import SINGULAR, StoreError, fold, validation_error

if TYPE_CHECKING:
    from sandbox.hubspot_state import HubSpotState


def not_found_item(obj: str, missing: list[str]) -> dict[str, Any]:
    """The 207 ``errors[]`` entry for ids a batch call could not find."""
    return item_error(
        "OBJECT_NOT_FOUND",
        f"Could not get some {SINGULAR[obj]} objects, they may be deleted or not exist. "
        "Check that ids are valid.",
        {"ids": missing},
    )


def batch_read(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/read``: 200, or 207 with OBJECT_NOT_FOUND for unknown ids."""
    started = emu._now()
    obj, table = emu._table(params["obj"])
    body = emu._json(request)
    history = [p for p in body.get("propertiesWithHistory") or [] if p in table.schema.index]
    if history and len(body.get("inputs") or []) > BATCH_HISTORY_MAX:
        raise StoreError(
            400,
            "VALIDATION_ERROR",
            "The maximum number of inputs supported in a batch request for property histories "
            f"is {BATCH_HISTORY_MAX}. Please reduce the number of items and try again",
        )
    inputs = emu._inputs(body, BATCH_MAX)
    archived = emu._flag(request, "archived")
    id_property = body.get("idProperty")
    props = emu._read_props(obj, body.get("properties") or None)
    results, missing, seen = [], [], set()
    for item in inputs:
        key = str((item or {}).get("id", ""))
        rec = emu._locate(obj, key, id_property)
        if rec is None or (rec.archived_ms is not None) != archived:
            missing.append(key)
            continue
        if rec.id in seen:
            continue
        seen.add(rec.id)
        out = table.render(rec, props, with_archived=archived)
        if history:
            # Only the current value is kept, stamped with the record's last change.
            stamp = out["updatedAt"]
            out["propertiesWithHistory"] = {
                p: [{"value": v, "timestamp": stamp, "sourceType": "API"}]
                if (v := table.value(rec, p)) is not None
                else []
                for p in history
            }
        results.append(out)
    errors = []
    if missing:
        errors.append(not_found_item(obj, missing))
    emu.ctx.stats.served(emu.system, len(results))
    return emu._batch_response(results, errors, started, 200)


def batch_create(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/create`` → 201; 207 per-item errors; 409 if a unique value exists."""
    started = emu._now()
    obj, table = emu._table(params["obj"])
    inputs = emu._inputs(emu._json(request), BATCH_MAX)
    checks = [emu._check_props(obj, (item or {}).get("properties"), fault) for item in inputs]
    bad = [p for _values, problems in checks for p in problems]
    if bad:
        raise validation_error(bad)
    checked = []
    claimed: dict[tuple[str, str], int] = {}
    for n, (item, (values, _problems)) in enumerate(zip(inputs, checks, strict=True)):
        item = item or {}
        existing = emu._conflict(obj, values)
        if existing is not None:
            raise emu._conflict_error(obj, existing)
        for prop in table.schema.unique:
            v = values.get(prop)
            if v:
                key = (prop, fold(v))
                if key in claimed:
                    raise StoreError(
                        409, "CONFLICT",
                        f"Duplicate value for unique property {prop} in inputs {claimed[key]} and {n}",
                    )  # fmt: skip
                claimed[key] = n
        assocs = parse_create_assocs(emu, obj, item.get("associations"))
        checked.append((item, values, assocs))
    victims = emu._partial_victims(fault, len(checked))
    results, errors = [], []
    for n, (item, values, assocs) in enumerate(checked):
        ctx: dict[str, Any] = {}
        if item.get("objectWriteTraceId"):
            ctx["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
        if n in victims and fault is not None:
            errors.append(emu._partial_error(fault, ctx))
            continue
        rec = emu._create_rec(obj, values)
        apply_create_assocs(emu, obj, rec.id, assocs)
        results.append(table.render(rec, emu._written_props(obj, rec)))
    emu.ctx.stats.written(emu.system, len(results))
    return emu._batch_response(results, errors, started, 201)


def batch_update(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/update``: 200, or 207 (OBJECT_NOT_FOUND, VALIDATION_ERROR)."""
    started = emu._now()
    obj, table = emu._table(params["obj"])
    inputs = emu._inputs(emu._json(request), BATCH_MAX)
    no_duplicates(inputs)
    checked = [
        (item or {}, *emu._check_props(obj, (item or {}).get("properties"), fault))
        for item in inputs
    ]
    bad = [p for _item, _values, problems in checked for p in problems]
    if bad:
        raise validation_error(bad)
    victims = emu._partial_victims(fault, len(checked))
    results, errors, missing = [], [], []
    now = emu._now()
    for n, (item, values, _problems) in enumerate(checked):
        key = str(item.get("id", ""))
        rec = emu._locate(obj, key, item.get("idProperty"))
        if rec is None or not rec.live:
            missing.append(key)
            continue
        ctx = {"ids": [key]}
        if n in victims and fault is not None:
            errors.append(emu._partial_error(fault, ctx))
            continue
        other = emu._conflict(obj, values, exclude=rec.id)
        if other is not None:
            errors.append(
                item_error(
                    "CONFLICT",
                    f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                    ctx,
                )
            )
            continue
        table.set_values(rec, values, now)
        results.append(table.render(rec, emu._written_props(obj, rec)))
    if missing:
        errors.append(not_found_item(obj, missing))
    emu.ctx.stats.written(emu.system, len(results))
    return emu._batch_response(results, errors, started, 200)


def batch_upsert(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/upsert`` by a unique ``idProperty``; results carry ``new``."""
    started = emu._now()
    obj, table = emu._table(params["obj"])
    inputs = emu._inputs(emu._json(request), BATCH_MAX)
    no_duplicates(inputs)
    checked = []
    for item in inputs:
        item = item or {}
        id_prop = item.get("idProperty") or "hs_object_id"
        if id_prop != "hs_object_id" and id_prop not in table.schema.unique:
            raise StoreError(
                400, "VALIDATION_ERROR",
                f"Property {id_prop} is not a unique identifier property and cannot be used as idProperty",
            )  # fmt: skip
        values, problems = emu._check_props(obj, item.get("properties"), fault)
        checked.append((item, id_prop, values, problems))
    bad = [p for _, _ip, _, ps in checked for p in ps]
    if bad:
        # One invalid value fails the whole call (and "partial upserts are not
        # supported when using email as the idProperty", contacts guide).
        raise validation_error(bad)
    victims = emu._partial_victims(fault, len(checked))
    results, errors = [], []
    now = emu._now()
    for n, (item, id_prop, values, _problems) in enumerate(checked):
        key = str(item.get("id", ""))
        ctx = {"ids": [key]}
        if n in victims and fault is not None:
            errors.append(emu._partial_error(fault, ctx))
            continue
        rec = table.find_unique(id_prop, key) if key else None
        if rec is None and id_prop == "hs_object_id":
            errors.append(item_error("OBJECT_NOT_FOUND", f"Object {key} not found", ctx))
            continue
        if rec is None:
            values = {**values, id_prop: key}
            other = emu._conflict(obj, values)
            if other is not None:
                errors.append(
                    item_error(
                        "CONFLICT",
                        f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                        ctx,
                    )
                )
                continue
            rec = emu._create_rec(obj, values)
            is_new = True
        else:
            other = emu._conflict(obj, values, exclude=rec.id)
            if other is not None:
                errors.append(
                    item_error(
                        "CONFLICT",
                        f"{SINGULAR[obj].capitalize()} already exists. Existing ID: {other.id}",
                        ctx,
                    )
                )
                continue
            table.set_values(rec, values, now)
            is_new = False
        out = table.render(rec, emu._written_props(obj, rec))
        out["new"] = is_new
        results.append(out)
    emu.ctx.stats.written(emu.system, len(results))
    return emu._batch_response(results, errors, started, 200)


def batch_archive(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/archive`` → 204."""
    obj, table = emu._table(params["obj"])
    inputs = emu._inputs(emu._json(request), BATCH_MAX)
    now = emu._now()
    n = 0
    for item in inputs:
        rec = emu._locate(obj, str((item or {}).get("id", "")), None)
        if rec is not None and rec.live:
            table.archive(rec, now)
            n += 1
    emu.ctx.stats.written(emu.system, n)
    return Response(status=204)
