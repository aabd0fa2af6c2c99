"""HubSpot CRM search (``POST /crm/v3/objects/{type}/search``) over the sandbox store.

https://developers.hubspot.com/docs/api/crm/search

Filter groups are ORed, filters inside a group ANDed. A range filter on the
last-modified property is answered from the store's sorted (modstamp, id) index by
bisection, so the incremental query every connector makes (``GTE`` on
``lastmodifieddate`` sorted ascending) costs O(log n + page) even on 300k records.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot_store import (
    SEARCHABLE,
    Rec,
    StoreError,
    Table,
    mod_range,
    parse_instant,
    to_int,
)

# https://developers.hubspot.com/docs/api/crm/search#limitations : limit ≤ 200 per page.
SEARCH_LIMIT_MAX = 200
SEARCH_LIMIT_DEFAULT = 10
# "Attempting to page beyond 10,000 will result in a 400 error" (search guide). The
# error body is not documented [verify]: we answer with the standard VALIDATION_ERROR.
SEARCH_CAP = 10_000
# https://developers.hubspot.com/changelog/breaking-change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS_TOTAL = 25
QUERY_MAX_CHARS = 3000

OPERATORS = frozenset(
    {
        "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
        "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    }
)  # fmt: skip
_RANGE_OPS = frozenset({"EQ", "LT", "LTE", "GT", "GTE", "BETWEEN"})
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

Key = Callable[[Rec], Any]


@dataclass(frozen=True)
class SearchPage:
    """One page of search results."""

    records: list[Rec]
    total: int
    next_after: int | None


def _bad(message: str, **context: Any) -> StoreError:
    return StoreError(
        400, "VALIDATION_ERROR", message, context={k: [str(v)] for k, v in context.items()}
    )


def _kind(table: Table, prop: str) -> str:
    if prop == "hs_object_id":
        return "id"
    if prop in ("createdate", table.schema.mod):
        return "instant"
    spec = table.schema.spec(prop)
    if spec is None:
        raise _bad(f'Property "{prop}" does not exist', propertyName=prop)
    if spec.type in ("datetime", "date"):
        return "instant"
    if spec.type in ("int", "double"):
        return "number"
    return "text"


def _keyer(table: Table, prop: str) -> Key:
    """A function giving the comparable value of ``prop`` on a record (None: unset)."""
    if prop == "hs_object_id":
        return lambda r: r.id
    if prop == "createdate":
        return lambda r: r.created_ms
    if prop == table.schema.mod:
        return lambda r: r.updated_ms
    kind = _kind(table, prop)
    i = table.schema.index[prop]

    def key(r: Rec) -> Any:
        v = r.vals[i]
        if v is None or v == "":
            return None
        try:
            if kind == "instant":
                return parse_instant(v)
            if kind == "number":
                return float(v)
        except ValueError:
            return None
        return v.casefold()

    return key


def _coerce(kind: str, raw: Any, prop: str) -> Any:
    """A filter value in the comparable form of ``kind``."""
    if raw is None:
        raise _bad(f'A value is required for a filter on "{prop}"', propertyName=prop)
    text = str(raw).strip()
    try:
        if kind == "id":
            # ``hs_object_id GT "0"`` is the usual start of paging by id: ids are
            # positive, so 0 is a valid bound even though no record has it.
            n = 0 if text == "0" else to_int(text)
            if n is None:
                raise ValueError(text)
            return n
        if kind == "instant":
            return parse_instant(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise _bad(
            f'{text} is not a valid value for property "{prop}"', propertyName=prop
        ) from None
    return text.casefold()


def _predicate(table: Table, flt: Mapping[str, Any]) -> Callable[[Rec], bool]:
    prop = flt.get("propertyName")
    op = flt.get("operator", "EQ")
    if not isinstance(prop, str) or not prop:
        raise _bad("Each filter needs a propertyName")
    if op not in OPERATORS:
        raise _bad(f"Unknown operator {op}", operator=op)
    kind = _kind(table, prop)
    key = _keyer(table, prop)
    if op == "HAS_PROPERTY":
        return lambda r: key(r) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda r: key(r) is None
    if op in ("IN", "NOT_IN"):
        values = flt.get("values")
        if not isinstance(values, list) or not values:
            raise _bad(f"{op} needs a non-empty values list", propertyName=prop)
        wanted = {_coerce(kind, v, prop) for v in values}
        if op == "IN":
            return lambda r: key(r) in wanted
        return lambda r: key(r) not in wanted
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(flt.get("value", "")).casefold()
        raw_i = table.schema.index.get(prop)

        def contains(r: Rec) -> bool:
            text = table.value(r, prop) if raw_i is None else r.vals[raw_i]
            if not text:
                return False
            if "*" in pattern:
                return fnmatch.fnmatchcase(text.casefold(), pattern) or any(
                    fnmatch.fnmatchcase(t, pattern) for t in _TOKEN.findall(text.casefold())
                )
            return pattern in _TOKEN.findall(text.casefold())

        if op == "CONTAINS_TOKEN":
            return contains
        return lambda r: not contains(r)
    value = _coerce(kind, flt.get("value"), prop)
    if op == "EQ":
        return lambda r: key(r) == value
    if op == "NEQ":
        # Records without the property count as "not equal" [verify]: HubSpot's doc is silent.
        return lambda r: key(r) != value
    if op == "BETWEEN":
        high = _coerce(kind, flt.get("highValue"), prop)
        return lambda r: (k := key(r)) is not None and value <= k <= high
    compare: dict[str, Callable[[Any], bool]] = {
        "LT": lambda k: k < value,
        "LTE": lambda k: k <= value,
        "GT": lambda k: k > value,
        "GTE": lambda k: k >= value,
    }
    test = compare[op]
    return lambda r: (k := key(r)) is not None and test(k)


def _mod_bounds(table: Table, flt: Mapping[str, Any]) -> tuple[int | None, int | None] | None:
    """[lo, hi] epoch-ms bounds when ``flt`` is a range filter on the modstamp, else None."""
    if flt.get("propertyName") != table.schema.mod or flt.get("operator", "EQ") not in _RANGE_OPS:
        return None
    op = flt.get("operator", "EQ")
    v = _coerce("instant", flt.get("value"), table.schema.mod)
    if op == "EQ":
        return v, v
    if op == "GT":
        return v + 1, None
    if op == "GTE":
        return v, None
    if op == "LT":
        return None, v - 1
    if op == "LTE":
        return None, v
    return v, _coerce("instant", flt.get("highValue"), table.schema.mod)


def _query_predicate(table: Table, obj: str, query: str) -> Callable[[Rec], bool]:
    words = [w.casefold() for w in query.split() if w]
    idx = [table.schema.index[p] for p in SEARCHABLE[obj] if p in table.schema.index]

    def match(r: Rec) -> bool:
        hay = " ".join(r.vals[i] or "" for i in idx).casefold()
        return all(w.strip("*") in hay for w in words)

    return match


def validate_groups(groups: Any) -> list[list[Mapping[str, Any]]]:
    """The filter groups as lists, or a 400 over HubSpot's limits."""
    if groups is None:
        return []
    if not isinstance(groups, list):
        raise _bad("filterGroups must be a list")
    if len(groups) > MAX_GROUPS:
        raise _bad(
            f"Too many filter groups: {len(groups)}. The maximum number of filter groups is {MAX_GROUPS}.",
        )
    out: list[list[Mapping[str, Any]]] = []
    total = 0
    for g in groups:
        filters = (g or {}).get("filters") or []
        if not isinstance(filters, list):
            raise _bad("filters must be a list")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise _bad(
                f"Too many filters in a group: {len(filters)}. The maximum number of filters per group is {MAX_FILTERS_PER_GROUP}.",
            )
        total += len(filters)
        out.append(filters)
    if total > MAX_FILTERS_TOTAL:
        raise _bad(
            f"Too many filters: {total}. The maximum number of filters across all groups is {MAX_FILTERS_TOTAL}.",
        )
    return out


def search(table: Table, obj: str, body: Mapping[str, Any]) -> SearchPage:
    """Run one search request against ``table`` (400s raise ``StoreError``)."""
    groups = validate_groups(body.get("filterGroups"))
    limit_raw = body.get("limit", SEARCH_LIMIT_DEFAULT)
    limit = to_int(limit_raw) if limit_raw not in (None, 0, "0") else SEARCH_LIMIT_DEFAULT
    if limit is None:
        raise _bad(f"limit must be a positive integer, got {limit_raw}")
    if limit > SEARCH_LIMIT_MAX:
        raise _bad(f"The maximum limit is {SEARCH_LIMIT_MAX}; {limit} was requested.", limit=limit)
    after_raw = body.get("after")
    after = 0
    if after_raw not in (None, ""):
        try:
            after = int(str(after_raw))
        except ValueError:
            raise _bad(f"after must be an offset, got {after_raw}") from None
        if after < 0:
            raise _bad(f"after must be an offset, got {after_raw}")
    if after >= SEARCH_CAP:
        raise _bad(
            f"Search results are limited to {SEARCH_CAP} records; after={after} pages beyond that.",
            after=after,
        )
    query = body.get("query")
    if query is not None and len(str(query)) > QUERY_MAX_CHARS:
        raise _bad(f"query is longer than {QUERY_MAX_CHARS} characters")
    sorts = body.get("sorts") or []
    sort_prop, descending = None, False
    if sorts:
        first = sorts[0]
        if isinstance(first, str):  # the legacy form: "-prop" / "prop"
            descending, sort_prop = first.startswith("-"), first.lstrip("-")
        else:
            sort_prop = first.get("propertyName")
            descending = str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
        if sort_prop is not None:
            _kind(table, sort_prop)
    extra = [_query_predicate(table, obj, str(query))] if query else []

    # Candidates: one group with a modstamp range → the bisected slice of by_mod.
    if len(groups) == 1:
        filters = groups[0]
        bounds = [b for f in filters if (b := _mod_bounds(table, f)) is not None]
        if bounds:
            lo_ms = max((b[0] for b in bounds if b[0] is not None), default=None)
            hi_ms = min((b[1] for b in bounds if b[1] is not None), default=None)
            lo, hi = mod_range(table.by_mod, lo_ms, hi_ms)
            rest = [_predicate(table, f) for f in filters if _mod_bounds(table, f) is None] + extra
            by_mod_order = sort_prop == table.schema.mod
            if by_mod_order and not rest:
                total = hi - lo
                return _page_from_mod(table, lo, hi, after, limit, total, descending)
            cands = [table.recs[rid] for _, rid in table.by_mod[lo:hi]]
            matched = [r for r in cands if all(t(r) for t in rest)]
            if by_mod_order:
                if descending:
                    matched.reverse()
                return _page(matched, after, limit)
            return _page(_sorted(table, matched, sort_prop, descending), after, limit)

    preds = [[_predicate(table, f) for f in g] for g in groups if g]
    recs = table.recs
    everyone = [recs[rid] for rid in table.live]
    matched = [
        r
        for r in everyone
        if (not preds or any(all(t(r) for t in group) for group in preds))
        and all(t(r) for t in extra)
    ]
    return _page(_sorted(table, matched, sort_prop, descending), after, limit)


def _sorted(table: Table, recs: list[Rec], prop: str | None, descending: bool) -> list[Rec]:
    # Default order, when no sort is given: ascending object id, i.e. creation order
    # [verify]: the search guide does not state a default sort.
    if prop is None or prop == "hs_object_id":
        return sorted(recs, key=lambda r: r.id, reverse=descending)
    key = _keyer(table, prop)
    present = [(k, r.id, r) for r in recs if (k := key(r)) is not None]
    missing = [r for r in recs if key(r) is None]
    present.sort(key=lambda t: (t[0], t[1]), reverse=descending)
    return [t[2] for t in present] + sorted(missing, key=lambda r: r.id)


def _page(matched: Sequence[Rec], after: int, limit: int) -> SearchPage:
    total = len(matched)
    end = min(after + limit, total, SEARCH_CAP)
    page = list(matched[after:end])
    return SearchPage(page, total, end if end < total else None)


def _page_from_mod(
    table: Table, lo: int, hi: int, after: int, limit: int, total: int, descending: bool
) -> SearchPage:
    end = min(after + limit, total, SEARCH_CAP)
    if after >= end:
        return SearchPage([], total, None)
    if descending:
        keys = table.by_mod[hi - end : hi - after][::-1]
    else:
        keys = table.by_mod[lo + after : lo + end]
    return SearchPage([table.recs[rid] for _, rid in keys], total, end if end < total else None)
