"""`sandbox.cli`: the serve ready line, clean signal shutdown, and clear usage errors."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from sandbox.cli import app

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ready_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout=READY_TIMEOUT)
    sel.close()
    assert ready, "serve printed no ready line"
    line = proc.stdout.readline()
    assert line, f"serve exited early: {proc.stderr.read() if proc.stderr else ''}"
    info: dict[str, Any] = json.loads(line)
    return info


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc = _serve("--systems", "planhat", "--seed", "3", "--tier", "off", "--ca-dir", str(tmp_path))
    try:
        yield proc, _ready_line(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_json_ready_line_and_exits_0_on_signal(
    served: tuple[subprocess.Popen[str], dict[str, Any]], tmp_path: Path, sig: signal.Signals
) -> None:
    proc, info = served
    assert set(info) == {"salesforce", "hubspot", "planhat", "ca_cert", "stats", "ground_truth", "credentials"}
    assert info["salesforce"] is None and info["hubspot"] is None
    assert info["ca_cert"] == str(tmp_path / "sandbox-ca.pem")
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_cert"]
    health = session.get(f"{info['planhat']}/__sandbox/health", timeout=10).json()
    assert health["status"] == "ok" and health["tier"] == "off"
    token = info["credentials"]["planhat"]["api_token"]
    resp = session.get(f"{info['planhat']}/companies", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200 and resp.json() == []
    assert session.get(info["stats"], timeout=10).json()["planhat"]["calls"] == 1

    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None and proc.stdout.read() == ""  # nothing after the ready line
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--faults", "hubspot:explode=1"], "bad fault spec"),
        (["serve", "--faults", "@no-such-spec-file.json"], "cannot read fault spec file"),
        (["serve", "--data", "no-such-data-dir"], "does not exist"),
        (["serve", "--tier", "platinum"], "unknown tier"),
        (["serve", "--systems", "zendesk"], "--systems takes"),
        (["serve", "--data", ".", "--accounts", "3"], "not both"),
        (["generate", "--accounts", "-1", "--out", "x"], "--accounts must be"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    code, output = _run(args)
    assert code == 2
    assert message in output
    assert "Traceback" not in output
    assert output.strip().startswith("error: ")


def test_bad_fault_spec_in_a_subprocess_exits_2_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "serve", "--faults", "nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: bad fault spec")
