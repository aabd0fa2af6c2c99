"""End-to-end: with seeded faults the end state equals the fault-free run's.

Two sandboxes from one seed, one injecting rate limits, 5xx, 503s, connection resets,
Salesforce ``UNABLE_TO_LOCK_ROW`` and an expired Salesforce session. Each is synced
until a cycle writes nothing; the canonical state (keyed by seeded remote ids), the
remote record counts and the absence of duplicates must match.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import requests

from cli import sandbox_settings
from connectors.base import ApiBudget, FatalError
from sync.jobs import build_connections
from tests.integration import e2e_support as E

ACCOUNTS, SEED = 30, 13
FAULTS: dict[str, Any] = {
    "seed": 5,
    "rules": [
        {"system": "*", "kind": "rate_limit", "p": 0.05, "params": {"retry_after": 1}},
        {"system": "*", "kind": "server_error", "p": 0.04},
        {"system": "*", "kind": "unavailable", "p": 0.02, "params": {"retry_after": 1}},
        {"system": "*", "kind": "reset", "p": 0.04},
        {"system": "salesforce", "endpoint": "composite/sobjects", "kind": "lock", "p": 0.25},
    ],
    "script": [
        {"system": "salesforce", "endpoint": "composite/sobjects", "nth": 4, "kind": "reset"},
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
    assert {"lock", "expired_token", "server_error", "reset"} <= set(injected["salesforce"])
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


def test_tls_eof_from_a_reset_is_retried(make_sandbox: Any, tmp_path: Path) -> None:
    connector = _salesforce_connector(make_sandbox, tmp_path)
    attempts: list[int] = []

    def reset_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise requests.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"))
        return "ok"

    assert connector._call(reset_once, "update Account") == "ok"
    assert len(attempts) == 2


def test_tls_verification_failure_stays_fatal(make_sandbox: Any, tmp_path: Path) -> None:
    connector = _salesforce_connector(make_sandbox, tmp_path)
    attempts: list[int] = []

    def bad_cert() -> str:
        attempts.append(1)
        raise requests.exceptions.SSLError(
            ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))

    with pytest.raises(FatalError, match="TLS verification failed"):
        connector._call(bad_cert, "update Account")
    assert len(attempts) == 1


def _salesforce_connector(make_sandbox: Any, tmp_path: Path) -> Any:
    sb = make_sandbox(accounts=0, seed=3)
    settings = sandbox_settings(sb.info, f"sqlite:///{tmp_path / 'unused.db'}")
    conns = build_connections(settings, budget=ApiBudget(), retry=E.no_wait_retry(), only=["salesforce"])
    return conns["salesforce"].connector
