"""Helpers of the distributed tests: a revsync.toml for a sandbox with PostgreSQL and
Redis, worker processes (``revsync worker``), and waiting for a fleet run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.cli import write_secrets_file
from sandbox.server import Sandbox
from sync import config as cfg
from sync import store as st

REVSYNC = str(Path(sys.executable).parent / "revsync")


def write_config(sb: Sandbox, workdir: Path, db_url: str, redis_url: str, *, budget: dict[str, int] | None = None,
                 task_time_limit: int = 120, visibility_timeout: int = 150, lease_seconds: int = 6,
                 shards: int = 4, cycle_minutes: float | None = None) -> Path:
    """A revsync.toml for the fleet: the sandbox's three connections, PostgreSQL, Redis."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_secrets_file(workdir / "secrets.toml", sb.info["credentials"])
    info, ca = sb.info, str(sb.info["ca_cert"])
    env = cfg.STARTER_SECRET_ENV
    budget = budget or {}

    def secrets(system: str) -> str:
        return "\n".join(f"{k} = {json.dumps(v)}" for k, v in env[system].items())

    def budget_table(system: str) -> str:
        return f"[connections.{system}.budget]\ncalls_per_day = {budget[system]}\n" if system in budget else ""

    # a cycle that often; no sweep (1 January, 03:00) and no retry job in a test's time
    schedule = ("" if cycle_minutes is None else
                f'[schedule]\ncycle_minutes = {cycle_minutes}\nretry_minutes = 600\nsweep_cron = "0 3 1 1 *"\n')
    text = f"""
[database]
url = {json.dumps(db_url)}
[secrets]
file = "secrets.toml"
[fleet]
broker_url = {json.dumps(redis_url)}
task_time_limit = {task_time_limit}
visibility_timeout = {visibility_timeout}
lease_seconds = {lease_seconds}
resolve_shards = {shards}
{schedule}[governance.handoff]
default_csm = "cs-team@sandbox.example"  # as cli.sandbox_settings (the reference run)
[limits]
max_creates = 1000000
max_updates = 1000000
[connections.salesforce]
kind = "salesforce"
instance_url = {json.dumps(info["salesforce"])}
token_url = {json.dumps(info["salesforce"] + "/services/oauth2/token")}
ca_bundle = {json.dumps(ca)}
[connections.salesforce.secrets]
{secrets("salesforce")}
{budget_table("salesforce")}
[connections.hubspot]
kind = "hubspot"
host = {json.dumps(info["hubspot"])}
ca_bundle = {json.dumps(ca)}
[connections.hubspot.secrets]
{secrets("hubspot")}
{budget_table("hubspot")}
[connections.planhat]
kind = "planhat"
base_url = {json.dumps(info["planhat"])}
ca_bundle = {json.dumps(ca)}
[connections.planhat.secrets]
{secrets("planhat")}
{budget_table("planhat")}
"""
    path = workdir / "revsync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Workers:
    """``revsync worker`` processes, each in its own process group (a machine)."""

    def __init__(self, config: Path, logdir: Path) -> None:
        self.config, self.logdir = config, logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int = 1, concurrency: int = 1) -> None:
        for _ in range(n):
            i = len(self.procs)
            log = open(self.logdir / f"worker-{i}.log", "wb")
            self.procs.append(subprocess.Popen(
                [REVSYNC, "--config", str(self.config), "worker", "--concurrency", str(concurrency),
                 "--name", f"w{i}@%h", "--loglevel", "INFO"],
                stdout=log, stderr=subprocess.STDOUT, env=clean_env(), cwd=self.config.parent,
                start_new_session=True))

    def kill(self, i: int) -> None:
        """SIGKILL worker ``i`` and its pool: as if its machine died."""
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait()

    def kill_pool_process(self, pid: int) -> None:
        """SIGKILL one pool process (the one running a task) and not its worker: the
        worker sees it lost and hands its task back at once (``reject_on_worker_lost``)."""
        os.kill(pid, signal.SIGKILL)

    def owner_of(self, pid: int) -> int | None:
        """The worker whose process group ``pid`` is in."""
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return None
        for i, p in enumerate(self.procs):
            if p.poll() is None and p.pid == pgid:
                return i
        return None

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f.read_text(errors="replace")[-3000:] for f in sorted(self.logdir.glob("worker-*.log")))


@contextmanager
def schedulers(config: Path, logdir: Path, n: int = 2) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``revsync serve`` processes (fleet mode: they only enqueue, the leader only)."""
    procs = []
    for i in range(n):
        log = open(logdir / f"serve-{i}.log", "wb")
        procs.append(subprocess.Popen([REVSYNC, "--config", str(config), "--verbose", "serve"], stdout=log,
                                      stderr=subprocess.STDOUT, env=clean_env(), cwd=config.parent,
                                      start_new_session=True))
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def all_runs(store: st.Store) -> list[Any]:
    """Every run row so far, oldest first."""
    from sqlalchemy import select

    with store.session() as s:
        rows = list(s.scalars(select(st.SyncRunRow).order_by(st.SyncRunRow.id)))
    return rows


@contextmanager
def workers(config: Path, logdir: Path, n: int = 2, concurrency: int = 1) -> Iterator[Workers]:
    w = Workers(config, logdir)
    w.start(n, concurrency)
    try:
        yield w
    finally:
        w.stop()


def enqueue_cycle(config: Path, *, force: bool = False) -> str:
    """What the leading scheduler does: send ``revsync.cycle`` (its task id)."""
    from sync import tasks

    settings = cfg.load(config)
    tasks.configure(settings)
    return str(tasks.app.send_task("revsync.cycle", kwargs={"force": force}).id)


def wait_run(store: st.Store, task_id: str, timeout: float = 600, on_wait: Any = None,
             poll: float = 0.3) -> Any:
    """The run row of the cycle ``task_id`` started, once it has finished."""
    from celery.result import AsyncResult

    from sync import tasks

    deadline = time.monotonic() + timeout
    res = AsyncResult(task_id, app=tasks.app)
    run_id = res.get(timeout=timeout)
    assert run_id is not None, "the cycle was skipped (another one held the cycle lease)"
    while time.monotonic() < deadline:
        if on_wait is not None:
            on_wait()
        with store.session() as s:
            run = s.get(st.SyncRunRow, run_id)
            if run is not None and run.status != "running":
                return run
        time.sleep(poll)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s")
