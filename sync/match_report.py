"""What one tier-2 run did (``Deduper`` and the opportunity scorer both fill it in).

A module of its own, light to import, so ``sync.match`` and
``sync.dedupe_opportunity`` share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DedupeReport:
    object_type: str
    mode: str  # batch | incremental
    policy: str = "link"  # what the links are recorded as: link | merge
    records: int = 0
    clusters: int = 0
    links: int = 0  # entities folded into another
    review_added: int = 0
    review_open: int = 0
    skipped_rejected: int = 0
    warnings: list[str] = field(default_factory=list)
    merge_ids: list[int] = field(default_factory=list)
    planned_clusters: list[list[str]] = field(default_factory=list)  # dry run
    trained: bool = False  # a model was (re)trained by this run
    retrain_reason: str | None = None
    withdrawn_ops: dict[str, dict[str, int]] = field(default_factory=dict)  # system → kind → n

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


__all__ = ["DedupeReport"]
