"""Two ``revsync serve`` in fleet mode: every job is enqueued by one of them only; when
the leader stops, the standby takes over once the leader's lease has expired."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

import scheduler
from sync import config as cfg
from sync import store as st
from sync.fleet import Leader
from sync.migrate import upgrade

LEASE = 2.0


def settings(url: str) -> cfg.Settings:
    # a cycle every 0.3 s; sweep and retry rarely
    return cfg.parse({"database": {"url": url},
                      "schedule": {"cycle_minutes": 0.005, "retry_minutes": 600, "sweep_cron": "0 3 * * *"},
                      "fleet": {"broker_url": "redis://127.0.0.1:1/0", "lease_seconds": 2}})


@pytest.mark.slow
def test_two_schedulers_enqueue_each_job_once(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    sent: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    scheds = {}
    for name in ("a", "b"):
        leader = Leader(st.Store.from_url(db_url), LEASE, holder=f"host-{name}:1:{name}")

        def enqueue(job: str, _name: str = name) -> str:
            with lock:
                sent.append((_name, job, time.monotonic()))
            return f"{_name}-{job}"

        scheds[name] = scheduler.build_fleet_scheduler(settings(db_url), enqueue=enqueue, leader=leader,
                                                       scheduler_cls=BackgroundScheduler)
    scheds["a"].start()
    # b starts once a leads (on a loaded machine a's first job may take a while to fire)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if sent:
                break
        time.sleep(0.05)
    scheds["b"].start()
    try:
        time.sleep(3.0)
        with lock:
            before = list(sent)
        # both fired their cycle job about ten times; only the leader enqueued
        assert len(before) >= 5
        assert {n for n, _j, _t in before} == {"a"}, before
        last_renewal = time.monotonic()
        scheds["a"].shutdown(wait=True)
        # measured after a's shutdown: a job a had in flight may still enqueue while it
        # stops (it is a's, not a second scheduler's)
        stopped_at = time.monotonic()
        time.sleep(LEASE + 2.0)
    finally:
        for s in scheds.values():
            if s.running:
                s.shutdown(wait=False)
    after = [(n, t) for n, _j, t in sent if t > stopped_at]
    assert after and {n for n, _t in after} == {"b"}, after
    # the standby took over within about one lease time of the leader's last renewal
    assert min(t for _n, t in after) - last_renewal <= LEASE + 1.5
