"""Plan: desired state per system vs. last known remote state → write ops. Pure.

Diffs are made in canonical space (typed values: ``Decimal("1.0") == Decimal("1")``),
so a remote that formats a value differently is not "changed", and the echo of a
value we wrote is never a change. Only fields that really differ become native
fields of an update; blank canonical values are never written over remote values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mapping.canonical import encode_value
from sync.reconcile import FieldPolicy, is_blank


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any
    rule: str | None = None

    def as_json(self) -> list[Any]:
        return [self.field, encode_value(self.old), encode_value(self.new), self.rule]


@dataclass(frozen=True)
class PlannedWrite:
    """One op for the outbox."""

    system: str
    object_type: str
    native_type: str
    kind: str  # create | update | delete | merge
    canonical_id: str
    remote_id: str | None
    fields: Mapping[str, Any]
    changes: tuple[FieldChange, ...] = ()
    associations: Mapping[str, list[str]] = field(default_factory=dict)
    # merge: the records merged into ``remote_id`` (the primary), the merge-ledger
    # entries that joined them, and their last-seen images (kept in the ledger)
    merge_from: tuple[str, ...] = ()
    merge_ids: tuple[int, ...] = ()
    before: Mapping[str, Any] = field(default_factory=dict)


def changed_fields(
    desired: Any,
    current: Any,
    candidates: Iterable[str],
    policy: FieldPolicy,
    system: str,
) -> list[str]:
    """Canonical fields whose desired value differs from what ``system`` holds."""
    out = []
    for f in candidates:
        if not policy.writes_to(system, f):
            continue
        new, old = getattr(desired, f, None), getattr(current, f, None)
        if is_blank(new):
            continue  # never blank a remote value
        if new != old:
            out.append(f)
    return out


def native_diff(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """Native fields of ``new`` whose value differs from ``old``."""
    return {k: v for k, v in new.items() if old.get(k) != v}


class PlanTooLarge(Exception):
    """A plan is over a blast-radius cap; nothing was written."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("; ".join(violations))
        self.violations = violations


def check_caps(counts: Mapping[str, int], caps: Mapping[str, int]) -> list[str]:
    """Cap violations for per-kind op counts, e.g. ``{"create": 12}`` vs ``{"create": 10}``."""
    return [
        f"{counts[k]} {k}s planned, over the cap of {caps[k]} (limits.max_{k}s; use --force to go ahead)"
        for k in sorted(counts)
        if k in caps and counts[k] > caps[k]
    ]
