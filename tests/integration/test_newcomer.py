"""A newcomer's first hour against the sandbox: the README's by-hand block run word for
word, the plan in a pipe, and a sync that finds every scope leased."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import EXIT_SKIPPED, app
from sync import store as st
from sync.jobs import LEASE_TTL, ORDER, utcnow

from .test_cli_sync import write_config

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _by_hand_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Trying it by hand against the sandbox", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's by-hand section has no sh block"
    return block.group(1)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_the_readme_by_hand_block_runs_as_written(tmp_path: Path) -> None:
    """Copy-paste from the README in a fresh directory: exit 0, no warning, no traceback."""
    if not all(_port_free(p) for p in (8441, 8442, 8443)):
        pytest.skip("ports 8441-8443 are in use (a sandbox started by hand?)")
    block = _by_hand_block()
    assert "--secrets-file .revsync/sandbox/secrets.toml" in block
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert "warning" not in out.lower(), out[-3000:]
    assert "does not exist" not in out
    # the plan in a pipe: plain text, says how many it shows, tells how to see the rest
    head = re.search(r"# (\d+) pending op\(s\), 20 shown", proc.stdout)
    assert head, proc.stdout[:2000]
    assert f"showing 20 of {head.group(1)} pending ops" in proc.stderr.replace("\n", " ")
    assert "entity\tsystem\tkind\tfield\told → new\trule" in proc.stdout
    # find and explain of the README's example worked (explain prints the record it names)
    assert "salesforce Account 0015g0000lXFtYKAA1" in proc.stdout


def test_plan_in_a_pipe_is_plain_text_and_says_what_it_left_out(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=8, seed=5)
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    assert runner.invoke(app, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["--config", str(cfg), "sync", "--dry-run"]).exit_code == 0
    full = json.loads(runner.invoke(app, ["--config", str(cfg), "plan", "--json", "--all"]).stdout)
    assert full["pending"] > 5 and full["shown"] == full["pending"] == len(full["ops"])
    r = runner.invoke(app, ["--config", str(cfg), "plan", "--limit", "5"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == f"# {full['pending']} pending op(s), 5 shown"
    assert lines[1].split("\t") == ["entity", "system", "kind", "field", "old → new", "rule"]
    rows = [line.split("\t") for line in lines[2:]]
    assert rows and all(len(x) == 6 for x in rows)
    # every change of the 5 ops is there, none cut: the op ids of the first 5 ops match
    first5 = full["ops"][:5]
    assert {x[0].split()[1] for x in rows} == {op["entity"][:8] for op in first5}
    assert sum(max(len(op["changes"]), 1) for op in first5) == len(rows)
    assert f"showing 5 of {full['pending']} pending ops" in r.stderr.replace("\n", " ")
    r = runner.invoke(app, ["--config", str(cfg), "plan", "--all"])
    assert "shown" not in r.stdout.splitlines()[0] and "showing" not in r.stderr
    # the short id in the first column is what explain takes
    r = runner.invoke(app, ["--config", str(cfg), "explain", rows[0][0].split()[1], "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["entity"].startswith(rows[0][0].split()[1])


def test_a_sync_that_finds_every_scope_leased_says_skipped_and_exits_3(make_sandbox, tmp_path, monkeypatch) -> None:
    sb = make_sandbox(accounts=4, seed=3)
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    assert runner.invoke(app, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    holder = f"{socket.gethostname()}:{os.getpid()}:4242"  # a live process: not stale
    with st.Store.from_url(url).session() as s:
        for system in ("salesforce", "hubspot", "planhat"):
            for ot in ORDER:
                assert st.acquire_lease(s, system, ot.value, holder, utcnow(), LEASE_TTL)
    r = runner.invoke(app, ["--config", str(cfg), "sync"])
    assert r.exit_code == EXIT_SKIPPED == 3
    assert "skipped: another run holds every scope's lease" in r.output.replace("\n", " ")
    r = runner.invoke(app, ["--config", str(cfg), "sync", "--json"])
    assert r.exit_code == 3 and json.loads(r.stdout)["status"] == "skipped"
    snap = sb.ctx.stats.snapshot()
    assert all(snap[system]["records_served"] == 0 for system in ("salesforce", "hubspot", "planhat"))  # nothing pulled
