"""Default field policies, derived from what the registered connectors declare.

Nothing here names a system: each connector declares its place in the default source
priority (``Connector.default_rank``) and the canonical fields it owns
(``Connector.authoritative_for``, which become ``prefer:<name>`` rules). The rest is
the product's own choice:

- ``source_priority``: the first system in ``source_priority`` with a value wins; an
  object's order holds the ranked connectors that read that object;
- ``latest``: the value with the most recent remote modstamp wins (lifecycle, title,
  phone, stage and close date follow the latest edit);
- ``prefer:<system>``: that system's value unless blank, else ``source_priority``;
- ``always:<system>``: that system's value, even blank;
- ``never_blank`` (default on): a blank value never overwrites a filled one.

The sandbox's ground truth is computed from these same defaults, so a change of a
connector's declaration changes the expected canonical values of the demo data.
"""

from __future__ import annotations

import copy
from typing import Any

from connectors import registry
from mapping.canonical import ObjectType

#: fields that follow the latest edit whichever system made it, per object
LATEST_FIELDS: dict[str, tuple[str, ...]] = {
    "account": ("lifecycle_stage", "parent_id"),  # re-parenting anywhere moves it everywhere
    "contact": ("lifecycle_stage", "title", "phone"),
    "opportunity": ("stage", "close_date"),
}


def default_source_priority(object_type: str | None = None) -> tuple[str, ...]:
    """The ranked connectors in rank order (name breaks a tie); with ``object_type``,
    only those that read that canonical object."""
    ranked = sorted((cls.default_rank, name) for name, cls in registry.connector_classes().items()
                    if cls.default_rank is not None and (
                        object_type is None or ObjectType(object_type) in cls.objects))
    return tuple(name for _, name in ranked)


def default_policies() -> dict[str, dict[str, Any]]:
    """``[policies]`` as they apply when unset (a fresh copy: callers may change it)."""
    classes = registry.connector_classes()
    out: dict[str, dict[str, Any]] = {}
    for ot in ObjectType:
        order = default_source_priority(ot.value)
        fields: dict[str, str] = {}
        for name in order:  # the first-ranked owner of a field wins it
            for fname in classes[name].authoritative_for.get(ot.value, ()):
                fields.setdefault(fname, f"prefer:{name}")
        for fname in LATEST_FIELDS.get(ot.value, ()):
            fields.setdefault(fname, "latest")
        out[ot.value] = {"default": "source_priority", "source_priority": list(order),
                         "never_blank": True, "fields": fields}
    return copy.deepcopy(out)
