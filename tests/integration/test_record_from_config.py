"""``python -m tests.record --config``: recording through a revsync.toml, as against a real org.

The sandbox stands in for the org here: the connections, URLs and secrets come from the
config file and the environment exactly as they would for a real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import e2e_support as E
from tests.record import SCENARIOS, WRITES, main, record_all, replay_connector
from tests.recording import PLACEHOLDERS, replay

from .conftest import MakeSandbox


def test_record_through_a_config_then_replay_offline(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=12, seed=5)
    env = E.secret_environment(sb.info)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # the product's starter config (revsync init's), pointed at the sandbox's ports
    config = E.write_config(sb.info, tmp_path, secrets_file=False)
    out = tmp_path / "cassettes"
    names = record_all(out, config, [])
    # the write scenarios change data: never recorded from a config without --writes
    assert set(names) == set(SCENARIOS) - set(WRITES)
    assert not list(out.glob("*.truth.json"))  # no server state is known for a real org
    for path in out.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not [v for v in env.values() if v in text], path.name
        assert "127.0.0.1" not in text and "Authorization" not in text, path.name
    assert PLACEHOLDERS["hubspot"] in (out / "hubspot_read_deals.yaml").read_text(encoding="utf-8")
    # and each recording replays strictly, offline, giving the same records
    sb.stop()
    for name in names:
        system, scenario = SCENARIOS[name]
        with replay(name, out):
            result = scenario(replay_connector(system))
        assert result


def test_record_from_a_config_needs_an_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "revsync.toml")]) == 2
    assert "--config needs --out" in capsys.readouterr().err
