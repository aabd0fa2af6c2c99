"""The Salesforce emulator's in-memory org: records, indexes, validation and DML.

Records are plain dicts with the field names of ``connectors/salesforce_schema.py`` SALESFORCE,
held per object by Id. Datetimes are kept as Salesforce renders them
(``2026-11-02T10:15:30.000+0000``) so they sort as text. Each object has a
SystemModstamp index (an append-only list of ``(stamp, id)`` that is re-sorted or
compacted only when needed) so incremental queries start with a bisect instead of
a scan, and a case-insensitive index of its unique external id ``Revsync_Id__c``.

DML is two-phase: ``prepare_*`` validates one record and returns a ``Change``
(raising ``RecordFailure`` with Salesforce's statusCode), ``commit`` applies it. That
gives ``allOrNone`` for free: prepare everything, commit only if nothing failed.
"""

from __future__ import annotations

import json
import re
import string
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.salesforce_schema import SALESFORCE
from connectors.schema import FieldSpec
from sandbox.salesforce_soql import (
    COMPOUND_NAME,
    COMPOUND_NAME_OBJECTS,
    REFERENCES,
    parse_sf_datetime,
    sf_datetime,
)
from sandbox.values import (
    CUSTOMER_STATUS,
    INDUSTRIES,
    LEAD_SOURCES,
    LIFECYCLE,
    OPPORTUNITY_TYPES,
    STAGE_PROBABILITY,
    STAGES,
    native_values,
    to_canonical,
)

# Standard key prefixes (first three characters of every record Id).
# https://help.salesforce.com/s/articleView?id=000385203&type=1
KEY_PREFIXES: dict[str, str] = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
}
PREFIX_OBJECTS = {v: k for k, v in KEY_PREFIXES.items()}
EXTERNAL_ID_FIELD = "Revsync_Id__c"
SYSTEM_FIELDS = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})

# Picklist values per (object, field). Salesforce's standard values where they exist.
LEAD_STATUSES = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
]
CONTACT_ROLES = [
    "Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker",
    "Evaluator", "Executive Sponsor", "Influencer", "Technical Buyer", "Other",
]  # fmt: skip
CURRENCIES = [
    "USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "NZD", "SGD",
    "HKD", "INR", "BRL", "MXN", "ZAR", "PLN", "CNY",
]  # fmt: skip


def _picklists() -> dict[tuple[str, str], list[str]]:
    sf = "salesforce"
    return {
        ("Account", "Industry"): native_values(INDUSTRIES, sf),
        ("Account", "Type"): native_values(CUSTOMER_STATUS, sf),
        ("Contact", "LeadSource"): native_values(LEAD_SOURCES, sf),
        ("Contact", "Lifecycle_Stage__c"): native_values(LIFECYCLE, sf),
        ("Lead", "LeadSource"): native_values(LEAD_SOURCES, sf),
        ("Lead", "Status"): list(LEAD_STATUSES),
        ("Opportunity", "StageName"): native_values(STAGES, sf),
        ("Opportunity", "Type"): native_values(OPPORTUNITY_TYPES, sf),
        ("Opportunity", "CurrencyIsoCode"): list(CURRENCIES),
        ("OpportunityContactRole", "Role"): list(CONTACT_ROLES),
    }


PICKLISTS = _picklists()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CHECKSUM = string.ascii_uppercase + "012345"


def with_checksum(id15: str) -> str:
    """The 18-character case-safe form of a 15-character Salesforce id."""
    suffix = []
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        bits = sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")
        suffix.append(_CHECKSUM[bits])
    return id15 + "".join(suffix)


def stage_flags(stage: str | None) -> tuple[bool, bool]:
    """(IsClosed, IsWon) for an Opportunity StageName."""
    if stage == "Closed Won":
        return True, True
    if stage == "Closed Lost":
        return True, False
    return False, False


class RecordFailure(Exception):
    """One record refused: Salesforce ``statusCode``, message and the fields at fault."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []

    def as_error(self) -> dict[str, Any]:
        """The ``errors[]`` entry of a SaveResult."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class MultipleMatches(RecordFailure):
    """An upsert key that matches several records (HTTP 300 on the single-record call)."""

    def __init__(self, obj: str, ext_field: str, ids: list[str]) -> None:
        super().__init__(
            "DUPLICATE_EXTERNAL_ID",
            f"{ext_field}: more than one record found for external id field: {ids}",
            [ext_field],
        )
        self.obj = obj
        self.ids = ids


@dataclass
class Change:
    """A validated write, ready to commit."""

    obj: str
    kind: str  # create | update | delete
    record_id: str | None
    values: dict[str, Any] = field(default_factory=dict)


class ModstampIndex:
    """(SystemModstamp, Id) pairs, sorted; superseded pairs are skipped on read.

    A write appends its new pair (O(1); the list stays sorted while the clock moves
    forward) and records the pair it replaces in ``superseded``; reads skip those with
    a set lookup and drop them for good once they are many.
    """

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.sorted = True
        self.superseded: set[tuple[str, str]] = set()

    def rebuild(self, records: Mapping[str, dict[str, Any]]) -> None:
        self.keys = sorted((r["SystemModstamp"] or "", rid) for rid, r in records.items())
        self.sorted = True
        self.superseded = set()

    def add(self, stamp: str, rid: str, *, replaces: str | None) -> None:
        key = (stamp, rid)
        if self.keys and key < self.keys[-1]:
            self.sorted = False
        self.keys.append(key)
        if replaces is not None:
            self.superseded.add((replaces, rid))
        self.superseded.discard(key)

    def drop(self, stamp: str, rid: str) -> None:
        self.superseded.add((stamp, rid))

    def ids_from(
        self, records: Mapping[str, dict[str, Any]], floor: str | None, inclusive: bool
    ) -> list[str]:
        """Ids in (SystemModstamp, Id) order, from ``floor`` on (all when None)."""
        if not self.sorted:
            self.rebuild(records)
        elif len(self.superseded) > len(self.keys) // 8:
            sup = self.superseded
            self.keys = [k for k in self.keys if k not in sup]
            self.superseded = set()
        keys = self.keys
        if floor is None:
            start = 0
        elif inclusive:
            start = bisect_left(keys, (floor,))
        else:
            start = bisect_left(keys, (floor + "\uffff",))
        tail = keys[start:] if start else keys
        sup = self.superseded
        if not sup:
            return [rid for _, rid in tail]
        return [k[1] for k in tail if k not in sup]


class Org:
    """All records of the emulated org, with their indexes and the DML rules."""

    def __init__(self, seed: int) -> None:
        self.schema: dict[str, dict[str, FieldSpec]] = {
            obj: {f.name.lower(): f for f in fields} for obj, fields in SALESFORCE.items()
        }
        for obj in COMPOUND_NAME_OBJECTS:  # computed, read-only: see field_value
            self.schema[obj].setdefault("name", COMPOUND_NAME)
        self.objects = {obj.lower(): obj for obj in SALESFORCE}
        # this org's picklist values (an admin may add or remove some: remove_picklist_value)
        self.picklists: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in PICKLISTS.items()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {obj: {} for obj in SALESFORCE}
        self.ext_index: dict[str, dict[str, list[str]]] = {obj: {} for obj in SALESFORCE}
        self.modstamps: dict[str, ModstampIndex] = {obj: ModstampIndex() for obj in SALESFORCE}
        self.id_lists: dict[str, list[str]] = {obj: [] for obj in SALESFORCE}
        # Delete log per object: (deletedDate, id), for getDeleted.
        self.delete_log: dict[str, list[tuple[str, str]]] = {obj: [] for obj in SALESFORCE}
        self.earliest_deleted: dict[str, datetime] = {}
        # Ids of soft-deleted records per object (query filters them out cheaply).
        self.deleted_ids: dict[str, set[str]] = {obj: set() for obj in SALESFORCE}
        self._counter = 10_000 + (seed % 997) * 1_000_003

    # ------------------------------------------------------------------ SchemaView
    def canonical_object(self, name: str) -> str | None:
        return self.objects.get(name.lower())

    # ------------------------------------------------------------------ admin edits (Setup)
    def delete_field(self, obj: str, name: str) -> None:
        """An admin deletes a custom or standard field: describe, SOQL and DML lose it."""
        self.schema[obj].pop(name.lower())

    def set_field(self, obj: str, spec: FieldSpec) -> None:
        """An admin adds a field, or changes one's type or access (read-only: updateable=False)."""
        self.schema[obj][spec.name.lower()] = spec

    def remove_picklist_value(self, obj: str, name: str, value: str) -> None:
        """An admin deactivates a picklist value: describe drops it, writes of it fail."""
        self.picklists[(obj, name)] = [v for v in self.picklists.get((obj, name), []) if v != value]

    def add_picklist_value(self, obj: str, name: str, value: str) -> None:
        """An admin adds (or re-activates) a picklist value: describe lists it, writes of it pass."""
        values = self.picklists.setdefault((obj, name), [])
        if value not in values:
            values.append(value)

    def fields_of(self, obj: str) -> Mapping[str, FieldSpec]:
        return self.schema[obj]

    def lookup(self, obj: str, record_id: str) -> dict[str, Any] | None:
        store = self.records.get(obj)
        return store.get(record_id) if store is not None else None

    # ------------------------------------------------------------------ ids
    def new_id(self, prefix: str, store: Mapping[str, Any] | None = None) -> str:
        while True:
            self._counter += 1
            n = self._counter
            digits = []
            for _ in range(10):
                n, r = divmod(n, 62)
                digits.append(_B62[r])
            rid = with_checksum(prefix + "Rs" + "".join(reversed(digits)))
            if store is None or rid not in store:
                return rid

    # ------------------------------------------------------------------ loading
    def load_file(self, obj: str, path: Path) -> int:
        with path.open(encoding="utf-8") as fh:
            rows = json.load(fh)
        store = self.records[obj]
        ids = self.id_lists[obj]
        for rec in rows:
            rid = rec["Id"]
            store[rid] = rec
            ids.append(rid)
        self._reindex(obj)
        return len(rows)

    def add(self, obj: str, record: Mapping[str, Any], now: str) -> dict[str, Any]:
        """Insert ``record`` as stored data (no validation); fills Id, defaults, stamps."""
        rec = self._blank(obj)
        rec.update({"CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now})
        rec.update(record)
        if not rec.get("Id"):
            rec["Id"] = self.new_id(KEY_PREFIXES[obj], self.records[obj])
        if obj == "Opportunity" and "IsClosed" not in record:
            rec["IsClosed"], rec["IsWon"] = stage_flags(rec.get("StageName"))
        self.records[obj][rec["Id"]] = rec
        self.id_lists[obj].append(rec["Id"])
        self._index_one(obj, rec, None)
        if rec.get("IsDeleted"):
            self.deleted_ids[obj].add(rec["Id"])
            self.delete_log[obj].append((rec["SystemModstamp"], rec["Id"]))
        return rec

    def _reindex(self, obj: str) -> None:
        store = self.records[obj]
        ext: dict[str, list[str]] = {}
        log: list[tuple[str, str]] = []
        for rid, rec in store.items():
            if rec.get("IsDeleted"):
                log.append((rec.get("SystemModstamp") or "", rid))
                continue
            value = rec.get(EXTERNAL_ID_FIELD)
            if value:
                ext.setdefault(value.casefold(), []).append(rid)
        log.sort()
        self.deleted_ids[obj] = {rid for _, rid in log}
        self.ext_index[obj] = ext
        self.delete_log[obj] = log
        self.modstamps[obj].rebuild(store)

    def _index_one(self, obj: str, rec: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        rid = rec["Id"]
        if old is None or old.get("SystemModstamp") != rec["SystemModstamp"]:
            self.modstamps[obj].add(
                rec["SystemModstamp"],
                rid,
                replaces=old["SystemModstamp"] if old is not None else None,
            )
        ext = self.ext_index[obj]
        old_val = (
            old.get(EXTERNAL_ID_FIELD) if old is not None and not old.get("IsDeleted") else None
        )
        new_val = rec.get(EXTERNAL_ID_FIELD) if not rec.get("IsDeleted") else None
        if old_val == new_val:
            return
        if old_val:
            ids = ext.get(old_val.casefold(), [])
            if rid in ids:
                ids.remove(rid)
            if not ids:
                ext.pop(old_val.casefold(), None)
        if new_val:
            ext.setdefault(new_val.casefold(), []).append(rid)

    def _blank(self, obj: str) -> dict[str, Any]:
        return {f.name: (False if f.type == "boolean" else None) for f in SALESFORCE[obj]}

    # ------------------------------------------------------------------ reading
    def live(self, obj: str, rid: str) -> dict[str, Any] | None:
        rec = self.records[obj].get(rid)
        return rec if rec is not None and not rec.get("IsDeleted") else None

    def find_by_ext(self, obj: str, ext_field: str, value: str) -> list[str]:
        """Live record ids whose ``ext_field`` equals ``value`` (case-insensitive)."""
        if ext_field == "Id":
            return [value] if self.live(obj, value) is not None else []
        return list(self.ext_index[obj].get(value.casefold(), []))

    def counts(self) -> dict[str, int]:
        return {
            obj: sum(1 for r in store.values() if not r.get("IsDeleted"))
            for obj, store in self.records.items()
        }

    # ------------------------------------------------------------------ validation
    def object_of_id(self, rid: str) -> str | None:
        return PREFIX_OBJECTS.get(rid[:3]) if isinstance(rid, str) else None

    def _coerce(self, obj: str, spec: FieldSpec, value: Any) -> Any:
        """Convert a JSON (or CSV text) value to the stored form; RecordFailure if wrong."""
        if value is None:
            return None
        t = spec.type
        name = spec.name

        def bad() -> RecordFailure:
            return RecordFailure(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{spec.label or name}: value not of required type: {value}",
                [name],
            )

        if t == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise bad()
        if t in ("int", "double", "currency", "percent"):
            if isinstance(value, bool):
                raise bad()
            if isinstance(value, int | float):
                return int(value) if t == "int" else value
            if isinstance(value, str):
                try:
                    num = float(value)
                except ValueError:
                    raise bad() from None
                if t == "int":
                    if not num.is_integer():
                        raise bad()
                    return int(num)
                return int(num) if num.is_integer() and "." not in value else num
            raise bad()
        if not isinstance(value, str):
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and t not in ("date", "datetime")
            ):
                value = str(value)
            else:
                raise bad()
        if t == "date":
            try:
                date.fromisoformat(value[:10])
            except ValueError:
                raise bad() from None
            if not _DATE.match(value[:10]):
                raise bad()
            return value[:10]
        if t == "datetime":
            try:
                return sf_datetime(parse_sf_datetime(value))
            except ValueError:
                raise bad() from None
        if t in ("id", "reference"):
            return self._check_reference(obj, spec, value)
        if spec.length and len(value) > spec.length:
            raise RecordFailure(
                "STRING_TOO_LONG",
                f"{spec.label or name}: data value too large: {value[:80]} (max length={spec.length})",
                [name],
            )
        if t == "email" and value and not _EMAIL.match(value):
            raise RecordFailure(
                "INVALID_EMAIL_ADDRESS",
                f"{spec.label or name}: invalid email address: {value}",
                [name],
            )
        if t == "picklist":
            allowed = self.picklists.get((obj, name))
            if allowed is not None and value not in allowed:
                raise RecordFailure(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{spec.label or name}: bad value for restricted picklist field: {value}",
                    [name],
                )
        return value

    def _check_reference(self, obj: str, spec: FieldSpec, value: str) -> str | None:
        if value == "":
            return None
        info = REFERENCES.get(spec.name)
        target = (info[1] or obj) if info else None
        if len(value) not in (15, 18) or not value.isalnum():
            raise RecordFailure(
                "MALFORMED_ID",
                f"{spec.label or spec.name}: id value of incorrect type: {value}",
                [spec.name],
            )
        if target is None:
            return value
        if len(value) == 15:
            value = with_checksum(value)
        if value[:3] != KEY_PREFIXES[target]:
            raise RecordFailure(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{spec.label or spec.name}: id value of incorrect type: {value}",
                [spec.name],
            )
        rec = self.records[target].get(value)
        if rec is None:
            # [verify] Salesforce reports an unknown lookup id this way in DML results.
            raise RecordFailure(
                "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [spec.name]
            )
        if rec.get("IsDeleted"):
            raise RecordFailure("ENTITY_IS_DELETED", "entity is deleted", [spec.name])
        return value

    def _values(self, obj: str, body: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
        fields = self.schema[obj]
        out: dict[str, Any] = {}
        refused: list[str] = []
        for key, raw in body.items():
            if key == "attributes" or (key.lower() == "id" and not create):
                continue
            spec = fields.get(key.lower())
            if spec is None:
                raise RecordFailure(
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {obj}",
                    [key],
                )
            if not spec.updateable or spec.name in SYSTEM_FIELDS:
                if create and spec.name == "Id":
                    raise RecordFailure(
                        "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]
                    )
                refused.append(spec.name)
                continue
            out[spec.name] = self._coerce(obj, spec, raw)
        if refused:
            raise RecordFailure(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(refused)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                refused,
            )
        return out

    def _required(self, obj: str, merged: Mapping[str, Any]) -> None:
        missing = [
            f.name
            for f in self.schema[obj].values()
            if not f.nillable and f.name not in SYSTEM_FIELDS and merged.get(f.name) in (None, "")
        ]
        if missing:
            raise RecordFailure(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )

    def _unique(
        self,
        obj: str,
        values: Mapping[str, Any],
        rid: str | None,
        pending: dict[tuple[str, str], str],
    ) -> None:
        value = values.get(EXTERNAL_ID_FIELD)
        if not value:
            return
        key = value.casefold()
        holders = [h for h in self.ext_index[obj].get(key, []) if h != rid]
        mine = rid or f"#new-{len(pending)}"
        other = pending.get((obj, key))
        if other is not None and other != mine:
            holders.append("" if other.startswith("#new") else other)
        if holders:
            raise RecordFailure(
                "DUPLICATE_VALUE",
                f"duplicate value found: {EXTERNAL_ID_FIELD} duplicates value on record with id: {holders[0]}",
                [],
            )
        pending[(obj, key)] = mine

    def _custom_validation(self, values: Mapping[str, Any], rule: Mapping[str, Any] | None) -> None:
        if not rule:
            return
        fname, bad_value = rule.get("field"), rule.get("value")
        if fname is not None and fname in values and str(values[fname]) == str(bad_value):
            raise RecordFailure(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                f"{fname} is not valid here (sandbox validation rule)",
                [str(fname)],
            )

    def prepare_create(
        self,
        obj: str,
        body: Mapping[str, Any],
        pending: dict[tuple[str, str], str],
        rule: Mapping[str, Any] | None = None,
    ) -> Change:
        values = self._values(obj, body, create=True)
        self._required(obj, values)
        self._custom_validation(values, rule)
        self._unique(obj, values, None, pending)
        return Change(obj, "create", None, values)

    def prepare_update(
        self,
        obj: str,
        rid: str,
        body: Mapping[str, Any],
        pending: dict[tuple[str, str], str],
        rule: Mapping[str, Any] | None = None,
    ) -> Change:
        rec = self.records[obj].get(rid)
        if rec is None:
            raise RecordFailure(
                "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {rid}", []
            )
        if rec.get("IsDeleted"):
            raise RecordFailure("ENTITY_IS_DELETED", "entity is deleted", [])
        values = self._values(obj, body, create=False)
        self._required(obj, {**rec, **values})
        self._custom_validation(values, rule)
        if obj == "Account" and values.get("ParentId"):
            self._hierarchy(rid, str(values["ParentId"]))
        self._unique(obj, values, rid, pending)
        return Change(obj, "update", rid, values)

    def _hierarchy(self, rid: str, parent: str) -> None:
        """An account may not be its own parent nor an ancestor of its parent. The
        platform refuses such a ParentId with "attempt to violate hierarchy
        constraints" (the message Salesforce shows for a hierarchy loop; the status
        code FIELD_INTEGRITY_EXCEPTION is [verify])."""
        cur: str | None = parent
        seen: set[str] = set()
        while cur and cur not in seen:
            if cur == rid:
                raise RecordFailure(
                    "FIELD_INTEGRITY_EXCEPTION", "Parent Account: attempt to violate hierarchy constraints",
                    ["ParentId"],
                )
            seen.add(cur)
            nxt = (self.records["Account"].get(cur) or {}).get("ParentId")
            cur = str(nxt) if nxt else None

    def prepare_upsert(
        self,
        obj: str,
        ext_field: str,
        ext_value: str,
        body: Mapping[str, Any],
        pending: dict[tuple[str, str], str],
        rule: Mapping[str, Any] | None = None,
        *,
        update_only: bool = False,
    ) -> Change:
        matches = self.find_by_ext(obj, ext_field, ext_value) if ext_value else []
        if len(matches) > 1:
            raise MultipleMatches(obj, ext_field, matches)
        clean = {k: v for k, v in body.items() if k.lower() != ext_field.lower()}
        if matches:
            return self.prepare_update(obj, matches[0], clean, pending, rule)
        if update_only or ext_field == "Id":
            raise RecordFailure("NOT_FOUND", "The requested resource does not exist", [])
        return self.prepare_create(obj, {**clean, ext_field: ext_value}, pending, rule)

    def prepare_delete(self, obj: str | None, rid: str) -> Change:
        if obj is None or not isinstance(rid, str) or len(rid) not in (15, 18):
            raise RecordFailure("MALFORMED_ID", f"malformed id {rid}", [])
        rec = self.records[obj].get(rid)
        if rec is None:
            raise RecordFailure(
                "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {rid}", []
            )
        if rec.get("IsDeleted"):
            raise RecordFailure("ENTITY_IS_DELETED", "entity is deleted", [])
        return Change(obj, "delete", rid)

    # ------------------------------------------------------------------ commit
    def commit(self, change: Change, now: str) -> str:
        """Apply a prepared change; returns the record id. Counts as one write."""
        obj = change.obj
        if change.kind == "create":
            rec = self._blank(obj)
            rec.update(change.values)
            rec["Id"] = self.new_id(KEY_PREFIXES[obj], self.records[obj])
            rec["CreatedDate"] = rec["LastModifiedDate"] = rec["SystemModstamp"] = now
            self._derive(obj, rec, change.values, None)
            self.records[obj][rec["Id"]] = rec
            self.id_lists[obj].append(rec["Id"])
            self._index_one(obj, rec, None)
            return str(rec["Id"])
        rid = change.record_id or ""
        if change.kind == "delete":
            self.soft_delete(obj, rid, now)
            return rid
        self.update_values(obj, rid, change.values, now)
        return rid

    def update_values(self, obj: str, rid: str, values: Mapping[str, Any], now: str) -> None:
        """Write ``values`` on a stored record and stamp it (no validation)."""
        rec = self.records[obj][rid]
        old = {
            "SystemModstamp": rec["SystemModstamp"],
            EXTERNAL_ID_FIELD: rec.get(EXTERNAL_ID_FIELD),
        }
        rec.update(values)
        self._derive(obj, rec, values, old)
        rec["LastModifiedDate"] = rec["SystemModstamp"] = now
        self._index_one(obj, rec, old)

    def soft_delete(
        self, obj: str, rid: str, now: str, *, master: str | None = None
    ) -> list[tuple[str, str]]:
        """Move a record to the recycle bin (IsDeleted); cascades like Salesforce.

        Deleting an Account deletes its Contacts and Opportunities; deleting an
        Opportunity or Contact deletes its contact roles. Returns every (object, id) deleted.
        """
        rec = self.records[obj].get(rid)
        if rec is None or rec.get("IsDeleted"):
            return []
        old = {
            "SystemModstamp": rec["SystemModstamp"],
            EXTERNAL_ID_FIELD: rec.get(EXTERNAL_ID_FIELD),
            "IsDeleted": False,
        }
        rec["IsDeleted"] = True
        if master is not None:
            rec["MasterRecordId"] = master
        rec["LastModifiedDate"] = rec["SystemModstamp"] = now
        self._index_one(obj, rec, old)
        self.delete_log[obj].append((now, rid))
        self.deleted_ids[obj].add(rid)
        done = [(obj, rid)]
        if master is None:
            for child_obj, ref in self._children(obj):
                for cid, child in list(self.records[child_obj].items()):
                    if child.get(ref) == rid and not child.get("IsDeleted"):
                        done += self.soft_delete(child_obj, cid, now)
        return done

    def hard_delete(self, obj: str, rid: str) -> None:
        rec = self.records[obj].pop(rid, None)
        if rec is not None:
            self.modstamps[obj].drop(rec["SystemModstamp"], rid)
            self.deleted_ids[obj].discard(rid)
            value = rec.get(EXTERNAL_ID_FIELD)
            if value:
                ids = self.ext_index[obj].get(value.casefold(), [])
                if rid in ids:
                    ids.remove(rid)

    @staticmethod
    def _children(obj: str) -> list[tuple[str, str]]:
        if obj == "Account":
            return [("Contact", "AccountId"), ("Opportunity", "AccountId")]
        if obj == "Opportunity":
            return [("OpportunityContactRole", "OpportunityId")]
        if obj == "Contact":
            return [("OpportunityContactRole", "ContactId")]
        return []

    @staticmethod
    def _derive(
        obj: str, rec: dict[str, Any], values: Mapping[str, Any], old: Mapping[str, Any] | None
    ) -> None:
        if obj != "Opportunity" or "StageName" not in values:
            return
        rec["IsClosed"], rec["IsWon"] = stage_flags(rec.get("StageName"))
        if "Probability" not in values:
            canonical = to_canonical(STAGES, "salesforce", rec.get("StageName") or "")
            if canonical is not None:
                rec["Probability"] = STAGE_PROBABILITY[canonical]


# --------------------------------------------------------------------------- edits

EDIT_KINDS = ("update", "create", "delete", "merge", "association")
_FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
]
_LAST = [
    "Berg",
    "Costa",
    "Duarte",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
]
_TITLES = [
    "VP Sales",
    "CFO",
    "Head of Operations",
    "Account Manager",
    "CTO",
    "Procurement Lead",
    "Director of IT",
]
_WORDS = [
    "Nimbus",
    "Vertex",
    "Harbor",
    "Quill",
    "Summit",
    "Lumen",
    "Cobalt",
    "Orchid",
    "Atlas",
    "Pioneer",
]
_SUFFIX = ["Labs", "Systems", "Group", "Holdings", "Analytics", "Logistics", "Foods", "Health"]


def _pick_live(org: Org, rng: Any, obj: str, *, tries: int = 20) -> dict[str, Any] | None:
    ids = org.id_lists[obj]
    if not ids:
        return None
    for _ in range(tries):
        rec = org.live(obj, ids[rng.randrange(len(ids))])
        if rec is not None:
            return rec
    return None


def _phone(rng: Any) -> str:
    return f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"


def _update_values(org: Org, rng: Any, obj: str, rec: Mapping[str, Any]) -> dict[str, Any]:
    if obj == "Account":
        choice = rng.randrange(4)
        if choice == 0:
            return {"Phone": _phone(rng)}
        if choice == 1:
            return {"NumberOfEmployees": rng.randint(5, 50_000)}
        if choice == 2:
            return {"AnnualRevenue": float(rng.randint(1, 500) * 100_000)}
        return {"Industry": rng.choice(PICKLISTS[("Account", "Industry")])}
    if obj == "Contact":
        return {"Title": rng.choice(_TITLES)} if rng.random() < 0.6 else {"Phone": _phone(rng)}
    if obj == "Lead":
        return (
            {"Status": rng.choice(LEAD_STATUSES[:2])}
            if rng.random() < 0.5
            else {"Title": rng.choice(_TITLES)}
        )
    choice = rng.randrange(3)
    if choice == 0:
        return {"StageName": rng.choice(PICKLISTS[("Opportunity", "StageName")])}
    if choice == 1:
        return {"Amount": float(rng.randint(1, 400) * 1_000)}
    return {"CloseDate": f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}


def _new_record(org: Org, rng: Any, obj: str) -> dict[str, Any]:
    owner = _pick_live(org, rng, "User")
    owner_id = owner["Id"] if owner else None
    if obj == "Account":
        name = f"{rng.choice(_WORDS)} {rng.choice(_SUFFIX)}"
        domain = name.lower().replace(" ", "") + ".example.com"
        return {
            "Name": name, "Website": f"https://www.{domain}", "Phone": _phone(rng),
            "Industry": rng.choice(PICKLISTS[("Account", "Industry")]), "Type": "Prospect",
            "NumberOfEmployees": rng.randint(5, 5000), "BillingCountry": "United States", "OwnerId": owner_id,
        }  # fmt: skip
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    if obj == "Contact":
        account = _pick_live(org, rng, "Account")
        return {
            "FirstName": first, "LastName": last, "Title": rng.choice(_TITLES), "Phone": _phone(rng),
            "Email": f"{first}.{last}{rng.randint(1, 999)}@example.com".lower(),
            "AccountId": account["Id"] if account else None, "OwnerId": owner_id,
        }  # fmt: skip
    if obj == "Lead":
        return {
            "FirstName": first, "LastName": last, "Company": f"{rng.choice(_WORDS)} {rng.choice(_SUFFIX)}",
            "Email": f"{first}.{last}{rng.randint(1, 999)}@example.org".lower(), "Status": LEAD_STATUSES[0],
            "OwnerId": owner_id,
        }  # fmt: skip
    account = _pick_live(org, rng, "Account")
    return {
        "Name": f"{account['Name'] if account else 'New'} - expansion", "AccountId": account["Id"] if account else None,
        "StageName": "Prospecting", "CloseDate": f"2027-{rng.randint(1, 12):02d}-15",
        "Amount": float(rng.randint(5, 200) * 1000), "OwnerId": owner_id,
    }  # fmt: skip


def merge_into(org: Org, obj: str, master: str, victim: str, now: str) -> list[str]:
    """Salesforce merge(): the victim's children move to the master (re-parented), the
    victim goes to the recycle bin with ``MasterRecordId`` = master; the master keeps
    its own values. Returns the ids of the re-parented children."""
    moved: list[str] = []
    children = {
        "Account": [("Contact", "AccountId"), ("Opportunity", "AccountId")],
        "Contact": [("OpportunityContactRole", "ContactId")],
    }.get(obj, [])
    for child_obj, ref in children:
        for cid, child in list(org.records[child_obj].items()):
            if child.get(ref) == victim and not child.get("IsDeleted"):
                org.update_values(child_obj, cid, {ref: master}, now)
                moved.append(cid)
    org.soft_delete(obj, victim, now, master=master)
    return moved


def _merge(org: Org, rng: Any, obj: str, now: str) -> dict[str, Any] | None:
    winner = _pick_live(org, rng, obj)
    loser = _pick_live(org, rng, obj)
    if winner is None or loser is None or winner["Id"] == loser["Id"]:
        return None
    wid, lid = winner["Id"], loser["Id"]
    moved = merge_into(org, obj, wid, lid, now)
    return {"system": "salesforce", "object": obj, "id": lid, "kind": "merge",
            "fields": {"IsDeleted": True, "MasterRecordId": wid}, "winner": wid, "reparented": moved}  # fmt: skip


def apply_edit(org: Org, rng: Any, kind: str, now: str) -> dict[str, Any] | None:
    """One realistic change of ``kind``; a description of it, or None if none was possible."""
    if kind == "update":
        obj = rng.choice(["Account", "Contact", "Contact", "Opportunity", "Lead"])
        rec = _pick_live(org, rng, obj)
        if rec is None:
            return None
        values = _update_values(org, rng, obj, rec)
        org.update_values(obj, rec["Id"], values, now)
        return {
            "system": "salesforce",
            "object": obj,
            "id": rec["Id"],
            "kind": kind,
            "fields": values,
        }
    if kind == "create":
        obj = rng.choice(["Account", "Contact", "Contact", "Opportunity", "Lead"])
        values = _new_record(org, rng, obj)
        rid = org.commit(Change(obj, "create", None, values), now)
        return {"system": "salesforce", "object": obj, "id": rid, "kind": kind, "fields": values}
    if kind == "delete":
        obj = rng.choice(["Contact", "Opportunity", "Lead", "Account"])
        rec = _pick_live(org, rng, obj)
        if rec is None:
            return None
        gone = org.soft_delete(obj, rec["Id"], now)
        return {"system": "salesforce", "object": obj, "id": rec["Id"], "kind": kind,
                "fields": {"IsDeleted": True}, "cascade": [rid for _, rid in gone[1:]]}  # fmt: skip
    if kind == "merge":
        return _merge(org, rng, rng.choice(["Account", "Contact"]), now)
    if kind == "association":
        if rng.random() < 0.5:
            obj, ref = "Contact", "AccountId"
        else:
            obj, ref = "Opportunity", "AccountId"
        rec = _pick_live(org, rng, obj)
        target = _pick_live(org, rng, "Account")
        if rec is None or target is None or rec.get(ref) == target["Id"]:
            return None
        org.update_values(obj, rec["Id"], {ref: target["Id"]}, now)
        return {"system": "salesforce", "object": obj, "id": rec["Id"], "kind": kind,
                "fields": {ref: target["Id"]}}  # fmt: skip
    raise ValueError(f"unknown edit kind {kind!r}")
