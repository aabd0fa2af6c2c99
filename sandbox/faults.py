"""Fault injection for the sandbox: the spec, its parser and the seeded injector.

A spec says which faults each system's endpoints get, either at random with a given
probability (``rules``) or exactly on the n-th matching call (``script``). Every draw
is a pure function of (seed, system, endpoint, call number for that endpoint), so a
run repeats even when calls from several threads interleave.

String form (comma-separated entries; ``;`` adds parameters to the entry before it)::

    hubspot:rate_limit=0.05;retry_after=2, salesforce:server_error=0.02,
    *:reset=0.01, salesforce/composite/sobjects:lock=0.1, seed=7

``system[/endpoint]:kind=probability[;param=value...]``; ``*`` means every system.
A string that starts with ``{`` is read as JSON (the dict form below).

Dict / JSON form::

    {"seed": 7,
     "rules": [{"system": "hubspot", "kind": "rate_limit", "p": 0.05,
                "endpoint": "crm.search", "params": {"retry_after": 1}}],
     "script": [{"system": "hubspot", "endpoint": "crm.search", "nth": 3,
                 "kind": "rate_limit", "params": {"retry_after": 1}, "count": 1}]}

``rules`` may also be a string in the string form. A script entry fires on the
``nth`` matching call (1-based; a list of ints is allowed) and the ``count - 1``
calls after it; scripted faults win over random ones. Rules are tried in order, each
with its own independent draw; the first that fires wins.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "unavailable",
    "slow",
    "reset",
    "expired_token",
    "lock",
    "partial",
    "validation",
)
SYSTEMS = ("salesforce", "hubspot", "planhat")
# Kinds that only make sense on a write (DML, batch write): never drawn for a GET.
WRITE_ONLY_KINDS = frozenset({"lock", "partial", "validation"})
ANY = "*"

FaultSpecInput = str | Mapping[str, Any] | None


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class Fault:
    """One fault to inject into one call."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """Shortcut for ``params.get``."""
        return self.params.get(key, default)


@dataclass(frozen=True)
class FaultRule:
    """A random fault: ``kind`` with probability ``p`` on matching calls."""

    system: str
    kind: str
    p: float
    endpoint: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, system: str, endpoint: str, write: bool) -> bool:
        if self.system not in (ANY, system):
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return write or self.kind not in WRITE_ONLY_KINDS


@dataclass(frozen=True)
class ScriptedFault:
    """An exact fault: the ``nth`` matching call (and ``count - 1`` after it) gets it."""

    system: str
    kind: str
    nth: tuple[int, ...]
    endpoint: str | None = None
    count: int = 1
    write: bool | None = None  # None: reads and writes both match
    params: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, system: str, endpoint: str, write: bool) -> bool:
        if self.system not in (ANY, system):
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return self.write is None or self.write == write

    def fires_on(self, n: int) -> bool:
        return any(start <= n < start + self.count for start in self.nth)


@dataclass(frozen=True)
class FaultSpec:
    """A parsed fault spec."""

    seed: int | None = None
    rules: tuple[FaultRule, ...] = ()
    script: tuple[ScriptedFault, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.rules and not self.script


# --------------------------------------------------------------------------- parsing


def _scalar(text: str) -> Any:
    """A parameter value from the string form: int, float, bool, null or string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _check_system(system: str, where: str) -> str:
    if system != ANY and system not in SYSTEMS:
        raise FaultSpecError(f"{where}: unknown system {system!r} (use one of {', '.join(SYSTEMS)} or *)")
    return system


def _check_kind(kind: str, where: str) -> str:
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"{where}: unknown fault kind {kind!r} (use one of {', '.join(FAULT_KINDS)})")
    return kind


def _check_p(value: Any, where: str) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise FaultSpecError(f"{where}: probability {value!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError(f"{where}: probability {p} is outside 0..1")
    return p


def _check_params(params: Any, where: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise FaultSpecError(f"{where}: params must be an object")
    return dict(params)


def _parse_string(text: str) -> FaultSpec:
    """Parse the compact string form."""
    seed: int | None = None
    rules: list[FaultRule] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        head, *extras = (part.strip() for part in entry.split(";"))
        if "=" not in head:
            raise FaultSpecError(f"fault entry {entry!r}: expected system:kind=probability")
        left, value = (s.strip() for s in head.split("=", 1))
        if left == "seed":
            if extras:
                raise FaultSpecError(f"fault entry {entry!r}: seed takes no parameters")
            try:
                seed = int(value)
            except ValueError:
                raise FaultSpecError(f"fault entry {entry!r}: seed must be an integer") from None
            continue
        if ":" not in left:
            raise FaultSpecError(f"fault entry {entry!r}: expected system:kind=probability")
        target, kind = (s.strip() for s in left.rsplit(":", 1))
        system, _, endpoint = target.partition("/")
        params: dict[str, Any] = {}
        for extra in extras:
            if not extra:
                continue
            if "=" not in extra:
                raise FaultSpecError(f"fault entry {entry!r}: parameter {extra!r} needs name=value")
            name, val = (s.strip() for s in extra.split("=", 1))
            params[name] = _scalar(val)
        rules.append(
            FaultRule(
                system=_check_system(system, f"fault entry {entry!r}"),
                kind=_check_kind(kind, f"fault entry {entry!r}"),
                p=_check_p(value, f"fault entry {entry!r}"),
                endpoint=endpoint or None,
                params=params,
            )
        )
    return FaultSpec(seed=seed, rules=tuple(rules))


def _parse_rule(item: Any, i: int) -> FaultRule:
    where = f"rules[{i}]"
    if not isinstance(item, Mapping):
        raise FaultSpecError(f"{where}: must be an object")
    unknown = set(item) - {"system", "kind", "p", "probability", "endpoint", "params"}
    if unknown:
        raise FaultSpecError(f"{where}: unknown keys {sorted(unknown)}")
    if "kind" not in item:
        raise FaultSpecError(f"{where}: 'kind' is required")
    endpoint = item.get("endpoint")
    return FaultRule(
        system=_check_system(str(item.get("system", ANY)), where),
        kind=_check_kind(str(item["kind"]), where),
        p=_check_p(item.get("p", item.get("probability", 1.0)), where),
        endpoint=str(endpoint) if endpoint is not None else None,
        params=_check_params(item.get("params"), where),
    )


def _parse_script(item: Any, i: int) -> ScriptedFault:
    where = f"script[{i}]"
    if not isinstance(item, Mapping):
        raise FaultSpecError(f"{where}: must be an object")
    unknown = set(item) - {"system", "kind", "nth", "endpoint", "count", "write", "params"}
    if unknown:
        raise FaultSpecError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("kind", "nth"):
        if key not in item:
            raise FaultSpecError(f"{where}: {key!r} is required")
    nth_raw = item["nth"]
    nths = nth_raw if isinstance(nth_raw, Sequence) and not isinstance(nth_raw, str) else [nth_raw]
    try:
        nth = tuple(int(n) for n in nths)
        count = int(item.get("count", 1))
    except (TypeError, ValueError):
        raise FaultSpecError(f"{where}: 'nth' and 'count' must be integers") from None
    if not nth or any(n < 1 for n in nth) or count < 1:
        raise FaultSpecError(f"{where}: 'nth' and 'count' must be >= 1")
    write = item.get("write")
    if write is not None and not isinstance(write, bool):
        raise FaultSpecError(f"{where}: 'write' must be true, false or null")
    endpoint = item.get("endpoint")
    return ScriptedFault(
        system=_check_system(str(item.get("system", ANY)), where),
        kind=_check_kind(str(item["kind"]), where),
        nth=nth,
        endpoint=str(endpoint) if endpoint is not None else None,
        count=count,
        write=write,
        params=_check_params(item.get("params"), where),
    )


def parse_spec(spec: FaultSpecInput | FaultSpec) -> FaultSpec:
    """Parse a fault spec (string, JSON string, dict or None); raise FaultSpecError."""
    if spec is None:
        return FaultSpec()
    if isinstance(spec, FaultSpec):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if not text.startswith("{"):
            return _parse_string(text)
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FaultSpecError(f"fault spec is not valid JSON: {exc}") from None
        return parse_spec(loaded)
    if not isinstance(spec, Mapping):
        raise FaultSpecError("fault spec must be a string or an object")
    unknown = set(spec) - {"seed", "rules", "script"}
    if unknown:
        raise FaultSpecError(f"fault spec: unknown keys {sorted(unknown)}")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultSpecError("fault spec: 'seed' must be an integer")
    raw_rules = spec.get("rules") or []
    if isinstance(raw_rules, str):
        rules = _parse_string(raw_rules).rules
    elif isinstance(raw_rules, Sequence):
        rules = tuple(_parse_rule(item, i) for i, item in enumerate(raw_rules))
    else:
        raise FaultSpecError("fault spec: 'rules' must be a list or a string")
    raw_script = spec.get("script") or []
    if not isinstance(raw_script, Sequence) or isinstance(raw_script, str):
        raise FaultSpecError("fault spec: 'script' must be a list")
    script = tuple(_parse_script(item, i) for i, item in enumerate(raw_script))
    return FaultSpec(seed=seed, rules=rules, script=script)


# --------------------------------------------------------------------------- injector


def _uniform(seed: int, system: str, endpoint: str, n: int, rule: int) -> float:
    """A repeatable uniform number in [0, 1) for one (call, rule)."""
    digest = hashlib.blake2b(
        f"{seed}\x1f{system}\x1f{endpoint}\x1f{n}\x1f{rule}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Draws the fault (if any) for each call; seeded and thread-safe.

    ``draw`` numbers calls per (system, endpoint); the n-th call's outcome depends
    only on the spec, the seed and n, never on how threads interleave.
    """

    def __init__(self, spec: FaultSpecInput | FaultSpec = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._default_seed = seed
        self._spec = FaultSpec()
        self._calls: dict[tuple[str, str], int] = {}
        self._script_hits: list[int] = []
        self.set_spec(spec)

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    @property
    def seed(self) -> int:
        return self._spec.seed if self._spec.seed is not None else self._default_seed

    def set_spec(self, spec: FaultSpecInput | FaultSpec) -> None:
        """Replace the spec (parsing it first) and restart call numbering."""
        parsed = parse_spec(spec)
        with self._lock:
            self._spec = parsed
            self._calls = {}
            self._script_hits = [0] * len(parsed.script)

    def draw(self, system: str, endpoint: str, *, write: bool) -> Fault | None:
        """The fault for this call, or None."""
        spec = self._spec
        if spec.empty:
            return None
        with self._lock:
            key = (system, endpoint)
            n = self._calls.get(key, 0) + 1
            self._calls[key] = n
            scripted: Fault | None = None
            for i, entry in enumerate(spec.script):
                if entry.matches(system, endpoint, write):
                    self._script_hits[i] += 1
                    if scripted is None and entry.fires_on(self._script_hits[i]):
                        scripted = Fault(entry.kind, dict(entry.params))
        if scripted is not None:
            return scripted
        seed = self.seed
        for i, rule in enumerate(spec.rules):
            if rule.matches(system, endpoint, write) and rule.p > 0:
                if _uniform(seed, system, endpoint, n, i) < rule.p:
                    return Fault(rule.kind, dict(rule.params))
        return None

    def describe(self) -> dict[str, Any]:
        """The active spec as JSON-ready data (the dict form)."""
        spec = self._spec
        return {
            "seed": self.seed,
            "rules": [
                {"system": r.system, "kind": r.kind, "p": r.p, "endpoint": r.endpoint,
                 "params": dict(r.params)}
                for r in spec.rules
            ],
            "script": [
                {"system": s.system, "kind": s.kind, "nth": list(s.nth), "endpoint": s.endpoint,
                 "count": s.count, "write": s.write, "params": dict(s.params)}
                for s in spec.script
            ],
        }
