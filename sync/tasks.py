"""Fleet mode: the units of a cycle as Celery tasks, run by ``revsync worker`` anywhere.

A cycle is one Celery canvas (``cycle_canvas``), enqueued by the one active scheduler:

    pull         per connection, its objects in order (accounts, contacts, opportunities),
                 on the connection's own queue; the connections side by side
    prepare      planner statistics for the pulled rows (PostgreSQL), follow the systems'
                 own merges, make due failed writes dirty again
    resolve      per object: canonical-id shards in parallel, then tier-2 matching
    caps         the whole plan against the blast-radius caps
    push         per object: one task per connection (its own queue)
    finish       the run's row: status and counts

Every task is idempotent and safe to run twice: a pull commits each page with its
cursor, a resolve batch clears the dirty flag in the transaction that writes its
plan, a push deletes an outbox row only with its result recorded, and writes are
upserts keyed by the revsync id. Tasks are acknowledged late (after they end) and
rejected when their worker dies, so a killed worker's task is delivered again:
at once when only the pool process died, after ``fleet.visibility_timeout`` when
the whole machine did. Each takes a lease (``sync.leases``) on every scope it
touches; a redelivered task waits for a dead holder's lease to expire.

Pull and push tasks go to a queue per connection (``revsync.<connection>``) so a
slow API does not starve the others: the pulls of the connections are separate chains
run at once, and a page is linked to entities under one PostgreSQL advisory lock
(``sync.fleet.serialize_page_writes``) so that two systems' pages never both start an
entity for the same key. The rest go to ``revsync``. The API budget is
``sync.budget.SharedBudget`` (Redis), honoured by every worker.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Celery, chain, group
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init

from mapping.canonical import ObjectType
from sync import config as cfg
from sync import logs
from sync import store as st
from sync.leases import FLEET_CYCLE_SCOPE, Lease, LeaseBusy, release, renew, try_acquire

log = logging.getLogger(__name__)

ORDER = (ObjectType.ACCOUNT, ObjectType.CONTACT, ObjectType.OPPORTUNITY)
DEFAULT_QUEUE = "revsync"
CYCLE_SCOPE = FLEET_CYCLE_SCOPE
RUN_KEY = "revsync:run:{}"
RUN_TTL = 7 * 86400
#: a task whose scope is leased elsewhere tries again this many times (lease waits)
LEASE_RETRIES = 60

app = Celery("revsync")
app.conf.update(
    task_acks_late=True,  # acknowledged after the task ends: a dead worker's task is redelivered
    task_reject_on_worker_lost=True,  # a killed pool process: requeued at once, not failed
    worker_prefetch_multiplier=1,  # a worker holds no more than it runs (long tasks)
    task_serializer="json", result_serializer="json", accept_content=["json"],
    result_expires=86400,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Redis out of reach: a worker logs it and keeps trying (its backoff grows to 30 s)
    # instead of giving up after 100 tries; it works again as soon as Redis is back
    broker_connection_max_retries=None,
)


@worker_init.connect
def _preload(**_: Any) -> None:
    """Import tier-2 matching (splink, DuckDB: seconds of imports) once in the worker's
    main process, before its pool forks: a match task then starts at once instead of
    spending that much of its time limit on imports."""
    import sync.dedupe
    import sync.dedupe_models  # noqa: F401


def queue_for(connection: str) -> str:
    return f"{DEFAULT_QUEUE}.{connection}"


def restore_interval(visibility_timeout: int) -> int:
    """Seconds between two looks for unacknowledged tasks past the visibility timeout."""
    return max(1, min(10, visibility_timeout // 10))


def configure(settings: cfg.Settings) -> Celery:
    """Point the app at the configured broker, with the limits that go together."""
    f = settings.fleet
    transport = {
        "visibility_timeout": f.visibility_timeout,
        # how soon a task whose worker died (unacknowledged for a visibility timeout)
        # is handed out again: every worker looks every tenth of the timeout (1 to 10
        # s). kombu's default looks every 10 s but scans only every tenth look, so a
        # dead worker's task would wait up to ~100 s past the timeout
        "unacked_restore_interval": restore_interval(f.visibility_timeout),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        broker_url=f.broker_url,
        result_backend=f.result_backend or f.broker_url,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        task_time_limit=f.task_time_limit,
        task_soft_time_limit=int(f.task_time_limit * 0.9),
        task_default_queue=DEFAULT_QUEUE,
    )
    return app


# --------------------------------------------------------------------------- per-process context


def _config_path() -> Path | None:
    p = os.environ.get(cfg.CONFIG_ENV)
    return Path(p) if p else None


@lru_cache(maxsize=1)
def context() -> Context:
    """Settings, store, shared budget and connections of this worker process."""
    return Context(cfg.load(_config_path()))


class Context:
    def __init__(self, settings: cfg.Settings) -> None:
        from sync.budget import SharedBudget, budget_limits
        from sync.jobs import build_connections

        self.settings = settings
        cfg.install_redactor(settings)
        configure(settings)
        self.store = st.Store.from_url(settings.database_url)
        self.budget = SharedBudget(settings.fleet.broker_url, budget_limits(settings.connections))
        self.failures: dict[str, Any] = {}
        self.connections = build_connections(settings, budget=self.budget, failures=self.failures)
        import redis

        self.redis = redis.Redis.from_url(settings.fleet.broker_url)

    def runner(self, run_id: int) -> Any:
        return _fleet_runner()(self.store, self.connections, self.settings, budget=self.budget,
                               unavailable=self.failures)

    def lease(self, *scopes: tuple[str, str]) -> Lease:
        return Lease(self.store, scopes, seconds=self.settings.fleet.lease_seconds)


@lru_cache(maxsize=1)
def _fleet_runner() -> type:
    """``sync.jobs.Runner`` whose pullers link pages one at a time across the fleet."""
    from sync.fleet import serialize_page_writes
    from sync.jobs import Runner

    class FleetRunner(Runner):
        def _puller(self, name: str, run_id: int) -> Any:
            return serialize_page_writes(super()._puller(name, run_id))

    return FleetRunner


# --------------------------------------------------------------------------- run state in Redis


class RunState:
    """What the tasks of one run tell each other and the finish task (a Redis hash)."""

    def __init__(self, ctx: Context, run_id: int) -> None:
        self.r: Any = ctx.redis
        self.key = RUN_KEY.format(run_id)

    def add(self, field: str, n: int) -> None:
        if n:
            self.r.hincrby(self.key, field, n)
            self.r.expire(self.key, RUN_TTL)

    def put(self, field: str, value: Any) -> None:
        self.r.hset(self.key, field, json.dumps(value))
        self.r.expire(self.key, RUN_TTL)

    def get(self, field: str) -> Any:
        v = self.r.hget(self.key, field)
        return None if v is None else json.loads(v)

    def message(self, line: str) -> None:
        self.r.rpush(self.key + ":messages", line)
        self.r.expire(self.key + ":messages", RUN_TTL)

    def all(self) -> tuple[dict[str, Any], list[str]]:
        raw = {k.decode(): v.decode() for k, v in self.r.hgetall(self.key).items()}
        msgs = [m.decode() for m in self.r.lrange(self.key + ":messages", 0, -1)]
        return raw, msgs

    def down(self, name: str) -> bool:
        return self.get(f"down:{name}") is not None

    def absorb(self, report: Any) -> None:
        """Add a task's ``CycleReport`` figures to the run's."""
        for what in ("pulled", "written", "failed"):
            for system, n in getattr(report, what).items():
                self.add(f"{what}:{system}", n)
        for system, kinds in report.planned.items():
            for kind, n in kinds.items():
                self.add(f"planned:{system}:{kind}", n)
        for what in ("links", "matched_links", "remote_merges", "review_queued", "new_entities", "conflicts",
                     "errors", "deleted", "retried"):
            self.add(what, getattr(report, what))
        for name, line in report.failed_systems.items():
            self.put(f"down:{name}", ["failed", line])
        for name, line in report.deferred_systems.items():
            self.put(f"down:{name}", ["deferred", line])
        for line in report.messages:
            self.message(line)


def _report(ctx: Context, run_id: int, kind: str = "cycle") -> Any:
    from sync.jobs import CycleReport

    return CycleReport(run_id=run_id, kind=kind)


def _now() -> datetime:
    return datetime.now(UTC)


def _leased(task: Any, ctx: Context, run_id: int, *scopes: tuple[str, str]) -> Lease:
    """The lease on ``scopes``, or a retry of ``task`` when someone else holds one.

    Also renews the run's cycle lease (``CYCLE_SCOPE``): it lasts a visibility timeout
    past the latest task that started, so a long cycle keeps it (a CLI sync and a
    second cycle stay out) and a cycle whose chain broke frees it that long after."""
    holder = RunState(ctx, run_id).get("holder")
    if holder:
        renew(ctx.store, [CYCLE_SCOPE], holder, ctx.settings.fleet.visibility_timeout)
    lease = ctx.lease(*scopes)
    try:
        lease.acquire()
    except LeaseBusy as e:
        raise task.retry(exc=e, countdown=max(1, ctx.settings.fleet.lease_seconds // 4),
                         max_retries=LEASE_RETRIES) from None
    return lease


# --------------------------------------------------------------------------- tasks

TASK_OPTS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}


@app.task(name="revsync.cycle", **TASK_OPTS)
def cycle(self: Any, force: bool = False, kind: str = "cycle") -> int | None:
    """Start a cycle: its run row and the canvas of its units. None when one is running."""
    ctx = context()
    holder = f"fleet-cycle:{self.request.id}"
    # a cycle still running (or one that died: its lease expires) keeps this one out
    if not try_acquire(ctx.store, CYCLE_SCOPE, holder, ctx.settings.fleet.visibility_timeout):
        log.info("a fleet cycle is already running; this one is skipped")
        return None
    names = list(ctx.settings.connections)
    with ctx.store.session() as s:
        run_id = st.start_run(s, kind, {"systems": names, "objects": [o.value for o in ORDER], "fleet": True,
                                        "force": force}, _now())
    rs = RunState(ctx, run_id)
    rs.put("holder", holder)
    for name, exc in ctx.failures.items():
        from sync.jobs import system_problem

        how, line = system_problem(name, exc)
        rs.put(f"down:{name}", [how, line])
        rs.message(line)
    cycle_canvas(run_id, names, force=force, shards=ctx.settings.fleet.resolve_shards).apply_async()
    return run_id


def shard_bounds(n: int) -> list[tuple[str, str]]:
    """``n`` ranges of canonical ids (UUID text) by their first two hex digits: ("", "40"),
    ("40", "80")…; the last upper bound is "~" (above every hex digit)."""
    n = max(1, min(256, n))
    cuts = ["", *[f"{(256 * i) // n:02x}" for i in range(1, n)], "~"]
    return list(itertools.pairwise(cuts))


def cycle_canvas(run_id: int, names: Sequence[str], *, force: bool = False, shards: int = 4) -> Any:
    """The chain of one cycle (see the module docstring)."""
    steps: list[Any] = []
    # one chain of pulls per connection, on its own queue, the chains side by side: a
    # slow API holds up only its own. Within a chain the objects go in the single
    # process's order; pages of two chains are linked to entities one at a time
    # (``sync.fleet.serialize_page_writes``)
    steps.append(group([chain(*[pull.si(run_id, n, ot.value).set(queue=queue_for(n)) for ot in ORDER])
                        for n in names]))
    steps.append(prepare.si(run_id))
    for ot in ORDER:
        # lists, not generators: a group keeps a generator and reads it later (after
        # this loop has moved ``ot`` on)
        steps.append(group([resolve.si(run_id, ot.value, lo, hi) for lo, hi in shard_bounds(shards)]))
        steps.append(match.si(run_id, ot.value))
    steps.append(caps.si(run_id, force))
    for ot in ORDER:
        steps.append(group([push.si(run_id, n, ot.value).set(queue=queue_for(n)) for n in names]))
        steps.append(step.si(run_id, f"pushed {ot.value}s"))
    steps.append(handoffs.si(run_id))
    steps.append(finish.si(run_id))
    return chain(*steps)


@app.task(name="revsync.step", **TASK_OPTS)
def step(self: Any, run_id: int, label: str) -> str:
    """A barrier between two groups (every task of the one before has ended)."""
    log.info("run %s: %s", run_id, label)
    return label


@app.task(name="revsync.pull", **TASK_OPTS)
def pull(self: Any, run_id: int, name: str, object_type: str) -> int:
    """Pull one (connection, object) scope from its cursor, page by page."""
    ctx = context()
    rs = RunState(ctx, run_id)
    ot = ObjectType(object_type)
    if name not in ctx.connections or rs.down(name) or rs.get(f"stalled:{name}"):
        return 0
    runner = ctx.runner(run_id)
    report = _report(ctx, run_id)
    logs.bind(run_id=run_id, system=name, object=object_type, phase="pull")
    lease = _leased(self, ctx, run_id, (name, object_type))
    try:
        done = runner._pull_one(report, name, ot, since=None, until=None)
    except SoftTimeLimitExceeded:
        # the pages read so far are committed with the cursor: go on from there
        raise self.retry(countdown=0, max_retries=None) from None
    finally:
        lease.release()
    if not done:  # quota: this connection's later objects wait for the next cycle
        rs.put(f"stalled:{name}", True)
        for later in ORDER[ORDER.index(ot):]:
            rs.put(f"held:{later.value}", True)
    rs.absorb(report)
    return int(report.pulled.get(name, 0))


@app.task(name="revsync.prepare", **TASK_OPTS)
def prepare(self: Any, run_id: int) -> int:
    """Follow the systems' own merges; failed writes whose backoff is over become dirty."""
    ctx = context()
    runner = ctx.runner(run_id)
    report = _report(ctx, run_id)
    lease = _leased(self, ctx, run_id, ("retry", "all"))
    try:
        from sync.fleet import analyze

        analyze(ctx.store)  # the pulls' rows get statistics before anything plans a query on them
        runner._follow_merges(report, list(ORDER))
        runner._retry_due(report, list(ORDER))
    finally:
        lease.release()
    RunState(ctx, run_id).absorb(report)
    return int(report.retried)


def _writable(ctx: Context, rs: RunState) -> list[str]:
    return [n for n in ctx.connections if not rs.down(n)]


@app.task(name="revsync.resolve", **TASK_OPTS)
def resolve(self: Any, run_id: int, object_type: str, lo: str, hi: str) -> int:
    """Reconcile and plan the dirty entities of one canonical-id range."""
    from sync.fleet import resolve_range

    ctx = context()
    rs = RunState(ctx, run_id)
    if rs.get(f"held:{object_type}"):
        log.info("run %s: %ss held (a pull did not finish); not reconciled", run_id, object_type)
        return 0
    engine = ctx.runner(run_id)._engine(run_id)
    lease = _leased(self, ctx, run_id, (f"resolve:{object_type}", f"{lo or '-'}:{hi}"))
    try:
        stats = resolve_range(engine, ObjectType(object_type), lo, hi, write_to=_writable(ctx, rs))
    except SoftTimeLimitExceeded:
        # each batch is committed with its dirty flags cleared: the retry takes the rest
        raise self.retry(countdown=0, max_retries=None) from None
    finally:
        lease.release()
    log.info("run %s: reconciled %d %s(s) in [%s, %s)", run_id, stats.entities, object_type, lo, hi)
    report = _report(ctx, run_id)
    report.conflicts, report.errors, report.deleted = stats.conflicts, stats.errors, stats.deleted
    report.planned = stats.planned
    rs.absorb(report)
    return int(stats.entities)


@app.task(name="revsync.match", **TASK_OPTS)
def match(self: Any, run_id: int, object_type: str) -> int:
    """Tier 2 on the entities reconciled so far; the survivors of its links are planned again."""
    from sync.match import Deduper

    ctx = context()
    rs = RunState(ctx, run_id)
    if rs.get(f"held:{object_type}"):
        return 0
    runner = ctx.runner(run_id)
    report = _report(ctx, run_id)
    lease = _leased(self, ctx, run_id, ("match", object_type))
    try:
        deduper = Deduper(ctx.store, ctx.settings.dedupe, now=_now, run_id=run_id,
                          policies=ctx.settings.policies)
        links = runner._match_new(report, deduper, ObjectType(object_type)) if deduper.enabled else 0
        if links:  # the survivors of its links are decided again (as ``Runner.run_cycle``)
            runner._resolve(report, runner._engine(run_id), ObjectType(object_type), _writable(ctx, rs))
    except SoftTimeLimitExceeded:
        # safe to run again, as a redelivered match is; the second try no longer pays for
        # a cold start (twice at most: a match that never fits the limit fails the run)
        raise self.retry(countdown=0, max_retries=2) from None
    finally:
        lease.release()
    rs.absorb(report)
    return int(links)


@app.task(name="revsync.caps", **TASK_OPTS)
def caps(self: Any, run_id: int, force: bool = False) -> bool:
    """The plan against the blast-radius caps; over them, nothing is pushed this run."""
    from sync.plan import PlanTooLarge

    ctx = context()
    runner, report = ctx.runner(run_id), _report(ctx, run_id)
    # governance first, as in one process: required-field blocks and the schema
    # pre-flight hold what they refuse; a won deal's account is queued for the CS system
    runner._gate(report, [n for n in ctx.connections if not RunState(ctx, run_id).down(n)])
    RunState(ctx, run_id).absorb(report)
    try:
        runner._check_caps(_report(ctx, run_id), force)
    except PlanTooLarge as e:
        rs = RunState(ctx, run_id)
        rs.put("stopped", f"plan stopped: {e}")
        rs.message(f"plan stopped: {e}")
        return False
    return True


@app.task(name="revsync.push", **TASK_OPTS)
def push(self: Any, run_id: int, name: str, object_type: str) -> int:
    """Drain one connection's outbox for one object, in the API's batches."""
    from connectors.base import AuthError, FatalError, Unreachable
    from sync import metrics

    ctx = context()
    rs = RunState(ctx, run_id)
    if name not in ctx.connections or rs.get("stopped") or rs.down(name) or rs.get(f"held:{object_type}"):
        return 0
    runner = ctx.runner(run_id)
    engine = runner._engine(run_id)
    report = _report(ctx, run_id)
    lease = _leased(self, ctx, run_id, (f"push:{name}", object_type))
    try:
        ps = engine.push(ObjectType(object_type), systems=[name])
    except SoftTimeLimitExceeded:
        raise self.retry(countdown=0, max_retries=None) from None
    finally:
        lease.release()
    metrics.observe_push(object_type, ps)
    report.written, report.failed = dict(ps.written), dict(ps.failed)
    report.errors = sum(ps.failed.values())
    for system, why in ps.deferred.items():
        stopped = ps.stopped_by.get(system)
        if isinstance(stopped, (AuthError, FatalError, Unreachable)):
            runner._system_down(report, system, stopped)
        else:
            report.messages.append(f"{system}: writes deferred to the next cycle ({why})")
    rs.absorb(report)
    return int(sum(ps.written.values()))


@app.task(name="revsync.handoffs", **TASK_OPTS)
def handoffs(self: Any, run_id: int) -> int:
    """Closed-won handoffs to customer success once every push has ended (as one process
    runs them): licenses written, waiting ones recorded with what they lack."""
    ctx = context()
    rs = RunState(ctx, run_id)
    if rs.get("stopped"):
        return 0
    report = _report(ctx, run_id)
    ctx.runner(run_id)._handoffs(report)
    rs.absorb(report)
    return len(report.handoffs or {})


@app.task(name="revsync.finish", **TASK_OPTS)
def finish(self: Any, run_id: int) -> dict[str, Any]:
    """The run's row: status and counts (as ``revsync status`` and the console show them)."""
    ctx = context()
    rs = RunState(ctx, run_id)
    raw, messages = rs.all()
    counts = collect_counts(raw)
    with ctx.store.session() as s:
        counts["pending"] = sum(st.pending_counts(s).values())
        counts["entities"] = st.entity_counts(s)
        run = s.get(st.SyncRunRow, run_id)
        started = run.started_at if run is not None else _now()
    if counts["pending"]:
        messages.append(f"{counts['pending']} write(s) still pending (retried next cycle; see `revsync plan`)")
    counts["messages"] = messages
    counts["run_id"], counts["kind"] = run_id, "cycle"
    counts["seconds"] = round((_now() - started).total_seconds(), 3)
    down = counts.pop("down")
    failed = {n: line for n, (how, line) in down.items() if how == "failed"}
    deferred = {n: line for n, (how, line) in down.items() if how == "deferred"}
    counts["failed_systems"], counts["deferred_systems"] = failed, deferred
    stopped = rs.get("stopped")
    status = "stopped" if stopped else ("partial" if messages else "ok")
    if failed and len(failed) == len(ctx.settings.connections):
        status = "failed"
    with ctx.store.session() as s:
        st.finish_run(s, run_id, status, counts, _now(), stopped or ("; ".join(failed.values()) or None))
    holder = rs.get("holder")
    if holder:
        release(ctx.store, [CYCLE_SCOPE], holder)
    counts["status"] = status
    return counts


def _down(raw: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for k, v in raw.items():
        if k.startswith("down:"):
            how, line = json.loads(v)
            out[k[5:]] = (how, line)
    return out


def collect_counts(raw: Mapping[str, str]) -> dict[str, Any]:
    """The run hash as ``CycleReport``-shaped counts."""
    out: dict[str, Any] = {"pulled": {}, "written": {}, "failed": {}, "planned": {}, "down": _down(raw)}
    for k, v in raw.items():
        parts = k.split(":")
        if parts[0] in ("pulled", "written", "failed") and len(parts) == 2:
            out[parts[0]][parts[1]] = int(v)
        elif parts[0] == "planned" and len(parts) == 3:
            out["planned"].setdefault(parts[1], {})[parts[2]] = int(v)
        elif len(parts) == 1 and k not in ("holder", "stopped"):
            out[k] = int(v)
    return out


@app.task(name="revsync.sweep", **TASK_OPTS)
def sweep(self: Any) -> int:
    """The nightly sweep (full id listings against the identity map) on one worker."""
    ctx = context()
    report = ctx.runner(0).run_sweep()
    return int(report.deleted)


def enqueue(settings: cfg.Settings, job: str) -> str | None:
    """What ``revsync serve`` sends in fleet mode for a scheduler job (its task id).
    ``retry`` sends a cycle only when some failed write's backoff is over."""
    configure(settings)
    if job == "retry":
        with st.Store.from_url(settings.database_url).session() as s:
            if not st.count_due_write_retries(s, _now()):
                return None
        return str(app.send_task("revsync.cycle", kwargs={"kind": "retry"}).id)
    if job == "sweep":
        return str(app.send_task("revsync.sweep").id)
    return str(app.send_task("revsync.cycle", kwargs={"kind": "cycle"}).id)


def worker_queues(settings: cfg.Settings, only: Sequence[str] | None = None) -> list[str]:
    """The queues a worker consumes: ``revsync`` and one per connection (or ``only``)."""
    every = [DEFAULT_QUEUE, *(queue_for(n) for n in settings.connections)]
    if not only:
        return every
    return [DEFAULT_QUEUE if q in ("default", DEFAULT_QUEUE) else queue_for(q) for q in only]
