"""The single-process runner pulls the connections side by side (``Runner._pull_all``).

With HubSpot's API slow (the sandbox's ``slow`` fault on every call), Salesforce and
Planhat have pulled all of their objects before HubSpot has finished its first one;
one after the other (``parallel_pulls=False``) they wait behind it. Both runs, on two
sandboxes with the same seed, end in the same state: the same entities of the same
seeded records, with the same values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mapping.canonical import ObjectType
from tests.integration import e2e_support as E

pytestmark = pytest.mark.slow

ACCOUNTS, SEED = 15, 23
#: every HubSpot call sleeps this long during the first cycle's pulls
SLOW_SECONDS = 1.5


def _timed_pulls(world: E.World) -> dict[tuple[str, str], float]:
    """Wrap the runner's per-(connection, object) pull: when each one finished."""
    done: dict[tuple[str, str], float] = {}
    runner = world.runner
    pull_one = runner._pull_one

    def timed(report: Any, name: str, ot: ObjectType, **kw: Any) -> bool:
        try:
            return pull_one(report, name, ot, **kw)
        finally:
            done[(name, ot.value)] = time.monotonic()

    runner._pull_one = timed  # type: ignore[method-assign]
    return done


def _first_cycle_with_slow_hubspot(world: E.World) -> dict[tuple[str, str], float]:
    done = _timed_pulls(world)
    world.sb.ctx.faults.set_spec(f"hubspot:slow=1.0;seconds={SLOW_SECONDS}")
    try:
        report = world.runner.run_cycle(force=True)
    finally:
        world.sb.ctx.faults.set_spec(None)
    assert report.status == "ok", report.messages
    assert all(report.pulled.get(n, 0) > 0 for n in E.SYSTEM_NAMES), report.pulled
    assert E.fetch_stats(world.sb)["hubspot"]["faults"].get("slow", 0) >= 1
    world.reports.append(report)
    return done


def test_a_slow_system_does_not_hold_up_the_others_and_the_end_state_is_the_sequential_one(
    make_sandbox: Any, tmp_path: Path,
) -> None:
    side = E.open_world(make_sandbox(accounts=ACCOUNTS, seed=SEED), tmp_path / "side")
    done = _first_cycle_with_slow_hubspot(side)
    others = [t for (name, _o), t in done.items() if name != "hubspot"]
    assert {name for name, _o in done} == set(E.SYSTEM_NAMES) and len(others) >= 5, done
    assert max(others) < done[("hubspot", "account")], done

    one_by_one = E.open_world(make_sandbox(accounts=ACCOUNTS, seed=SEED), tmp_path / "sequential")
    one_by_one.runner.parallel_pulls = False
    seq_done = _first_cycle_with_slow_hubspot(one_by_one)
    # the same check fails one after the other: Planhat's accounts came after HubSpot's
    assert seq_done[("planhat", "account")] > seq_done[("hubspot", "account")]

    for world in (side, one_by_one):
        reports = E.sync_until_quiet(world)
        assert reports[-1].writes == 0, E.summarize(reports)
        assert E.pending_ops(world) == 0
        assert E.duplicate_external_ids(E.read_remote(world)) == {}
    a, b = E.stable_state(one_by_one), E.stable_state(side)
    assert E.diff_states(a, b) == [], "\n".join(E.diff_states(a, b))
    assert a == b
    assert E.remote_counts(side.sb) == E.remote_counts(one_by_one.sb)
