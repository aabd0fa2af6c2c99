"""End-to-end: a full sync of the seeded sandbox with the real clients, then checks.

One module-scoped world (40 accounts, seed 7, tier off): cycle 1 (forced past the
caps, the initial load), then cycle 2 with the sandbox's call counters read before
and after. The tests read the end state from both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.server import Sandbox
from tests.integration import e2e_support as E

ACCOUNTS, SEED = 40, 7
#: ground truth: minimum agreement per field (fields with at least MIN_SAMPLES values)
MIN_RATE, MIN_SAMPLES = 0.95, 20


class Synced:
    def __init__(self, world: E.World, stats: list[dict[str, Any]], stale_after_first: list[E.Mismatch]) -> None:
        self.world, self.stats, self.stale_after_first = world, stats, stale_after_first


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    tmp = tmp_path_factory.mktemp("e2e")
    with Sandbox(accounts=ACCOUNTS, seed=SEED, tier="off", ca_dir=tmp / "ca") as sb:
        world = E.open_world(sb, tmp)
        stats = [E.fetch_stats(sb)]
        world.reports.append(world.runner.run_cycle(force=True))
        stats.append(E.fetch_stats(sb))
        stale = E.stale_views(world)  # reads go after the stats snapshot
        stats[-1] = E.fetch_stats(sb)
        world.reports.append(world.runner.run_cycle())
        stats.append(E.fetch_stats(sb))
        yield Synced(world, stats, stale)


def test_first_cycle_syncs_all_three_systems(synced: Synced) -> None:
    r1 = synced.world.reports[0]
    assert r1.status == "ok", E.summarize([r1])
    assert set(r1.pulled) == {"salesforce", "hubspot", "planhat"}
    truth = E.load_ground_truth(synced.world.sb)
    seeded = {k: sum(len(c["records"]) for c in v) for k, v in truth["entities"].items()}
    # every seeded entity record was read (and the users/owners are not entities)
    assert sum(r1.pulled.values()) >= sum(seeded.values())
    assert r1.failed == {}, E.summarize([r1])
    # tier-1 linking may leave true duplicates apart (more entities), never fewer entities
    for kind, n in r1.entities.items():
        assert n >= len(truth["entities"][kind]), (kind, n)
    assert r1.writes > 0


def test_each_system_agrees_with_the_canonical_store(synced: Synced) -> None:
    mismatches, checked = E.agreement_mismatches(synced.world)
    print(f"checked {sum(checked.values())} values over {len(checked)} (system/object.field) pairs")
    assert sum(checked.values()) > 1000
    # every system and object was actually compared
    assert {k.split(".")[0] for k in checked} >= {
        "salesforce/Account", "salesforce/Contact", "salesforce/Lead", "salesforce/Opportunity",
        "hubspot/companies", "hubspot/contacts", "hubspot/deals", "planhat/companies", "planhat/endusers",
    }
    assert mismatches == [], "\n".join(map(str, mismatches[:40]))


def test_canonical_conflicts_match_the_ground_truth(synced: Synced) -> None:
    score = E.score_ground_truth(synced.world)
    print(score.table())
    for m in score.mismatches:
        print("mismatch:", m)
    total = sum(score.samples.values())
    agree = sum(score.agree.values())
    assert total >= 60, score.table()
    assert agree / total >= MIN_RATE, score.table()
    for key in score.samples:
        if score.samples[key] >= MIN_SAMPLES:
            assert score.rate(key) >= MIN_RATE, f"{key}: {score.rate(key):.3f}\n" + "\n".join(score.mismatches)
    # tier-1 linking (exact keys) leaves some true duplicates apart, but most clusters are whole
    for kind, n in score.clusters.items():
        assert score.unlinked.get(kind, 0) == 0, score.table()
        assert score.split.get(kind, 0) <= 0.2 * n, score.table()


def test_second_cycle_makes_no_write_calls(synced: Synced) -> None:
    r2 = synced.world.reports[1]
    before, after = synced.stats[1], synced.stats[2]
    assert r2.status == "ok", E.summarize([r2])
    assert r2.writes == 0, E.summarize([r2])
    assert r2.failed == {}
    calls = E.delta(E.write_calls(after), E.write_calls(before))
    assert calls == {"salesforce": 0, "hubspot": 0, "planhat": 0}, E.write_calls_by_endpoint(after)
    assert E.delta(E.records_written(after), E.records_written(before)) == {
        "salesforce": 0, "hubspot": 0, "planhat": 0}
    # the counters do count: cycle 1 wrote to every system and cycle 2 read from every system
    first = E.delta(E.write_calls(before), E.write_calls(synced.stats[0]))
    assert all(v > 0 for v in first.values()), first
    assert all(after[s]["calls"] > before[s]["calls"] for s in E.SYSTEM_NAMES)


def test_no_duplicates_written(synced: Synced) -> None:
    remote = E.read_remote(synced.world)
    assert E.duplicate_external_ids(remote) == {}
    counts = E.remote_counts(synced.world.sb)
    created = {s: n.get("create", 0) for s, n in synced.world.reports[0].planned.items()}
    assert sum(created.values()) > 0  # the first cycle created records
    manifest = synced.world.sb.manifest or {}
    for system, objs in manifest.get("counts", {}).items():
        for obj, n in objs.items():
            if obj in counts.get(system, {}):
                assert counts[system][obj] >= n, (system, obj)


def test_distinct_opportunities_sharing_a_name_stay_apart(synced: Synced) -> None:
    """No canonical entity holds records of two real entities, and no seeded value that the
    ground truth does not call a conflict was changed (e.g. two "X - Expansion" deals of one
    account, one Closed Won, one open: each keeps its own amount and close date)."""
    score = E.score_ground_truth(synced.world)
    damaged = E.changed_seed_values(synced.world, "opportunity", ("amount", "close_date"))
    assert score.merged == {"account": 0, "contact": 0, "opportunity": 0}, score.table()
    assert damaged == [], "\n".join(damaged[:20])


def test_identity_map_views_match_the_remote_records_after_the_first_push(synced: Synced) -> None:
    stale = synced.stale_after_first
    assert stale == [], "\n".join(map(str, stale[:20]))


def test_agreement_check_catches_remote_edits_and_a_cycle_repairs_them(
    synced: Synced, sandbox_http: Any
) -> None:
    """The agreement check can fail: edit remote records behind revsync's back, the
    check sees it; the next cycles take the edits in and the systems agree again.
    (Runs last: it changes the shared world.)"""
    world = synced.world
    session = sandbox_http(world.sb)
    edits = session.post(f"{world.sb.info['hubspot']}/__sandbox/edits",
                         json={"system": "hubspot", "n": 8, "kinds": ["update"], "seed": 3}, timeout=30).json()
    assert edits
    mismatches, _ = E.agreement_mismatches(world)
    edited = {str(e["id"]) for e in edits}
    assert {m.remote_id for m in mismatches} & edited, [str(m) for m in mismatches[:10]]
    reports = E.sync_until_quiet(world)
    assert reports[-1].writes == 0, E.summarize(reports)
    assert all(r.status == "ok" for r in reports), E.summarize(reports)
    after, _ = E.agreement_mismatches(world)
    assert after == [], "\n".join(map(str, after[:20]))


def test_second_cycle_writes_nothing_at_60_accounts(make_sandbox: Any, tmp_path: Any) -> None:
    sb = make_sandbox(accounts=60, seed=11)
    world = E.open_world(sb, tmp_path)
    r1 = world.runner.run_cycle(force=True)
    assert r1.status == "ok"
    before = E.fetch_stats(sb)
    r2 = world.runner.run_cycle()
    after = E.fetch_stats(sb)
    assert r2.writes == 0, E.summarize([r2])
    assert sum(E.delta(E.write_calls(after), E.write_calls(before)).values()) == 0
