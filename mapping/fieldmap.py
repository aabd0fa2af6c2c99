"""Field maps: native records ↔ canonical entities, driven by data tables.

A ``FieldMap`` is the list of ``FieldRule`` rows for one (system, native object):
native field ↔ canonical field, the transform that converts the value, and the
direction. The defaults are shipped by the connectors (``Connector.field_maps``, found
through the ``revsync.connectors`` entry point by ``connectors.registry``);
``FieldMap.with_overrides`` applies a user's ``revsync.toml`` table.

``read_entity`` reads a native record (``RemoteRecord.fields``) into a canonical entity
field by field: a value that cannot be read makes that field *unreadable* (raw value
and reason reported, the field left empty), never the record. ``to_entity`` is the
strict form (any unreadable value → ``RecordError``);
``from_entity`` writes an entity back to native fields ready for the API.
``content_hash`` fingerprints the mapped native fields for change detection and echo
suppression. Everything is pure: no I/O, inputs never mutated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any, TypeVar

from connectors import registry
from connectors.base import ErrorCategory, RecordError
from connectors.schema import FieldSpec
from connectors.values import NativeValues
from mapping import normalize as n
from mapping.canonical import ENTITY_CLASSES, Account, Contact, ObjectType, Opportunity
from mapping.transforms import PICKLIST_TABLES, Context, get_transform

__all__ = [
    "FIELD_MAPS",
    "OWNER_FIELDS",
    "OWNER_PSEUDO_FIELD",
    "Cleaned",
    "Direction",
    "FieldMap",
    "FieldMapError",
    "FieldRule",
    "ReadResult",
    "Unreadable",
    "build_field_maps",
    "check_overrides",
    "content_hash",
    "derive_stage_flags",
    "from_entity",
    "get_field_map",
    "mapped_native_fields",
    "read_entity",
    "to_account",
    "to_contact",
    "to_entity",
    "to_opportunity",
]

Entity = Account | Contact | Opportunity
_E = TypeVar("_E", Account, Contact, Opportunity)

# The pseudo-field connectors fill with the owner's email (and read back on write).
OWNER_PSEUDO_FIELD = "_owner_email"
EXTRAS_PREFIX = "extras."

# The native field each connector keeps the owner in (what ``_owner_email`` stands for).
OWNER_FIELDS: Mapping[str, str] = registry.Registered(
    lambda classes: {k: c.owner_field for k, c in classes.items() if c.owner_field}
)
# The native schemas the connectors declare (read-only fields, lengths), by connector.
SCHEMAS: Mapping[str, Mapping[str, tuple[FieldSpec, ...]]] = registry.Registered(
    lambda classes: {k: c.schema for k, c in classes.items()}
)


class Direction(StrEnum):
    """Which way a rule carries values."""

    READ = "read"  # native → canonical only
    WRITE = "write"  # canonical → native only
    BOTH = "both"
    NONE = "none"  # listed but inactive (an override can switch a default off this way)


class FieldMapError(ValueError):
    """A field map or an override is invalid; ``key`` names the offending entry."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class FieldRule:
    """One row: ``native`` ↔ ``canonical`` through ``transform``, in ``direction``."""

    native: str
    canonical: str
    transform: str = "string"
    direction: Direction = Direction.BOTH

    @property
    def reads(self) -> bool:
        return self.direction in (Direction.READ, Direction.BOTH)

    @property
    def writes(self) -> bool:
        return self.direction in (Direction.WRITE, Direction.BOTH)

    @property
    def extras_key(self) -> str | None:
        """The ``extras`` key when the canonical side is ``extras.<name>``."""
        if self.canonical.startswith(EXTRAS_PREFIX):
            return self.canonical[len(EXTRAS_PREFIX) :]
        return None


# Transform used when an override names a canonical field but no transform.
CANONICAL_TRANSFORMS: dict[str, str] = {
    "email": "email",
    "owner_email": "owner_email",
    "domain": "domain",
    "website": "url",
    "phone": "phone",
    "country": "country",
    "employees": "int",
    "annual_revenue": "decimal",
    "health": "decimal",
    "arr": "decimal",
    "amount": "decimal",
    "probability": "decimal",
    "renewal_date": "date",
    "close_date": "date",
    "do_not_contact": "flag",
    "currency": "currency",
    "stage": "stage",
    "lifecycle_stage": "lifecycle_stage",
    "industry": "industry",
    "customer_status": "customer_status",
    "lead_source": "lead_source",
    "type": "type",
}
# Canonical fields the mapping never fills: the engine owns identity and associations,
# and is_closed / is_won follow the stage.
_ENGINE_FIELDS = frozenset({"account_id", "contact_ids", "parent_id", "is_closed", "is_won"})
_OVERRIDE_KEYS = frozenset({"fields", "values"})
_RULE_KEYS = frozenset({"canonical", "transform", "direction"})


_KINDS: dict[type, str] = {
    bool: "bool",
    int: "int",
    Decimal: "decimal",
    datetime: "datetime",
    date: "date",
    str: "text",
}


@cache
def _canonical_kind(object_type: ObjectType, name: str) -> str:
    """The kind of value a canonical field holds (text, int, decimal, bool, date …)."""
    hint = typing.get_type_hints(ENTITY_CLASSES[object_type])[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return _KINDS.get(args[0], "json")


def _entity_fields(object_type: ObjectType) -> frozenset[str]:
    return frozenset(ENTITY_CLASSES[object_type].business_fields()) - _ENGINE_FIELDS


@dataclass(frozen=True)
class FieldMap:
    """The rules for one (system, native object) and the canonical type they build."""

    system: str
    native_type: str
    object_type: ObjectType
    rules: tuple[FieldRule, ...]
    # Extra picklist readings per native field: casefolded native value → canonical value.
    value_aliases: Mapping[str, Mapping[str, str]] = dataclasses.field(
        default_factory=dict, hash=False
    )

    def __post_init__(self) -> None:
        allowed = _entity_fields(self.object_type)
        for rule in self.rules:
            key = rule.native
            if not rule.native or rule.native != rule.native.strip():
                raise FieldMapError(f"bad native field name {rule.native!r}", key=key)
            extras = rule.extras_key
            if extras is not None:
                if not extras:
                    raise FieldMapError(f"{key}: empty extras name", key=key)
            elif rule.canonical not in allowed:
                raise FieldMapError(
                    f"{key}: {rule.canonical!r} is not a mappable {self.object_type} field "
                    f"(use one of {', '.join(sorted(allowed))} or extras.<name>)",
                    key=key,
                )
            try:
                transform = get_transform(rule.transform)
            except LookupError as exc:
                raise FieldMapError(f"{key}: {exc}", key=key) from None
            if not isinstance(rule.direction, Direction):
                raise FieldMapError(f"{key}: bad direction {rule.direction!r}", key=key)
            want = (
                "json" if extras is not None else _canonical_kind(self.object_type, rule.canonical)
            )
            fits = transform.kind == want or (want == "json" and transform.kind != "none")
            if transform.kind == "none":
                fits = rule.direction in (Direction.WRITE, Direction.NONE)
            if not fits:
                raise FieldMapError(
                    f"{key}: transform {rule.transform!r} gives {transform.kind} values, "
                    f"{rule.canonical} holds {want}",
                    key=key,
                )

    @classmethod
    def from_rows(
        cls,
        system: str,
        native_type: str,
        object_type: ObjectType,
        rows: Iterable[tuple[str, str, str, str]],
    ) -> FieldMap:
        """Build a map from ``(native, canonical, transform, direction)`` rows."""
        rules = tuple(FieldRule(nat, can, tr, Direction(d)) for nat, can, tr, d in rows)
        return cls(system, native_type, object_type, rules)

    @property
    def read_rules(self) -> tuple[FieldRule, ...]:
        return tuple(r for r in self.rules if r.reads)

    @property
    def write_rules(self) -> tuple[FieldRule, ...]:
        return tuple(r for r in self.rules if r.writes)

    def native_fields(self) -> tuple[str, ...]:
        """Distinct native field names the rules use, in rule order."""
        return tuple(dict.fromkeys(r.native for r in self.rules if r.direction != Direction.NONE))

    def with_overrides(self, overrides: Mapping[str, Any]) -> FieldMap:
        """A new map with a user's overrides applied (this one is untouched).

        ``{"fields": {"Custom_Score__c": "extras.score", "Title": None}}``: a string
        maps that native field to a canonical field (replacing its default rules and any
        other rule feeding that canonical field); ``None`` removes the native field; a
        table ``{"canonical": …, "transform": …, "direction": …}`` says everything.
        ``{"values": {"StageName": {"Discovery": "qualification"}}}`` adds readings of a
        picklist (a custom stage, a custom HubSpot pipeline's stage id) onto existing
        canonical values; writes keep the standard native value.
        Raises ``FieldMapError`` whose ``key`` names the bad entry.
        """
        if not isinstance(overrides, Mapping):
            raise FieldMapError("mapping overrides must be a table", key="")
        for key in overrides:
            if key not in _OVERRIDE_KEYS:
                raise FieldMapError(
                    f"unknown key {key!r} in mapping overrides for {self.system} "
                    f"{self.native_type} (allowed: {', '.join(sorted(_OVERRIDE_KEYS))})",
                    key=str(key),
                )
        fields = overrides.get("fields", {})
        if not isinstance(fields, Mapping):
            raise FieldMapError("'fields' must be a table of native field → target", key="fields")
        rules = list(self.rules)
        for native, target in fields.items():
            rules = self._apply_field_override(rules, native, target)
        aliases = self._merge_value_aliases(rules, overrides.get("values", {}))
        return dataclasses.replace(self, rules=tuple(rules), value_aliases=aliases)

    def _apply_field_override(
        self, rules: list[FieldRule], native: Any, target: Any
    ) -> list[FieldRule]:
        """Apply one ``fields`` entry: map, remap or remove ``native``."""
        if not isinstance(native, str) or not native.strip():
            raise FieldMapError(f"bad native field name {native!r}", key=str(native))
        if target is None:
            if not any(r.native == native for r in rules):
                raise FieldMapError(
                    f"{native}: cannot remove it, it is not mapped for "
                    f"{self.system} {self.native_type}",
                    key=native,
                )
            return [r for r in rules if r.native != native]
        rule = self._override_rule(native, target)
        kept = [
            r
            for r in rules
            if r.native != native and not (r.canonical == rule.canonical and r.reads and rule.reads)
        ]
        return [*kept, rule]

    def _merge_value_aliases(self, rules: list[FieldRule], table: Any) -> dict[str, dict[str, str]]:
        """``{"StageName": {"Discovery": "qualification"}}``: extra readings of a picklist."""
        merged = {k: dict(v) for k, v in self.value_aliases.items()}
        if not isinstance(table, Mapping):
            raise FieldMapError(
                "'values' must be a table of native field → {value: canonical}", key="values"
            )
        for native, pairs in table.items():
            picklists = [
                r
                for r in rules
                if r.native == native and r.reads and r.transform in PICKLIST_TABLES
            ]
            if not picklists:
                raise FieldMapError(
                    f"{native}: 'values' needs a mapped picklist field of {self.system} "
                    f"{self.native_type}",
                    key=str(native),
                )
            if not isinstance(pairs, Mapping):
                raise FieldMapError(f"{native}: 'values' entry must be a table", key=str(native))
            allowed = PICKLIST_TABLES[picklists[0].transform]
            for native_value, canonical in pairs.items():
                if not isinstance(native_value, str) or canonical not in allowed:
                    raise FieldMapError(
                        f"{native}: {native_value!r} → {canonical!r}: the canonical value must be "
                        f"one of {', '.join(sorted(allowed))}",
                        key=str(native),
                    )
                merged.setdefault(native, {})[native_value.strip().casefold()] = canonical
        return merged

    def _override_rule(self, native: str, target: Any) -> FieldRule:
        if isinstance(target, str):
            spec: Mapping[str, Any] = {"canonical": target}
        elif isinstance(target, Mapping):
            spec = target
            unknown = set(spec) - _RULE_KEYS
            if unknown:
                raise FieldMapError(
                    f"{native}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                    f"(allowed: {', '.join(sorted(_RULE_KEYS))})",
                    key=native,
                )
        else:
            raise FieldMapError(
                f"{native}: target must be a canonical field name, a table or null", key=native
            )
        canonical = spec.get("canonical")
        if not isinstance(canonical, str) or not canonical:
            raise FieldMapError(f"{native}: 'canonical' must name a canonical field", key=native)
        transform = spec.get("transform")
        if transform is None:
            transform = (
                "json"
                if canonical.startswith(EXTRAS_PREFIX)
                else CANONICAL_TRANSFORMS.get(canonical, "string")
            )
        if not isinstance(transform, str):
            raise FieldMapError(f"{native}: 'transform' must be a name", key=native)
        raw_direction = spec.get("direction", Direction.BOTH.value)
        try:
            direction = Direction(raw_direction)
        except ValueError:
            raise FieldMapError(
                f"{native}: direction {raw_direction!r} is not one of read, write, both, none",
                key=native,
            ) from None
        return FieldRule(native, canonical, transform, direction)


def _load_defaults() -> dict[tuple[str, str], FieldMap]:
    """The field maps every registered connector ships (``Connector.field_maps``)."""
    return {
        (system, native_type): FieldMap.from_rows(system, native_type, object_type, rows)
        for (system, native_type), (object_type, rows) in registry.default_map_rows().items()
    }


# The default maps, by (connector, native object type), found through the registry.
FIELD_MAPS: Mapping[tuple[str, str], FieldMap] = registry.Registered(lambda _: _load_defaults())


def get_field_map(system: str, native_type: str) -> FieldMap:
    """The default map for (system, native type); ``LookupError`` naming the known ones."""
    try:
        return FIELD_MAPS[(system, native_type)]
    except KeyError:
        known = ", ".join(f"{s}/{t}" for s, t in FIELD_MAPS)
        raise LookupError(f"no field map for {system}/{native_type} (known: {known})") from None


def build_field_maps(
    overrides: Mapping[str, Mapping[str, Any]],
) -> dict[tuple[str, str], FieldMap]:
    """The default maps with overrides keyed ``"<system>.<native type>"`` applied.

    E.g. ``{"salesforce.Contact": {"fields": {"Title": None}}}``; an unknown key raises
    ``FieldMapError`` naming it.
    """
    maps = dict(FIELD_MAPS)
    for key, table in overrides.items():
        system, _, native_type = key.partition(".")
        if (system, native_type) not in maps:
            raise FieldMapError(
                f"unknown mapping {key!r} (known: {', '.join(f'{s}.{t}' for s, t in FIELD_MAPS)})",
                key=key,
            )
        maps[(system, native_type)] = maps[(system, native_type)].with_overrides(table)
    return maps


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Check ``revsync.toml``'s ``[mapping."<connector>.<native object>"]`` tables
    against every registered connector's shipped maps (a plugin's included).

    The one call config makes; raises ``FieldMapError`` whose ``key`` names the bad
    entry (``"mycrm.Org"`` for an unknown object, the native field for a bad rule).
    """
    build_field_maps(overrides)


def mapped_native_fields(
    system: str, native_type: str, *, fieldmap: FieldMap | None = None
) -> tuple[str, ...]:
    """Native fields the map uses (what to read and what to hash); default map unless given.

    ``_owner_email`` stands for the owner (``OWNER_FIELDS[system]``), resolved by the
    connector. A dotted name (Planhat ``custom.X``) is a path into a nested object.
    """
    return (fieldmap or get_field_map(system, native_type)).native_fields()


# --------------------------------------------------------------------------- reading


def _get_path(fields: Mapping[str, Any], name: str) -> Any:
    """``fields[name]``; a dotted name absent at top level is a path into nested objects."""
    if name in fields:
        return fields[name]
    if "." not in name:
        return None
    node: Any = fields
    for part in name.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _region(fm: FieldMap, fields: Mapping[str, Any]) -> str | None:
    """The record's country as ISO alpha-2 (for national phone numbers), if readable."""
    for rule in fm.read_rules:
        if rule.canonical == "country":
            try:
                raw, _ = n.sanitize(_get_path(fields, rule.native), field=rule.native)
                return n.normalize_country(raw, field=rule.native)
            except RecordError:
                return None  # the country rule itself reports it
    return None


# Kinds whose values extras keep as JSON text (and read back before writing).
_TYPED_KINDS = frozenset({"decimal", "date", "datetime"})


def _json_safe(value: Any) -> Any:
    """Extras hold JSON values: Decimals as plain text, dates and instants as ISO text."""
    if isinstance(value, Decimal):
        return format(n.plain_decimal(value), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def derive_stage_flags(stage: str | None) -> tuple[bool | None, bool | None]:
    """(is_closed, is_won) implied by a canonical stage; (None, None) when unknown."""
    if stage is None:
        return None, None
    return stage in ("closed_won", "closed_lost"), stage == "closed_won"


@dataclass(frozen=True)
class Unreadable:
    """One value that could not be read: the field is left empty, the record goes on.

    ``canonical`` is the canonical field (or ``extras.<name>``), ``native`` the native
    field it came from, ``raw`` the value as safe text (``normalize.printable``: escaped,
    cut to ``normalize.RAW_LIMIT``) and ``reason`` why it was refused.
    """

    canonical: str
    native: str
    raw: str
    reason: str


@dataclass(frozen=True)
class Cleaned:
    """A value read after cleaning that lost characters (control characters, NUL)."""

    canonical: str
    native: str
    raw: str
    note: str


@dataclass(frozen=True)
class ReadResult:
    """What ``read_entity`` made of one record."""

    entity: Account | Contact | Opportunity
    unreadable: tuple[Unreadable, ...] = ()
    cleaned: tuple[Cleaned, ...] = ()


#: canonical numbers outside these bounds are unreadable (a percent past 100, a health
#: score the store's NUMERIC(8, 2) cannot hold)
CANONICAL_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "probability": (Decimal(0), Decimal(100)),
    "health": (Decimal(-999_999), Decimal(999_999)),
}


def _in_range(rule: FieldRule, value: Any) -> None:
    bounds = CANONICAL_RANGES.get(rule.canonical)
    if bounds is not None and isinstance(value, Decimal) and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{rule.native}: {rule.canonical} {value} is outside {bounds[0]}..{bounds[1]}")


# What a transform may raise on a value it cannot read besides ``RecordError``
# (a library refusing odd input); anything else is a bug and propagates.
_READ_ERRORS = (RecordError, ValueError, TypeError, ArithmeticError, UnicodeError, OverflowError)


def read_entity(
    system: str,
    native_type: str,
    fields: Mapping[str, Any],
    *,
    fieldmap: FieldMap | None = None,
) -> ReadResult:
    """Map a native record to its canonical entity, each field read on its own.

    ``fields`` is ``RemoteRecord.fields`` (with ``_owner_email`` resolved by the
    connector). The canonical id is left empty and associations (account_id,
    contact_ids) unset: the engine sets them. Opportunity ``is_closed``/``is_won``
    follow the stage. Every raw value first passes ``normalize.sanitize`` (control
    characters and NUL removed: reported in ``cleaned``; lone surrogates and non-UTF-8
    bytes refused); a value its transform cannot read is reported in ``unreadable`` and
    its field stays empty. A phone's extension is kept in
    ``extras["<field>_extension"]`` (E.164 has no place for it).
    """
    fm = fieldmap or get_field_map(system, native_type)
    region = _region(fm, fields)
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    unreadable: list[Unreadable] = []
    cleaned: list[Cleaned] = []
    for rule in fm.read_rules:
        ctx = Context(
            system=system,
            native_type=native_type,
            field=rule.native,
            region=region,
            aliases=fm.value_aliases.get(rule.native, {}),
        )
        raw = _get_path(fields, rule.native)
        try:
            clean, note = n.sanitize(raw, field=rule.native)
            value = get_transform(rule.transform).read(clean, ctx)
            _in_range(rule, value)
        except _READ_ERRORS as exc:
            unreadable.append(Unreadable(rule.canonical, rule.native, n.printable(raw), _reason(exc)))
            continue
        if note is not None:
            cleaned.append(Cleaned(rule.canonical, rule.native, n.printable(raw), note))
        key = rule.extras_key
        if key is not None:
            if value is not None:
                extras[key] = _json_safe(value)
        elif values.get(rule.canonical) is None:  # first rule with a value wins
            values[rule.canonical] = value
            if rule.transform == "phone" and value is not None:
                ext = n.phone_extension(clean, region=region)
                if ext:
                    extras[f"{rule.canonical}_extension"] = ext
    cls = ENTITY_CLASSES[fm.object_type]
    if cls is Opportunity:
        values["is_closed"], values["is_won"] = derive_stage_flags(values.get("stage"))
    entity = cls(id="", extras=extras, **values)
    return ReadResult(entity, tuple(unreadable), tuple(cleaned))


def _reason(exc: BaseException) -> str:
    """A short, safe reason (the message may quote the raw value)."""
    return n.safe_text(str(exc) or type(exc).__name__, limit=400)


def to_entity(
    system: str,
    native_type: str,
    fields: Mapping[str, Any],
    *,
    fieldmap: FieldMap | None = None,
) -> Account | Contact | Opportunity:
    """``read_entity``, strict: any unreadable value → ``RecordError`` naming the native
    field (for callers that want all or nothing: golden tests, benchmarks)."""
    result = read_entity(system, native_type, fields, fieldmap=fieldmap)
    if result.unreadable:
        bad = result.unreadable[0]
        raise RecordError(
            f"{system} {native_type}.{bad.native}: {bad.reason}",
            category=ErrorCategory.MAPPING,
            field=bad.native,
        )
    return result.entity


def to_account(
    system: str, native_type: str, fields: Mapping[str, Any], *, fieldmap: FieldMap | None = None
) -> Account:
    """``to_entity`` for a map known to build accounts (``TypeError`` otherwise)."""
    return _expect(Account, to_entity(system, native_type, fields, fieldmap=fieldmap))


def to_contact(
    system: str, native_type: str, fields: Mapping[str, Any], *, fieldmap: FieldMap | None = None
) -> Contact:
    """``to_entity`` for a map known to build contacts (``TypeError`` otherwise)."""
    return _expect(Contact, to_entity(system, native_type, fields, fieldmap=fieldmap))


def to_opportunity(
    system: str, native_type: str, fields: Mapping[str, Any], *, fieldmap: FieldMap | None = None
) -> Opportunity:
    """``to_entity`` for a map known to build opportunities (``TypeError`` otherwise)."""
    return _expect(Opportunity, to_entity(system, native_type, fields, fieldmap=fieldmap))


def _expect(cls: type[_E], entity: object) -> _E:
    if not isinstance(entity, cls):
        raise TypeError(f"expected a {cls.__name__}, the map builds {type(entity).__name__}")
    return entity


# --------------------------------------------------------------------------- writing


def _schema(system: str, native_type: str) -> Mapping[str, FieldSpec]:
    return _schema_of(id(registry.connector_classes()), system, native_type)


@cache
def _schema_of(classes: int, system: str, native_type: str) -> Mapping[str, FieldSpec]:
    return MappingProxyType({f.name: f for f in registry.native_schema(system, native_type)})


def _native_values(system: str) -> NativeValues:
    """How values travel to ``system`` (plain JSON for a system nobody registered)."""
    cls = registry.connector_class(system)
    return cls.native_values if cls is not None else NativeValues()


def _writable(schema: Mapping[str, FieldSpec], native: str) -> bool:
    """Fields the schema marks read-only are never written; unknown (custom) ones may be."""
    spec = schema.get(native) or schema.get(native.split(".", 1)[0])
    return spec is None or spec.updateable


def _check_length(
    system: str, native_type: str, native: str, value: Any, spec: FieldSpec | None
) -> None:
    if spec is not None and spec.length and isinstance(value, str) and len(value) > spec.length:
        raise RecordError(
            f"{system} {native_type}.{native}: value is {len(value)} characters, "
            f"the field takes {spec.length}",
            category=ErrorCategory.TOO_LONG,
            field=native,
        )


def _set_path(out: dict[str, Any], name: str, value: Any, nested: bool) -> None:
    if not nested or "." not in name:
        out[name] = value
        return
    node = out
    *parents, leaf = name.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def from_entity(
    system: str,
    native_type: str,
    entity: Account | Contact | Opportunity,
    *,
    fieldmap: FieldMap | None = None,
    include_empty: bool = False,
) -> dict[str, Any]:
    """Map a canonical entity to native fields ready for the API.

    Only rules that write, and only fields the connector's schema marks updateable.
    Values take the form the connector declares (``Connector.native_values``: JSON
    numbers and ISO dates, every value a string, or a document where dotted names
    nest, e.g. ``custom.Score``). The owner travels as ``_owner_email`` for the
    connector to resolve. Empty canonical values are left out unless ``include_empty``
    (then they are the connector's empty value: ``None``, or ``""`` for string APIs).
    A value that does not fit (unknown picklist value, too long) → ``RecordError``.
    """
    fm = fieldmap or get_field_map(system, native_type)
    if ENTITY_CLASSES[fm.object_type] is not type(entity):
        raise TypeError(
            f"{system}/{native_type} maps {fm.object_type} entities, not {type(entity).__name__}"
        )
    schema = _schema(system, native_type)
    form = _native_values(system)  # looked up once per record, not per field
    nested = form.nested
    out: dict[str, Any] = {}
    for rule in fm.write_rules:
        if not _writable(schema, rule.native):
            continue
        key = rule.extras_key
        value = entity.extras.get(key) if key is not None else getattr(entity, rule.canonical)
        spec = schema.get(rule.native)
        if value is None or (isinstance(value, str) and not value.strip()):
            if include_empty:
                _set_path(out, rule.native, form.serialize(None), nested)
            continue
        ctx = Context(system=system, native_type=native_type, field=rule.native)
        transform = get_transform(rule.transform)
        if key is not None and transform.kind in _TYPED_KINDS:
            value = transform.read(value, ctx)  # extras hold JSON text: back to Decimal / date
        native = form.serialize(transform.write(value, ctx))
        _check_length(system, native_type, rule.native, native, spec)
        _set_path(out, rule.native, native, nested)
    return out


# --------------------------------------------------------------------------- hashing


def _canonical_json(value: Any) -> Any:
    """Values in one JSON form whatever their source type (for hashing)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        return format(n.plain_decimal(Decimal(str(value))), "f")
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_canonical_json(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def content_hash(fields: Mapping[str, Any], names: Iterable[str]) -> str:
    """sha256 (hex) of the named fields only, order-independent.

    Absent, ``None`` and blank strings hash alike; floats and Decimals hash by value
    (``20.0`` like ``Decimal("20")``); datetimes by their UTC instant; dotted names read
    nested objects. The engine uses it for echo suppression and change detection.
    """
    picked = {name: _canonical_json(_get_path(fields, name)) for name in sorted(set(names))}
    text = json.dumps(picked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in a raw value (a JSON escape) hashes, never crashes
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- compiled reading


@dataclass(frozen=True)
class _ReadStep:
    """One read rule with everything the interpreter looks up per record resolved once."""

    native: str
    canonical: str
    extras_key: str | None
    read: Any  # Transform.read
    aliases: Mapping[str, str]
    bounds: tuple[Decimal, Decimal] | None
    phone: bool
    dotted: bool


class CompiledReader:
    """A field map compiled once into one function per (system, native object): the
    rules, their transforms, aliases and range checks are resolved at compile time, and
    each transform's ``Context`` is made once per (rule, record region) instead of once
    per value. ``reader(fields)`` is ``read_entity(system, native_type, fields,
    fieldmap=fm)``, value for value; ``reader.page(records)`` maps a whole page."""

    def __init__(self, system: str, native_type: str, fm: FieldMap) -> None:
        self.system, self.native_type, self.fieldmap = system, native_type, fm
        rules = fm.read_rules
        self.steps = tuple(
            _ReadStep(
                native=r.native, canonical=r.canonical, extras_key=r.extras_key,
                read=get_transform(r.transform).read, aliases=fm.value_aliases.get(r.native, {}),
                bounds=CANONICAL_RANGES.get(r.canonical), phone=r.transform == "phone",
                dotted="." in r.native,
            )
            for r in rules
        )
        self.country = next((r.native for r in rules if r.canonical == "country"), None)
        self.cls = ENTITY_CLASSES[fm.object_type]
        self._contexts: dict[str | None, tuple[Context, ...]] = {}

    def _contexts_for(self, region: str | None) -> tuple[Context, ...]:
        ctxs = self._contexts.get(region)
        if ctxs is None:
            ctxs = self._contexts[region] = tuple(
                Context(system=self.system, native_type=self.native_type, field=st.native, region=region,
                        aliases=st.aliases)
                for st in self.steps
            )
        return ctxs

    def _region(self, fields: Mapping[str, Any]) -> str | None:
        native = self.country
        if native is None:
            return None
        try:
            raw, _ = n.sanitize(_get_path(fields, native), field=native)
            return n.normalize_country(raw, field=native)
        except RecordError:
            return None

    def __call__(self, fields: Mapping[str, Any]) -> ReadResult:
        region = self._region(fields)
        ctxs = self._contexts_for(region)
        values: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        unreadable: list[Unreadable] = []
        cleaned: list[Cleaned] = []
        sanitize = n.sanitize
        for step, ctx in zip(self.steps, ctxs, strict=True):
            native = step.native
            raw = _get_path(fields, native) if step.dotted else fields.get(native)
            try:
                clean, note = sanitize(raw, field=native)
                value = step.read(clean, ctx)
                bounds = step.bounds
                if bounds is not None and isinstance(value, Decimal) and not bounds[0] <= value <= bounds[1]:
                    raise ValueError(f"{native}: {step.canonical} {value} is outside {bounds[0]}..{bounds[1]}")
            except _READ_ERRORS as exc:
                unreadable.append(Unreadable(step.canonical, native, n.printable(raw), _reason(exc)))
                continue
            if note is not None:
                cleaned.append(Cleaned(step.canonical, native, n.printable(raw), note))
            key = step.extras_key
            if key is not None:
                if value is not None:
                    extras[key] = _json_safe(value)
            elif values.get(step.canonical) is None:  # first rule with a value wins
                values[step.canonical] = value
                if step.phone and value is not None:
                    ext = n.phone_extension(clean, region=region)
                    if ext:
                        extras[f"{step.canonical}_extension"] = ext
        if self.cls is Opportunity:
            values["is_closed"], values["is_won"] = derive_stage_flags(values.get("stage"))
        return ReadResult(self.cls(id="", extras=extras, **values), tuple(unreadable), tuple(cleaned))

    def page(self, records: Iterable[Mapping[str, Any]]) -> list[ReadResult]:
        """Every record of a page, mapped."""
        return [self(fields) for fields in records]


_COMPILED: dict[tuple[str, str, int], tuple[FieldMap, CompiledReader]] = {}


def compile_reader(system: str, native_type: str, *, fieldmap: FieldMap | None = None) -> CompiledReader:
    """The compiled reader for (system, native type) under ``fieldmap`` (the default map
    when None), made on first use and kept while that map object lives."""
    fm = fieldmap or get_field_map(system, native_type)
    key = (system, native_type, id(fm))
    hit = _COMPILED.get(key)
    if hit is None or hit[0] is not fm:
        if len(_COMPILED) > 256:  # maps rebuilt over and over (config reloads): start afresh
            _COMPILED.clear()
        hit = _COMPILED[key] = (fm, CompiledReader(system, native_type, fm))
    return hit[1]


def read_entities(
    system: str, native_type: str, records: Iterable[Mapping[str, Any]], *, fieldmap: FieldMap | None = None,
) -> list[ReadResult]:
    """``read_entity`` for a whole page, through the compiled reader."""
    return compile_reader(system, native_type, fieldmap=fieldmap).page(records)
