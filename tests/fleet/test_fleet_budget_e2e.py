"""The shared budget end to end: two workers with a small daily HubSpot allocation
together never pass it (the sandbox's own call counter proves it); the run parks
what is left, and the next day's cycle goes on from where it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from sandbox.server import Sandbox
from sync import store as st
from sync.budget import SharedBudget
from sync.migrate import upgrade
from tests.fleet import fleet_support as F
from tests.integration import e2e_support as E

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.integration]

ALLOCATION = 12  # HubSpot calls per day: far fewer than one full sync needs


def hubspot_calls(sb: Sandbox) -> int:
    return int(E.fetch_stats(sb).get("hubspot", {}).get("calls", 0))


def cursor(store: st.Store) -> dict[str, object]:
    with store.session() as s:
        return {f"{c.system}/{c.native_type}": (c.modstamp, c.records_seen)
                for c in s.scalars(select(st.SyncCursorRow)) if c.system == "hubspot"}


def test_two_workers_share_one_daily_allocation(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    upgrade(pg_url)
    with Sandbox(accounts=30, seed=7, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, budget={"hubspot": ALLOCATION})
        store = st.Store.from_url(pg_url)
        with F.workers(config, tmp_path, n=2) as w:
            try:
                before = hubspot_calls(sb)
                run = F.wait_run(store, F.enqueue_cycle(config, force=True))
                day1 = hubspot_calls(sb) - before
                text = " ".join(run.counts.get("messages") or [])
                seen1 = cursor(store)
                # midnight UTC: the day's counter starts again (a new key per day)
                SharedBudget(redis_url, {}).reset()
                before = hubspot_calls(sb)
                run2 = F.wait_run(store, F.enqueue_cycle(config, force=True))
                day2 = hubspot_calls(sb) - before
                seen2 = cursor(store)
            except BaseException:
                print(w.logs())
                raise
        print("day 1:", day1, run.status, text, "day 2:", day2, run2.status, seen1, seen2)
        # the sandbox counted at most the allocation, both workers together
        assert 0 < day1 <= ALLOCATION
        assert 0 < day2 <= ALLOCATION
        assert "shared daily API budget of 12 calls is used up" in text
        assert run.status == "partial"
        # the next day went on from where the first stopped: HubSpot read further
        assert seen2 != seen1
