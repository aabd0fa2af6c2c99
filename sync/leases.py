"""Leases that work across machines: a row per scope with an expiry, kept alive by a
heartbeat while its holder works.

A holder takes a scope with one atomic statement (insert it, or take it over when
the lease there has expired or is already its own), then a heartbeat thread pushes
the expiry forward every third of the lease time. A holder that dies, on this host or
any other, stops renewing: its scopes are free ``seconds`` later at most, never after
an hour. Clocks are the hosts' own (keep them in NTP sync); the database's lease
table is the one place every machine looks (SQLite and PostgreSQL alike).

Scopes are (system, object) pairs of the ``lease`` table: a pull takes
``(connection, object)`` (the same key a CLI backfill takes), other units take
``("resolve:<object>", shard)``, ``("push:<connection>", object)``,
``("match", object)`` (a fleet's match task, ``revsync dedupe`` and a single-process
cycle's tier 2 alike), ``("retry", "all")`` and the scheduler ``("scheduler", "leader")``.
A fleet cycle holds ``("cycle", "fleet")`` from its start to its end; a CLI ``sync`` or
``backfill`` on a store with a fleet configured takes it too (``LeaseSet``), so the
two never work at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sync import store as st

log = logging.getLogger(__name__)

Scope = tuple[str, str]
#: held by a fleet cycle from start to end, and by a CLI run when a fleet is configured
FLEET_CYCLE_SCOPE: Scope = ("cycle", "fleet")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_holder(label: str = "") -> str:
    """A holder id unique across machines: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}{':' + label if label else ''}"[:120]


class LeaseBusy(Exception):
    """Another holder has a live lease on the scope."""


def try_acquire(store: st.Store, scope: Scope, holder: str, seconds: float,
                now: Callable[[], datetime] = utcnow) -> bool:
    """Take ``scope`` for ``holder`` if it is free, expired or already ``holder``'s."""
    t: Any = st.LeaseRow.__table__
    at = now()
    expires = at + timedelta(seconds=seconds)
    system, obj = scope
    ins = pg_insert if store.engine.dialect.name == "postgresql" else sqlite_insert
    with store.session() as s:
        res = s.execute(ins(t).values(system=system, object_type=obj, holder=holder, acquired_at=at,
                                      expires_at=expires).on_conflict_do_nothing())
        if res.rowcount == 1:  # type: ignore[attr-defined]
            return True
        res = s.execute(update(t).where(t.c.system == system, t.c.object_type == obj,
                                        or_(t.c.holder == holder, t.c.expires_at < at))
                        .values(holder=holder, acquired_at=at, expires_at=expires))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def renew(store: st.Store, scopes: Sequence[Scope], holder: str, seconds: float,
          now: Callable[[], datetime] = utcnow) -> int:
    """Push the expiry of ``holder``'s leases forward; returns how many it still holds."""
    t: Any = st.LeaseRow.__table__
    n = 0
    with store.session() as s:
        for system, obj in scopes:
            res = s.execute(update(t).where(t.c.system == system, t.c.object_type == obj, t.c.holder == holder)
                            .values(expires_at=now() + timedelta(seconds=seconds)))
            n += res.rowcount  # type: ignore[attr-defined]
    return n


def release(store: st.Store, scopes: Sequence[Scope], holder: str) -> None:
    t: Any = st.LeaseRow.__table__
    with store.session() as s:
        for system, obj in scopes:
            s.execute(t.delete().where(t.c.system == system, t.c.object_type == obj, t.c.holder == holder))


class LeaseSet:
    """The scopes of ``wanted`` that are free, renewed by a heartbeat until ``release``
    (what a CLI ``sync``/``backfill`` takes: it works on the scopes it got and reports
    the others). ``required`` scopes come first: when one of them is held elsewhere,
    nothing is taken. ``is_stale(holder)`` may say a holder is gone before its lease
    expires (a dead process of this host)."""

    def __init__(self, store: st.Store, *, seconds: float, label: str = "",
                 now: Callable[[], datetime] = utcnow, is_stale: Callable[[str], bool] | None = None) -> None:
        self.store, self.seconds, self.now, self.is_stale = store, float(seconds), now, is_stale
        self.holder = new_holder(label)
        self.held: list[Scope] = []
        self._lease: Lease | None = None

    def _take(self, scope: Scope) -> bool:
        if try_acquire(self.store, scope, self.holder, self.seconds, self.now):
            return True
        if self.is_stale is None:
            return False
        t: Any = st.LeaseRow.__table__
        with self.store.session() as s:
            other = s.execute(t.select().where(t.c.system == scope[0], t.c.object_type == scope[1])).first()
            if other is None or not self.is_stale(other.holder):
                return False
            at = self.now()
            res = s.execute(update(t).where(t.c.system == scope[0], t.c.object_type == scope[1],
                                            t.c.holder == other.holder)
                            .values(holder=self.holder, acquired_at=at, expires_at=at + timedelta(seconds=self.seconds)))
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def acquire(self, wanted: Sequence[Scope], required: Sequence[Scope] = ()) -> tuple[list[Scope], list[Scope]]:
        """Take what is free: (taken, busy). With a ``required`` scope busy, none is taken."""
        for scope in required:
            if not self._take(scope):
                release(self.store, self.held, self.holder)
                self.held = []
                return [], [scope, *wanted]
            self.held.append(scope)
        taken: list[Scope] = []
        busy: list[Scope] = []
        for scope in wanted:
            (taken if self._take(scope) else busy).append(scope)
        self.held.extend(taken)
        if self.held:
            lease = Lease(self.store, self.held, seconds=self.seconds, holder=self.holder, now=self.now)
            lease._held = list(self.held)
            lease._start_heartbeat()
            self._lease = lease
        return taken, busy

    @property
    def lost(self) -> bool:
        """A renewal found a lease gone (the process stalled longer than ``seconds``)."""
        return self._lease is not None and self._lease.lost.is_set()

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        else:
            release(self.store, self.held, self.holder)
        self.held = []


class Lease:
    """All of ``scopes`` or none, renewed by a heartbeat until the block ends.

    ``with Lease(store, [("salesforce", "account")], seconds=60): ...`` raises
    ``LeaseBusy`` when a scope is held by someone else. ``lost`` is set if a renewal
    finds the lease gone (it expired: the process stalled longer than ``seconds``).
    """

    def __init__(self, store: st.Store, scopes: Sequence[Scope], *, seconds: float = 60.0,
                 holder: str | None = None, now: Callable[[], datetime] = utcnow) -> None:
        self.store, self.scopes, self.seconds, self.now = store, list(scopes), float(seconds), now
        self.holder = holder or new_holder()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[Scope] = []

    def acquire(self) -> None:
        for scope in self.scopes:
            if not try_acquire(self.store, scope, self.holder, self.seconds, self.now):
                release(self.store, self._held, self.holder)
                self._held = []
                raise LeaseBusy(f"{scope[0]}/{scope[1]}: another worker holds the lease")
            self._held.append(scope)
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="revsync-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if renew(self.store, self._held, self.holder, self.seconds, self.now) < len(self._held):
                    self.lost.set()
                    log.warning("lease %s lost (expired before it was renewed)", self._held)
            except Exception:  # a database blip: the next beat tries again
                log.info("lease renewal failed", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            release(self.store, self._held, self.holder)
        finally:
            self._held = []

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
