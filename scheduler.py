"""The scheduler: APScheduler 3.x jobs built from revsync.toml (``revsync serve``).

Jobs (stored with ``SQLAlchemyJobStore`` in the same database):

- ``cycle``: an incremental sync cycle every ``schedule.cycle_minutes``;
- ``sweep``: the nightly reconcile sweep (``schedule.sweep_cron``) that finds hard
  deletes and merges by comparing full id listings with the identity map;
- ``retry``: every ``retry_minutes``, a cycle if failed writes are due (their backoff is over).

With ``[fleet] broker_url`` set, ``build_fleet_scheduler`` is used instead: the same
three jobs only enqueue Celery tasks (``sync.tasks``), and only on the instance that
holds the leader lease.

Every job has ``max_instances=1`` and ``coalesce=True``; on top of that the lease
rows in the store keep a CLI backfill and a scheduled cycle off the same
(connection, object). SIGTERM/SIGINT stop the scheduler after the page in flight.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync import config as cfg

log = logging.getLogger(__name__)

#: set by SIGTERM/SIGINT; jobs stop after the page in flight
STOP = threading.Event()
JOB_IDS = ("revsync-cycle", "revsync-sweep", "revsync-retry")


def _runner(config_path: str | None) -> Any:
    from connectors.base import ApiBudget
    from sync.jobs import Runner, build_connections
    from sync.store import Store

    settings = cfg.load(Path(config_path) if config_path else None)
    cfg.install_redactor(settings)
    budget = ApiBudget({n: c.options.get("budget", {}).get("calls_per_day")
                        for n, c in settings.connections.items()
                        if c.options.get("budget", {}).get("calls_per_day")})
    failures: dict[str, Any] = {}  # a system that cannot be built is reported by the run
    conns = build_connections(settings, budget=budget, failures=failures)
    return Runner(Store.from_url(settings.database_url), conns, settings, budget=budget,
                  should_stop=STOP.is_set, unavailable=failures)


def cycle_job(config_path: str | None) -> None:
    """Scheduled incremental cycle."""
    report = _runner(config_path).run_cycle()
    log.info("cycle %s: %s, pulled %s, written %s", report.run_id, report.status, report.pulled, report.written)
    for line in (*report.failed_systems.values(), *report.deferred_systems.values()):
        log.warning("cycle %s: %s", report.run_id, line)


def sweep_job(config_path: str | None) -> None:
    """Scheduled nightly sweep."""
    report = _runner(config_path).run_sweep()
    log.info("sweep %s: %s, deleted %s", report.run_id, report.status, report.deleted)


def retry_job(config_path: str | None) -> None:
    """Scheduled retry of failed writes whose backoff is over (parked ones stay parked)."""
    report = _runner(config_path).run_retry(scheduled=True)
    log.info("retry %s: %s, written %s", report.run_id, report.status, report.written)


def build_scheduler(
    settings: cfg.Settings,
    *,
    config_path: str | None = None,
    scheduler_cls: Callable[..., BaseScheduler] = BlockingScheduler,
) -> BaseScheduler:
    """A scheduler with the three jobs, their job store in the revsync database."""
    sched = scheduler_cls(
        jobstores={"default": SQLAlchemyJobStore(url=settings.database_url, tablename="apscheduler_jobs")},
        job_defaults={
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": settings.schedule.misfire_grace_seconds,
        },
        timezone="UTC",
    )
    sch = settings.schedule
    sched.add_job(cycle_job, IntervalTrigger(minutes=sch.cycle_minutes), args=[config_path],
                  id=JOB_IDS[0], name="incremental sync cycle", replace_existing=True)
    sched.add_job(sweep_job, CronTrigger.from_crontab(sch.sweep_cron, timezone="UTC"), args=[config_path],
                  id=JOB_IDS[1], name="nightly reconcile sweep", replace_existing=True)
    sched.add_job(retry_job, IntervalTrigger(minutes=sch.retry_minutes), args=[config_path],
                  id=JOB_IDS[2], name="error-ledger retry", replace_existing=True)
    return sched


def build_fleet_scheduler(
    settings: cfg.Settings,
    *,
    enqueue: Callable[[str], Any],
    leader: Any,
    scheduler_cls: Callable[..., BaseScheduler] = BlockingScheduler,
) -> BaseScheduler:
    """Fleet mode: APScheduler is only the clock. Its jobs live in memory (a job store
    must never be shared between schedulers); when one fires, this instance enqueues
    the task only if it holds the leader lease (``sync.fleet.Leader``), so with several
    ``revsync serve`` running every job is sent once and the others stand by. A
    heartbeat keeps the lease; a standby takes it once the leader's has expired."""
    sched = scheduler_cls(
        job_defaults={"max_instances": 1, "coalesce": True,
                      "misfire_grace_time": settings.schedule.misfire_grace_seconds},
        timezone="UTC",
    )

    def fire(job: str) -> None:
        if not leader.tick():
            log.debug("%s: standing by (another scheduler leads)", job)
            return
        try:
            task_id = enqueue(job)
        except Exception as e:  # the broker is out of reach: say so once a tick, try next tick
            from sync.budget import unreachable_line

            log.warning("%s: not enqueued: %s; the next tick tries again", job,
                        unreachable_line(settings.fleet.broker_url, e))
            return
        log.info("%s: enqueued %s", job, task_id or "nothing (no failed write is due)")

    sch = settings.schedule
    sched.add_job(fire, IntervalTrigger(minutes=sch.cycle_minutes), args=["cycle"], id=JOB_IDS[0],
                  name="incremental sync cycle (enqueue)")
    sched.add_job(fire, CronTrigger.from_crontab(sch.sweep_cron, timezone="UTC"), args=["sweep"],
                  id=JOB_IDS[1], name="nightly reconcile sweep (enqueue)")
    sched.add_job(fire, IntervalTrigger(minutes=sch.retry_minutes), args=["retry"], id=JOB_IDS[2],
                  name="error-ledger retry (enqueue)")
    sched.add_job(leader.tick, IntervalTrigger(seconds=max(1.0, leader.seconds / 3)), id="revsync-leader",
                  name="leader lease heartbeat")
    return sched


def serve(settings: cfg.Settings, *, config_path: str | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM/SIGINT (fleet mode: it only
    enqueues, and only while it leads)."""
    if settings.fleet.enabled:
        from sync import tasks
        from sync.fleet import Leader
        from sync.store import Store

        leader = Leader(Store.from_url(settings.database_url), settings.fleet.lease_seconds)
        leader.tick()
        sched = build_fleet_scheduler(settings, enqueue=lambda job: tasks.enqueue(settings, job), leader=leader)
    else:
        sched = build_scheduler(settings, config_path=config_path)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the page in flight", signum)
        STOP.set()
        threading.Thread(target=lambda: sched.shutdown(wait=True), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sched.start()
