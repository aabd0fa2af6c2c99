"""HubSpot associations v4 endpoints of the emulator.

https://developers.hubspot.com/docs/api/crm/associations
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.core import Fault, json_response
from sandbox.hubspot_common import (
    ASSOC_PAGE,
    ASSOC_READ_MAX,
    ASSOC_WRITE_MAX,
    PRIMARY,
    decode_after,
    encode_after,
    item_error,
)
from sandbox.hubspot_store import (
    ASSOC_TYPES,
    CHILD_TO_PARENT,
    HIERARCHY_LABELS,
    PARENT_TO_CHILD,
    SINGULAR,
    TYPE_ALIASES,
    TYPE_IDS,
    StoreError,
    assoc_type_ok,
    to_int,
)

if TYPE_CHECKING:
    from sandbox.hubspot_state import HubSpotState


def pair(emu: HubSpotState, params: Mapping[str, str]) -> tuple[str, str]:
    frm, to = TYPE_ALIASES.get(params["frm"].lower()), TYPE_ALIASES.get(params["to"].lower())
    if frm == to == "companies":
        return frm, to  # company hierarchies (types 13 / 14)
    if frm is None or to is None or (frm, to) not in ASSOC_TYPES:
        raise StoreError(
            400,
            "VALIDATION_ERROR",
            f"Unknown object type pair {params['frm']} → {params['to']}",
        )
    return frm, to


def parse_create_assocs(emu: HubSpotState, obj: str, raw: Any) -> list[tuple[str, int, bool]]:
    """``associations`` of a create input → (to type, to id, primary)."""
    out: list[tuple[str, int, bool]] = []
    for a in raw or []:
        to_id = to_int(((a or {}).get("to") or {}).get("id"))
        types = (a or {}).get("types") or []
        if to_id is None or not types:
            raise StoreError(400, "VALIDATION_ERROR", "Each association needs to.id and types")
        for t in types:
            type_id = int(t.get("associationTypeId", 0))
            match = [(to, p) for (f, to) in ASSOC_TYPES if f == obj
                     if (p := assoc_type_ok(obj, to, type_id)) is not None]  # fmt: skip
            if not match:
                raise StoreError(
                    400,
                    "VALIDATION_ERROR",
                    f"associationTypeId {type_id} is not valid from {obj}",
                )
            to, primary = match[0]
            if not emu._alive(to, to_id):
                raise StoreError(400, "VALIDATION_ERROR", f"{SINGULAR[to]} {to_id} does not exist",
                                 context={"id": [str(to_id)]})  # fmt: skip
            out.append((to, to_id, primary))
    return out


def apply_create_assocs(
    emu: HubSpotState, obj: str, rid: int, assocs: list[tuple[str, int, bool]]
) -> None:
    for to, to_id, primary in assocs:
        emu.assoc.add(obj, to, rid, to_id, primary=primary)


def assoc_read(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST /crm/v4/associations/{from}/{to}/batch/read`` (≤1,000 inputs)."""
    started = emu._now()
    frm, to = pair(emu, params)
    inputs = emu._inputs(emu._json(request), ASSOC_READ_MAX)
    results, errors = [], []
    hierarchy = frm == to == "companies"
    for item in inputs:
        key = str((item or {}).get("id", ""))
        rid = to_int(key)
        alive = bool(rid and emu._alive(frm, rid))
        if hierarchy:
            links = [(b, t) for b, t in (emu.assoc.hierarchy_entries(rid) if rid and alive else [])
                     if emu._alive(to, b)]
            if links:
                results.append({"from": {"id": key}, "to": [
                    {"toObjectId": b, "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": t, "label": HIERARCHY_LABELS[t]}]}
                    for b, t in links]})
                continue
        targets = [] if hierarchy else [
            (b, p)
            for b, p in (emu.assoc.targets(frm, to, rid) if rid and alive else [])
            if emu._alive(to, b)
        ]
        if not targets:
            # Ids without associations (or unknown ids) come back as errors [verify]:
            # HubSpot reports "No {to} is associated with {from} {id}" in a 207.
            errors.append(
                item_error(
                    "OBJECT_NOT_FOUND",
                    f"No {SINGULAR[to].lower()} is associated with {SINGULAR[frm].lower()} {key}.",
                    {"fromObjectId": [key]},
                )
            )
            errors[-1]["subCategory"] = "crm.associations.NO_ASSOCIATIONS_FOUND"
            continue
        results.append(
            {
                "from": {"id": key},
                "to": [
                    {"toObjectId": b, "associationTypes": emu.assoc.type_entries(frm, to, p)}
                    for b, p in sorted(targets)
                ],
            }
        )
    return emu._batch_response(results, errors, started, 200)


def assoc_pairs(
    emu: HubSpotState, frm: str, to: str, inputs: list[Any]
) -> list[tuple[int, int, list[Any]]]:
    out = []
    for item in inputs:
        item = item or {}
        a = to_int((item.get("from") or {}).get("id"))
        b_raw = item.get("to")
        b = to_int(b_raw.get("id")) if isinstance(b_raw, dict) else None
        if a is None or b is None:
            raise StoreError(400, "VALIDATION_ERROR", "Each input needs from.id and to.id")
        out.append((a, b, item.get("types") or []))
    return out


def assoc_create(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST /crm/v4/associations/{from}/{to}/batch/create`` → 201 / 207."""
    started = emu._now()
    frm, to = pair(emu, params)
    pairs = assoc_pairs(emu, frm, to, emu._inputs(emu._json(request), ASSOC_WRITE_MAX))
    if frm == to == "companies":
        return hierarchy_create(emu, pairs, started)
    victims = emu._partial_victims(fault, len(pairs))
    results, errors = [], []
    for n, (a, b, types) in enumerate(pairs):
        ctx = {"fromObjectId": [str(a)], "toObjectId": [str(b)]}
        if not emu._alive(frm, a) or not emu._alive(to, b):
            errors.append(
                item_error(
                    "OBJECT_NOT_FOUND",
                    f"{SINGULAR[frm]} {a} or {SINGULAR[to]} {b} does not exist",
                    ctx,
                )
            )
            continue
        primary = False
        for t in types:
            ok = assoc_type_ok(frm, to, int((t or {}).get("associationTypeId", 0)))
            if ok is None:
                raise StoreError(
                    400,
                    "VALIDATION_ERROR",
                    f"associationTypeId {(t or {}).get('associationTypeId')} is not valid for {frm} → {to}",
                )
            primary = primary or ok
        if n in victims and fault is not None:
            errors.append(emu._partial_error(fault, ctx))
            continue
        emu.assoc.add(frm, to, a, b, primary=primary)
        results.append(
            {
                "fromObjectTypeId": TYPE_IDS[frm],
                "fromObjectId": a,
                "toObjectTypeId": TYPE_IDS[to],
                "toObjectId": b,
                "labels": [PRIMARY] if primary else [],
            }
        )
    return emu._batch_response(results, errors, started, 201)


def default_result(emu: HubSpotState, frm: str, to: str, a: int, b: int) -> dict[str, Any]:
    return {
        "from": {"id": str(a)},
        "to": {"id": str(b)},
        "associationSpec": {
            "associationCategory": "HUBSPOT_DEFINED",
            "associationTypeId": ASSOC_TYPES[(frm, to)][0],
        },
    }


def assoc_default(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/associate/default``: unlabeled associations."""
    started = emu._now()
    frm, to = pair(emu, params)
    if frm == to:
        raise StoreError(400, "VALIDATION_ERROR", "company hierarchies take labeled types 13 / 14 (batch/create)")
    pairs = assoc_pairs(emu, frm, to, emu._inputs(emu._json(request), ASSOC_WRITE_MAX))
    results, errors = [], []
    for a, b, _ in pairs:
        if not emu._alive(frm, a) or not emu._alive(to, b):
            errors.append(item_error("OBJECT_NOT_FOUND", f"{SINGULAR[frm]} {a} or {SINGULAR[to]} {b} does not exist",
                                      {"fromObjectId": [str(a)], "toObjectId": [str(b)]}))  # fmt: skip
            continue
        emu.assoc.add(frm, to, a, b)
        results.append(default_result(emu, frm, to, a, b))
    return emu._batch_response(results, errors, started, 200)


def assoc_archive(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``POST …/batch/archive`` (``{"inputs":[{"from":{"id"},"to":[{"id"}]}]}``) → 204."""
    frm, to = pair(emu, params)
    for item in emu._inputs(emu._json(request), ASSOC_WRITE_MAX):
        a = to_int(((item or {}).get("from") or {}).get("id"))
        targets = (item or {}).get("to") or []
        if isinstance(targets, dict):
            targets = [targets]
        for t in targets:
            b = to_int((t or {}).get("id"))
            if a is None or b is None:
                continue
            if frm == to == "companies":  # every association between the two goes
                for child, parent in ((a, b), (b, a)):
                    if emu.assoc.parents.get(child) == parent:
                        del emu.assoc.parents[child]
                        touch_company(emu, child)
            else:
                emu.assoc.remove(frm, to, a, b)
    return Response(status=204)


def hierarchy_create(emu: HubSpotState, pairs: list[tuple[int, int, list[Any]]], started: Any) -> Response:
    """Company → company ``batch/create`` with type 14 (child to parent) or 13 (parent
    to child). A company has one parent: a second one is refused until the first is
    archived [verify: HubSpot's wording]; a company cannot be its own parent."""
    results, errors = [], []
    for a, b, types in pairs:
        ctx = {"fromObjectId": [str(a)], "toObjectId": [str(b)]}
        ids = {int((t or {}).get("associationTypeId", 0)) for t in types}
        if not ids or not ids <= {CHILD_TO_PARENT, PARENT_TO_CHILD}:
            raise StoreError(400, "VALIDATION_ERROR",
                             f"associationTypeId {sorted(ids)} is not valid for companies → companies")
        if not emu._alive("companies", a) or not emu._alive("companies", b):
            errors.append(item_error("OBJECT_NOT_FOUND", f"COMPANY {a} or COMPANY {b} does not exist", ctx))
            continue
        child, parent = (a, b) if CHILD_TO_PARENT in ids else (b, a)
        if child == parent:
            errors.append(item_error("VALIDATION_ERROR", f"COMPANY {child} cannot be its own parent", ctx))
            continue
        held = emu.assoc.parents.get(child)
        if held is not None and held != parent:
            errors.append(item_error("VALIDATION_ERROR",
                                     f"COMPANY {child} already has a parent company ({held})", ctx))
            continue
        emu.assoc.parents[child] = parent
        touch_company(emu, child)
        type_id = CHILD_TO_PARENT if CHILD_TO_PARENT in ids else PARENT_TO_CHILD
        results.append({"fromObjectTypeId": TYPE_IDS["companies"], "fromObjectId": a,
                        "toObjectTypeId": TYPE_IDS["companies"], "toObjectId": b,
                        "labels": [HIERARCHY_LABELS[type_id]]})
    return emu._batch_response(results, errors, started, 201)


def assoc_put_default(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``PUT /crm/v4/objects/{type}/{id}/associations/default/{toType}/{toId}``."""
    started = emu._now()
    frm, to = pair(emu, params)
    if frm == to:
        raise StoreError(400, "VALIDATION_ERROR", "company hierarchies take labeled types 13 / 14 (batch/create)")
    a, b = to_int(params["id"]), to_int(params["to_id"])
    if a is None or b is None or not emu._alive(frm, a) or not emu._alive(to, b):
        raise StoreError(
            404,
            "OBJECT_NOT_FOUND",
            f"{SINGULAR[frm]} {params['id']} or {SINGULAR[to]} {params['to_id']} does not exist",
        )
    emu.assoc.add(frm, to, a, b)
    return emu._batch_response([default_result(emu, frm, to, a, b)], [], started, 200)


def assoc_list(
    emu: HubSpotState, request: Request, params: dict[str, str], fault: Fault | None
) -> Response:
    """``GET /crm/v4/objects/{type}/{id}/associations/{toType}`` (paged by 500)."""
    frm, to = pair(emu, params)
    if frm == to:
        raise StoreError(400, "VALIDATION_ERROR", "company hierarchies take labeled types 13 / 14 (batch/create)")
    a = to_int(params["id"])
    targets = sorted(
        (b, p)
        for b, p in (emu.assoc.targets(frm, to, a) if a and emu._alive(frm, a) else [])
        if emu._alive(to, b)
    )
    limit = min(to_int(request.args.get("limit", ASSOC_PAGE)) or ASSOC_PAGE, ASSOC_PAGE)
    start = decode_after(request.args.get("after"))
    chunk = [t for t in targets if t[0] >= start][: limit + 1]
    body: dict[str, Any] = {
        "results": [
            {"toObjectId": b, "associationTypes": emu.assoc.type_entries(frm, to, p)}
            for b, p in chunk[:limit]
        ]
    }
    if len(chunk) > limit:
        body["paging"] = {"next": {"after": encode_after(chunk[limit][0])}}
    return json_response(body)


def touch_company(emu: HubSpotState, rid: int) -> None:
    """A new or removed parent changes the child company's calculated parent property
    (``hs_parent_company_id``), so its ``hs_lastmodifieddate`` moves and an incremental
    search finds it."""
    table = emu.tables["companies"]
    rec = table.recs.get(rid)
    if rec is not None:
        table.touch(rec, emu._now())
