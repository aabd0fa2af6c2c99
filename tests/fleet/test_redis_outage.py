"""The fleet's Redis down (broker and shared API budget): a fleet-mode CLI run and
``revsync status`` print one clear line and exit 2, never a traceback; a worker logs
that it cannot connect, keeps trying, and works once Redis is back."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from sandbox.server import Sandbox
from sync.budget import BrokerUnreachable, SharedBudget, check_reachable
from tests.fleet import fleet_support as F
from tests.integration import e2e_support as E

REVSYNC = str(Path(sys.executable).parent / "revsync")
cli = CliRunner()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _fleet_config(tmp: Path, info: dict[str, Any], broker: str) -> Path:
    """The starter config for this sandbox, on SQLite, with a fleet whose Redis is ``broker``."""
    return E.write_config(info, tmp, extra=f'[fleet]\nbroker_url = "{broker}"\n')


def _revsync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REVSYNC, "--config", str(config), *args], capture_output=True, text=True,
                          env=F.clean_env(), cwd=config.parent, timeout=120)


def _one_error_line(args: list[str], port: int) -> str:
    r = cli.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # no traceback
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    line = lines[0]
    assert line.startswith("error: the fleet's Redis at redis://127.0.0.1:") and f":{port}/0" in line, line
    assert "out of reach" in line and "[fleet] broker_url" in line, line
    return line


def test_a_fleet_mode_sync_and_status_with_redis_down_are_one_line_and_exit_2(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there: Redis is down
    with Sandbox(accounts=5, seed=3, tier="off") as sb:
        config = str(_fleet_config(tmp_path, sb.info, f"redis://127.0.0.1:{port}/0"))
        assert cli.invoke(app, ["--config", config, "db", "upgrade"]).exit_code == 0
        before = E.fetch_stats(sb)
        for args in (["sync"], ["sync", "--json"], ["backfill", "--system", "salesforce"], ["status"],
                     ["status", "--json"]):
            _one_error_line(["--config", config, *args], port)
        # the runs did not start: no API call was made (none could have been counted)
        assert E.fetch_stats(sb) == before


def test_the_shared_budget_refuses_a_call_it_cannot_count() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    with pytest.raises(BrokerUnreachable, match="out of reach"):
        check_reachable(url, timeout=1)
    budget = SharedBudget(url, {"salesforce": (100, None)})
    with pytest.raises(BrokerUnreachable, match=r"Redis at redis://127\.0\.0\.1:\d+/0 is out of reach"):
        budget.spend("salesforce")
    assert budget.snapshot().get("salesforce", {}).get("calls", 0) == 0


@pytest.mark.slow
def test_a_worker_logs_and_retries_while_redis_is_down_then_works(tmp_path: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (scripts/with-redis installs it)")
    from celery import Celery
    from celery.result import AsyncResult

    from sync import tasks

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    config = tmp_path / "revsync.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "w.db"}"\n[fleet]\nbroker_url = "{url}"\n',
                      encoding="utf-8")
    assert _revsync(config, "db", "upgrade").returncode == 0
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([REVSYNC, "--config", str(config), "worker", "--concurrency", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, env=F.clean_env(), cwd=tmp_path,
                                  start_new_session=True)
    redis_proc: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 90
        while "Trying again" not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        text = log.read_text(errors="replace")
        assert "Cannot connect to redis://" in text and f"127.0.0.1:{port}" in text, text[-3000:]
        time.sleep(3)
        assert worker.poll() is None, "the worker gave up"
        # Redis comes back on the same address: the worker connects and runs a task
        redis_proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                       "--appendonly", "no", "--dir", str(tmp_path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a Celery app of its own: the module's app may hold connections to another
        # test's Redis
        client = Celery("revsync-test", broker=url, backend=url)
        sent = client.send_task("revsync.step", args=[0, "redis is back"], queue=tasks.DEFAULT_QUEUE)
        assert AsyncResult(sent.id, app=client).get(timeout=120) == "redis is back"
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=20)


def test_a_leading_scheduler_logs_one_line_and_tries_again_next_tick(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """``revsync serve`` in fleet mode with Redis down: the enqueue fails, the tick logs one
    warning naming Redis, and the scheduler goes on (the next tick enqueues)."""
    import logging

    import redis

    import scheduler
    from sync import config as cfg
    from sync import store as st
    from sync.fleet import Leader
    from sync.migrate import upgrade

    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    broker = f"redis://127.0.0.1:{_free_port()}/0"
    settings = cfg.parse({"database": {"url": url}, "fleet": {"broker_url": broker}})
    down = [True]
    sent: list[str] = []

    def enqueue(job: str) -> str:
        if down[0]:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
        sent.append(job)
        return "task-1"

    sched = scheduler.build_fleet_scheduler(settings, enqueue=enqueue, leader=Leader(st.Store.from_url(url), 30))
    fire = sched.get_job(scheduler.JOB_IDS[0])
    assert fire is not None
    with caplog.at_level(logging.INFO, logger="scheduler"):
        fire.func(*fire.args)  # a tick while Redis is down: no exception
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("cycle: not enqueued: the fleet's Redis at redis://127.0.0.1:")
        assert "out of reach" in warnings[0] and "the next tick tries again" in warnings[0]
        down[0] = False
        fire.func(*fire.args)
    assert sent == ["cycle"]
