"""End-to-end: ``revsync demo --json`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CYCLE_KEYS = {"pulled", "written", "entities", "links", "conflicts", "errors"}


def revsync(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the ``revsync`` command (``python -m cli``: the console script's entry point)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_demo_json_two_cycles_second_writes_nothing(tmp_path: Path) -> None:
    out = revsync("demo", "--accounts", "20", "--seed", "5", "--dir", str(tmp_path / "demo"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stdout[-2000:]
    data = json.loads(lines[0])
    assert data["accounts"] == 20 and data["seed"] == 5
    assert len(data["cycles"]) == 2
    for cycle in data["cycles"]:
        assert CYCLE_KEYS <= set(cycle), sorted(cycle)
        assert cycle["status"] == "ok", cycle
    first, second = data["cycles"]
    assert set(first["pulled"]) == {"salesforce", "hubspot", "planhat"}
    assert all(n > 0 for n in first["pulled"].values())
    assert sum(first["written"].values()) > 0
    assert first["entities"]["account"] >= 18
    assert first["links"] > 0 and first["conflicts"] > 0
    assert data["second_cycle_writes"] == 0 == sum(second["written"].values())
    assert second["entities"] == first["entities"]
    assert (tmp_path / "demo" / "revsync.db").is_file()
    # closed-won handoffs: some complete (licenses in Planhat), some waiting for the
    # contract term the seed leaves out of a third of won deals; nothing held
    gov = data["governance"]
    assert gov["handoffs"]["completed"] >= 1 and gov["handoffs"]["waiting"] >= 1, gov
    assert gov["handoffs"]["waiting_missing"].get("contract_start", 0) >= 1, gov
    assert gov["held_ops"] == 0
    # the custom deal stage of the demo's definitions: deals at it, synced (cycle 2 is quiet)
    assert gov["custom_stage"] == {"stage": "pilot", "deals": 5}, gov
    # account hierarchies: the summary is there; the seed's links are never refused
    assert set(gov["hierarchy"]) == {"with_parent", "deepest", "refused"} and gov["hierarchy"]["refused"] == 0
