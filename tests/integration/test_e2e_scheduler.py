"""End-to-end: two jobs never work on one (system, object) at once; the scheduler's jobs."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

import scheduler
from cli import make_runner, sandbox_settings
from connectors.base import Cursor, RemoteRecord
from mapping.canonical import ObjectType
from sync import config as cfg
from sync import store as st
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.integration import e2e_support as E

PAGE_DELAY = 0.15  # seconds each page of the slowed runner takes
SCOPES = {(s, o.value) for s in E.SYSTEM_NAMES for o in E.OBJECTS}


class ReadLog:
    """Thread-safe (runner, system, object, start, end) intervals of page reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[str, str, str, float, float]] = []
        self.started = threading.Event()

    def add(self, row: tuple[str, str, str, float, float]) -> None:
        with self.lock:
            self.rows.append(row)


def slow_reads(runner: Runner, label: str, log: ReadLog, delay: float) -> None:
    """Wrap every connector's ``read_pages`` to log each page's interval (and sleep)."""
    for name, conn in runner.connections.items():
        original = conn.connector.read_pages

        def wrapped(object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None,
                    _orig: Any = original, _name: str = name) -> Iterator[Sequence[RemoteRecord]]:
            log.started.set()
            start = time.monotonic()
            for page in _orig(object_type, since=since, native=native):
                time.sleep(delay)
                log.add((label, _name, object_type.value, start, time.monotonic()))
                yield page
                start = time.monotonic()
            log.add((label, _name, object_type.value, start, time.monotonic()))

        conn.connector.read_pages = wrapped  # type: ignore[method-assign]


def overlaps(log: ReadLog) -> list[str]:
    out = []
    rows = log.rows
    for a in rows:
        for b in rows:
            if a[0] < b[0] and a[1:3] == b[1:3] and a[3] < b[4] and b[3] < a[4]:
                out.append(f"{a[1]}/{a[2]}: {a[0]} {a[3]:.3f}-{a[4]:.3f} and {b[0]} {b[3]:.3f}-{b[4]:.3f}")
    return out


def test_two_runners_on_one_store_never_pull_one_scope_at_once(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(accounts=20, seed=9)
    first = E.open_world(sb, tmp_path, "shared")
    second = make_runner(sandbox_settings(sb.info, first.db_url))
    log = ReadLog()
    slow_reads(first.runner, "A", log, PAGE_DELAY)
    slow_reads(second, "B", log, 0.0)
    result: dict[str, Any] = {}

    def run_first() -> None:
        result["a"] = first.runner.run_cycle(force=True)

    thread = threading.Thread(target=run_first, name="runner-A")
    thread.start()
    assert log.started.wait(30), "runner A never started reading"
    with first.store.session() as s:
        held = {(r.system, r.object_type): r.holder for r in s.scalars(select(st.LeaseRow))}
    b = second.run_cycle(force=True)
    thread.join(120)
    assert not thread.is_alive()
    a = result["a"]

    # A held every scope while it ran; B was told so for each and pulled nothing
    assert set(held) == SCOPES and len(set(held.values())) == 1, held
    assert a.status == "ok" and a.skipped == [], E.summarize([a])
    assert sorted(b.skipped) == sorted(f"{s}/{o}: another job holds the lease" for s, o in SCOPES)
    # (newcomer: a run that got no scope at all says "skipped", and the CLI exits 3)
    assert b.status == "skipped" and b.pulled == {} and b.written == {}
    assert [r for r in log.rows if r[0] == "B"] == []
    readable = {(n, o.value) for n, c in first.runner.connections.items() for o in c.connector.objects}
    assert {(r[1], r[2]) for r in log.rows if r[0] == "A"} == readable
    # leases are released at the end: B now runs every scope, still never overlapping A
    b2 = second.run_cycle()
    assert b2.skipped == [] and set(b2.pulled) == set(E.SYSTEM_NAMES), E.summarize([b2])
    assert overlaps(log) == []
    with first.store.session() as s:
        assert list(s.scalars(select(st.LeaseRow))) == []


def test_overlap_detector_sees_overlapping_reads() -> None:
    log = ReadLog()
    log.add(("A", "hubspot", "contact", 0.0, 2.0))
    log.add(("B", "hubspot", "contact", 1.0, 3.0))
    log.add(("B", "hubspot", "account", 1.0, 3.0))
    assert len(overlaps(log)) == 1


def test_build_scheduler_jobs_and_defaults(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sched.db'}"
    upgrade(db)
    base = cfg.parse({"database": {"url": db}}, resolve_secrets=False)
    settings = dataclasses.replace(base, schedule=cfg.Schedule(cycle_minutes=7, sweep_cron="15 2 * * *",
                                                                retry_minutes=11, misfire_grace_seconds=123))
    sched = scheduler.build_scheduler(settings, scheduler_cls=BackgroundScheduler)
    sched.start(paused=True)
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
        assert set(jobs) == set(scheduler.JOB_IDS) == {"revsync-cycle", "revsync-sweep", "revsync-retry"}
        for job in jobs.values():
            assert job.max_instances == 1
            assert job.coalesce is True
            assert job.misfire_grace_time == 123
        assert jobs["revsync-cycle"].trigger.interval.total_seconds() == 7 * 60
        assert jobs["revsync-retry"].trigger.interval.total_seconds() == 11 * 60
        assert "hour='2'" in str(jobs["revsync-sweep"].trigger) and "minute='15'" in str(jobs["revsync-sweep"].trigger)
        assert jobs["revsync-cycle"].func is scheduler.cycle_job
    finally:
        sched.shutdown(wait=False)
