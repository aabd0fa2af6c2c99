"""RevOps governance: required-field rules, and the gate that holds writes before a push.

Rules come from ``[governance]`` in revsync.toml (defaults below). A rule names an
object, optionally a deal stage, and the canonical fields an entity must have; a field
that is not a column of the canonical model is read from the entity's ``extras`` (where
a ``[mapping]`` override puts custom fields such as an opportunity's contract start).
Every cycle the rules are checked on the canonical entities (``revsync quality`` lists
the gaps); a rule with ``block = true`` holds the creates and updates of an incomplete
entity in the systems it names (all, by default) with an error-ledger entry, and lets
them go the cycle after the data arrives.

The gate (``gate_outbox``) also runs the schema pre-flight (``sync.preflight``): an op
whose fields the target's live schema no longer accepts is held too, with the field and
the reason. Held ops keep state ``held`` in the outbox; ``revsync plan`` shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mapping import definitions
from mapping.canonical import ENTITY_CLASSES, ObjectType
from sync import store as st

log = logging.getLogger(__name__)

#: ledger categories of a held op (the error ledger's ``category`` column)
HELD_REQUIRED = "required_field"
HELD_SCHEMA = "schema_preflight"
HELD = "held"  # the outbox state of a held op
GATE_PAGE = 1000
#: fields read from ``extras`` that a rule may name without the ``extras.`` prefix
EXTRA_FIELDS: dict[str, frozenset[str]] = {
    "account": frozenset({"csm_email"}),
    "contact": frozenset(),
    "opportunity": frozenset({"contract_start", "renewal_date", "products"}),
}
EXTRAS_PREFIX = "extras."


class GovernanceError(ValueError):
    """A bad ``[governance]`` table; ``key`` names the entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class RequiredRule:
    """An object (at ``stage``, for opportunities) must have ``fields``."""

    object: str
    fields: tuple[str, ...]
    stage: str | None = None
    block: bool = False
    systems: tuple[str, ...] | None = None  # where ``block`` holds writes (None: every system)

    @property
    def label(self) -> str:
        return f"{self.object}" + (f" at {self.stage}" if self.stage else "")

    def applies(self, entity: Any) -> bool:
        return self.stage is None or value_of(entity, "stage") == self.stage

    def missing(self, entity: Any) -> list[str]:
        """The rule's fields ``entity`` lacks ([] when the rule does not apply)."""
        if not self.applies(entity):
            return []
        return [f for f in self.fields if _blank(value_of(entity, f))]

    def blocks(self, system: str) -> bool:
        return self.block and (self.systems is None or system in self.systems)

    def as_json(self) -> dict[str, Any]:
        return {"object": self.object, "stage": self.stage, "fields": list(self.fields), "block": self.block,
                "systems": list(self.systems) if self.systems is not None else None}


DEFAULT_RULES: tuple[RequiredRule, ...] = (
    RequiredRule("account", ("owner_email", "industry")),
    RequiredRule("opportunity", ("amount", "close_date", "contract_start", "renewal_date"), stage="closed_won"),
)


@dataclass(frozen=True)
class HandoffSettings:
    """``[governance.handoff]``: what a closed-won handoff to customer success needs."""

    enabled: bool = True
    # the connection the handoff writes licenses to; None: the first connection whose
    # connector declares the customer-success role (``Connector.roles``)
    system: str | None = None
    required: tuple[str, ...] = ("owner", "csm", "arr", "contract_start", "renewal_date", "products",
                                 "key_contacts")
    default_product: str = "Subscription"
    csm_by_owner: Mapping[str, str] = field(default_factory=dict)
    default_csm: str | None = None
    currency: str = "USD"


HANDOFF_ITEMS = ("owner", "csm", "arr", "contract_start", "renewal_date", "products", "key_contacts")


@dataclass(frozen=True)
class Governance:
    required: tuple[RequiredRule, ...] = DEFAULT_RULES
    preflight: bool = True
    handoff: HandoffSettings = field(default_factory=HandoffSettings)

    def rules_for(self, object_type: str) -> list[RequiredRule]:
        return [r for r in self.required if r.object == object_type]

    def blocking(self, object_type: str, system: str) -> list[RequiredRule]:
        return [r for r in self.required if r.object == object_type and r.blocks(system)]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or v in ((), [], {})


def value_of(entity: Any, name: str) -> Any:
    """A field of a canonical entity (or store row): a column, else an ``extras`` key."""
    if name.startswith(EXTRAS_PREFIX):
        return (getattr(entity, "extras", None) or {}).get(name[len(EXTRAS_PREFIX):])
    if hasattr(entity, name) and name != "extras":
        return getattr(entity, name)
    return (getattr(entity, "extras", None) or {}).get(name)


# --------------------------------------------------------------------------- config


def _names(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise GovernanceError(key, "must be a list of names")
    return tuple(value)


def _check_field(obj: str, name: str, key: str) -> None:
    if name.startswith(EXTRAS_PREFIX) and len(name) > len(EXTRAS_PREFIX):
        return
    cls = ENTITY_CLASSES[ObjectType(obj)]
    if name in cls.business_fields() or name in EXTRA_FIELDS[obj]:
        return
    known = sorted({*cls.business_fields(), *EXTRA_FIELDS[obj]})
    raise GovernanceError(key, f"unknown {obj} field {name!r} (known: {', '.join(known)}; or extras.<name>)")


def parse(table: Mapping[str, Any], systems: Iterable[str]) -> Governance:
    """Validate ``[governance]``; ``systems`` are the configured connections and kinds."""
    systems = tuple(systems)
    allowed = {"required", "preflight", "handoff"}
    for k in table:
        if k not in allowed:
            raise GovernanceError(f"governance.{k}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
    rules = DEFAULT_RULES
    if "required" in table:
        raw = table["required"]
        if not isinstance(raw, list):
            raise GovernanceError("governance.required", "must be an array of tables ([[governance.required]])")
        rules = tuple(_rule(r, f"governance.required[{i}]", systems) for i, r in enumerate(raw))
    preflight = table.get("preflight", True)
    if not isinstance(preflight, bool):
        raise GovernanceError("governance.preflight", "must be true or false")
    handoff = _handoff(table.get("handoff", {}), systems)
    return Governance(required=rules, preflight=preflight, handoff=handoff)


def _rule(raw: Any, key: str, systems: Sequence[str]) -> RequiredRule:
    if not isinstance(raw, dict):
        raise GovernanceError(key, "must be a table")
    for k in raw:
        if k not in ("object", "stage", "fields", "block", "systems"):
            raise GovernanceError(f"{key}.{k}", "unknown key (expected object, stage, fields, block, systems)")
    obj = raw.get("object")
    if obj not in EXTRA_FIELDS:
        raise GovernanceError(f"{key}.object", f"must be one of account, contact, opportunity (got {obj!r})")
    fields = _names(raw.get("fields"), f"{key}.fields")
    for f in fields:
        _check_field(obj, f, f"{key}.fields")
    stage = raw.get("stage")
    if stage is not None:
        if obj != "opportunity":
            raise GovernanceError(f"{key}.stage", "only an opportunity rule has a stage")
        stages = definitions.active()["stage"]  # the configuration's definitions (config.parse)
        if stage not in stages.values:
            raise GovernanceError(f"{key}.stage", stages.why_unknown(str(stage)))
    block = raw.get("block", False)
    if not isinstance(block, bool):
        raise GovernanceError(f"{key}.block", "must be true or false")
    where = None
    if "systems" in raw:
        where = _names(raw["systems"], f"{key}.systems")
        for sname in where:
            if sname not in systems:
                raise GovernanceError(f"{key}.systems", f"unknown system {sname!r} (known: {', '.join(systems)})")
    return RequiredRule(obj, fields, stage, block, where)


def _handoff(raw: Any, systems: Sequence[str]) -> HandoffSettings:
    key = "governance.handoff"
    if not isinstance(raw, dict):
        raise GovernanceError(key, "must be a table")
    known = ("enabled", "system", "required", "default_product", "csm_by_owner", "default_csm", "currency")
    for k in raw:
        if k not in known:
            raise GovernanceError(f"{key}.{k}", f"unknown key (expected one of: {', '.join(known)})")
    out: dict[str, Any] = {}
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise GovernanceError(f"{key}.enabled", "must be true or false")
        out["enabled"] = raw["enabled"]
    if "system" in raw:
        if raw["system"] not in systems:
            raise GovernanceError(f"{key}.system", f"unknown system {raw['system']!r} (known: {', '.join(systems)})")
        out["system"] = raw["system"]
    if "required" in raw:
        req = _names(raw["required"], f"{key}.required")
        for item in req:
            if item not in HANDOFF_ITEMS:
                raise GovernanceError(f"{key}.required", f"unknown handoff item {item!r} "
                                                         f"(known: {', '.join(HANDOFF_ITEMS)})")
        out["required"] = req
    for k in ("default_product", "default_csm", "currency"):
        if k in raw:
            if not isinstance(raw[k], str) or not raw[k].strip():
                raise GovernanceError(f"{key}.{k}", "must be a non-empty string")
            out[k] = raw[k].strip()
    if "csm_by_owner" in raw:
        m = raw["csm_by_owner"]
        if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
            raise GovernanceError(f"{key}.csm_by_owner", "must be a table of owner email = CSM email")
        out["csm_by_owner"] = {str(k).lower(): v.lower() for k, v in m.items()}
    return HandoffSettings(**out)


# --------------------------------------------------------------------------- gaps


def required_gaps(s: Any, gov: Governance, *, sample: int = 20) -> list[dict[str, Any]]:
    """Per rule: the live entities it applies to, how many lack each field, and a sample
    of incomplete entity ids (for ``revsync quality``)."""
    out = []
    for rule in gov.required:
        t: Any = st.ENTITY_TABLES[rule.object]
        q = select(t).where(t.deleted_at.is_(None), t.merged_into.is_(None))
        if rule.stage is not None:
            q = q.where(t.stage == rule.stage)
        checked = incomplete = 0
        by_field: dict[str, int] = dict.fromkeys(rule.fields, 0)
        ids: list[str] = []
        for row in s.scalars(q.execution_options(yield_per=2000)):
            checked += 1
            miss = rule.missing(row)
            if miss:
                incomplete += 1
                for f in miss:
                    by_field[f] += 1
                if len(ids) < sample:
                    ids.append(row.id)
        out.append({**rule.as_json(), "checked": checked, "incomplete": incomplete,
                    "complete_rate": round(1 - incomplete / checked, 4) if checked else None,
                    "missing_by_field": by_field, "sample": ids})
    return out


# --------------------------------------------------------------------------- gate


@dataclass
class GateStats:
    held: dict[str, int] = field(default_factory=dict)  # reason category → ops held now
    released: int = 0
    checked: int = 0

    @property
    def total_held(self) -> int:
        return sum(self.held.values())


def gate_outbox(store: st.Store, gov: Governance, *, now: datetime, run_id: int | None,
                preflight: Any = None, systems: Sequence[str] | None = None) -> GateStats:
    """Hold the pending creates/updates that a blocking rule or the schema pre-flight
    refuses (state ``held``, ledger entry naming field and reason); release held ops
    whose reason is gone. ``preflight``: a ``sync.preflight.Preflight`` (or None)."""
    stats = GateStats()
    after = 0
    while True:
        with store.session() as s:
            q = (select(st.OutboxRow).where(st.OutboxRow.id > after,
                                            st.OutboxRow.state.in_(("pending", HELD)),
                                            st.OutboxRow.kind.in_(("create", "update")))
                 .order_by(st.OutboxRow.id).limit(GATE_PAGE))
            if systems is not None:
                q = q.where(st.OutboxRow.system.in_(list(systems)))
            rows = list(s.scalars(q))
            if not rows:
                break
            after = rows[-1].id
            entities = _entities(s, gov, rows)
            for row in rows:
                stats.checked += 1
                reasons = _reasons(row, gov, entities, preflight)
                if reasons:
                    category, fname, _ = reasons[0]
                    text = "; ".join(m for _, _, m in reasons)
                    if row.state != HELD or row.last_error != text:
                        row.state, row.last_error, row.updated_at = HELD, text, now
                        st.record_error(s, system=row.system, object_type=row.object_type,
                                        native_type=row.native_type, remote_id=row.remote_id,
                                        canonical_id=row.canonical_id, direction="write", category=category,
                                        message=f"{row.kind} held: {text}", field=fname,
                                        payload={"fields": (row.payload or {}).get("fields", {}),
                                                 "reasons": [list(r) for r in reasons]},
                                        now=now, run_id=run_id)
                    stats.held[category] = stats.held.get(category, 0) + 1
                elif row.state == HELD:
                    row.state, row.last_error, row.updated_at = "pending", None, now
                    stats.released += 1
                    _resolve_held(s, row, now)
    return stats


def _entities(s: Any, gov: Governance, rows: Sequence[Any]) -> dict[tuple[str, str], Any]:
    wanted: dict[str, set[str]] = {}
    for r in rows:
        if gov.blocking(r.object_type, r.system):
            wanted.setdefault(r.object_type, set()).add(r.canonical_id)
    out: dict[tuple[str, str], Any] = {}
    for obj, ids in wanted.items():
        t: Any = st.ENTITY_TABLES[obj]
        for e in s.scalars(select(t).where(t.id.in_(sorted(ids)))):
            out[(obj, e.id)] = e
    return out


def _reasons(row: Any, gov: Governance, entities: Mapping[tuple[str, str], Any],
             preflight: Any) -> list[tuple[str, str | None, str]]:
    reasons: list[tuple[str, str | None, str]] = []
    entity = entities.get((row.object_type, row.canonical_id))
    if entity is not None:
        for rule in gov.blocking(row.object_type, row.system):
            miss = rule.missing(entity)
            if miss:
                reasons.append((HELD_REQUIRED, miss[0],
                                f"required {rule.label}: missing {', '.join(miss)}"))
    if preflight is not None:
        for fname, why in preflight.check(row.system, row.native_type, row.kind,
                                          (row.payload or {}).get("fields") or {}):
            reasons.append((HELD_SCHEMA, fname, f"{row.native_type}.{fname}: {why}"))
    return reasons


def _resolve_held(s: Any, row: Any, now: datetime) -> None:
    q = select(st.ErrorLedgerRow).where(
        st.ErrorLedgerRow.system == row.system, st.ErrorLedgerRow.object_type == row.object_type,
        st.ErrorLedgerRow.canonical_id == row.canonical_id, st.ErrorLedgerRow.state == "open",
        st.ErrorLedgerRow.category.in_((HELD_REQUIRED, HELD_SCHEMA)))
    for e in s.scalars(q):
        e.state, e.last_seen_at = "resolved", now


def held_ops(s: Any, system: str | None = None, limit: int = 100_000) -> list[Any]:
    """The outbox rows held by the gate (oldest first)."""
    q = select(st.OutboxRow).where(st.OutboxRow.state == HELD)
    if system is not None:
        q = q.where(st.OutboxRow.system == system)
    return list(s.scalars(q.order_by(st.OutboxRow.id).limit(limit)))
