"""What the scheduler and the CLI call: one cycle, a backfill, the nightly sweep, retries.

A cycle: pull every (connection, object) from its cursor → reconcile and plan the
dirty entities → check the blast-radius caps → push the outbox, object by object
(accounts, then contacts, then opportunities, so associations can point at records
created earlier in the same cycle). A lease per (connection, object) keeps a
backfill and a scheduled cycle from working on the same scope at once, on one
machine or several (``sync.leases``: an expiry kept alive by a heartbeat).

A system that cannot be used ends only its own part of the run, with one line:
credentials refused (401/403 after the one token refresh) or a configuration or
permission problem mark it *failed* for this run; a host that cannot be reached (or
an outage that outlasts the retries) marks it *deferred* to the next cycle. Its
planned writes stay in the outbox; the other systems go on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectorError,
    FatalError,
    QuotaExhausted,
    ResyncRequired,
    RetriableError,
    RetryPolicy,
    Unreachable,
    load_connector_class,
)
from mapping.canonical import ObjectType
from sync import logs, metrics
from sync import store as st
from sync.config import Settings
from sync.connection import Connection
from sync.engine import Engine
from sync.link import LinkHook
from sync.plan import PlanTooLarge, check_caps
from sync.pull import Puller

log = logging.getLogger(__name__)

ORDER = (ObjectType.ACCOUNT, ObjectType.CONTACT, ObjectType.OPPORTUNITY)
LEASE_TTL = 3600.0  # the old fixed lease time (runs now renew theirs: ``fleet.lease_seconds``)
Progress = Callable[[str, int], None]  # (stage label, items done)


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class _Cancelled(Exception):
    """A parallel pull stopped because another connection's pull failed."""


@dataclass
class CycleReport:
    run_id: int
    kind: str
    status: str = "running"
    pulled: dict[str, int] = field(default_factory=dict)
    # records mapped, per system: pulled minus those skipped before mapping (raw hash unchanged)
    mapped: dict[str, int] = field(default_factory=dict)
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
    failed_systems: dict[str, str] = field(default_factory=dict)  # auth/config: one line each
    deferred_systems: dict[str, str] = field(default_factory=dict)  # unreachable/outage
    retried: int = 0  # entities whose failed writes this cycle planned again
    held: dict[str, int] = field(default_factory=dict)  # ops held by governance (reason → n)
    handoffs: dict[str, int] = field(default_factory=dict)  # closed-won handoffs (state → n)
    skipped: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__.items())

    @property
    def writes(self) -> int:
        return sum(self.written.values())


def system_problem(name: str, e: BaseException) -> tuple[str, str]:
    """("failed" | "deferred", one line naming the cause) for an error that ends a
    system's part of a run."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, Unreachable):
        return "deferred", f"{name}: cannot reach the system ({text}); deferred to the next cycle"
    if isinstance(e, RetriableError):
        return "deferred", f"{name}: still failing after retries ({text}); deferred to the next cycle"
    if isinstance(e, AuthError):
        return "failed", f"{name}: credentials refused ({text}); check the connection's token or secrets"
    return "failed", f"{name}: {text}"


def build_connections(
    settings: Settings, *, budget: ApiBudget, retry: RetryPolicy | None = None,
    only: Sequence[str] | None = None, failures: dict[str, ConnectorError] | None = None,
) -> dict[str, Connection]:
    """Instantiate every configured connector (through the entry points).

    With ``failures``, a connection that cannot be built (refused credentials, host
    unreachable, CA bundle missing…) is recorded there and left out; without it the
    error propagates.
    """
    out: dict[str, Connection] = {}
    for name, cs in settings.connections.items():
        if only is not None and name not in only:
            continue
        cls = load_connector_class(cs.kind)
        try:
            ca = cs.options.get("ca_bundle")
            if ca and not os.path.isfile(str(ca)):
                raise FatalError(
                    f"connection {name!r}: ca_bundle {ca} does not exist (a relative path is "
                    "resolved against the config file's directory)"
                )
            out[name] = Connection(name, cs.kind, cls.from_settings(cs, budget=budget, retry=retry))
        except ConnectorError as e:
            if failures is None:
                raise
            failures[name] = e
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
        unavailable: Mapping[str, ConnectorError] | None = None,
        parallel_pulls: bool = True,
    ) -> None:
        self.store, self.connections, self.settings = store, dict(connections), settings
        #: pull the connections side by side (``_pull_all``); False: one after another
        self.parallel_pulls = parallel_pulls
        self._store_lock = threading.Lock()  # every pull's writing transaction, in turn
        self._report_lock = threading.Lock()  # the report, which pull threads add to
        self._cancel = threading.Event()  # set when one of the parallel pulls failed
        self._lease_sets: dict[int, Any] = {}  # run id → its ``sync.leases.LeaseSet``
        #: connections that could not be built (see ``build_connections(failures=)``):
        #: every run reports them failed or deferred and goes on without them
        self.unavailable = dict(unavailable or {})
        self.budget = budget or ApiBudget()
        self.now, self.link_hook, self.progress = now, link_hook, progress
        self.should_stop = should_stop or (lambda: False)
        from mapping import definitions
        from mapping.fieldmap import build_field_maps

        # the shared definitions of revsync.toml (None: the connectors' defaults) are the
        # ones the picklist transforms read while this engine runs
        definitions.activate(settings.definitions or definitions.defaults())

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
        """Take the free (connection, object) scopes, as every fleet worker takes them:
        leases with an expiry (``fleet.lease_seconds``) kept alive by a heartbeat, so a
        run that died on any machine frees them that long after. With a fleet
        configured, the fleet's cycle lease first: a CLI run and a fleet cycle never
        work at once."""
        from sync.leases import FLEET_CYCLE_SCOPE, LeaseSet

        leases = LeaseSet(self.store, seconds=self.settings.fleet.lease_seconds, label=f"run{report.run_id}",
                          now=self.now, is_stale=holder_is_stale)
        self._lease_sets[report.run_id] = leases
        required = [FLEET_CYCLE_SCOPE] if self.settings.fleet.enabled else []
        taken, busy = leases.acquire([(n, ot.value) for n in names for ot in objects], required)
        if required and not leases.held:
            report.skipped.append("fleet cycle: a fleet cycle or another run holds the lease")
        else:
            report.skipped.extend(f"{n}/{o}: another job holds the lease" for n, o in busy)
        return [(n, ObjectType(o)) for n, o in taken]

    def _release(self, report: CycleReport, leased: Sequence[tuple[str, ObjectType]]) -> None:
        leases = self._lease_sets.pop(report.run_id, None)
        if leases is not None:
            if leases.lost:
                log.warning("run %s: a lease expired while the run held it (the process stalled longer "
                            "than fleet.lease_seconds); another job may have taken the scope", report.run_id)
            leases.release()

    def _engine(self, run_id: int) -> Engine:
        return Engine(self.store, self.connections, self.settings.policies, now=self.now, run_id=run_id,
                      fieldmaps=self.fieldmaps)

    def _puller(self, name: str, run_id: int) -> Puller:
        conn = self.connections[name]
        opts = self.settings.connections[name].options if name in self.settings.connections else {}
        return Puller(self.store, name, conn.kind, conn.connector, now=self.now, run_id=run_id,
                      link_hook=self.link_hook, external_id_field=opts.get("external_id_field"),
                      fieldmaps=self.fieldmaps, write_lock=self._store_lock)

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
        from mapping import definitions

        # settings may have been replaced since __init__; a concrete object keeps the
        # transforms' per-value lookup cheap
        definitions.activate(self.settings.definitions or definitions.defaults())
        started = self.now()
        calls_before = {k: v["calls"] for k, v in self.budget.snapshot().items()}
        names = [n for n in self.connections if systems is None or n in systems]
        objs = [o for o in ORDER if objects is None or o in objects]
        report = self._start(kind, {"systems": names, "objects": [o.value for o in objs], "dry_run": dry_run,
                                    "since": since.isoformat() if since else None,
                                    "until": until.isoformat() if until else None})
        for name, exc in self.unavailable.items():
            if systems is None or name in systems:
                self._system_down(report, name, exc)
        leased = self._leases(report, names, objs)
        error: str | None = None
        held: set[ObjectType] = set()  # objects not reconciled this cycle (a pull did not finish)
        try:
            for ot in self._pull_all(report, names, objs, leased, since=since, until=until):
                held = self._hold_after(report, held, ot)
            deduper = self._follow_merges(report, objs)
            self._retry_due(report, objs)
            engine = self._engine(report.run_id)
            objs = [o for o in objs if o not in held]
            for ot in objs:
                holders = [n for n in names if (n, ot) in leased]
                if not holders:
                    continue  # another job holds every connection for this object
                self._resolve(report, engine, ot, holders)
                # tier 2 on the reconciled entities (names, companies, phones, addresses),
                # then the survivors of its links are re-decided and re-planned
                if deduper is not None and self._match_leased(report, deduper, ot):
                    self._resolve(report, engine, ot, holders)
            # required-field blocks and the schema pre-flight hold what they refuse
            self._gate(report, names)
            if not dry_run:
                # the whole plan is checked against the caps before anything is written
                self._check_caps(report, force)
                writable = [n for n in names if any((n, o) in leased for o in objs)]
                for ot in objs:
                    # a system that failed or is out of reach keeps its writes in the outbox
                    writable = [n for n in writable if not self._is_down(report, n)]
                    logs.phase("push", object=ot.value)
                    ps = engine.push(ot, systems=writable, on_batch=self._tick(f"push {ot.value}s"))
                    metrics.observe_push(ot.value, ps)
                    for system, n in ps.written.items():
                        report.written[system] = report.written.get(system, 0) + n
                    for system, n in ps.failed.items():
                        report.failed[system] = report.failed.get(system, 0) + n
                        report.errors += n
                    for system, why in ps.deferred.items():
                        stopped = ps.stopped_by.get(system)
                        if isinstance(stopped, (AuthError, FatalError, Unreachable)):
                            self._system_down(report, system, stopped)
                        else:
                            report.messages.append(f"{system}: writes deferred to the next cycle ({why})")
                self._handoffs(report)
                with self.store.session() as s:
                    report.pending = sum(st.pending_counts(s).values())
                if report.pending:
                    report.messages.append(f"{report.pending} write(s) still pending (retried next cycle; "
                                           "see `revsync plan`)")
            if names and objs and not leased:
                report.status = "skipped"  # another run holds every scope: this one did nothing
            else:
                report.status = "partial" if report.messages or report.skipped else "ok"
            if report.failed_systems:
                error = "; ".join(report.failed_systems.values())
                # failed for the systems named; the run as a whole fails only if none got through
                if all(self._is_down(report, n) for n in names) and not report.deferred_systems:
                    report.status = "failed"
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

    def _gate(self, report: CycleReport, names: Sequence[str]) -> None:
        """Governance before the push: hold ops a blocking required-field rule or the
        live schema refuses (``sync.governance``); release those whose reason is gone."""
        from sync.governance import gate_outbox
        from sync.preflight import Preflight

        gov = self.settings.governance
        live = [n for n in names if not self._is_down(report, n)]
        from sync.handoff import handoff_connection, queue_company_creates, replan_dependents

        cs = handoff_connection(self.connections, gov.handoff)
        if gov.handoff.enabled and cs is not None and cs.name in live:
            # a won deal's account is handed to the CS system: created there if it is not yet
            queued = queue_company_creates(self.store, cs, gov.handoff, now=self.now(), run_id=report.run_id,
                                           fieldmaps=self.fieldmaps)
            if queued:
                per = report.planned.setdefault(cs.name, {})
                per["create"] = per.get("create", 0) + len(queued)
                # its contacts were planned before the create existed: plan them again there
                # so that they are linked to the new company in this cycle, not the next
                replan_dependents(self.store, self._engine(report.run_id), cs, queued)
        pre = Preflight(self.connections) if gov.preflight else None
        gs = gate_outbox(self.store, gov, now=self.now(), run_id=report.run_id, preflight=pre, systems=live)
        report.held = dict(gs.held)
        if pre is not None:
            report.messages.extend(pre.notes)
        if gs.total_held:
            report.messages.append(f"{gs.total_held} write(s) held by governance (see `revsync plan`)")

    def _handoffs(self, report: CycleReport) -> None:
        """Closed-won handoffs to customer success (``sync.handoff``)."""
        from sync.handoff import handoff_connection, run_handoffs

        gov = self.settings.governance
        if not gov.handoff.enabled:
            return
        conn = handoff_connection(self.connections, gov.handoff)
        if conn is None or self._is_down(report, conn.name):
            return
        report.handoffs = run_handoffs(self.store, conn, gov.handoff, now=self.now(), run_id=report.run_id)

    def _resolve(self, report: CycleReport, engine: Engine, ot: ObjectType, holders: Sequence[str]) -> None:
        logs.phase("reconcile", object=ot.value)
        rs = engine.resolve(ot, write_to=holders, on_batch=self._tick(f"reconcile {ot.value}s"))
        report.conflicts += rs.conflicts
        report.errors += rs.errors
        report.deleted += rs.deleted
        for system, kinds in rs.planned.items():
            per = report.planned.setdefault(system, {})
            for k, n in kinds.items():
                per[k] = per.get(k, 0) + n

    def _follow_merges(self, report: CycleReport, objs: Sequence[ObjectType]) -> Any:
        """Link what the systems merged themselves (always: not fuzzy matching); returns
        the ``Deduper`` for tier 2, or None when matching is switched off."""
        from sync.match import Deduper

        deduper = Deduper(self.store, self.settings.dedupe, now=self.now, run_id=report.run_id,
                          policies=self.settings.policies)
        logs.phase("match")
        for ot in objs:
            report.remote_merges += deduper.follow_remote_merges(ot.value)
        return deduper if deduper.enabled else None

    def _match_new(self, report: CycleReport, deduper: Any, ot: ObjectType) -> int:
        """Tier 2 inside the cycle, after ``ot``'s entities are reconciled: entities not
        matched yet against the stored ones (or a batch run when the model is missing,
        weak or outgrown). Returns the links made; the plan of every entity folded away
        is withdrawn (its survivor is planned again)."""
        from sync.match import MATCHED_OBJECTS

        if ot.value not in MATCHED_OBJECTS:
            return 0
        dr = deduper.run_pending(ot.value)
        report.matched_links += dr.links
        report.review_queued += dr.review_added
        report.messages.extend(f"dedupe {ot.value}: {w}" for w in dr.warnings)
        for system, kinds in dr.withdrawn_ops.items():
            per = report.planned.get(system, {})
            for kind, n in kinds.items():
                if kind in per:
                    per[kind] = max(0, per[kind] - n)
        return int(dr.links)

    def _match_leased(self, report: CycleReport, deduper: Any, ot: ObjectType) -> int:
        """``_match_new`` under the matcher's lease (the one ``revsync dedupe`` and a fleet
        match task take): a cycle's tier 2 never links beside a batch dedupe. When another
        job holds it, this cycle leaves tier 2 to the next one (the entities it would have
        scored stay unmatched until then) and says so."""
        from sync.leases import LeaseSet

        leases = LeaseSet(self.store, seconds=self.settings.fleet.lease_seconds, label=f"run{report.run_id}-match",
                          now=self.now, is_stale=holder_is_stale)
        _taken, busy = leases.acquire([("match", ot.value)])
        if busy:
            report.messages.append(f"dedupe {ot.value}: another job is matching (its lease); "
                                   "tier 2 waits for the next cycle")
            return 0
        try:
            return self._match_new(report, deduper, ot)
        finally:
            leases.release()

    @staticmethod
    def _is_down(report: CycleReport, name: str) -> bool:
        return name in report.failed_systems or name in report.deferred_systems

    @staticmethod
    def _system_down(report: CycleReport, name: str, e: BaseException) -> None:
        """End ``name``'s part of this run: one line, failed (auth/config) or deferred."""
        if name in report.failed_systems or name in report.deferred_systems:
            return
        how, line = system_problem(name, e)
        (report.failed_systems if how == "failed" else report.deferred_systems)[name] = line
        report.messages.append(line)
        log.info("%s", line)  # the caller reports it (CLI: one error line; scheduler: a warning)

    @staticmethod
    def _hold_after(report: CycleReport, held: set[ObjectType], ot: ObjectType) -> set[ObjectType]:
        """A pull of ``ot`` did not finish (API quota used up): ``ot`` and the objects after it
        are neither planned nor written this cycle (their entities stay dirty), so nothing
        is created in a system before what it already holds has been read."""
        later = {o for o in ORDER if ORDER.index(o) >= ORDER.index(ot)}
        if not later <= held:
            report.messages.append(f"{', '.join(o.value for o in ORDER if o in later - held)}: "
                                   "not reconciled this cycle (a pull did not finish)")
        return held | later

    def _retry_due(self, report: CycleReport, objs: Sequence[ObjectType]) -> None:
        """Failed writes whose backoff has passed: their entities are planned again, from
        the current canonical state (a stale payload is never resent)."""
        with self.store.session() as s:
            due = st.due_write_retries(s, self.now())
            n = 0
            for ot in objs:
                ids = due.get(ot.value, [])
                st.mark_dirty(s, ot.value, ids)
                n += len(set(ids))
        if n:
            report.retried += n

    def _pull_all(self, report: CycleReport, names: Sequence[str], objs: Sequence[ObjectType],
                  leased: Sequence[tuple[str, ObjectType]], *, since: datetime | None,
                  until: datetime | None) -> list[ObjectType]:
        """Pull every leased (connection, object), each connection's objects in ``ORDER``.
        Returns the objects whose pull did not finish (a connection's API quota ran out:
        that connection's later objects are not read either; they link through its
        records, so all are read next cycle).

        With ``parallel_pulls`` (the default) and more than one connection, the
        connections are pulled side by side, one thread each (the work is mostly waiting
        on their APIs), each still reading ahead of the page it stores
        (``sync.prefetch``). Every transaction that writes is taken under one lock, so
        pages are stored one at a time, each with its cursor, as in a sequential run;
        the first error (or a stop request) ends the others after their page in flight
        and is raised here once all have stopped."""
        work = {name: [ot for ot in objs if (name, ot) in leased] for name in names}
        work = {name: todo for name, todo in work.items() if todo}
        if not self.parallel_pulls or len(work) < 2:
            # one after another: every connection's accounts, then contacts, then deals
            stopped: list[ObjectType] = []
            stalled: set[str] = set()
            for ot in objs:
                for name in work:
                    if ot not in work[name] or name in stalled or self._is_down(report, name):
                        continue
                    if not self._pull_one(report, name, ot, since=since, until=until):
                        stalled.add(name)
                        stopped.append(ot)
            return stopped
        import concurrent.futures
        import contextvars

        self._cancel.clear()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="revsync-pull") as pool:
            futures = {name: pool.submit(contextvars.copy_context().run, self._pull_system, report, name, todo,
                                         since=since, until=until) for name, todo in work.items()}
            errors: list[BaseException] = []
            for fut in concurrent.futures.as_completed(futures.values()):
                e = fut.exception()
                if e is not None:
                    self._cancel.set()  # the others stop after their page in flight
                    errors.append(e)
        self._cancel.clear()
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        if real:
            raise real[0]
        if errors:
            raise errors[0]
        # in the connections' order, as a sequential run reports them
        return [o for name in work if (o := futures[name].result()) is not None]

    def _pull_system(self, report: CycleReport, name: str, objs: Sequence[ObjectType], *,
                     since: datetime | None, until: datetime | None) -> ObjectType | None:
        """Pull ``objs`` of connection ``name`` in order; the object whose pull did not
        finish (quota), or None."""
        for ot in objs:
            if self._is_down(report, name):
                return None
            if not self._pull_one(report, name, ot, since=since, until=until):
                return ot
        return None

    def _pull_one(self, report: CycleReport, name: str, ot: ObjectType, *, since: datetime | None,
                  until: datetime | None) -> bool:
        logs.phase("pull", system=name, object=ot.value)
        puller = self._puller(name, report.run_id)
        tick = self._tick(f"pull {name} {ot.value}s")
        cancel = self._cancel

        def on_page(n: int) -> None:
            tick(n)
            if cancel.is_set():
                raise _Cancelled(f"pull {name} {ot.value}s: another connection's pull failed")

        try:
            ps = puller.pull(ot, since=since, until=until, move_cursor=since is None, on_page=on_page)
            ds = puller.pull_deleted(ot) if since is None else None
        except QuotaExhausted as e:
            with self._report_lock:
                report.messages.append(f"{name}: {e}; resuming next cycle")
            return False
        except ResyncRequired as e:
            with self._report_lock:
                report.messages.append(f"{name}/{ot.value}: {e}")
            return True  # the records were read; only the delete feed needs a resync
        except (AuthError, FatalError, RetriableError) as e:
            with self._report_lock:
                self._system_down(report, name, e)
            return True  # down for this run (reported); the other systems go on
        with self._report_lock:
            self._count_pull(report, name, ot, ps, ds)
        return True

    def _count_pull(self, report: CycleReport, name: str, ot: ObjectType, ps: Any, ds: Any) -> None:
        report.pulled[name] = report.pulled.get(name, 0) + ps.pulled
        report.mapped[name] = report.mapped.get(name, 0) + ps.mapped
        metrics.observe_pull(name, ot.value, ps.pulled)
        report.links += ps.links
        report.new_entities += ps.new_entities
        report.errors += ps.errors
        if ds is not None:
            report.deleted += ds.deleted
            report.messages.extend(ds.notes)

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
        for name, exc in self.unavailable.items():
            self._system_down(report, name, exc)
        leased = self._leases(report, list(self.connections), list(ORDER))
        try:
            for name, ot in leased:
                if self._is_down(report, name):
                    continue
                try:
                    ds = self._puller(name, report.run_id).pull_deleted(ot, full_listing=True)
                except (AuthError, FatalError, RetriableError, QuotaExhausted) as e:
                    self._system_down(report, name, e)
                    continue
                report.deleted += ds.deleted
            engine = self._engine(report.run_id)
            for ot in ORDER:
                engine.resolve(ot, write_to=[])
            report.status = "partial" if report.messages else "ok"
        finally:
            self._release(report, leased)
        return self._finish(report, started, calls_before)

    def run_retry(self, *, ids: Sequence[int] | None = None, push: bool = True,
                  scheduled: bool = False) -> CycleReport:
        """Failed writes (all, or the error-ledger ids given, parked ones too) are due now;
        a cycle then pulls, plans their entities again from the current canonical state
        (so a value fixed at the source is what is sent) and pushes. ``push=False``:
        only make them due (the next cycle retries them). ``scheduled`` (serve's retry
        job): nothing is made due; a cycle runs if some failed write's backoff is over."""
        with self.store.session() as s:
            n = (st.count_due_write_retries(s, self.now()) if scheduled
                 else st.reopen_write_errors(s, ids, self.now()))
        if not push or not n:
            report = self._start("retry", {"ids": list(ids) if ids else None})
            report.messages.append(f"{n} failed write(s) due for retry")
            report.status = "ok"
            return self._finish(report, self.now(), {k: v["calls"] for k, v in self.budget.snapshot().items()})
        report = self.run_cycle(kind="retry")
        report.messages.insert(0, f"retried {n} failed write(s)")
        if report.status == "ok" and report.failed:
            report.status = "partial"
        return report
