"""[fleet] settings and the fleet commands' user mistakes (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from sync import config as cfg

runner = CliRunner()


def test_fleet_is_off_without_a_broker_and_the_env_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cfg.parse({}).fleet.enabled
    monkeypatch.setenv("REVSYNC_BROKER_URL", "redis://127.0.0.1:6390/2")
    f = cfg.parse({"fleet": {"task_time_limit": 600, "visibility_timeout": 900}}).fleet
    assert f.enabled and f.broker_url == "redis://127.0.0.1:6390/2" and f.task_time_limit == 600


@pytest.mark.parametrize(("table", "message"), [
    ({"broker_url": "redis://x/0", "task_time_limit": 900, "visibility_timeout": 600},
     "fleet.visibility_timeout: must be longer than fleet.task_time_limit"),
    ({"lease_seconds": 0}, "fleet.lease_seconds: must be greater than 0"),
    ({"brokr_url": "redis://x/0"}, "fleet.brokr_url: unknown key"),
    ({"broker_url": 5}, "fleet.broker_url: must be a URL"),
])
def test_bad_fleet_settings_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message.replace(".", r"\.")):
        cfg.parse({"fleet": table})


def test_budget_calls_per_second_is_checked() -> None:
    conn = {"kind": "planhat", "base_url": "https://127.0.0.1:1", "budget": {"calls_per_second": 0}}
    with pytest.raises(cfg.ConfigError, match=r"connections\.planhat\.budget\.calls_per_second"):
        cfg.parse({"connections": {"planhat": conn}}, resolve_secrets=False)


def test_worker_without_a_broker_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["worker"])
    assert r.exit_code == 2
    assert "no broker configured" in r.output and "Traceback" not in r.output


def test_status_shows_the_shared_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    import json

    from sync.budget import SharedBudget

    monkeypatch.chdir(tmp_path)
    (tmp_path / "revsync.toml").write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'r.db'}"
[fleet]
broker_url = "{redis_url}"
[connections.hubspot]
kind = "hubspot"
host = "https://127.0.0.1:1"
[connections.hubspot.budget]
calls_per_day = 40
calls_per_second = 9
""")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    other_worker = SharedBudget(redis_url, {"hubspot": (40, 9)})
    for _ in range(7):
        other_worker.spend("hubspot")
    r = runner.invoke(app, ["status", "--json"])
    assert r.exit_code == 0, r.output
    shared = json.loads(r.output)["api_budget_shared"]["hubspot"]
    assert (shared["calls"], shared["calls_per_day"], shared["remaining"], shared["calls_per_second"]) == (7, 40, 33, 9)
    r = runner.invoke(app, ["status"])
    assert "shared by every worker" in r.output
