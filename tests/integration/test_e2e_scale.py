"""End-to-end at a larger size: a full sync of 1,000 accounts completes (slow: ~40 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from splink.internals.exceptions import EMTrainingException

from bench import throughput


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=EMTrainingException, reason=(
    "bug: at 1,000 accounts (seed 42) run_cycle fails: sync/jobs.py Runner._match_new -> "
    "sync/matching.py run_batch -> sync/dedupe.py match_records/_train runs splink EM with a "
    "training rule that gives no record pairs among the unmatched records (contacts: "
    "`l.email = r.email`; at 10,000 accounts, accounts: `l.domain = r.domain`), since tier-1 "
    "already linked every shared email/domain; splink's EMTrainingException fails the whole "
    "cycle. A rule with no pairs should be skipped (keep the priors)"))
def test_full_sync_of_1000_accounts_completes(tmp_path: Path) -> None:
    result = throughput.run(1000, 42, out=tmp_path / "out")
    assert result["status"] == "ok"
    assert result["second_cycle"]["written"] == {}
