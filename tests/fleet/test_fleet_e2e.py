"""Distributed end-to-end: PostgreSQL + Redis + two ``revsync serve`` and two
``revsync worker`` processes against the sandbox (300 accounts; see ``ACCOUNTS``)
reach the state a single process reaches, and the last cycle writes nothing, while
the processes running a pull, a resolve and a push task are SIGKILLed (seeded) on the
way; a whole worker machine SIGKILLed mid-task (one seeded phase, a small org) changes
nothing either.

The two kinds of kill cost differently. A killed pool process is seen at once by its
worker, which hands the task back (``reject_on_worker_lost``): no wait, so the big run
takes all three. A machine that dies acknowledges nothing: Redis hands its task out
again only after the visibility timeout, so that wait is paid once, on a small org."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
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

#: the big run's org: 300 accounts in CI; the issue asks for 1,000
#: (``REVSYNC_FLEET_E2E_ACCOUNTS=1000``), which does not yet end in the single process's
#: state (bench/README, "The distributed e2e at 1,000 accounts")
ACCOUNTS, SEED = int(os.environ.get("REVSYNC_FLEET_E2E_ACCOUNTS", "300")), 23
#: how long a test waits for its reference once its own fleet is done
REFERENCE_WAIT = 1800


def single_process_state(url: str, accounts: int = ACCOUNTS,
                         seed: int = SEED) -> tuple[dict[str, Any], dict[str, list[Any]], list[Any]]:
    """The reference: the same seed synced by one process (``revsync sync``'s Runner) on
    PostgreSQL, until quiet."""
    upgrade(url)
    with Sandbox(accounts=accounts, seed=seed, tier="off") as sb:
        world = fleet_world(sb, url)
        reports = E.sync_until_quiet(world)
        state = E.stable_state(world), E.remote_state(world), reports
        world.store.engine.dispose()
        return state


def fleet_world(sb: Sandbox, url: str) -> E.World:
    return E.World(sb, url, make_runner(sandbox_settings(sb.info, url)))


def run_fleet_cycles(config: Path, store: st.Store, sb: Sandbox, on_wait: Any = None,
                     poll: float = 0.3) -> list[Any]:
    """Cycles until one writes nothing (the first forced, as the single run's): their runs."""
    runs = []
    for i in range(E.MAX_CYCLES):
        before = E.write_calls(E.fetch_stats(sb))
        run = F.wait_run(store, F.enqueue_cycle(config, force=i == 0), on_wait=on_wait,
                         poll=poll)
        wrote = sum(E.delta(E.write_calls(E.fetch_stats(sb)), before).values())
        runs.append((run, wrote))
        assert run.status in ("ok", "partial"), (run.status, run.counts, run.error)
        if i > 0 and wrote == 0:
            break
    return runs


def check_same_as_single(sb: Sandbox, url: str, reference: Future[Reference], runs: list[Any]) -> None:
    state, remote, single_reports = reference.result(timeout=REFERENCE_WAIT)
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


Reference = tuple[dict[str, Any], dict[str, list[Any]], list[Any]]


def reference_beside(accounts: int, seed: int) -> Iterator[Future[Reference]]:
    """The single-process reference, computed in a process of its own while the test
    runs its fleet (which reads it only at the end): the two runs overlap instead of
    adding up."""
    from tests.conftest import _pg_database

    for url in _pg_database():
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool.submit(single_process_state, url, accounts, seed)


@pytest.fixture(scope="module")
def reference() -> Iterator[Future[Reference]]:
    yield from reference_beside(ACCOUNTS, SEED)


#: the leading scheduler enqueues a cycle this often (minutes); a cycle still running
#: keeps the next ones out (they are skipped), so runs follow one another
CYCLE_MINUTES = 0.05
#: the lease a task of each phase takes: "" is a pull's (connection, object)
KILL_PHASES = {"pull": "", "resolve": "resolve:", "push": "push:"}
#: the big run's limits: a first match or push of 1,000 accounts on a loaded 2-core
#: machine must fit the time limit; no machine dies here, so the long visibility
#: timeout costs nothing
E2E_LIMITS = {"task_time_limit": 600, "visibility_timeout": 660, "lease_seconds": 6}


class Killer:
    """SIGKILLs the process running a task of each phase of ``todo`` in turn, once one
    holds that phase's lease (which one of those running: seeded). ``machine``: the
    task's whole worker (its process group), a fresh worker joining in its place;
    else only the pool process running the task."""

    def __init__(self, store: st.Store, workers: F.Workers, todo: list[str], rng: random.Random, *,
                 machine: bool) -> None:
        self.store, self.w, self.todo, self.rng, self.machine = store, workers, todo, rng, machine
        self.killed: list[tuple[str, str]] = []

    def __call__(self) -> None:
        if not self.todo:
            return
        prefix = KILL_PHASES[self.todo[0]]
        with self.store.session() as s:
            leases = list(s.scalars(select(st.LeaseRow)))
        running = []
        for lease in leases:
            kind_ok = lease.system.startswith(prefix) if prefix else lease.system in E.SYSTEM_NAMES
            if kind_ok and lease.holder.count(":") >= 2 and lease.expires_at.timestamp() > time.time():
                pid = int(lease.holder.split(":")[1])
                owner = self.w.owner_of(pid)
                if owner is not None:
                    running.append((f"{lease.system}/{lease.object_type}", owner, pid))
        if not running:
            return
        scope, owner, pid = self.rng.choice(sorted(running))
        if self.machine:
            self.w.kill(owner)
            self.w.start(1)  # a machine joins in its place
        else:
            try:
                self.w.kill_pool_process(pid)
            except ProcessLookupError:  # the task ended just now: try the next one
                return
        self.killed.append((self.todo.pop(0), scope))


def test_two_workers_and_two_schedulers_reach_the_single_process_state(
        reference: Any, tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """The whole fleet: two ``revsync serve`` (one leads and enqueues the cycles, the other
    stands by) and two ``revsync worker`` processes. Run after run until one writes
    nothing; the end state is the single process's, in as many cycles, though the
    processes running a pull, a resolve and a push task were SIGKILLed on the way."""
    upgrade(pg_url)
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, cycle_minutes=CYCLE_MINUTES, **E2E_LIMITS)
        store = st.Store.from_url(pg_url)
        with F.workers(config, tmp_path, n=2) as w:
            kill = Killer(store, w, list(KILL_PHASES), random.Random(SEED), machine=False)
            try:
                with F.schedulers(config, tmp_path, n=2):
                    deadline = time.monotonic() + 1800
                    while time.monotonic() < deadline:
                        # quiet: a run after the first wrote nothing, and one more has ended
                        done = [r for r in F.all_runs(store) if r.status != "running"]
                        quiet = [i for i, r in enumerate(done) if i and not sum(r.counts.get("written", {}).values())]
                        if quiet and len(done) > quiet[0] + 1:
                            break
                        kill()
                        time.sleep(0.1)
                # no cycle is enqueued any more: let the one in flight (if any) end
                while any(r.status == "running" for r in F.all_runs(store)) and time.monotonic() < deadline:
                    time.sleep(0.5)
                writes_then = sum(E.write_calls(E.fetch_stats(sb)).values())
            except BaseException:
                print(w.logs())
                raise
        runs = F.all_runs(store)
        state, remote, single_reports = reference.result(timeout=REFERENCE_WAIT)
        cycles = len(single_reports)
        print("killed", kill.killed, "fleet runs:", [(r.id, r.kind, r.status, r.counts.get("written")) for r in runs])
        assert [phase for phase, _scope in kill.killed] == list(KILL_PHASES), "a phase's task was never caught running"
        # each killed task was handed back by its worker and ran again
        logs = [p.read_text(errors="replace") for p in sorted(tmp_path.glob("worker-*.log"))]
        assert sum(text.count("WorkerLostError") for text in logs) >= len(KILL_PHASES), "no task was handed back"
        assert all(r.kind == "cycle" and r.status in ("ok", "partial") for r in runs), [
            (r.id, r.status, r.error) for r in runs]
        written = [sum(r.counts["written"].values()) for r in runs]
        # as many cycles as the single process needed to be quiet; none wrote after
        assert len(runs) > cycles and written[cycles - 1] == 0 and all(n == 0 for n in written[cycles - 1:]), written
        assert all(n > 0 for n in written[:cycles - 1]), written
        assert sum(E.write_calls(E.fetch_stats(sb)).values()) == writes_then
        # both workers took part
        assert all("revsync.pull" in text and "succeeded" in text for text in logs), "a worker did nothing"
        # the cycles came from the schedulers (the leader; the standby takes over only if
        # the leader stalls past lease_seconds)
        serve_logs = [p.read_text(errors="replace") for p in sorted(tmp_path.glob("serve-*.log"))]
        print("enqueued by scheduler:", [text.count("cycle: enqueued") for text in serve_logs])
        assert any("cycle: enqueued" in text for text in serve_logs), serve_logs
        world = fleet_world(sb, pg_url)
        diff = E.diff_states(state, E.stable_state(world), limit=8)
        assert diff == [], "\n".join(diff)
        assert E.diff_remote(remote, E.remote_state(world)) == []
        assert E.duplicate_external_ids(E.read_remote(world)) == {}
        assert E.outbox_left(world) == {}


KILL_ACCOUNTS, KILL_SEED = 80, 29
#: The machine-kill run's limits, set short on purpose. A worker whose whole machine
#: died never rejects its task: Redis hands it out again once it has been unacknowledged
#: for the visibility timeout (the workers look every tenth of it,
#: ``tasks.restore_interval``), so the kill costs about that long; kombu's default (an
#: hour, looked at every ~100 s) would make this test wait minutes. The hard time limit
#: stays under the timeout (else a live task would be handed out twice; the config
#: refuses it) and over the longest task of a run this size on a loaded 2-core machine
#: (tier-2 matching, a few seconds).
KILL_LIMITS = {"task_time_limit": 15, "visibility_timeout": 20, "lease_seconds": 4}
#: Planhat's calls this slow until the kill: its pulls and pushes last long enough to
#: be caught running (the other systems' go on beside them)
KILL_SLOW = "planhat:slow=1.0;seconds=1"


@pytest.fixture(scope="module")
def kill_reference() -> Iterator[Future[Reference]]:
    yield from reference_beside(KILL_ACCOUNTS, KILL_SEED)


def test_a_worker_machine_killed_mid_task_changes_nothing(
        kill_reference: Any, tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """SIGKILL a whole worker (its process group: as if its machine died) while its task
    holds the lease of one phase (pull or push: seeded), a fresh worker joining
    in its place: the task is delivered again after the visibility timeout, and the
    end state is the single process's, with no duplicate."""
    upgrade(pg_url)
    rng = random.Random(KILL_SEED)
    # the phases whose tasks a slow API keeps running long enough to be caught (a
    # resolve shard of this small org lasts a moment; the big run kills one)
    phase = rng.choice(["pull", "push"])
    with Sandbox(accounts=KILL_ACCOUNTS, seed=KILL_SEED, tier="off", faults=KILL_SLOW) as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, **KILL_LIMITS)
        store = st.Store.from_url(pg_url)
        with F.workers(config, tmp_path, n=2) as w:
            kill = Killer(store, w, [phase], rng, machine=True)

            def on_wait() -> None:
                kill()
                if not kill.todo:
                    sb.ctx.faults.set_spec(None)

            try:
                runs = run_fleet_cycles(config, store, sb, on_wait=on_wait, poll=0.1)
            except BaseException:
                print(w.logs())
                raise
        print("killed", kill.killed, "runs:", [(r.id, r.status, r.counts.get("written"), wr) for r, wr in runs])
        assert [p for p, _scope in kill.killed] == [phase], "the phase's task was never caught running"
        check_same_as_single(sb, pg_url, kill_reference, runs)
