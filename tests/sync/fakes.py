"""An in-memory connector for engine tests: real mapping, fake remote."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    Connector,
    Cursor,
    ErrorCategory,
    OpKind,
    RemoteRecord,
    RetryPolicy,
    WriteOp,
    WriteResult,
)
from mapping.canonical import ObjectType
from sync.link import EXTERNAL_ID_FIELDS

OBJECTS: dict[str, dict[ObjectType, tuple[str, ...]]] = {
    "salesforce": {ObjectType.ACCOUNT: ("Account",), ObjectType.CONTACT: ("Contact", "Lead"),
                   ObjectType.OPPORTUNITY: ("Opportunity",)},
    "hubspot": {ObjectType.ACCOUNT: ("companies",), ObjectType.CONTACT: ("contacts",),
                ObjectType.OPPORTUNITY: ("deals",)},
    "planhat": {ObjectType.ACCOUNT: ("companies",), ObjectType.CONTACT: ("endusers",)},
}


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t

    def tick(self, seconds: float = 1.0) -> datetime:
        self.t += timedelta(seconds=seconds)
        return self.t


class FakeConnector(Connector):
    """Holds native records per native type; stamps every write with the clock."""

    name: ClassVar[str] = "fake"
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {}

    def __init__(self, kind: str, clock: Clock, page_size: int = 3) -> None:
        self.kind = kind
        self.objects = OBJECTS[kind]  # type: ignore[misc]
        self.clock = clock
        self.page_size = page_size
        self.data: dict[str, dict[str, dict[str, Any]]] = {n: {} for ns in self.objects.values() for n in ns}
        self.assoc: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {n: {} for n in self.data}
        self.mod: dict[str, dict[str, datetime]] = {n: {} for n in self.data}
        self.deleted: dict[str, dict[str, str | None]] = {n: {} for n in self.data}
        self.ids = itertools.count(1000)
        self.write_calls = 0
        self.read_calls = 0
        self.fail_fields: dict[str, Any] = {}  # native field → value that the remote rejects
        self.full_read_by_id = False  # like HubSpot's list endpoint: a full read comes in id order
        self.merges: list[tuple[str, str, tuple[str, ...]]] = []  # (native, primary, merged)

    @classmethod
    def from_settings(cls, settings: ConnectionSettings, *, budget: ApiBudget,
                      retry: RetryPolicy | None = None) -> Connector:
        raise TypeError("tests build FakeConnector directly")

    # -- test helpers
    def add(self, native: str, fields: dict[str, Any], *, rid: str | None = None,
            assoc: dict[str, tuple[str, ...]] | None = None) -> str:
        rid = rid or f"{native[:3]}{next(self.ids)}"
        self.data[native][rid] = dict(fields)
        self.assoc[native][rid] = dict(assoc or {})
        self.mod[native][rid] = self.clock.tick(0.001)
        return rid

    def edit(self, native: str, rid: str, **fields: Any) -> None:
        self.data[native][rid].update(fields)
        self.mod[native][rid] = self.clock.tick(0.001)

    def delete(self, native: str, rid: str, merged_into: str | None = None) -> None:
        self.deleted[native][rid] = merged_into
        self.data[native].pop(rid)
        self.mod[native][rid] = self.clock.tick(0.001)

    def live(self, native: str) -> dict[str, dict[str, Any]]:
        return self.data[native]

    # -- contract
    def read_pages(self, object_type: ObjectType, *, since: Cursor | None = None,
                   native: str | None = None) -> Iterator[Sequence[RemoteRecord]]:
        native = native or self.objects[object_type][0]
        rows = sorted(
            ((self.mod[native][rid], rid) for rid in self.data[native]
             if since is None or self.mod[native][rid] >= since.modstamp),
            key=(lambda r: r[1]) if since is None and self.full_read_by_id else None,
        )
        for i in range(0, len(rows), self.page_size):
            self.read_calls += 1
            yield [
                RemoteRecord(self.kind, object_type, rid, ts, dict(self.data[native][rid]), native_type=native,
                             associations=self.assoc[native].get(rid, {}))
                for ts, rid in rows[i : i + self.page_size]
            ]

    def read_deleted(self, object_type: ObjectType, *, since: Cursor | None = None,
                     native: str | None = None) -> Iterator[RemoteRecord]:
        native = native or self.objects[object_type][0]
        for rid, merged in self.deleted[native].items():
            if since is None or self.mod[native][rid] >= since.modstamp:
                yield RemoteRecord(self.kind, object_type, rid, self.mod[native][rid], {}, native_type=native,
                                   deleted=True, merged_into=merged)

    def list_ids(self, object_type: ObjectType, *, native: str | None = None) -> Iterator[str]:
        native = native or self.objects[object_type][0]
        return iter(list(self.data[native]))

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.write_calls += 1
        ext = EXTERNAL_ID_FIELDS[self.kind]
        out: list[WriteResult] = []
        for op in ops:
            native = op.native_type or self.objects[object_type][0]
            bad = next((f for f, v in self.fail_fields.items() if op.fields.get(f) == v), None)
            if bad:
                out.append(WriteResult(op, False, op.remote_id, category=ErrorCategory.VALIDATION,
                                       message=f"bad value for {bad}", field=bad))
                continue
            fields = {k: v for k, v in op.fields.items()}
            if self.kind == "salesforce" and native == "Opportunity" and "StageName" in fields \
                    and "Probability" not in fields:
                # like Salesforce: a stage change alone resets Probability to the stage default
                from sandbox.values import STAGE_PROBABILITY, STAGES, to_canonical

                stage = to_canonical(STAGES, "salesforce", str(fields["StageName"]))
                fields["Probability"] = STAGE_PROBABILITY.get(stage or "", 0)
            assoc = {k: tuple(v) for k, v in op.associations.items()}
            if op.kind is OpKind.DELETE:
                self.delete(native, op.remote_id or "")
                out.append(WriteResult(op, True, op.remote_id))
                continue
            if op.kind is OpKind.MERGE:  # as HubSpot: the merged record gets a new id
                self.merges.append((native, op.remote_id or "", tuple(op.merge_from)))
                ids = [op.remote_id or "", *op.merge_from]
                merged: dict[str, Any] = {}
                for rid in reversed(ids):  # the primary's values win
                    merged.update({k: v for k, v in self.data[native][rid].items() if v not in (None, "")})
                new = self.add(native, merged)
                for rid in ids:
                    self.delete(native, rid, merged_into=new)
                out.append(WriteResult(op, True, new))
                continue
            if op.kind is OpKind.UPDATE and op.remote_id in self.data[native]:
                self.edit(native, op.remote_id, **fields)
                self.assoc[native][op.remote_id].update(assoc)
                out.append(WriteResult(op, True, op.remote_id))
                continue
            # upsert on the external id: a retried create finds its record
            found = next((rid for rid, rec in self.data[native].items() if rec.get(ext) == op.key), None)
            if found:
                self.edit(native, found, **fields)
                self.assoc[native][found].update(assoc)
                out.append(WriteResult(op, True, found, created=False))
            else:
                rid = self.add(native, {**fields, ext: op.key}, assoc=assoc)
                out.append(WriteResult(op, True, rid, created=True))
        return out
