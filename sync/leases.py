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
``("match", object)``, ``("retry", "all")`` and the scheduler ``("scheduler", "leader")``.
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
