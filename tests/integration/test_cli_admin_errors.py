"""Admin mistakes and unusable systems through the CLI, against the sandbox.

A wrong token, a 401 on a read, an unreachable host or a CA bundle that is not where
the config says: one ``error:`` line naming the cause on stderr, exit 2, never a
traceback; the other systems' part of the run goes on and the run records which
system failed (auth) or was deferred (unreachable).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from connectors.registry import starter_secret_env

from .conftest import MakeSandbox
from .test_cli_sync import write_config

# the variables the starter config (what write_config writes) names for the tokens
HS_TOKEN = starter_secret_env()["hubspot"]["access_token"]
PH_TOKEN = starter_secret_env()["planhat"]["api_token"]

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def upgraded(cfg: Path) -> None:
    r = runner.invoke(app, ["--config", str(cfg), "db", "upgrade", "--json"])
    assert r.exit_code == 0, r.output


def sync_json(cfg: Path) -> tuple[int, dict[str, Any], str]:
    r = runner.invoke(app, ["--config", str(cfg), "sync", "--json"])
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    return r.exit_code, json.loads(r.stdout) if r.stdout.strip() else {}, r.stderr


def last_run(cfg: Path) -> dict[str, Any]:
    r = runner.invoke(app, ["--config", str(cfg), "status", "--json"])
    assert r.exit_code == 0, r.output
    return dict(json.loads(r.stdout)["last_runs"][0])


def test_wrong_hubspot_token_fails_hubspot_only_with_one_line_and_exit_2(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=8, seed=5)
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    monkeypatch.setenv(HS_TOKEN, "pat-wrong-token")
    upgraded(cfg)

    code, report, stderr = sync_json(cfg)

    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith("error: hubspot: credentials refused") and "401" in line
    assert "pat-wrong-token" not in stderr  # the secret never shows
    assert set(report["failed_systems"]) == {"hubspot"}
    assert report["pulled"].get("salesforce", 0) > 0 and report["pulled"].get("planhat", 0) > 0
    assert sum(report["written"].values()) > 0  # the other systems went on
    assert report["status"] == "partial"
    run = last_run(cfg)
    assert run["status"] == "partial"
    assert list(run["counts"]["failed_systems"]) == ["hubspot"]  # recorded as failed for hubspot
    human = runner.invoke(app, ["--config", str(cfg), "status"])
    assert human.exit_code == 0 and "hubspot failed" in human.stdout


def test_wrong_planhat_token_fails_planhat_only(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=6, seed=6)
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    monkeypatch.setenv(PH_TOKEN, "wrong-planhat-token")
    upgraded(cfg)

    code, report, stderr = sync_json(cfg)

    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith("error: planhat: credentials refused")
    assert set(report["failed_systems"]) == {"planhat"}
    assert report["pulled"].get("hubspot", 0) > 0 and report["pulled"].get("salesforce", 0) > 0


def test_one_hubspot_401_on_a_read_is_one_line_not_a_traceback(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's crash: a 401 while reading HubSpot (private-app token: nothing to refresh)."""
    sb = make_sandbox(accounts=6, seed=8, faults="hubspot:expired_token=1")
    cfg = write_config(tmp_path, sb.info, monkeypatch)
    upgraded(cfg)

    code, report, stderr = sync_json(cfg)

    assert code == 2
    [line] = error_lines(stderr)
    assert "hubspot" in line and "401" in line
    assert set(report["failed_systems"]) == {"hubspot"}
    assert "hubspot" not in report["pulled"]
    assert report["pulled"].get("salesforce", 0) > 0
    assert sb.ctx.stats.snapshot()["hubspot"]["faults"].get("expired_token", 0) >= 1


def test_unreachable_system_is_deferred_with_one_line_and_the_others_go_on(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=6, seed=9)
    info = dict(sb.info)
    info["planhat"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = write_config(tmp_path, info, monkeypatch)
    upgraded(cfg)

    code, report, stderr = sync_json(cfg)

    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith("error: planhat: cannot reach the system") and "connection refused" in line
    assert "deferred to the next cycle" in line
    assert set(report["deferred_systems"]) == {"planhat"} and not report["failed_systems"]
    assert report["status"] == "partial"  # deferred, not a failed cycle
    assert report["pulled"].get("salesforce", 0) > 0 and report["pulled"].get("hubspot", 0) > 0
    run = last_run(cfg)
    assert run["status"] == "partial" and list(run["counts"]["deferred_systems"]) == ["planhat"]


def test_cli_subprocess_wrong_token_and_unreachable_salesforce(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real process: exit 2, one line per unusable system, no traceback."""
    sb = make_sandbox(accounts=4, seed=10)
    info = dict(sb.info)
    info["salesforce"] = f"https://127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path, info, monkeypatch)
    monkeypatch.setenv(HS_TOKEN, "pat-also-wrong")
    upgraded(cfg)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    proc = subprocess.run(
        [sys.executable, "-m", "cli", "--config", str(cfg), "sync"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )

    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 2, proc.stderr
    # nothing else on stderr: no retry chatter, no log lines, no traceback
    assert [x for x in proc.stderr.splitlines() if x.strip()] == lines
    assert any(x.startswith("error: salesforce: cannot reach the system") for x in lines)
    assert any(x.startswith("error: hubspot: credentials refused") for x in lines)


def test_relative_ca_bundle_is_found_next_to_the_config_not_the_working_directory(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=4, seed=12)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    cfg = write_config(conf_dir, sb.info, monkeypatch)
    shutil.copy(sb.info["ca_cert"], conf_dir / "ca.pem")
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(f'"{sb.info["ca_cert"]}"', '"ca.pem"'),
                   encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    upgraded(cfg)

    code, report, stderr = sync_json(cfg)
    assert code == 0, stderr
    assert report["status"] == "ok" and sum(report["pulled"].values()) > 0

    (conf_dir / "ca.pem").unlink()
    code, _report, stderr = sync_json(cfg)
    assert code == 2
    lines = error_lines(stderr)
    assert len(lines) == 3  # one per connection, each naming the file
    assert all("ca_bundle" in x and str(conf_dir / "ca.pem") in x for x in lines)
