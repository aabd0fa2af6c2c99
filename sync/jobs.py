"""What the scheduler and the CLI call: one cycle, a backfill, the nightly sweep, retries.

A cycle: pull every (connection, object) from its cursor → reconcile and plan the
dirty entities → check the blast-radius caps → push the outbox, object by object
(accounts, then contacts, then opportunities, so associations can point at records
created earlier in the same cycle). A lease per (connection, object) keeps a
backfill and a scheduled cycle from working on the same scope at once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    ApiBudget,
    QuotaExhausted,
    ResyncRequired,
    RetryPolicy,
    load_connector_class,
)
from mapping.canonical import ObjectType
from sync import logs, metrics
from sync import store as st
from sync.config import Settings
from sync.engine import Connection, Engine
from sync.plan import PlanTooLarge, check_caps
from sync.pull import LinkHook, Puller

log = logging.getLogger(__name__)

ORDER = (ObjectType.ACCOUNT, ObjectType.CONTACT, ObjectType.OPPORTUNITY)
LEASE_TTL = 3600.0
Progress = Callable[[str, int], None]  # (stage label, items done)


def utcnow() -> datetime:
    return datetime.now(UTC)


def holder_id(run_id: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def holder_is_stale(holder: str) -> bool:
    """A lease held by a process of this host that no longer runs is stale."""
    try:
        host, pid, _ = holder.split(":", 2)
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError, OSError):
        return False
    return False


class StopRequested(Exception):
    """A stop (SIGTERM) was asked for; raised after the page in flight is committed."""


@dataclass
class CycleReport:
    run_id: int
    kind: str
    status: str = "running"
    pulled: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    planned: dict[str, dict[str, int]] = field(default_factory=dict)
    entities: dict[str, int] = field(default_factory=dict)
    links: int = 0
    matched_links: int = 0  # tier 2: entities folded into another by the matcher
    remote_merges: int = 0  # entities linked because a system merged their records
    review_queued: int = 0
    new_entities: int = 0
    conflicts: int = 0
    errors: int = 0
    deleted: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    pending: int = 0  # ops left in the outbox after the push (deferred or waiting)
    skipped: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__.items())

    @property
    def writes(self) -> int:
        return sum(self.written.values())


def build_connections(
    settings: Settings, *, budget: ApiBudget, retry: RetryPolicy | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Connection]:
    """Instantiate every configured connector (through the entry points)."""
    out: dict[str, Connection] = {}
    for name, cs in settings.connections.items():
        if only is not None and name not in only:
            continue
        cls = load_connector_class(cs.kind)
        out[name] = Connection(name, cs.kind, cls.from_settings(cs, budget=budget, retry=retry))
    return out


class Runner:
    """Runs jobs against one store and a set of connections."""

    def __init__(
        self,
        store: st.Store,
        connections: Mapping[str, Connection],
        settings: Settings,
        *,
        budget: ApiBudget | None = None,
        now: Callable[[], datetime] = utcnow,
        link_hook: LinkHook | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.store, self.connections, self.settings = store, dict(connections), settings
        self.budget = budget or ApiBudget()
        self.now, self.link_hook, self.progress = now, link_hook, progress
        self.should_stop = should_stop or (lambda: False)
        from mapping.fieldmap import build_field_maps

        # the default field maps with revsync.toml's [mapping] overrides (validated at load)
        self.fieldmaps = build_field_maps(settings.mapping) if settings.mapping else None

    # ------------------------------------------------------------------ helpers

    def _tick(self, label: str) -> Callable[[int], None]:
        """Called after each committed page/batch: reports progress, honours a stop request."""
        prog, stop = self.progress, self.should_stop

        def tick(n: int) -> None:
            if prog is not None:
                prog(label, n)
            if stop():
                raise StopRequested(f"stop requested during {label}")

        return tick

    def _start(self, kind: str, scope: dict[str, Any]) -> CycleReport:
        with self.store.session() as s:
            run_id = st.start_run(s, kind, scope, self.now())
        logs.bind(run_id=run_id, system=None, object=None, phase=kind)
        return CycleReport(run_id=run_id, kind=kind)

    def _finish(self, report: CycleReport, started: datetime, calls_before: dict[str, int],
                error: str | None = None) -> CycleReport:
        now = self.now()
        report.seconds = round((now - started).total_seconds(), 3)
        snap = self.budget.snapshot()
        with self.store.session() as s:
            for system, data in snap.items():
                delta = data["calls"] - calls_before.get(system, 0)
                report.api_calls[system] = delta
                if delta or data.get("limit") is not None:
                    st.add_api_usage(s, system, delta, now, data.get("limit"), data.get("remaining"))
            report.entities = st.entity_counts(s)
            st.finish_run(s, report.run_id, report.status, report.as_dict(), now, error)
        metrics.observe_cycle(report)
        return report

    def _leases(self, report: CycleReport, names: Sequence[str], objects: Sequence[ObjectType]) -> list[tuple[str, ObjectType]]:
        got: list[tuple[str, ObjectType]] = []
        holder = holder_id(report.run_id)
        for name in names:
            for ot in objects:
                with self.store.session() as s:
                    ok = st.acquire_lease(s, name, ot.value, holder, self.now(), LEASE_TTL, holder_is_stale)
                if ok:
                    got.append((name, ot))
                else:
                    report.skipped.append(f"{name}/{ot.value}: another job holds the lease")
        return got

    def _release(self, report: CycleReport, leased: Sequence[tuple[str, ObjectType]]) -> None:
        holder = holder_id(report.run_id)
        with self.store.session() as s:
            for name, ot in leased:
                st.release_lease(s, name, ot.value, holder)

    def _engine(self, run_id: int) -> Engine:
        return Engine(self.store, self.connections, self.settings.policies, now=self.now, run_id=run_id,
                      fieldmaps=self.fieldmaps)

    def _puller(self, name: str, run_id: int) -> Puller:
        conn = self.connections[name]
        opts = self.settings.connections[name].options if name in self.settings.connections else {}
        return Puller(self.store, name, conn.kind, conn.connector, now=self.now, run_id=run_id,
                      link_hook=self.link_hook, external_id_field=opts.get("external_id_field"),
                      fieldmaps=self.fieldmaps)

    # ------------------------------------------------------------------ jobs

    def run_cycle(
        self,
        *,
        systems: Sequence[str] | None = None,
        objects: Sequence[ObjectType] | None = None,
        dry_run: bool = False,
        force: bool = False,
        kind: str = "cycle",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> CycleReport:
        """One incremental cycle (or, with ``since``, a backfill that keeps the cursor)."""
        started = self.now()
        calls_before = {k: v["calls"] for k, v in self.budget.snapshot().items()}
        names = [n for n in self.connections if systems is None or n in systems]
        objs = [o for o in ORDER if objects is None or o in objects]
        report = self._start(kind, {"systems": names, "objects": [o.value for o in objs], "dry_run": dry_run,
                                    "since": since.isoformat() if since else None,
                                    "until": until.isoformat() if until else None})
        leased = self._leases(report, names, objs)
        error: str | None = None
        try:
            for ot in objs:
                for name in names:
                    if (name, ot) not in leased:
                        continue
                    self._pull_one(report, name, ot, since=since, until=until)
            self._match_new(report, objs, started)
            engine = self._engine(report.run_id)
            for ot in objs:
                holders = [n for n in names if (n, ot) in leased]
                if not holders:
                    continue  # another job holds every connection for this object
                logs.phase("reconcile", object=ot.value)
                rs = engine.resolve(ot, write_to=holders, on_batch=self._tick(f"reconcile {ot.value}s"))
                report.conflicts += rs.conflicts
                report.errors += rs.errors
                report.deleted += rs.deleted
                for system, kinds in rs.planned.items():
                    per = report.planned.setdefault(system, {})
                    for k, n in kinds.items():
                        per[k] = per.get(k, 0) + n
            if not dry_run:
                # the whole plan is checked against the caps before anything is written
                self._check_caps(report, force)
                writable = [n for n in names if any((n, o) in leased for o in objs)]
                for ot in objs:
                    logs.phase("push", object=ot.value)
                    ps = engine.push(ot, systems=writable, on_batch=self._tick(f"push {ot.value}s"))
                    metrics.observe_push(ot.value, ps)
                    for system, n in ps.written.items():
                        report.written[system] = report.written.get(system, 0) + n
                    for system, n in ps.failed.items():
                        report.failed[system] = report.failed.get(system, 0) + n
                        report.errors += n
                    for system, why in ps.deferred.items():
                        report.messages.append(f"{system}: writes deferred to the next cycle ({why})")
                with self.store.session() as s:
                    report.pending = sum(st.pending_counts(s).values())
                if report.pending:
                    report.messages.append(f"{report.pending} write(s) still pending (retried next cycle; "
                                           "see `revsync plan`)")
            if names and objs and not leased:
                report.status = "skipped"  # another run holds every scope: this one did nothing
            else:
                report.status = "partial" if report.messages or report.skipped else "ok"
        except PlanTooLarge as e:
            report.status = "stopped"
            report.messages.append(f"plan stopped: {e}")
            error = str(e)
        except StopRequested as e:
            report.status = "stopped"
            report.messages.append(str(e))
        except Exception as e:
            report.status = "failed"
            error = f"{type(e).__name__}: {e}"
            self._finish(report, started, calls_before, error)
            raise
        finally:
            self._release(report, leased)
        return self._finish(report, started, calls_before, error)

    def _match_new(self, report: CycleReport, objs: Sequence[ObjectType], started: datetime) -> None:
        """Tier 2 inside the cycle: entities not matched yet, against the stored ones."""
        from sync.matching import MATCHED_OBJECTS, Deduper

        deduper = Deduper(self.store, self.settings.dedupe, now=self.now, run_id=report.run_id,
                          policies=self.settings.policies)
        logs.phase("match")
        for ot in objs:
            # merges made in the systems themselves: always followed (not fuzzy matching)
            report.remote_merges += deduper.follow_remote_merges(ot.value)
        if not deduper.enabled:
            return
        for ot in objs:
            if ot.value not in MATCHED_OBJECTS:
                continue
            dr = deduper.run_pending(ot.value)
            report.matched_links += dr.links
            report.review_queued += dr.review_added
            report.messages.extend(f"dedupe {ot.value}: {w}" for w in dr.warnings)

    def _pull_one(self, report: CycleReport, name: str, ot: ObjectType, *, since: datetime | None,
                  until: datetime | None) -> None:
        logs.phase("pull", system=name, object=ot.value)
        puller = self._puller(name, report.run_id)
        try:
            ps = puller.pull(ot, since=since, until=until, move_cursor=since is None,
                             on_page=self._tick(f"pull {name} {ot.value}s"))
            ds = puller.pull_deleted(ot) if since is None else None
        except QuotaExhausted as e:
            report.messages.append(f"{name}: {e}; resuming next cycle")
            return
        except ResyncRequired as e:
            report.messages.append(f"{name}/{ot.value}: {e}")
            return
        report.pulled[name] = report.pulled.get(name, 0) + ps.pulled
        metrics.observe_pull(name, ot.value, ps.pulled)
        report.links += ps.links
        report.new_entities += ps.new_entities
        report.errors += ps.errors
        if ds is not None:
            report.deleted += ds.deleted

    def _check_caps(self, report: CycleReport, force: bool) -> None:
        if force:
            return
        with self.store.session() as s:
            counts = st.pending_counts(s)
        per_kind: dict[str, int] = {}
        for (_system, kind), n in counts.items():
            per_kind[kind] = per_kind.get(kind, 0) + n
        lim = self.settings.limits
        caps = {"create": lim.max_creates, "update": lim.max_updates, "delete": lim.max_deletes,
                "merge": lim.max_merges}
        violations = check_caps(per_kind, caps)
        if violations:
            raise PlanTooLarge(violations)

    def run_backfill(self, system: str, *, objects: Sequence[ObjectType] | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     force: bool = False) -> CycleReport:
        """Re-pull a range for one connection without moving its cursor backwards."""
        start = since or datetime(1970, 1, 1, tzinfo=UTC)
        return self.run_cycle(systems=[system], objects=objects, kind="backfill", since=start, until=until,
                              force=force)

    def run_sweep(self) -> CycleReport:
        """Nightly: compare full id listings with the identity map to find hard deletes."""
        started = self.now()
        calls_before = {k: v["calls"] for k, v in self.budget.snapshot().items()}
        report = self._start("sweep", {})
        leased = self._leases(report, list(self.connections), list(ORDER))
        try:
            for name, ot in leased:
                ds = self._puller(name, report.run_id).pull_deleted(ot, full_listing=True)
                report.deleted += ds.deleted
            engine = self._engine(report.run_id)
            for ot in ORDER:
                engine.resolve(ot, write_to=[])
            report.status = "ok"
        finally:
            self._release(report, leased)
        return self._finish(report, started, calls_before)

    def run_retry(self, *, ids: Sequence[int] | None = None, push: bool = True) -> CycleReport:
        """Re-queue failed outbox ops (all, or the error-ledger ids given) and push them."""
        started = self.now()
        calls_before = {k: v["calls"] for k, v in self.budget.snapshot().items()}
        report = self._start("retry", {"ids": list(ids) if ids else None})
        with self.store.session() as s:
            n = st.requeue_failed(s, ids, self.now())
        report.messages.append(f"re-queued {n} failed write(s)")
        if push and n:
            engine = self._engine(report.run_id)
            for ot in ORDER:
                ps = engine.push(ot)
                metrics.observe_push(ot.value, ps)
                for system, k in ps.written.items():
                    report.written[system] = report.written.get(system, 0) + k
                for system, k in ps.failed.items():
                    report.failed[system] = report.failed.get(system, 0) + k
        report.status = "ok" if not report.failed else "partial"
        return self._finish(report, started, calls_before)
