"""HubSpot emulator state: the portal's tables, associations, owners and the helpers
every endpoint module shares (ids, clocks, JSON bodies, batch responses, partial faults).

The endpoint modules (``hubspot_account``, ``hubspot_assoc``, ``hubspot_batch``,
``hubspot_edits``, ``hubspot_setup``) take a ``HubSpotState``; ``sandbox/hubspot.py``
builds the emulator on it and routes requests to them. Nothing here imports an
endpoint module, so no two HubSpot sandbox modules import each other.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.core import Emulator, Fault, RateWindow, SandboxContext, json_response
from sandbox.hubspot_common import (
    DAY_SECONDS,
    OAUTH_APP_BURST,
    RATE_TIERS,
    SEARCH_PER_SECOND,
    AppLimiter,
    item_error,
)
from sandbox.hubspot_store import (
    ALWAYS,
    ASSOC_TYPES,
    DEFAULT_PROPERTIES,
    DERIVED,
    OBJECT_TYPES,
    SCHEMAS,
    SINGULAR,
    TYPE_ALIASES,
    Associations,
    Rec,
    StoreError,
    Table,
    ValueProblem,
    deal_stage_properties,
    fold,
    iso_ms,
    iter_json_array,
    normalize_value,
    now_ms,
    problems_error,
    read_json_array,
    record_from_seed,
    to_int,
)


class HubSpotState(Emulator):
    """One HubSpot portal's data and the helpers its endpoints share."""

    system = "hubspot"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self._lock = threading.RLock()
        self.tables: dict[str, Table] = {t: Table(SCHEMAS[t]) for t in OBJECT_TYPES}
        self.assoc = Associations()
        # a company's calculated parent: its "child to parent company" link (type 14)
        self.tables["companies"].derived["hs_parent_company_id"] = (
            lambda rec: str(p) if (p := self.assoc.parents.get(rec.id)) is not None else None)
        self.owners: list[dict[str, Any]] = []
        self._next_id = 1
        self._oauth: dict[str, float] = {}  # access token → expiry (POSIX seconds)
        self._rng = random.Random(ctx.seed)
        limits = RATE_TIERS.get(ctx.tier)
        clock = ctx.clock
        self._daily: RateWindow | None = None
        self._private: AppLimiter | None = None
        self._oauth_app: AppLimiter | None = None
        self._search_window: RateWindow | None = None
        if limits is not None:  # tier "off": no limits at all
            burst, daily = limits
            self._daily = RateWindow(daily, DAY_SECONDS, clock)
            self._private = AppLimiter(burst, self._daily, clock)
            self._oauth_app = AppLimiter(OAUTH_APP_BURST, None, clock)
            self._search_window = RateWindow(SEARCH_PER_SECOND, 1.0, clock)

    @property
    def _creds(self) -> dict[str, str]:
        return self.ctx.credentials.get(self.system, {})

    def load(self, data_dir: Path) -> None:
        """Read ``<data_dir>/hubspot/*.json`` (owners, objects, associations)."""
        base = Path(data_dir) / self.system
        with self._lock:
            self.owners = read_json_array(base / "owners.json")
            for obj in OBJECT_TYPES:
                table = self.tables[obj]
                recs = [
                    record_from_seed(table.schema, d) for d in iter_json_array(base / f"{obj}.json")
                ]
                self._bulk_insert(table, recs)
            self.assoc.bulk_load(iter_json_array(base / "associations.json"))

    def _bulk_insert(self, table: Table, recs: list[Rec]) -> None:
        for rec in recs:
            table.recs[rec.id] = rec
            self._next_id = max(self._next_id, rec.id + 1)
        live = [r for r in table.recs.values() if r.live]
        table.live = sorted(r.id for r in live)
        table.archived = sorted(r.id for r in table.recs.values() if r.archived_ms is not None)
        table.by_mod = sorted((r.updated_ms, r.id) for r in live)
        for prop, index in table.uniq.items():
            i = table.schema.index[prop]
            for r in live:
                v = r.vals[i]
                if v:
                    index[fold(v)] = r.id

    def add(self, obj: str, record: Mapping[str, Any]) -> str:
        """Add one record in the seed format (``id`` optional); returns its id."""
        with self._lock:
            table = self.tables[TYPE_ALIASES[obj]]
            doc = dict(record)
            if "id" not in doc:
                doc["id"] = str(self._new_id())
            stamp = iso_ms(self._now())
            doc.setdefault("createdAt", stamp)
            doc.setdefault("updatedAt", doc["createdAt"])
            rec = record_from_seed(table.schema, doc)
            self._next_id = max(self._next_id, rec.id + 1)
            if rec.archived_ms is not None:
                table.recs[rec.id] = rec
                table.archived.append(rec.id)
                table.archived.sort()
            else:
                table.insert(rec)
            return str(rec.id)

    def set_options(self, obj: str, prop: str, options: Sequence[str]) -> None:
        """An admin edits an enumeration's options (a new pipeline stage, a removed
        industry): this portal's properties list them, writes of other values fail."""
        with self._lock:
            table = self.tables[obj]
            table.schema = dataclasses.replace(table.schema, options={**table.schema.options, prop: tuple(options)})

    def add_option(self, obj: str, prop: str, value: str) -> None:
        """An admin adds an option (``dealstage``: a stage in the default pipeline)."""
        current = self.tables[obj].schema.options.get(prop, ())
        if value not in current:
            self.set_options(obj, prop, (*current, value))

    def remove_option(self, obj: str, prop: str, value: str) -> None:
        """An admin deletes an option: properties drop it, writes of it fail."""
        self.set_options(obj, prop, [v for v in self.tables[obj].schema.options.get(prop, ()) if v != value])

    def counts(self) -> dict[str, int]:
        """Live records per object type (plus owners and association pairs, as in the manifest)."""
        with self._lock:
            out = {obj: len(t.live) for obj, t in self.tables.items()}
            out["owners"] = sum(1 for o in self.owners if not o.get("archived"))
            out["associations"] = self.assoc.count()
            return out

    def _now(self) -> int:
        return now_ms(self.ctx.clock.now())

    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def _table(self, obj: str) -> tuple[str, Table]:
        name = TYPE_ALIASES.get(obj.lower())
        if name is None:
            raise StoreError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {obj}")
        return name, self.tables[name]

    def _fault(self, kind: str) -> None:
        self.ctx.stats.fault(self.system, kind)

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(request.get_data() or b"{}")
        except ValueError as e:
            raise StoreError(400, "VALIDATION_ERROR", f"Invalid input JSON: {e}") from None
        if not isinstance(data, dict):
            raise StoreError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        return data

    @staticmethod
    def _inputs(body: Mapping[str, Any], limit: int) -> list[Any]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise StoreError(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be a list")
        if len(inputs) > limit:
            # The body for an oversized batch is not documented [verify]; same shape as
            # the documented property-history limit error.
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                f"The maximum number of inputs supported in a batch request is {limit}. "
                "Please reduce the number of items and try again",
                context={"maxInputs": [str(limit)], "inputs": [str(len(inputs))]},
            )
        return inputs

    def _read_props(self, obj: str, requested: Sequence[str] | None) -> list[str]:
        schema = self.tables[obj].schema  # per portal: a fresh one lacks revsync_id
        wanted = [p for p in requested or () if p in schema.index]
        base = wanted if requested else list(DEFAULT_PROPERTIES[obj])
        return list(dict.fromkeys([*base, *ALWAYS[obj]]))

    @staticmethod
    def _arg_list(request: Request, name: str) -> list[str]:
        out: list[str] = []
        for raw in request.args.getlist(name):
            out.extend(p.strip() for p in raw.split(",") if p.strip())
        return out

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return request.args.get(name, "false").lower() == "true"

    def _written_props(self, obj: str, rec: Rec) -> list[str]:
        table = self.tables[obj]
        names = [
            f.name for f in table.schema.fields if rec.vals[table.schema.index[f.name]] is not None
        ]
        return list(dict.fromkeys([*names, *ALWAYS[obj]]))

    def _check_props(
        self, obj: str, props: Any, fault: Fault | None
    ) -> tuple[dict[str, str | None], list[ValueProblem]]:
        """Validated values to store and the per-item problems; unknown names fail the call."""
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise StoreError(
                400, "VALIDATION_ERROR", "Invalid input JSON: properties must be an object"
            )
        schema = self.tables[obj].schema
        unknown = [p for p in props if p not in schema.index]
        if unknown:
            body = problems_error(
                [
                    ValueProblem(p, "PROPERTY_DOESNT_EXIST", f'Property "{p}" does not exist')
                    for p in unknown
                ]
            )
            raise StoreError(
                400,
                "VALIDATION_ERROR",
                body["message"],
                context=body["context"],
                errors=body["errors"],
            )
        values: dict[str, str | None] = {}
        problems: list[ValueProblem] = []
        for name, raw in props.items():
            spec = schema.fields[schema.index[name]]
            if not spec.updateable:
                if name in DERIVED:
                    continue  # HubSpot ignores writes to its own stamps
                problems.append(
                    ValueProblem(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
                )
                continue
            norm = normalize_value(spec, schema.options.get(name, ()), raw)
            if isinstance(norm, ValueProblem):
                problems.append(norm)
            else:
                values[name] = None if norm == "" else norm
        if fault is not None and fault.kind == "validation":
            field = str(fault.get("field", "")).lower()
            for name, raw in props.items():
                if name.lower() == field and str(raw) == str(fault.get("value")):
                    self._fault("validation")
                    problems.append(
                        ValueProblem(
                            name, "INVALID_OPTION", f"{raw} was not one of the allowed options"
                        )
                    )
        if obj == "deals" and values.get("dealstage"):
            values.update(deal_stage_properties(values["dealstage"]))  # HubSpot's calculated ones
        return values, problems

    def _partial_victims(self, fault: Fault | None, n: int) -> set[int]:
        if fault is None or fault.kind != "partial" or n == 0:
            return set()
        self._fault("partial")
        k = max(1, round(float(fault.get("fraction", 0.1)) * n))
        return set(self._rng.sample(range(n), min(k, n)))

    def _partial_error(self, fault: Fault, context: Mapping[str, Any]) -> dict[str, Any]:
        category = str(fault.get("category", "VALIDATION_ERROR"))
        return item_error(
            category, str(fault.get("message", "Property values were not valid")), context
        )

    def _batch_response(
        self,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        started: int,
        ok_status: int,
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return json_response(body, 207)
        return json_response(body, ok_status)

    def _locate(self, obj: str, key: str, id_property: str | None) -> Rec | None:
        table = self.tables[obj]
        if id_property and id_property != "hs_object_id":
            if id_property not in table.schema.unique:
                raise StoreError(
                    400,
                    "VALIDATION_ERROR",
                    f"Property {id_property} is not a unique identifier property",
                )
            return table.find_unique(id_property, key)
        rid = to_int(key)
        rec = table.resolve(rid) if rid is not None else None
        return rec

    def _conflict(
        self, obj: str, values: Mapping[str, str | None], exclude: int | None = None
    ) -> Rec | None:
        table = self.tables[obj]
        for prop in table.schema.unique:
            v = values.get(prop)
            if v:
                other = table.find_unique(prop, v)
                if other is not None and other.id != exclude:
                    return other
        return None

    def _conflict_error(self, obj: str, existing: Rec) -> StoreError:
        noun = SINGULAR[obj].capitalize()
        return StoreError(409, "CONFLICT", f"{noun} already exists. Existing ID: {existing.id}")

    def _create_rec(self, obj: str, values: Mapping[str, str | None]) -> Rec:
        table = self.tables[obj]
        vals: list[str | None] = [None] * len(table.schema.fields)
        for k, v in values.items():
            vals[table.schema.index[k]] = v
        ms = self._now()
        rec = Rec(self._new_id(), vals, ms, ms)
        table.insert(rec)
        return rec

    def _v3_assocs(self, obj: str, rid: int, to_types: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for to in to_types:
            if (obj, to) not in ASSOC_TYPES:
                continue
            name = f"{SINGULAR[obj].lower()}_to_{SINGULAR[to].lower()}"
            items: list[dict[str, str]] = []
            for b, primary in self.assoc.targets(obj, to, rid):
                if not self._alive(to, b):
                    continue
                has_primary = ASSOC_TYPES[(obj, to)][1] is not None
                if primary or not has_primary:
                    items.append({"id": str(b), "type": name})
                if has_primary:
                    items.append({"id": str(b), "type": f"{name}_unlabeled"})
            if items:
                out[to] = {"results": items}
        return out

    def _alive(self, obj: str, rid: int) -> bool:
        rec = self.tables[obj].recs.get(rid)
        return rec is not None and rec.live

    def merge_records(self, obj: str, primary: Rec, other: Rec) -> Rec:
        """Merge ``other`` into ``primary`` as HubSpot does: a NEW record survives."""
        table = self.tables[obj]
        idx = table.schema.index
        vals = list(primary.vals)
        for i, v in enumerate(other.vals):
            if vals[i] in (None, ""):
                vals[i] = v
        ids: list[str] = []
        for rec in (primary, other):
            prior = rec.vals[idx["hs_merged_object_ids"]]
            ids.extend(x for x in (prior or "").split(";") if x)
            ids.append(str(rec.id))
        vals[idx["hs_merged_object_ids"]] = ";".join(dict.fromkeys(ids))
        now = self._now()
        new = Rec(self._new_id(), vals, min(primary.created_ms, other.created_ms), now)
        secondary_uniques = {p: other.vals[idx[p]] for p in table.schema.unique}
        table.merge_away(primary, new.id)
        table.merge_away(other, new.id)
        table.insert(new)
        for prop, v in secondary_uniques.items():
            if v and fold(v) not in table.uniq[prop]:
                table.uniq[prop][fold(v)] = new.id  # the old value still finds it
        self.assoc.move(obj, primary.id, new.id)
        self.assoc.move(obj, other.id, new.id)
        return new
