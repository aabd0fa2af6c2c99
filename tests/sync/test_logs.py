"""--log-format json: one object a line with run id, system, object and phase; secrets never logged."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sync import config as cfg
from sync import logs
from sync import store as st
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

SECRET = "hs-pat-na1-6d1c1f7e-SECRET-9b2a"


@pytest.fixture
def json_log():
    root = logging.getLogger()
    saved = (list(root.handlers), list(root.filters), root.level)
    buf = io.StringIO()
    logs.setup(logging.INFO, "json", buf)
    yield buf
    for h in list(root.handlers):
        root.removeHandler(h)
    for f in list(root.filters):
        root.removeFilter(f)
    for h in saved[0]:
        root.addHandler(h)
    for f in saved[1]:
        root.addFilter(f)
    root.setLevel(saved[2])
    logs.bind(run_id=None, system=None, object=None, phase=None)


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]


def test_cycle_lines_carry_run_system_object_phase(tmp_path, json_log):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    upgrade(url)
    clock = Clock()
    sf = FakeConnector("salesforce", clock)
    sf.add("Account", {"Name": "Tarn Hows Ltd", "Website": "https://tarnhows.co.uk"})
    runner = Runner(st.Store.from_url(url), {"salesforce": Connection("salesforce", "salesforce", sf)},
                    cfg.parse({}), now=clock)
    report = runner.run_cycle()
    lines = _lines(json_log)
    pulls = [x for x in lines if x["phase"] == "pull"]
    assert pulls and all(x["run_id"] == report.run_id for x in pulls)
    assert {(x["system"], x["object"]) for x in pulls} >= {("salesforce", "account"), ("salesforce", "contact")}
    assert {x["phase"] for x in lines} >= {"pull", "match", "reconcile", "push"}
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)


def test_json_lines_never_carry_a_secret(tmp_path, json_log, monkeypatch):
    p = tmp_path / "revsync.toml"
    p.write_text('[connections.hubspot]\nkind = "hubspot"\nhost = "https://127.0.0.1:1"\n'
                 '[connections.hubspot.secrets]\naccess_token = "REVSYNC_TEST_HS_TOKEN"\n', encoding="utf-8")
    monkeypatch.setenv("REVSYNC_TEST_HS_TOKEN", SECRET)
    cfg.install_redactor(cfg.load(p))
    log = logging.getLogger("connectors.hubspot")
    log.warning("Authorization: Bearer %s", SECRET)
    try:
        raise RuntimeError(f"401 for token {SECRET}")
    except RuntimeError:
        log.exception("call failed")
    log.info("extra field", extra={"token": SECRET})
    text = json_log.getvalue()
    assert len(_lines(json_log)) == 3
    assert SECRET not in text
    assert text.count("***") >= 3


def test_cli_rejects_an_unknown_log_format():
    from typer.testing import CliRunner

    import cli

    res = CliRunner().invoke(cli.app, ["--log-format", "xml", "quality"])
    assert res.exit_code == 2 and "log-format" in res.output and "Traceback" not in res.output
