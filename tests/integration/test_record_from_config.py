"""``python -m tests.record --config``: recording through a revsync.toml, as against a real org.

The sandbox stands in for the org here: the connections, URLs and secrets come from the
config file and the environment exactly as they would for a real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.record import SCENARIOS, WRITES, main, record_all, replay_connector
from tests.recording import PLACEHOLDERS, replay

from .conftest import MakeSandbox


def test_record_through_a_config_then_replay_offline(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = make_sandbox(accounts=12, seed=5)
    creds = sb.info["credentials"]
    env = {"SF_ID": creds["salesforce"]["client_id"], "SF_SECRET": creds["salesforce"]["client_secret"],
           "SF_REFRESH": creds["salesforce"]["refresh_token"], "HS_TOKEN": creds["hubspot"]["access_token"],
           "PH_TOKEN": creds["planhat"]["api_token"]}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ca = sb.info["ca_cert"]
    config = tmp_path / "revsync.toml"
    config.write_text(f"""
[connections.crm]
kind = "salesforce"
instance_url = "{sb.urls['salesforce']}"
token_url = "{sb.urls['salesforce']}/services/oauth2/token"
ca_bundle = "{ca}"
[connections.crm.secrets]
client_id = "SF_ID"
client_secret = "SF_SECRET"
refresh_token = "SF_REFRESH"
[connections.marketing]
kind = "hubspot"
host = "{sb.urls['hubspot']}"
ca_bundle = "{ca}"
[connections.marketing.secrets]
access_token = "HS_TOKEN"
[connections.cs]
kind = "planhat"
base_url = "{sb.urls['planhat']}"
ca_bundle = "{ca}"
[connections.cs.secrets]
api_token = "PH_TOKEN"
""", encoding="utf-8")
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
