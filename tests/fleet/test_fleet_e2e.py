"""Distributed end-to-end: PostgreSQL + Redis + two ``revsync worker`` processes
against the sandbox reach the state a single process reaches, and the second cycle
writes nothing; workers SIGKILLed mid-pull, mid-resolve and mid-push change nothing in
the end state."""

from __future__ import annotations

import random
import time
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


#: the leading scheduler enqueues a cycle this often (minutes); a cycle still running
#: keeps the next ones out (they are skipped), so runs follow one another
CYCLE_MINUTES = 0.05


def test_two_workers_and_two_schedulers_reach_the_single_process_state(
        reference: Any, tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """The whole fleet: two ``revsync serve`` (one leads and enqueues the cycles, the other
    stands by) and two ``revsync worker`` processes. Run after run until one writes
    nothing; the end state is the single process's, in as many cycles."""
    upgrade(pg_url)
    cycles = len(reference[2])
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, cycle_minutes=CYCLE_MINUTES)
        store = st.Store.from_url(pg_url)
        with F.workers(config, tmp_path, n=2) as w:
            try:
                with F.schedulers(config, tmp_path, n=2):
                    deadline = time.monotonic() + 1200
                    while time.monotonic() < deadline:
                        done = [r for r in F.all_runs(store) if r.status != "running"]
                        if len(done) > cycles:
                            break
                        time.sleep(1)
                # no cycle is enqueued any more: let the one in flight (if any) end
                while any(r.status == "running" for r in F.all_runs(store)) and time.monotonic() < deadline:
                    time.sleep(0.5)
                writes_then = sum(E.write_calls(E.fetch_stats(sb)).values())
            except BaseException:
                print(w.logs())
                raise
        runs = F.all_runs(store)
        print("fleet runs:", [(r.id, r.kind, r.status, r.counts.get("written")) for r in runs])
        assert all(r.kind == "cycle" and r.status in ("ok", "partial") for r in runs), [
            (r.id, r.status, r.error) for r in runs]
        written = [sum(r.counts["written"].values()) for r in runs]
        # as many cycles as the single process needed to be quiet; none wrote after
        assert len(runs) > cycles and written[cycles - 1] == 0 and all(n == 0 for n in written[cycles - 1:]), written
        assert all(n > 0 for n in written[:cycles - 1]), written
        assert sum(E.write_calls(E.fetch_stats(sb)).values()) == writes_then
        # both workers took part
        logs = [p.read_text(errors="replace") for p in sorted(tmp_path.glob("worker-*.log"))]
        assert all("revsync.pull" in text and "succeeded" in text for text in logs), "a worker did nothing"
        # the cycles came from the schedulers (the leader; the standby takes over only if
        # the leader stalls past lease_seconds)
        serve_logs = [p.read_text(errors="replace") for p in sorted(tmp_path.glob("serve-*.log"))]
        print("enqueued by scheduler:", [text.count("cycle: enqueued") for text in serve_logs])
        assert any("cycle: enqueued" in text for text in serve_logs), serve_logs
        state, remote, _single = reference
        world = fleet_world(sb, pg_url)
        diff = E.diff_states(state, E.stable_state(world), limit=8)
        assert diff == [], "\n".join(diff)
        assert E.diff_remote(remote, E.remote_state(world)) == []
        assert E.duplicate_external_ids(E.read_remote(world)) == {}
        assert E.outbox_left(world) == {}


#: the lease a task of each phase takes: "" is a pull's (connection, object)
KILL_PHASES = {"pull": "", "resolve": "resolve:", "push": "push:"}
KILL_ACCOUNTS, KILL_SEED = 80, 29
#: The kill run's limits, set short on purpose. A worker whose whole machine died never
#: rejects its task: Redis hands it out again once it has been unacknowledged for the
#: visibility timeout (the workers look every tenth of it, ``tasks.restore_interval``),
#: so each kill costs about that long; kombu's default (an hour, looked at every ~100 s)
#: would make this test wait minutes. The hard time limit stays under the timeout (else
#: a live task would be handed out twice; the config refuses it) and over the longest
#: task of a run this size on a loaded 2-core machine (tier-2 matching, a few seconds).
KILL_LIMITS = {"task_time_limit": 15, "visibility_timeout": 20, "lease_seconds": 4}
#: Planhat's calls this slow until the pull kill: its pulls last long enough to be caught
#: running (the other systems' pulls go on beside them)
KILL_SLOW = "planhat:slow=1.0;seconds=1"


@pytest.fixture(scope="module")
def kill_reference() -> Iterator[tuple[dict[str, Any], dict[str, list[Any]], list[Any]]]:
    from tests.conftest import _pg_database

    for url in _pg_database():
        yield single_process_state(url, KILL_ACCOUNTS, KILL_SEED)


def test_workers_killed_mid_pull_mid_resolve_and_mid_push_change_nothing(
        kill_reference: Any, tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """SIGKILL a worker (its whole process group: as if its machine died) while its task
    holds a pull lease, then another while one holds a resolve lease, then a push lease
    (which of the running tasks: seeded), a fresh worker joining after each: every
    task is delivered again, and the end state is the single process's, with no
    duplicate."""
    upgrade(pg_url)
    rng = random.Random(KILL_SEED)
    with Sandbox(accounts=KILL_ACCOUNTS, seed=KILL_SEED, tier="off", faults=KILL_SLOW) as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, **KILL_LIMITS)
        store = st.Store.from_url(pg_url)
        todo = list(KILL_PHASES)
        killed: list[tuple[str, str]] = []
        with F.workers(config, tmp_path, n=2) as w:

            def maybe_kill() -> None:
                if not todo:
                    return
                prefix = KILL_PHASES[todo[0]]
                with store.session() as s:
                    leases = list(s.scalars(select(st.LeaseRow)))
                running = []
                for lease in leases:
                    kind_ok = lease.system.startswith(prefix) if prefix else lease.system in E.SYSTEM_NAMES
                    if kind_ok and lease.holder.count(":") >= 2 and lease.expires_at.timestamp() > time.time():
                        owner = w.owner_of(int(lease.holder.split(":")[1]))
                        if owner is not None:
                            running.append((f"{lease.system}/{lease.object_type}", owner))
                if running:
                    scope, owner = rng.choice(sorted(running))
                    w.kill(owner)
                    w.start(1)  # a machine joins in its place
                    killed.append((todo.pop(0), scope))
                    sb.ctx.faults.set_spec(None)

            try:
                runs = run_fleet_cycles(config, store, sb, on_wait=maybe_kill, poll=0.1)
            except BaseException:
                print(w.logs())
                raise
        print("killed", killed, "runs:", [(r.id, r.status, r.counts.get("written"), wr) for r, wr in runs])
        assert [phase for phase, _scope in killed] == list(KILL_PHASES), "a phase's task was never caught running"
        check_same_as_single(sb, pg_url, kill_reference, runs)
