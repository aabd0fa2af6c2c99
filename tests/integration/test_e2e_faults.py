"""End-to-end: with every fault kind on every system the end state equals the clean run's.

Two sandboxes from one seed: one clean, one injecting (seeded) rate limits, 5xx, 503s,
timeouts (slow answers past the client's timeout), connection resets, expired tokens,
partial batch failures (some items of a batch write fail) on all three systems, and
Salesforce ``UNABLE_TO_LOCK_ROW``. Each is synced with normal ``sync`` cycles (never
``retry``) until a cycle writes nothing; the end state must be the same: the canonical
store, and every system's records, field values and associations compared by canonical
content (the revsync ids and seeded records they belong to), with no duplicate and an
empty outbox.

``validation`` (a value a system always refuses) is not in the matrix: it never heals,
so the end state cannot equal a clean run's; ``test_e2e_retry.py`` covers it.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any

import pytest
import requests

from cli import sandbox_settings
from connectors.base import ApiBudget, FatalError
from sync import store as st
from sync.jobs import Runner, build_connections
from sync.migrate import upgrade
from tests.integration import e2e_support as E

ACCOUNTS, SEED = 40, 13
#: the client timeout in the faulty run, and how long a "slow" fault holds the answer
TIMEOUT, SLOW = 1.0, 1.6
SYSTEMS = ("salesforce", "hubspot", "planhat")
MATRIX = ("rate_limit", "server_error", "unavailable", "slow", "reset", "expired_token", "partial")
FAULTS: dict[str, Any] = {
    "seed": 5,
    "rules": [
        {"system": "*", "kind": "rate_limit", "p": 0.03, "params": {"retry_after": 1}},
        {"system": "*", "kind": "server_error", "p": 0.03},
        {"system": "*", "kind": "unavailable", "p": 0.02, "params": {"retry_after": 1}},
        {"system": "*", "kind": "reset", "p": 0.02},
        {"system": "*", "kind": "slow", "p": 0.01, "params": {"seconds": SLOW}},
        {"system": "*", "kind": "partial", "p": 0.3, "params": {"fraction": 0.25}},
        {"system": "salesforce", "endpoint": "composite/sobjects", "kind": "lock", "p": 0.2},
    ],
    "script": [
        # every kind on every system at least once, whatever the random draws (an entry
        # earlier in the list wins a call two entries pick). Expired tokens on a read and
        # on a write: Salesforce and HubSpot (OAuth) refresh them; a Planhat token
        # cannot be refreshed, so its write is deferred to the next cycle.
        {"system": "salesforce", "endpoint": "query", "nth": 4, "kind": "expired_token"},
        {"system": "salesforce", "endpoint": "composite/sobjects", "nth": 2, "kind": "expired_token"},
        {"system": "hubspot", "nth": 11, "kind": "expired_token", "write": False},
        {"system": "hubspot", "nth": 3, "kind": "expired_token", "write": True},
        {"system": "planhat", "nth": 3, "kind": "expired_token", "write": True},
        *({"system": sy, "nth": [1, 2], "kind": "partial", "write": True, "params": {"fraction": 0.3}}
          for sy in SYSTEMS),
        # Salesforce has no burst 429: its rate limit is the daily allocation (403), which
        # ends that system's pull for the cycle ("resuming next cycle"). Only on its 2nd
        # call: a stop half-way through the opportunities changes the order records are
        # first linked in, and tier-1 opportunity linking (account + name) depends on it
        # (one pair of seed 13 links in one order and not in the other; not a fault bug)
        {"system": "salesforce", "nth": [2], "kind": "rate_limit", "params": {"daily": True}},
        *({"system": sy, "nth": [2, 22], "kind": "rate_limit", "params": {"retry_after": 1}}
          for sy in ("hubspot", "planhat")),
        *({"system": sy, "nth": [5, 15, 25], "kind": "unavailable", "params": {"retry_after": 1}}
          for sy in SYSTEMS),
        *({"system": sy, "nth": [6, 16, 26], "kind": "server_error"} for sy in SYSTEMS),
        *({"system": sy, "nth": [8, 18, 28], "kind": "reset"} for sy in SYSTEMS),
        *({"system": sy, "nth": [9, 19], "kind": "slow", "params": {"seconds": SLOW}} for sy in SYSTEMS),
    ],
}


def _world(sb: Any, tmp: Path, *, faulty: bool) -> E.World:
    tmp.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{tmp / 'revsync.db'}"
    upgrade(db_url)
    settings = sandbox_settings(sb.info, db_url)
    if faulty:
        creds = sb.info["credentials"]["hubspot"]
        for name, cs in list(settings.connections.items()):
            secrets = dict(cs.secrets)
            if name == "hubspot":  # over OAuth, so an expired token is refreshed (a private-app one is not)
                secrets = {k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}
            settings.connections[name] = dataclasses.replace(
                cs, options={**cs.options, "timeout": TIMEOUT}, secrets=secrets)
    budget = ApiBudget()
    conns = build_connections(settings, budget=budget, retry=E.no_wait_retry())
    return E.World(sb, db_url, Runner(st.Store.from_url(db_url), conns, settings, budget=budget))


def _run(make_sandbox: Any, tmp: Path, faults: Any) -> tuple[E.World, list[Any], dict[str, Any]]:
    sb = make_sandbox(accounts=ACCOUNTS, seed=SEED, faults=faults)
    world = _world(sb, tmp, faulty=faults is not None)
    reports = E.sync_until_quiet(world, max_cycles=10)
    sb.ctx.faults.set_spec(None)  # read the end state without faults
    return world, reports, E.fetch_stats(sb)


@pytest.mark.slow
def test_every_fault_on_every_system_ends_in_the_clean_end_state(make_sandbox: Any, tmp_path: Path) -> None:
    clean, clean_reports, _ = _run(make_sandbox, tmp_path / "clean", None)
    faulty, faulty_reports, stats = _run(make_sandbox, tmp_path / "faulty", FAULTS)
    print("clean:", E.summarize(clean_reports))
    print("faulty:", E.summarize(faulty_reports))
    injected = {s: stats[s]["faults"] for s in SYSTEMS}
    print("fault matrix (injected per system and kind):", injected)
    for system in SYSTEMS:  # the faults really happened: every kind on every system
        assert set(MATRIX) <= set(injected[system]), (system, injected[system])
    assert injected["salesforce"].get("lock")
    assert sum(r.failed.get(s, 0) for r in faulty_reports for s in SYSTEMS) > 0  # per-record failures happened

    for reports in (clean_reports, faulty_reports):
        assert reports[-1].writes == 0 and reports[-1].status == "ok", E.summarize(reports)
    assert all(r.kind == "cycle" for r in faulty_reports)  # normal cycles, no retry
    assert E.outbox_left(faulty) == {}
    with faulty.store.session() as s:
        assert st.list_errors(s) == [], [(e.system, e.message) for e in st.list_errors(s)]
    ra, rb = E.remote_state(clean), E.remote_state(faulty)
    diff = E.diff_remote(ra, rb)
    print("end-state diff (remote, by canonical content):", diff)
    assert diff == [], "\n".join(diff)
    assert E.remote_counts(faulty.sb) == E.remote_counts(clean.sb)
    assert E.duplicate_external_ids(E.read_remote(faulty)) == {}
    a, b = E.stable_state(clean), E.stable_state(faulty)
    assert E.diff_states(a, b) == [], "\n".join(E.diff_states(a, b))
    mismatches, _ = E.agreement_mismatches(faulty)
    assert mismatches == [], "\n".join(map(str, mismatches[:20]))


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
