"""Field policies: decide each canonical field from what the systems say. Pure.

Every remote record linked to an entity makes a ``Claim`` per field (its value in
canonical form, its system, remote id and modstamp). ``decide`` applies the field's
rule and returns the value with its provenance:

- ``source_priority``: systems in the configured order; within one system the most
  recently modified record speaks for it; the first non-blank value wins.
- ``latest``: the most recent modstamp wins (ties broken by source priority).
- ``prefer:<system>``: that system's value unless blank, else ``source_priority``.
- ``always:<system>``: that system's value even when blank (if it has a record),
  else ``source_priority``.
- ``never_blank`` (default on): a blank never overwrites a filled value: blank claims
  are passed over, and when every claim is blank the current value is kept.

Per-field ``direction`` per system: claims from a system whose direction for the
field is ``write`` or ``none`` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_MIN = datetime.min.replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Claim:
    """One system's value for one field of one entity."""

    system: str
    remote_id: str
    modstamp: datetime | None
    value: Any


@dataclass(frozen=True, slots=True)
class Decision:
    """The decided value of one field and why."""

    field: str
    value: Any
    rule: str
    system: str | None = None
    remote_id: str | None = None
    modstamp: datetime | None = None
    conflict: bool = False  # two or more distinct non-blank values were offered


@dataclass(frozen=True)
class FieldPolicy:
    """The policy of one object type (parsed from config)."""

    default: str = "source_priority"
    source_priority: tuple[str, ...] = ("salesforce", "hubspot", "planhat")
    never_blank: bool = True
    fields: Mapping[str, str] | None = None
    direction: Mapping[str, Mapping[str, str]] | None = None  # system → field → direction
    deletes: str = "flag"
    merges: str = "link"
    create_in: tuple[str, ...] | None = None
    # merges = "merge": the connections whose merge API is called (None: HubSpot ones)
    merge_in: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> FieldPolicy:
        create_in = table.get("create_in")
        merge_in = table.get("merge_in")
        return cls(
            default=table.get("default", "source_priority"),
            source_priority=tuple(table.get("source_priority", cls.source_priority)),
            never_blank=bool(table.get("never_blank", True)),
            fields=dict(table.get("fields", {})),
            direction={k: dict(v) for k, v in table.get("direction", {}).items()},
            deletes=table.get("deletes", "flag"),
            merges=table.get("merges", "link"),
            create_in=tuple(create_in) if create_in is not None else None,
            merge_in=tuple(merge_in) if merge_in is not None else None,
        )

    def rule_for(self, field: str) -> str:
        return (self.fields or {}).get(field, self.default)

    def direction_of(self, system: str, field: str) -> str:
        per = (self.direction or {}).get(system, {})
        return per.get(field, per.get("*", "both"))

    def reads_from(self, system: str, field: str) -> bool:
        return self.direction_of(system, field) in ("read", "both")

    def writes_to(self, system: str, field: str) -> bool:
        return self.direction_of(system, field) in ("write", "both")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == ()


def _ts(c: Claim) -> datetime:
    return c.modstamp.replace(tzinfo=None) if c.modstamp else _MIN


def _priority_order(claims: Sequence[Claim], priority: Sequence[str]) -> list[Claim]:
    rank = {s: i for i, s in enumerate(priority)}
    # system rank first; within a system the newest record speaks for it
    return sorted(
        claims,
        key=lambda c: (rank.get(c.system, len(rank)), c.system, -_ts(c).timestamp() if c.modstamp else 0.0, c.remote_id),
    )


def _latest_order(claims: Sequence[Claim], priority: Sequence[str]) -> list[Claim]:
    rank = {s: i for i, s in enumerate(priority)}
    return sorted(
        claims,
        key=lambda c: (-(_ts(c).timestamp()) if c.modstamp else float("inf"), rank.get(c.system, len(rank)), c.remote_id),
    )


def _first(ordered: Sequence[Claim], never_blank: bool) -> Claim | None:
    for c in ordered:
        if not never_blank or not is_blank(c.value):
            return c
    return None


def decide(
    field: str,
    claims: Sequence[Claim],
    policy: FieldPolicy,
    *,
    current: Any = None,
) -> Decision:
    """Decide ``field`` from ``claims`` under ``policy`` (``current``: the stored value)."""
    usable = [c for c in claims if policy.reads_from(c.system, field)]
    distinct = {repr(c.value) for c in usable if not is_blank(c.value)}
    conflict = len(distinct) > 1
    rule = policy.rule_for(field)
    nb = policy.never_blank
    winner: Claim | None = None
    label = rule

    if rule.startswith(("prefer:", "always:")):
        target = rule.split(":", 1)[1]
        own = sorted((c for c in usable if c.system == target), key=lambda c: -_ts(c).timestamp() if c.modstamp else 0.0)
        if rule.startswith("always:") and own:
            winner = own[0]
        else:
            winner = _first(own, never_blank=True)
        if winner is None:
            winner = _first(_priority_order(usable, policy.source_priority), nb)
            label = f"{rule}>source_priority"
    elif rule == "latest":
        winner = _first(_latest_order(usable, policy.source_priority), nb)
    else:
        winner = _first(_priority_order(usable, policy.source_priority), nb)
        label = "source_priority"

    if winner is None or (nb and is_blank(winner.value) and not rule.startswith("always:")):
        if nb and not is_blank(current):
            return Decision(field, current, "never_blank:kept", conflict=conflict)
        return Decision(field, None, label, conflict=conflict)
    return Decision(
        field,
        winner.value,
        label,
        system=winner.system,
        remote_id=winner.remote_id,
        modstamp=winner.modstamp,
        conflict=conflict,
    )


def decide_all(
    fields: Sequence[str],
    claims_by_field: Mapping[str, Sequence[Claim]],
    policy: FieldPolicy,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Decision]:
    """``decide`` for every field in ``fields``."""
    cur = current or {}
    return {f: decide(f, claims_by_field.get(f, ()), policy, current=cur.get(f)) for f in fields}
