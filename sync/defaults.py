"""Default field policies (what applies when ``[policies]`` leaves a key unset).

Derived from the connectors' declarations by ``mapping.defaults`` (which documents the
rules); ``DEFAULT_POLICIES`` and ``DEFAULT_SOURCE_PRIORITY`` are read lazily, from the
connectors registered when first asked for.
"""

from __future__ import annotations

from typing import Any

from mapping.defaults import default_policies, default_source_priority

__all__ = ["default_policies", "default_source_priority"]


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_POLICIES":
        return default_policies()
    if name == "DEFAULT_SOURCE_PRIORITY":
        return default_source_priority()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
