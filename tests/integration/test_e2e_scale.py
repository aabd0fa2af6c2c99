"""End-to-end at a larger size: a full sync of 1,000 accounts completes (slow: ~40 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import throughput


@pytest.mark.slow
def test_full_sync_of_1000_accounts_completes(tmp_path: Path) -> None:
    """Also the regression test for a training block with no pairs (tier-1 already
    joined every record sharing an email): the matcher keeps its priors."""
    result = throughput.run(1000, 42, out=tmp_path / "out", gap=0)
    assert result["status"] == "ok"
    assert result["cycles"]["2"]["written"] == {}
    assert result["cycles"]["3"]["written"] == {}
    assert sum(result["cycles"]["3"]["mapped"].values()) == 0
