"""Distributed end-to-end: PostgreSQL + Redis + two ``revsync worker`` processes
against the sandbox reach the state a single process reaches, and the second cycle
writes nothing; a worker SIGKILLed mid-task changes nothing in the end state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cli import make_runner, sandbox_settings
from sandbox.server import Sandbox
from sync import store as st
from sync.migrate import upgrade
from tests.fleet import fleet_support as F
from tests.integration import e2e_support as E

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.integration]

ACCOUNTS, SEED = 300, 23


def single_process_state(url: str) -> tuple[dict[str, Any], dict[str, list[Any]], list[Any]]:
    """The reference: the same seed synced by one process (``revsync sync``'s Runner) on
    PostgreSQL, until quiet."""
    upgrade(url)
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off") as sb:
        world = fleet_world(sb, url)
        reports = E.sync_until_quiet(world)
        state = E.stable_state(world), E.remote_state(world), reports
        world.store.engine.dispose()
        return state


def fleet_world(sb: Sandbox, url: str) -> E.World:
    return E.World(sb, url, make_runner(sandbox_settings(sb.info, url)))


def run_fleet_cycles(config: Path, store: st.Store, sb: Sandbox, on_wait: Any = None) -> list[Any]:
    """Cycles until one writes nothing (the first forced, as the single run's): their runs."""
    runs = []
    for i in range(E.MAX_CYCLES):
        before = E.write_calls(E.fetch_stats(sb))
        run = F.wait_run(store, F.enqueue_cycle(config, force=i == 0), on_wait=on_wait if i == 0 else None)
        wrote = sum(E.delta(E.write_calls(E.fetch_stats(sb)), before).values())
        runs.append((run, wrote))
        assert run.status in ("ok", "partial"), (run.status, run.counts, run.error)
        if i > 0 and wrote == 0:
            break
    return runs


def check_same_as_single(sb: Sandbox, url: str, reference: tuple[dict[str, Any], dict[str, list[Any]], list[Any]],
                         runs: list[Any]) -> None:
    state, remote, single_reports = reference
    world = fleet_world(sb, url)
    diff = E.diff_states(state, E.stable_state(world), limit=8)
    assert diff == [], "\n".join(diff)
    assert E.diff_remote(remote, E.remote_state(world)) == []
    assert E.duplicate_external_ids(E.read_remote(world)) == {}
    assert E.outbox_left(world) == {}
    # as many cycles as the single process needed to be quiet; the last wrote nothing
    assert len(runs) == len(single_reports), ([(r.counts.get("written"), w) for r, w in runs],
                                              E.summarize(single_reports))
    assert runs[-1][1] == 0 and sum(runs[-1][0].counts["written"].values()) == 0


@pytest.fixture(scope="module")
def reference() -> Iterator[tuple[dict[str, Any], dict[str, list[Any]], list[Any]]]:
    from tests.conftest import _pg_database

    for url in _pg_database():
        yield single_process_state(url)


def test_two_workers_reach_the_single_process_state(reference: Any, tmp_path: Path, pg_url: str,
                                                    redis_url: str) -> None:
    upgrade(pg_url)
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url)
        store = st.Store.from_url(pg_url)
        with F.workers(config, tmp_path, n=2) as w:
            try:
                runs = run_fleet_cycles(config, store, sb)
            except BaseException:
                print(w.logs())
                raise
        print("fleet runs:", [(r.id, r.status, r.counts.get("written"), wrote) for r, wrote in runs])
        # both workers took part
        with store.session() as s:
            assert s.scalars(select(st.SyncRunRow)).first() is not None
        logs = [p.read_text(errors="replace") for p in sorted(tmp_path.glob("worker-*.log"))]
        assert all("revsync.pull" in text and "succeeded" in text for text in logs), "a worker did nothing"
        check_same_as_single(sb, pg_url, reference, runs)


#: the lease a task of each phase takes: "" is a pull's (connection, object)
KILL_PHASES = {"pull": "", "resolve": "resolve:", "push": "push:"}


#: CI kills a push (the phase that writes to the systems); the pull and resolve kills
#: wait out a visibility timeout each (~2 min), so they run when this is set
ALL_KILLS = bool(os.environ.get("REVSYNC_FLEET_ALL_KILLS"))


@pytest.mark.parametrize("point", [
    pytest.param(p, marks=pytest.mark.skipif(p != "push" and not ALL_KILLS,
                                              reason="set REVSYNC_FLEET_ALL_KILLS=1 to kill every phase"))
    for p in KILL_PHASES])
def test_a_worker_killed_mid_task_changes_nothing(reference: Any, tmp_path: Path, pg_url: str, redis_url: str,
                                                  point: str) -> None:
    """SIGKILL the worker (the whole process group) whose task holds a lease of the
    phase, mid-task: the task is delivered again, to the other worker, and the end
    state is the single process's, with no duplicate."""
    phase = KILL_PHASES[point]
    upgrade(pg_url)
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, task_time_limit=40, visibility_timeout=45,
                                lease_seconds=6)
        store = st.Store.from_url(pg_url)
        killed: list[str] = []
        with F.workers(config, tmp_path, n=2) as w:

            def maybe_kill() -> None:
                if killed:
                    return
                with store.session() as s:
                    leases = list(s.scalars(select(st.LeaseRow)))
                for lease in leases:
                    kind_ok = lease.system.startswith(phase) if phase else lease.system in E.SYSTEM_NAMES
                    if not kind_ok or lease.holder.count(":") < 2:
                        continue
                    owner = w.owner_of(int(lease.holder.split(":")[1]))
                    if owner is not None:
                        w.kill(owner)
                        killed.append(f"{lease.system}/{lease.object_type}")
                        return

            try:
                runs = run_fleet_cycles(config, store, sb, on_wait=maybe_kill)
            except BaseException:
                print(w.logs())
                raise
        print("killed during", killed, "runs:", [(r.id, r.status, r.counts.get("written"), wr) for r, wr in runs])
        assert killed, "no task of the chosen phase was caught running"
        check_same_as_single(sb, pg_url, reference, runs)
