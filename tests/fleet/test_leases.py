"""Leases across machines: one holder per scope, expiry when the holder dies, heartbeat."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from sync import store as st
from sync.leases import Lease, LeaseBusy, release, renew, try_acquire
from sync.migrate import upgrade


@pytest.fixture
def store(db_url: str) -> st.Store:
    upgrade(db_url)
    return st.Store.from_url(db_url)


def test_one_holder_per_scope_until_it_expires(store: st.Store) -> None:
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    scope = ("salesforce", "account")
    assert try_acquire(store, scope, "host-a:1:x", 30, now=lambda: t0)
    # another machine: refused while the lease is live, however its pid looks
    assert not try_acquire(store, scope, "host-b:1:y", 30, now=lambda: t0 + timedelta(seconds=29))
    # the holder renews it (its heartbeat): still refused past the first expiry
    assert renew(store, [scope], "host-a:1:x", 30, now=lambda: t0 + timedelta(seconds=20)) == 1
    assert not try_acquire(store, scope, "host-b:1:y", 30, now=lambda: t0 + timedelta(seconds=45))
    # the holder died (no more renewals): free once the renewed expiry has passed
    assert try_acquire(store, scope, "host-b:1:y", 30, now=lambda: t0 + timedelta(seconds=51))
    # the old holder's renewal now finds nothing: it has lost the lease
    assert renew(store, [scope], "host-a:1:x", 30, now=lambda: t0 + timedelta(seconds=52)) == 0
    release(store, [scope], "host-a:1:x")  # not its lease: a no-op
    assert not try_acquire(store, scope, "host-c:1:z", 30, now=lambda: t0 + timedelta(seconds=53))
    release(store, [scope], "host-b:1:y")
    assert try_acquire(store, scope, "host-c:1:z", 30, now=lambda: t0 + timedelta(seconds=53))


def test_all_scopes_or_none(store: st.Store) -> None:
    assert try_acquire(store, ("match", "contact"), "other", 60)
    lease = Lease(store, [("match", "account"), ("match", "contact")], seconds=60)
    with pytest.raises(LeaseBusy):
        lease.acquire()
    # the scope it got before the busy one was given back
    assert try_acquire(store, ("match", "account"), "third", 60)


def test_heartbeat_keeps_a_short_lease_alive(store: st.Store) -> None:
    with Lease(store, [("push:hubspot", "account")], seconds=1.5) as lease:
        time.sleep(2.5)  # longer than the lease: only the heartbeat keeps it
        assert not try_acquire(store, ("push:hubspot", "account"), "intruder", 1.5)
        assert not lease.lost.is_set()
    assert try_acquire(store, ("push:hubspot", "account"), "intruder", 1.5)


def test_a_killed_holder_frees_its_scope_after_the_lease_time(store: st.Store, tmp_path) -> None:
    """A holder process SIGKILLed (as a machine that dies) blocks no longer than the lease."""
    url = store.engine.url.render_as_string(hide_password=False)
    code = (
        "import sys, time\n"
        "from sync import store as st\n"
        "from sync.leases import Lease\n"
        "s = st.Store.from_url(sys.argv[1])\n"
        "l = Lease(s, [('salesforce', 'contact')], seconds=2)\n"
        "l.acquire(); print('held', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True,
                         cwd=os.getcwd())
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        time.sleep(2.5)  # its heartbeat renewed it past the first expiry
        assert not try_acquire(store, ("salesforce", "contact"), "successor", 2)
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        got = False
        while time.monotonic() < deadline and not got:
            got = try_acquire(store, ("salesforce", "contact"), "successor", 2)
            time.sleep(0.2)
        assert got
    finally:
        p.kill()


def test_a_lease_set_takes_what_is_free_and_a_busy_required_scope_takes_nothing(store: st.Store) -> None:
    from sync.leases import FLEET_CYCLE_SCOPE, LeaseSet

    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert try_acquire(store, ("hubspot", "account"), "host-b:1:y", 30, now=lambda: t0)
    run = LeaseSet(store, seconds=30, label="run1", now=lambda: t0)
    taken, busy = run.acquire([("salesforce", "account"), ("hubspot", "account")])
    assert taken == [("salesforce", "account")] and busy == [("hubspot", "account")]
    assert run.holder.count(":") >= 3 and run.holder.endswith(":run1")
    # a second run (as the CLI with a fleet configured): the cycle lease first; it is
    # held by a fleet cycle, so this run takes nothing at all
    assert try_acquire(store, FLEET_CYCLE_SCOPE, "fleet-cycle:abc", 30, now=lambda: t0)
    other = LeaseSet(store, seconds=30, now=lambda: t0)
    assert other.acquire([("planhat", "account")], required=[FLEET_CYCLE_SCOPE]) == (
        [], [FLEET_CYCLE_SCOPE, ("planhat", "account")])
    assert other.held == []
    assert try_acquire(store, ("planhat", "account"), "host-c:1:z", 30, now=lambda: t0)
    run.release()
    assert try_acquire(store, ("salesforce", "account"), "host-c:1:z", 30, now=lambda: t0)


def test_a_lease_set_takes_over_a_stale_holder_only_when_told_it_is_gone(store: st.Store) -> None:
    from sync.leases import LeaseSet

    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert try_acquire(store, ("salesforce", "account"), "thishost:99999:a", 600, now=lambda: t0)
    polite = LeaseSet(store, seconds=30, now=lambda: t0, is_stale=lambda holder: False)
    assert polite.acquire([("salesforce", "account")]) == ([], [("salesforce", "account")])
    eager = LeaseSet(store, seconds=30, now=lambda: t0, is_stale=lambda holder: holder == "thishost:99999:a")
    assert eager.acquire([("salesforce", "account")]) == ([("salesforce", "account")], [])
    eager.release()


def test_dead_workers_tasks_are_looked_for_every_tenth_of_the_visibility_timeout() -> None:
    from sync import config as cfg
    from sync import tasks

    assert [tasks.restore_interval(v) for v in (5, 20, 150, 3600)] == [1, 2, 10, 10]
    app = tasks.configure(cfg.parse({"fleet": {"broker_url": "redis://127.0.0.1:1/0", "task_time_limit": 15,
                                               "visibility_timeout": 20}}))
    opts = app.conf.broker_transport_options
    assert (opts["visibility_timeout"], opts["unacked_restore_interval"], opts["unacked_restore_throttle"]) == (20, 2, 1)
