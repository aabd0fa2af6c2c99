"""Per-system queues in parallel: with one system's API slow, the other systems' pulls
are done before the slow one has read its first object (in the old one-after-the-other
order they waited behind it), and the cycle still ends in the right state."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from sandbox.server import Sandbox
from sync import store as st
from sync.migrate import upgrade
from tests.fleet import fleet_support as F
from tests.integration import e2e_support as E

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.integration]

#: every HubSpot call sleeps this long (the sandbox's ``slow`` fault): its first
#: object's read takes longer than every other system's whole pull on one worker
SLOW_SECONDS = 8


def _cursors(store: st.Store) -> dict[tuple[str, str], float]:
    with store.session() as s:
        return {(r.system, r.native_type): r.updated_at.timestamp() for r in s.scalars(select(st.SyncCursorRow))}


def test_a_slow_api_does_not_delay_the_other_systems_pulls(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    upgrade(pg_url)
    with Sandbox(accounts=40, seed=31, tier="off", faults=f"hubspot:slow=1.0;seconds={SLOW_SECONDS}") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, shards=2)
        store = st.Store.from_url(pg_url)
        seen: dict[tuple[str, str], float] = {}

        def watch() -> None:
            # the cursors as they were when HubSpot's first object was read (a first
            # full read sets its cursor once the whole listing is in); then HubSpot
            # is fast again so the rest of the cycle does not drag
            if seen:
                return
            now = _cursors(store)
            if any(system == "hubspot" for system, _n in now):
                seen.update(now)
                sb.ctx.faults.set_spec(None)

        with F.workers(config, tmp_path, n=2) as w:
            try:
                run = F.wait_run(store, F.enqueue_cycle(config, force=True), timeout=600, on_wait=watch)
            except BaseException:
                print(w.logs())
                raise
            if not seen:  # the run ended between two looks
                seen.update(_cursors(store))
        final = _cursors(store)
        assert run.status in ("ok", "partial"), (run.status, run.counts, run.error)
        others = {k for k in final if k[0] != "hubspot"}
        hubspot = {k for k in final if k[0] == "hubspot"}
        assert {s for s, _n in others} == {"salesforce", "planhat"} and len(hubspot) >= 3, final
        # when HubSpot had read its first object, Salesforce and Planhat had read everything
        assert others <= set(seen), (sorted(seen), sorted(final))
        first_hubspot = min(t for k, t in seen.items() if k[0] == "hubspot")
        assert max(seen[k] for k in others) < first_hubspot
        # and every system's records came in; the slow one held up nobody's data
        pulled = run.counts["pulled"]
        assert all(pulled.get(n, 0) > 0 for n in E.SYSTEM_NAMES), pulled
        assert sb.ctx.stats.snapshot()["hubspot"]["faults"].get("slow", 0) >= 1
