"""Fleet-mode helpers that need no Celery: a resolve over one canonical-id range, the
lock that lets pulls of several systems run side by side, the scheduler's leader
lease, and the shared figures ``revsync status`` shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from mapping.canonical import ObjectType
from sync import store as st
from sync.engine import RESOLVE_BATCH, Engine, ResolveStats
from sync.leases import new_holder, try_acquire
from sync.pull import Puller, gc_paused

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


#: the PostgreSQL advisory lock (a 64-bit key) every pull takes to store a page
PAGE_WRITE_LOCK = 0x7265_7673_796E_6301  # "revsync" + 1


def page_write_lock(s: Any) -> None:
    """Wait for the page-write lock in ``s``'s transaction (released when it ends,
    commit, rollback or a dead connection alike). On SQLite, whose writers already take
    turns, it is a no-op."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PAGE_WRITE_LOCK})


def serialize_page_writes(puller: Puller) -> Puller:
    """Make ``puller`` store each page under ``page_write_lock``.

    Pulls of different systems run at once in fleet mode (one task per system, each
    on its own queue), and tier-1 linking reads the entities stored so far to decide
    whether a fresh record joins one or starts a new one: two pages linked side by
    side could each start an entity for the same key. The lock is taken before the
    linking reads, so pages are linked one at a time, as in one process, while the
    API reads (the slow part, on the puller's read-ahead thread) and the mapping stay
    in parallel."""
    upsert = puller._upsert

    def locked(s: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        page_write_lock(s)
        return upsert(s, *args, **kwargs)

    puller._upsert = locked  # type: ignore[method-assign]
    return puller


def analyze(store: st.Store) -> None:
    """Refresh PostgreSQL's planner statistics of the identity map and entity tables
    (a no-op on SQLite). A fleet's first pull fills them faster than autovacuum looks:
    without statistics the planner takes tens of thousands of rows for a handful and
    picks nested loops over whole tables."""
    if store.engine.dialect.name != "postgresql":
        return
    names = ", ".join(sorted({st.ExternalRefRow.__tablename__,
                              *(t.__tablename__ for t in st.ENTITY_TABLES.values())}))
    with store.engine.connect() as c:
        c.execute(text(f"ANALYZE {names}"))
        c.commit()


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
