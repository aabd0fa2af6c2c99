"""End-to-end: with seeded faults the end state equals the fault-free run's.

Two sandboxes from one seed, one injecting rate limits, 5xx, 503s, connection resets,
Salesforce ``UNABLE_TO_LOCK_ROW`` and an expired Salesforce session. Each is synced
until a cycle writes nothing; the canonical state (keyed by seeded remote ids), the
remote record counts and the absence of duplicates must match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration import e2e_support as E

ACCOUNTS, SEED = 30, 13
FAULTS: dict[str, Any] = {
    "seed": 5,
    "rules": [
        {"system": "*", "kind": "rate_limit", "p": 0.05, "params": {"retry_after": 1}},
        {"system": "*", "kind": "server_error", "p": 0.04},
        {"system": "*", "kind": "unavailable", "p": 0.02, "params": {"retry_after": 1}},
        {"system": "hubspot", "kind": "reset", "p": 0.03},
        {"system": "planhat", "kind": "reset", "p": 0.03},
        # resets on Salesforce writes: see test_reset_on_a_salesforce_write_is_retried
        *({"system": "salesforce", "endpoint": ep, "kind": "reset", "p": 0.05}
          for ep in ("query", "queryMore", "describe", "deleted")),
        {"system": "salesforce", "endpoint": "composite/sobjects", "kind": "lock", "p": 0.25},
    ],
    "script": [
        {"system": "salesforce", "endpoint": "query", "nth": 4, "kind": "expired_token"},
        {"system": "salesforce", "endpoint": "composite/sobjects", "nth": 2, "kind": "expired_token"},
        {"system": "salesforce", "endpoint": "composite/sobjects", "nth": [1, 3, 5], "kind": "lock",
         "params": {"fraction": 0.3}},
        {"system": "salesforce", "endpoint": "query", "nth": 7, "kind": "server_error"},
    ],
}


def _run(make_sandbox: Any, tmp: Path, faults: Any) -> tuple[E.World, list[Any], dict[str, Any]]:
    sb = make_sandbox(accounts=ACCOUNTS, seed=SEED, faults=faults)
    world = E.open_world(sb, tmp, retry=E.no_wait_retry())
    reports = E.sync_until_quiet(world)
    sb.ctx.faults.set_spec(None)  # read the end state without faults
    return world, reports, E.fetch_stats(sb)


def test_faults_leave_the_same_end_state_as_a_clean_run(make_sandbox: Any, tmp_path: Path) -> None:
    clean, clean_reports, _ = _run(make_sandbox, tmp_path / "clean", None)
    faulty, faulty_reports, stats = _run(make_sandbox, tmp_path / "faulty", FAULTS)
    print("clean:", E.summarize(clean_reports))
    print("faulty:", E.summarize(faulty_reports))
    injected = {s: stats[s]["faults"] for s in E.SYSTEM_NAMES}
    print("faults injected:", injected)
    # the faults really happened, of every kind asked for
    assert {"rate_limit", "server_error", "reset"} <= set(injected["hubspot"]) | set(injected["planhat"])
    assert {"lock", "expired_token", "server_error"} <= set(injected["salesforce"])
    assert sum(sum(v.values()) for v in injected.values()) >= 10

    for reports in (clean_reports, faulty_reports):
        assert reports[-1].writes == 0 and reports[-1].status == "ok", E.summarize(reports)
    assert E.remote_counts(faulty.sb) == E.remote_counts(clean.sb)
    assert E.duplicate_external_ids(E.read_remote(faulty)) == {}
    a, b = E.stable_state(clean), E.stable_state(faulty)
    assert E.diff_states(a, b) == []
    assert a == b
    mismatches, _ = E.agreement_mismatches(faulty)
    assert mismatches == [], "\n".join(map(str, mismatches[:20]))
    assert E.pending_ops(faulty) == 0


@pytest.mark.xfail(strict=True, reason=(
    "bug: connectors/salesforce.py SalesforceConnector._call turns every requests SSLError into "
    "FatalError('TLS verification failed'); a TCP reset during a write surfaces as "
    "SSLError(SSLEOFError 'EOF occurred in violation of protocol'), is not retried, and the "
    "whole batch is deferred"))
def test_reset_on_a_salesforce_write_is_retried(make_sandbox: Any, tmp_path: Path) -> None:
    faults = {"script": [{"system": "salesforce", "endpoint": "composite/sobjects", "nth": 1, "kind": "reset"}]}
    sb = make_sandbox(accounts=10, seed=3, faults=faults)
    world = E.open_world(sb, tmp_path, retry=E.no_wait_retry())
    report = world.runner.run_cycle(force=True)
    assert E.fetch_stats(sb)["salesforce"]["faults"] == {"reset": 1}
    assert report.messages == [], report.messages
    assert report.status == "ok"
    assert E.pending_ops(world) == 0
