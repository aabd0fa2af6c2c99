"""Resolve and push: the stages after pull, composed for one run.

``resolve`` takes entities a pull marked dirty, decides every field by policy
(``sync.reconcile``), records provenance, and writes the resulting ops for every
connection to the outbox (``sync.plan``) — all in one transaction per batch, and
clears the dirty flag in the same transaction, so a crash at any point leaves work
to redo, never work lost. ``push`` drains the outbox (``sync.push``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from mapping.canonical import ObjectType
from mapping.fieldmap import to_entity
from sync import store as st
from sync.connection import Connection
from sync.plan import Planner
from sync.push import Pusher, PushStats
from sync.reconcile import FieldPolicy, Reconciler, ResolveStats
from sync.views import gc_paused

RESOLVE_BATCH = 500


class Engine:
    """Reconcile, plan and push for a set of connections."""

    def __init__(
        self,
        store: st.Store,
        connections: Mapping[str, Connection],
        policies: Mapping[str, Mapping[str, Any]],
        *,
        now: Callable[[], datetime],
        run_id: int | None = None,
        fieldmaps: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self.store, self.connections, self.now, self.run_id = store, connections, now, run_id
        self.fieldmaps = fieldmaps
        self.policies = {ot: FieldPolicy.from_config(p) for ot, p in policies.items()}
        self.reconciler = Reconciler(self.policy, now=now, run_id=run_id)
        self.planner = Planner(connections, self.policy, now=now, run_id=run_id, fieldmaps=fieldmaps)
        self.pusher = Pusher(store, connections, now=now, run_id=run_id, fieldmaps=fieldmaps)

    def policy(self, object_type: str) -> FieldPolicy:
        return self.policies.get(object_type) or FieldPolicy()

    def resolve(
        self, object_type: ObjectType, *, write_to: Sequence[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ResolveStats:
        """Reconcile and plan every dirty entity of ``object_type``."""
        stats = ResolveStats()
        ot = object_type.value
        targets = [n for n in self.connections if write_to is None or n in write_to]
        after = ""
        while True:
            with gc_paused(), self.store.session() as s:
                rows = st.dirty_entities(s, ot, RESOLVE_BATCH, after)
                if not rows:
                    break
                after = rows[-1].id
                with s.no_autoflush:  # one flush per batch: inserts go out in bulk
                    self.planner.outbox = []
                    try:
                        batch = self.reconciler.reconcile_batch(s, ot, rows, stats)
                        self.planner.plan_batch(s, ot, batch, targets, stats)
                        st.insert_outbox(s, self.planner.outbox)
                    finally:
                        self.planner.outbox = None
            if on_batch:
                on_batch(len(rows))
        return stats

    def push(self, object_type: ObjectType, *, systems: Sequence[str] | None = None,
             on_batch: Callable[[int], None] | None = None) -> PushStats:
        """Drain the outbox for ``object_type`` (all connections, or ``systems``)."""
        return self.pusher.push(object_type, systems=systems, on_batch=on_batch)

    def pending(self) -> dict[tuple[str, str], int]:
        with self.store.session() as s:
            return st.pending_counts(s)


__all__ = ["Connection", "Engine", "PushStats", "ResolveStats", "to_entity"]
