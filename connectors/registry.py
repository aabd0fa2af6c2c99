"""The connector registry: every connector the ``revsync.connectors`` entry point names,
and what they declare (native objects, schemas, field maps, identity fields).

The engine and the mapping layer ask this module, never a vendor module, so a
third-party connector (its own package, registered under the entry point) is found,
mapped and synced exactly like the built-ins. Classes are loaded once per ``sys.path``
(a plugin put on the path later is seen); ``reload()`` forgets them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TypeVar

from connectors.base import ENTRY_POINT_GROUP, Connector, MapRow, load_connector_class
from connectors.schema import FieldSpec
from mapping.canonical import ObjectType

__all__ = [
    "Registered",
    "connector_class",
    "connector_classes",
    "known_native_objects",
    "native_schema",
    "reload",
]


_K = TypeVar("_K")
_V = TypeVar("_V")


@cache
def _classes(path_key: tuple[str, ...]) -> Mapping[str, type[Connector]]:
    names = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
    return MappingProxyType({name: load_connector_class(name) for name in names})


def connector_classes() -> Mapping[str, type[Connector]]:
    """Every registered connector class, by name (its entry point's name)."""
    return _classes(tuple(sys.path))


def connector_class(kind: str) -> type[Connector] | None:
    """The connector class registered as ``kind`` (None when there is none)."""
    return connector_classes().get(kind)


def reload() -> None:
    """Forget the loaded classes (after installing a plugin in this process)."""
    _classes.cache_clear()


def known_native_objects() -> dict[str, tuple[str, ...]]:
    """Connector name → the native objects it ships a field map for: the keys a
    ``[mapping."<name>.<native>"]`` table of ``revsync.toml`` may use."""
    return {name: tuple(cls.field_maps) for name, cls in connector_classes().items()}


def default_map_rows() -> dict[tuple[str, str], tuple[ObjectType, tuple[MapRow, ...]]]:
    """(connector, native object) → (canonical type, rows) of every shipped field map."""
    return {
        (name, native): table
        for name, cls in connector_classes().items()
        for native, table in cls.field_maps.items()
    }


def native_schema(kind: str, native: str) -> tuple[FieldSpec, ...]:
    """The fields connector ``kind`` declares for ``native`` (empty when undeclared)."""
    cls = connector_class(kind)
    return tuple(cls.schema.get(native, ())) if cls is not None else ()


class Registered(Mapping[_K, _V]):
    """A read-only mapping built from the registered connectors when first read, and
    rebuilt when the registry changes (a plugin put on the path later is seen)."""

    def __init__(self, build: Callable[[Mapping[str, type[Connector]]], Mapping[_K, _V]]) -> None:
        self._build = build
        self._seen: tuple[object, Mapping[_K, _V]] | None = None

    def _data(self) -> Mapping[_K, _V]:
        classes = connector_classes()
        seen = self._seen
        if seen is None or seen[0] is not classes:
            seen = self._seen = (classes, self._build(classes))
        return seen[1]

    def __getitem__(self, key: _K) -> _V:
        return self._data()[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def per_native(attr: str) -> Registered[tuple[str, str], object]:
    """``{(connector, native object): value}`` of a per-native-object declaration
    (``unique_fields``, ``write_with``, ``writable_associations``)."""
    return Registered(
        lambda classes: {
            (name, native): value
            for name, cls in classes.items()
            for native, value in getattr(cls, attr).items()
        }
    )


def not_associable() -> frozenset[str]:
    """Native objects no connector lets be an association's target."""
    return frozenset().union(*(c.not_associable for c in connector_classes().values()))


def declares(kind: str, attr: str) -> bool:
    """A connector's boolean declaration (``creates_by_default``…); False when unknown."""
    cls = connector_class(kind)
    return bool(getattr(cls, attr)) if cls is not None else False


def starter_secret_env() -> dict[str, dict[str, str]]:
    """Connector name → (secret key → the environment variable the starter config and
    the sandbox's secrets file use for it), for every connector that declares them."""
    return {name: dict(cls.secret_env) for name, cls in sorted(
        connector_classes().items(), key=lambda kv: (kv[1].default_rank is None, kv[1].default_rank or 0, kv[0]))
        if cls.secret_env}
