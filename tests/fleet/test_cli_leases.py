"""``revsync sync`` takes the leases the fleet's workers take: an expiry kept alive by a
heartbeat. A sync killed on another machine (a fake hostname here) frees its scopes
``fleet.lease_seconds`` later, not after an hour; with a fleet configured, a CLI sync
and a fleet cycle never run at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli import EXIT_SKIPPED, app
from sandbox.server import Sandbox
from sync import config as cfg
from sync import store as st
from sync.leases import FLEET_CYCLE_SCOPE, release, try_acquire
from sync.migrate import upgrade
from tests.fleet import fleet_support as F
from tests.integration.test_cli_sync import write_config

pytestmark = [pytest.mark.slow, pytest.mark.integration]

runner = CliRunner()
#: long enough for a sync here to run while the dead holder's leases last
LEASE_SECONDS = 15
#: ``revsync`` as run on a machine called "elsewhere"
ELSEWHERE = ("import socket, sys; socket.gethostname = lambda: 'elsewhere'; "
             "sys.argv[0] = 'revsync'; from cli import main; main()")


def _leases(store: st.Store) -> list[st.LeaseRow]:
    with store.session() as s:
        return list(s.scalars(select(st.LeaseRow)))


def _as_utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _sync_elsewhere(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    log = open(workdir / "elsewhere.log", "wb")
    return subprocess.Popen([sys.executable, "-c", ELSEWHERE, "--config", str(config), "sync"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=config.parent, start_new_session=True)


@pytest.fixture
def killed() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _kill_once_leased(proc: subprocess.Popen[bytes], store: st.Store, n: int, workdir: Path) -> list[st.LeaseRow]:
    """SIGKILL ``proc`` (the whole machine, as it were) once it holds ``n`` leases."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = [r for r in _leases(store) if r.holder.startswith("elsewhere:")]
        if len(rows) >= n:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return rows
        assert proc.poll() is None, (workdir / "elsewhere.log").read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    raise AssertionError("the sync on the other host never took its leases")


def _wait_expired(store: st.Store, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_as_utc(r.expires_at) < datetime.now(UTC) for r in _leases(store)):
            return
        time.sleep(0.2)
    raise AssertionError("the dead holder's leases never expired")


def test_a_sync_killed_on_another_host_frees_its_scopes_lease_seconds_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killed: list[subprocess.Popen[bytes]]) -> None:
    # every call slow: the sync on the other host is still pulling when it is killed
    with Sandbox(accounts=20, seed=13, tier="off", faults="*:slow=1.0;seconds=1") as sb:
        config = write_config(tmp_path, sb.info, monkeypatch)
        with config.open("a", encoding="utf-8") as f:
            f.write(f"[fleet]\nlease_seconds = {LEASE_SECONDS}\n")
        assert runner.invoke(app, ["--config", str(config), "db", "upgrade"]).exit_code == 0
        store = st.Store.from_url(f"sqlite:///{tmp_path / 'cli.db'}")

        proc = _sync_elsewhere(config, tmp_path)
        killed.append(proc)
        rows = _kill_once_leased(proc, store, 9, tmp_path)
        # its leases name the other host and run out in seconds, not in an hour
        assert {(r.system, r.object_type) for r in rows} == {
            (s, o) for s in ("salesforce", "hubspot", "planhat") for o in ("account", "contact", "opportunity")}
        assert all((_as_utc(r.expires_at) - _as_utc(r.acquired_at)).total_seconds() <= LEASE_SECONDS + 1
                   for r in rows)

        # this host cannot tell a dead process elsewhere from a live one: while the
        # leases last, a sync here keeps off every scope (and says so)
        sb.ctx.faults.set_spec(None)
        r = runner.invoke(app, ["--config", str(config), "sync", "--json"])
        assert all(_as_utc(x.expires_at) > datetime.now(UTC) for x in _leases(store)), "expired too soon"
        assert r.exit_code == EXIT_SKIPPED, r.output
        assert json.loads(r.stdout)["status"] == "skipped"

        # once they expire (nobody renews them), it runs every scope
        _wait_expired(store)
        r = runner.invoke(app, ["--config", str(config), "sync", "--json"])
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert report["status"] == "ok" and report["skipped"] == []
        assert set(report["pulled"]) == {"salesforce", "hubspot", "planhat"}
        assert _leases(store) == []  # released at the end


def test_a_cli_sync_and_a_fleet_cycle_never_run_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str,
        killed: list[subprocess.Popen[bytes]]) -> None:
    from sync import tasks
    from sync.fleet import shared_budget_figures

    upgrade(pg_url)
    store = st.Store.from_url(pg_url)
    with Sandbox(accounts=20, seed=17, tier="off") as sb:
        config = F.write_config(sb, tmp_path, pg_url, redis_url, lease_seconds=LEASE_SECONDS)
        for k in [k for k in os.environ if k.startswith("REVSYNC_")]:
            monkeypatch.delenv(k)
        monkeypatch.setenv(cfg.CONFIG_ENV, str(config))

        # 1. a fleet cycle is running (its lease, taken by the cycle task on some worker):
        #    a CLI sync keeps off everything, one line, exit 3, nothing read
        assert try_acquire(store, FLEET_CYCLE_SCOPE, "fleet-cycle:task-on-another-host", 600)
        served = {n: sb.ctx.stats.snapshot()[n]["records_served"] for n in ("salesforce", "hubspot", "planhat")}
        r = runner.invoke(app, ["--config", str(config), "sync"])
        assert r.exit_code == EXIT_SKIPPED, r.output
        assert "fleet cycle" in " ".join(r.output.split())
        assert {n: sb.ctx.stats.snapshot()[n]["records_served"] for n in served} == served
        release(store, [FLEET_CYCLE_SCOPE], "fleet-cycle:task-on-another-host")

        # 2. a CLI sync on another host holds the fleet's cycle lease when it dies: the
        #    scheduled fleet cycle is skipped while the lease lasts, then runs
        sb.ctx.faults.set_spec("*:slow=1.0;seconds=1")
        proc = _sync_elsewhere(config, tmp_path)
        killed.append(proc)
        rows = _kill_once_leased(proc, store, 10, tmp_path)
        assert FLEET_CYCLE_SCOPE in {(x.system, x.object_type) for x in rows}
        sb.ctx.faults.set_spec(None)
        tasks.context.cache_clear()
        try:
            assert tasks.cycle.apply().get() is None
            assert all(_as_utc(x.expires_at) > datetime.now(UTC) for x in _leases(store)), "expired too soon"
            _wait_expired(store)
            run_id = tasks.cycle.apply().get()
            assert isinstance(run_id, int)
            holder = tasks.RunState(tasks.context(), run_id).get("holder")
            live = [(x.system, x.object_type, x.holder) for x in _leases(store)
                    if _as_utc(x.expires_at) > datetime.now(UTC)]
            assert live == [(*FLEET_CYCLE_SCOPE, holder)]
            # (no worker here runs its canvas: end it as the finish task would)
            release(store, [FLEET_CYCLE_SCOPE], holder)
        finally:
            tasks.context.cache_clear()

        # 3. with the fleet idle, the CLI syncs; its calls count in the fleet's shared budget
        r = runner.invoke(app, ["--config", str(config), "sync", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["status"] == "ok"
        figures = shared_budget_figures(cfg.load(config))
        assert all(figures[n]["calls"] > 0 for n in ("salesforce", "hubspot", "planhat")), figures
        assert _leases(store) == []


def test_a_cli_dedupe_keeps_off_an_object_another_matcher_holds(tmp_path: Path) -> None:
    """``revsync dedupe`` takes the matcher's lease per object, as a fleet's match task:
    held elsewhere, one line and exit 3, nothing linked; free, it runs."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = tmp_path / "revsync.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    assert runner.invoke(app, ["--config", str(config), "db", "upgrade"]).exit_code == 0
    store = st.Store.from_url(url)
    assert try_acquire(store, ("match", "contact"), "elsewhere:1:task", 600)
    r = runner.invoke(app, ["--config", str(config), "dedupe", "--object", "account", "--object", "contact"])
    assert r.exit_code == EXIT_SKIPPED, r.output
    assert "another job is matching contact" in " ".join(r.output.split()) and "Traceback" not in r.output
    assert [(x.system, x.object_type) for x in _leases(store)] == [("match", "contact")]  # its own given back
    release(store, [("match", "contact")], "elsewhere:1:task")
    r = runner.invoke(app, ["--config", str(config), "dedupe", "--object", "contact", "--json"])
    assert r.exit_code == 0, r.output
    assert _leases(store) == []
