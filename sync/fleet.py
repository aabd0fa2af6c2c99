"""Fleet-mode helpers that need no Celery: a resolve over one canonical-id range, the
scheduler's leader lease, and the shared figures ``revsync status`` shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from mapping.canonical import ObjectType
from sync import store as st
from sync.engine import RESOLVE_BATCH, Engine, ResolveStats
from sync.leases import new_holder, try_acquire
from sync.pull import gc_paused

LEADER_SCOPE = ("scheduler", "leader")


def resolve_range(engine: Engine, object_type: ObjectType, lo: str, hi: str, *,
                  write_to: Sequence[str] | None = None) -> ResolveStats:
    """``Engine.resolve`` for the dirty entities whose id is in ``[lo, hi)``: the same
    batch (plan and dirty flag in one transaction), so shards can run side by side."""
    stats = ResolveStats()
    ot = object_type.value
    targets = [n for n in engine.connections if write_to is None or n in write_to]
    # ids are UUID text: every id starting with ``lo`` sorts after ``lo`` itself
    after = lo
    while True:
        with gc_paused(), engine.store.session() as s:
            rows = [r for r in st.dirty_entities(s, ot, RESOLVE_BATCH, after) if r.id < hi]
            if not rows:
                break
            after = rows[-1].id
            engine.resolve_batch(s, ot, rows, targets, stats)
    return stats


class Leader:
    """The scheduler instance that acts: whoever holds the leader lease (renewed by
    every tick of the one that has it; taken by a standby once it expires)."""

    def __init__(self, store: st.Store, seconds: float, *, holder: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.seconds, self.now = store, seconds, now
        self.holder = holder or new_holder("scheduler")

    def tick(self) -> bool:
        """Take or renew the lease; True while this instance is the leader."""
        try:
            return try_acquire(self.store, LEADER_SCOPE, self.holder, self.seconds, self.now)
        except Exception:  # the database is out of reach: act as a standby
            return False


def shared_budget_figures(settings: Any) -> dict[str, Any]:
    """Today's API calls per system as every worker counts them (fleet mode), or {}."""
    if not settings.fleet.enabled:
        return {}
    from sync.budget import SharedBudget, budget_limits

    return SharedBudget(settings.fleet.broker_url, budget_limits(settings.connections)).shared()
