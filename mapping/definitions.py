"""Shared definitions: per value set, the canonical values and each system's value for each.

A value set (``stage``, ``lifecycle_stage``, ``lead_status``, ``industry``,
``customer_status``, ``lead_source``, ``type``) has canonical values
(``mapping.values.CANONICAL``) and, per system, the native value written for each
(one) and the native values read as each (several). The defaults are what the
registered connectors declare (``Connector.picklists``, ``picklist_reads``,
``pipelines``); the admin's ``[definitions.<set>]`` tables in revsync.toml add, rename
and retire canonical values and change any system's values (``build``). The engine
activates its configuration's definitions (``activate``); the picklist transforms
read through ``active()``.

Reading a native value: the written values first (the first canonical value in order
wins a native value several write), then the declared extra readings, then the
admin's (every value in an admin's list reads as that canonical value). A native value
no live canonical value reads as (unknown, or its canonical value retired) is an
unmapped value: the field is left unread and the value recorded, never written raw.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors import registry
from mapping.values import CANONICAL, FIXED, SHARES_VALUES, value_sets

__all__ = [
    "DefinitionError",
    "Definitions",
    "ValueSet",
    "activate",
    "active",
    "build",
    "defaults",
    "using",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DefinitionError(ValueError):
    """A bad ``[definitions]`` entry; ``key`` is its path below ``definitions``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"definitions.{key}: {message}")
        self.key, self.message = key, message


def _fold(text: str) -> str:
    return text.strip().casefold()


@dataclass(frozen=True)
class ValueSet:
    """One value set's effective definitions."""

    name: str
    values: tuple[str, ...]  # live canonical values, in order
    writes: Mapping[str, Mapping[str, str]]  # system → canonical → native written
    reads: Mapping[str, Mapping[str, str]]  # system → casefolded native → canonical
    retired: frozenset[str] = frozenset()
    renamed: Mapping[str, str] = field(default_factory=dict)  # old canonical name → new
    pipelines: Mapping[str, str] = field(default_factory=dict)  # system → pipeline written
    #: system → canonical value → its pipeline, where not the system's default one
    value_pipelines: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: system → casefolded native → retired canonical value (to say why it is unmapped)
    retired_reads: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_native(self, system: str, canonical: str) -> str | None:
        """The native value written for ``canonical`` in ``system`` (None: none)."""
        return self.writes.get(system, {}).get(canonical)

    def to_canonical(self, system: str, native: str) -> str | None:
        """The canonical value ``native`` reads as in ``system`` (case-insensitive); None: unmapped."""
        return self.reads.get(system, {}).get(_fold(native))

    def native_values(self, system: str) -> list[str]:
        """Distinct native values written in ``system``, in canonical order."""
        return list(dict.fromkeys(self.writes.get(system, {}).values()))

    def pipeline(self, system: str, canonical: str) -> str | None:
        """The pipeline ``canonical`` is written with in ``system`` (None: the system has none)."""
        return self.value_pipelines.get(system, {}).get(canonical) or self.pipelines.get(system)

    def systems(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.writes) | set(self.reads)))

    def why_unknown(self, value: str) -> str:
        """Why ``value`` is not a canonical value of this set (for error messages)."""
        if value in self.retired:
            return f"{self.name} value {value!r} is retired (definitions.{self.name}.retire)"
        if value in self.renamed:
            return f"{self.name} value {value!r} was renamed to {self.renamed[value]!r}"
        return f"unknown {self.name} value {value!r} (known: {', '.join(self.values)})"

    def as_table(self) -> dict[str, dict[str, str]]:
        """canonical → {system: native written} (the old ``mapping.values`` shape)."""
        return {c: {s: w[c] for s, w in sorted(self.writes.items()) if c in w} for c in self.values}


@dataclass(frozen=True)
class Definitions:
    """Every value set's effective definitions."""

    sets: Mapping[str, ValueSet]

    def __getitem__(self, name: str) -> ValueSet:
        return self.sets[name]

    def get(self, name: str) -> ValueSet | None:
        return self.sets.get(name)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per value set, its canonical values and each system's values."""
        out: dict[str, Any] = {}
        for name, vs in self.sets.items():
            out[name] = {
                "values": {c: {s: vs.writes[s][c] for s in sorted(vs.writes) if c in vs.writes[s]}
                           for c in vs.values},
                "reads": {s: dict(sorted(r.items())) for s, r in sorted(vs.reads.items())},
                "retired": sorted(vs.retired),
                "renamed": dict(vs.renamed),
                **({"pipelines": dict(vs.pipelines)} if vs.pipelines else {}),
                **({"value_pipelines": {sy: dict(m) for sy, m in vs.value_pipelines.items()}}
                   if vs.value_pipelines else {}),
            }
        return out


# --------------------------------------------------------------------------- building


@dataclass
class _Draft:
    """A value set being built: canonical order, writes and explicit reads per system."""

    name: str
    values: list[str]
    writes: dict[str, dict[str, str]]
    declared_reads: dict[str, dict[str, str]]  # system → folded native → canonical (connector)
    admin_reads: dict[str, dict[str, str]] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)
    pipelines: dict[str, str] = field(default_factory=dict)
    value_pipelines: dict[str, dict[str, str]] = field(default_factory=dict)

    def finish(self) -> ValueSet:
        live = [v for v in self.values if v not in self.retired]
        writes = {s: {c: w[c] for c in live if c in w} for s, w in self.writes.items()}
        reads: dict[str, dict[str, str]] = {}
        retired_reads: dict[str, dict[str, str]] = {}
        for system in sorted(set(self.writes) | set(self.declared_reads) | set(self.admin_reads)):
            table = reads.setdefault(system, {})
            for c in live:
                native = self.writes.get(system, {}).get(c)
                if native is not None:
                    table.setdefault(_fold(native), c)
            for source in (self.declared_reads, self.admin_reads):
                for native, c in source.get(system, {}).items():
                    if c in live:
                        table[native] = c
            gone = retired_reads.setdefault(system, {})
            for c in self.retired:
                native = self.writes.get(system, {}).get(c)
                if native is not None and _fold(native) not in table:
                    gone[_fold(native)] = c
        return ValueSet(
            name=self.name, values=tuple(live), writes=writes, reads=reads, retired=frozenset(self.retired),
            renamed=dict(self.renamed), pipelines=dict(self.pipelines),
            value_pipelines={sy: {c: p for c, p in m.items() if c in live} for sy, m in self.value_pipelines.items()},
            retired_reads={s: g for s, g in retired_reads.items() if g},
        )


def _drafts(classes: Mapping[str, Any]) -> dict[str, _Draft]:
    drafts: dict[str, _Draft] = {}
    for name in value_sets():
        base = SHARES_VALUES.get(name, name)
        values = list(CANONICAL[base])
        writes: dict[str, dict[str, str]] = {}
        reads: dict[str, dict[str, str]] = {}
        pipelines: dict[str, str] = {}
        for system, cls in sorted(classes.items()):
            declared = dict(getattr(cls, "picklists", {}).get(name, {}))
            if declared:
                writes[system] = declared
                values.extend(c for c in declared if c not in values)  # a plugin's own values
            extra = getattr(cls, "picklist_reads", {}).get(name, {})
            if extra:
                reads[system] = {_fold(n): c for n, c in extra.items()}
            pipeline = getattr(cls, "pipelines", {}).get(name)
            if pipeline:
                pipelines[system] = pipeline
        drafts[name] = _Draft(name, values, writes, reads, pipelines=pipelines)
    return drafts


def defaults() -> Definitions:
    """The definitions the registered connectors ship (no admin changes)."""
    return _defaults_of(id(registry.connector_classes()))


_DEFAULTS: dict[int, Definitions] = {}


def _defaults_of(key: int) -> Definitions:
    got = _DEFAULTS.get(key)
    if got is None:
        drafts = _drafts(registry.connector_classes())
        got = _DEFAULTS[key] = Definitions({n: d.finish() for n, d in drafts.items()})
    return got


def _mapping_systems(name: str) -> set[str]:
    """Systems whose shipped field maps use value set ``name`` (a picklist transform)."""
    return {system for (system, _native), (_obj, rows) in registry.default_map_rows().items()
            if any(r[2] == name for r in rows)}


def _writing_systems(name: str) -> set[str]:
    """Systems whose shipped field maps write value set ``name``."""
    return {system for (system, _native), (_obj, rows) in registry.default_map_rows().items()
            if any(r[2] == name and r[3] in ("write", "both") for r in rows)}


def _natives(key: str, raw: Any) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise DefinitionError(key, "must be a native value or a non-empty list of them (the first is written)")
    return [i.strip() for i in items]


def build(admin: Mapping[str, Mapping[str, Any]], systems: Iterable[str] | None = None) -> Definitions:
    """The defaults with the admin's ``[definitions]`` tables applied.

    ``admin``: value set → ``{"rename": {old: new}, "retire": [...], "values": {canonical:
    {system: native | [native, ...]}}, "pipeline": {system: id}}``. ``systems``: the
    configured systems (kinds); None: every registered one. Raises ``DefinitionError``
    naming the key path of the first problem.
    """
    if not admin:
        return defaults()
    classes = registry.connector_classes()
    configured = set(systems) if systems is not None else set(classes)
    drafts = _drafts(classes)
    extra: dict[str, ValueSet] = {}
    for name, table in admin.items():
        if name == COUNTRY:
            extra[name] = _country(table, configured)
            continue
        if name not in drafts:
            raise DefinitionError(name, f"unknown value set (known: {', '.join(value_sets())})")
        if name in SHARES_VALUES and (table.get("rename") or table.get("retire")
                                      or any(c not in drafts[name].values for c in table.get("values") or {})):
            raise DefinitionError(name, f"{name} uses {SHARES_VALUES[name]}'s canonical values: add, rename "
                                        f"and retire them under definitions.{SHARES_VALUES[name]}")
        _apply(drafts[name], table, configured)
    for shared, base in SHARES_VALUES.items():  # a renamed/added/retired lifecycle stage applies to lead status
        b, d = drafts[base], drafts[shared]
        d.writes = {s: {b.renamed.get(c, c): n for c, n in w.items()} for s, w in d.writes.items()}
        d.declared_reads = {s: {n: b.renamed.get(c, c) for n, c in r.items()} for s, r in d.declared_reads.items()}
        d.values, d.retired, d.renamed = list(b.values), set(b.retired), dict(b.renamed)
    return Definitions({**{n: d.finish() for n, d in drafts.items()}, **extra})


#: the country value set: canonical values are ISO 3166-1 alpha-2 codes (every one);
#: an admin only says how a system spells some (``UK`` for GB), both ways
COUNTRY = "country"
_COUNTRY_TRANSFORMS = ("country", "country_code")


def _country(table: Mapping[str, Any], configured: set[str]) -> ValueSet:
    from mapping.normalize import country_name

    for key in ("rename", "retire", "pipeline", "pipelines"):
        if table.get(key):
            raise DefinitionError(f"{COUNTRY}.{key}", "country values are ISO 3166-1 alpha-2 codes: they cannot "
                                                      "be added, renamed or retired, only spelled per system")
    mapped = {system for (system, _native), (_obj, rows) in registry.default_map_rows().items()
              if any(r[2] in _COUNTRY_TRANSFORMS for r in rows)}
    writes: dict[str, dict[str, str]] = {}
    reads: dict[str, dict[str, str]] = {}
    for code, per_system in (table.get("values") or {}).items():
        key = f"{COUNTRY}.values.{code}"
        try:
            country_name(code)
        except KeyError:
            raise DefinitionError(key, f"{code!r} is not an ISO 3166-1 alpha-2 country code") from None
        if code != code.upper():
            raise DefinitionError(key, f"write the code in capitals ({code.upper()!r})")
        for system, raw in per_system.items():
            natives = _system_natives(f"{key}.{system}", system, raw, configured, mapped, "country", reads, code)
            writes.setdefault(system, {})[code] = natives[0]
    return ValueSet(name=COUNTRY, values=tuple(table.get("values") or {}), writes=writes, reads=reads)


def _system_natives(skey: str, system: str, raw: Any, configured: set[str], mapped: set[str], field: str,
                    reads: dict[str, dict[str, str]], canonical: str) -> list[str]:
    """One system's native values for ``canonical`` (the first is written), checked: the
    system is configured and maps ``field``, and no value already reads as another
    canonical value; each is entered in ``reads`` (system → folded native → canonical)."""
    if system not in configured:
        raise DefinitionError(skey, f"system {system!r} is not configured "
                                    f"(configured: {', '.join(sorted(configured)) or 'none'})")
    if system not in mapped:
        raise DefinitionError(skey, f"{system} maps no {field} field")
    natives = _natives(skey, raw)
    for native in natives:
        owner = reads.setdefault(system, {}).get(_fold(native))
        if owner is not None and owner != canonical:
            raise DefinitionError(skey, f"{system} value {native!r} already reads as {owner!r}")
        reads[system][_fold(native)] = canonical
    return natives


def _apply(d: _Draft, table: Mapping[str, Any], configured: set[str]) -> None:
    name = d.name
    fixed = FIXED.get(name, frozenset())
    mapped = _mapping_systems(name)
    for old, new in (table.get("rename") or {}).items():
        key = f"{name}.rename.{old}"
        if old not in d.values:
            raise DefinitionError(key, f"unknown {name} value {old!r} (known: {', '.join(d.values)})")
        if old in fixed:
            raise DefinitionError(key, f"{old!r} cannot be renamed (the engine relies on it)")
        if not isinstance(new, str) or not _NAME.match(new):
            raise DefinitionError(key, f"{new!r} is not a canonical value name (lower case, digits, _)")
        if new in d.values:
            raise DefinitionError(key, f"{new!r} is already a {name} value")
        d.values[d.values.index(old)] = new
        d.renamed[old] = new
        for w in d.writes.values():
            if old in w:
                w[new] = w.pop(old)
        for r in d.declared_reads.values():
            for native, c in r.items():
                if c == old:
                    r[native] = new
    admin_written: dict[tuple[str, str], str] = {}  # (system, folded native) → canonical
    for canonical, per_system in (table.get("values") or {}).items():
        key = f"{name}.values.{canonical}"
        if canonical in d.renamed:
            raise DefinitionError(key, f"{canonical!r} was renamed to {d.renamed[canonical]!r}")
        if not _NAME.match(canonical):
            raise DefinitionError(key, f"{canonical!r} is not a canonical value name (lower case, digits, _)")
        new = canonical not in d.values
        if new:
            d.values.append(canonical)
        for system, raw in per_system.items():
            natives = _system_natives(f"{key}.{system}", system, raw, configured, mapped, name, d.admin_reads,
                                      canonical)
            d.writes.setdefault(system, {})[canonical] = natives[0]
            admin_written[(system, _fold(natives[0]))] = canonical
        if new:
            missing = sorted(s for s in _writing_systems(name) & configured if s not in per_system)
            if missing:
                raise DefinitionError(key, f"new {name} value {canonical!r} has no value for "
                                           f"{', '.join(missing)} (each system that writes {name} needs one)")
    for canonical, per_system in (table.get("values") or {}).items():  # a read that would flip a value
        for system, raw in per_system.items():
            w = d.writes.get(system, {})
            for native in _natives(f"{name}.values.{canonical}.{system}", raw):
                other = next((c for c, n in w.items() if _fold(n) == _fold(native) and c != canonical), None)
                if other is not None and admin_written.get((system, _fold(native))) != canonical:
                    raise DefinitionError(f"{name}.values.{canonical}.{system}",
                                          f"{system} value {native!r} is written for {other!r}: reading it as "
                                          f"{canonical!r} would turn every {other!r} into {canonical!r}")
    for system, w in d.writes.items():  # two canonical values written as one native value
        for (s, folded), canonical in admin_written.items():
            if s != system:
                continue
            others = [c for c, n in w.items() if _fold(n) == folded and c != canonical]
            if others:
                raise DefinitionError(f"{name}.values.{canonical}.{system}",
                                      f"{system} value {w[canonical]!r} is already written for {others[0]!r} "
                                      f"(two canonical values cannot be written as one {system} value)")
    retire = table.get("retire") or []
    for i, value in enumerate(retire):
        key = f"{name}.retire[{i}]"
        if value in d.renamed:
            raise DefinitionError(key, f"{value!r} was renamed to {d.renamed[value]!r}")
        if value not in d.values:
            raise DefinitionError(key, f"unknown {name} value {value!r} (known: {', '.join(d.values)})")
        if value in fixed:
            raise DefinitionError(key, f"{value!r} cannot be retired (the engine relies on it)")
        if value in (table.get("values") or {}):
            raise DefinitionError(key, f"{value!r} is retired and defined under values at once")
        d.retired.add(value)
    for system, pipeline in (table.get("pipeline") or {}).items():
        key = f"{name}.pipeline.{system}"
        if system not in configured:
            raise DefinitionError(key, f"system {system!r} is not configured")
        if system not in d.pipelines:
            raise DefinitionError(key, f"{system} writes no pipeline with {name}")
        d.pipelines[system] = pipeline
    for system, by_pipeline in (table.get("pipelines") or {}).items():  # values in other pipelines
        key = f"{name}.pipelines.{system}"
        if system not in configured:
            raise DefinitionError(key, f"system {system!r} is not configured")
        if system not in d.pipelines:
            raise DefinitionError(key, f"{system} writes no pipeline with {name}")
        placed = d.value_pipelines.setdefault(system, {})
        for pipeline, members in by_pipeline.items():
            for value in members:
                vkey = f"{key}.{pipeline}"
                if value in d.renamed:
                    raise DefinitionError(vkey, f"{value!r} was renamed to {d.renamed[value]!r}")
                if value not in d.values or value in d.retired:
                    raise DefinitionError(vkey, _why(d, value))
                if value in placed and placed[value] != pipeline:
                    raise DefinitionError(vkey, f"{value!r} is already in pipeline {placed[value]!r}")
                placed[value] = pipeline


def _why(d: _Draft, value: str) -> str:
    """Why ``value`` is no live value of the set being built."""
    if value in d.retired:
        return f"{d.name} value {value!r} is retired"
    return f"unknown {d.name} value {value!r} (known: {', '.join(v for v in d.values if v not in d.retired)})"


# --------------------------------------------------------------------------- the active set

_active: Definitions | None = None


def active() -> Definitions:
    """The definitions in force: the engine's configuration's, else the defaults."""
    return _active if _active is not None else defaults()


def activate(definitions: Definitions | None) -> None:
    """Put ``definitions`` in force (None: the connectors' defaults)."""
    global _active
    _active = definitions


@contextlib.contextmanager
def using(definitions: Definitions | None) -> Iterator[None]:
    """``definitions`` in force for the ``with`` block only."""
    global _active
    before = _active
    _active = definitions
    try:
        yield
    finally:
        _active = before
