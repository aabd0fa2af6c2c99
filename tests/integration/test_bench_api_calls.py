"""Smoke test of ``bench/api_calls.py`` at a tiny size: JSON shape and sane figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode

import pytest
import requests

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api_calls.py"
PER_SYSTEM_KEYS = {
    "read_calls_per_1k", "read_min_per_1k", "write_calls_per_1k", "write_min_per_1k",
    "read_overhead_calls", "read_assoc_calls_per_1k", "read_assoc_min_per_1k",
    "records_read", "records_written", "read_calls", "write_calls", "total_calls",
    "by_endpoint", "by_object",
}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_api_calls", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def result(bench: ModuleType) -> dict:
    out = bench.run_bench(8, seed=3, creates=3)
    json.dumps(out)  # printable as JSON
    return out


def test_every_system_reports_the_keys(result: dict) -> None:
    assert result["accounts"] == 8
    for system in ("salesforce", "hubspot", "planhat"):
        assert PER_SYSTEM_KEYS <= set(result[system]), system


def test_measured_calls_are_at_least_the_minimum(result: dict) -> None:
    for system in ("salesforce", "hubspot", "planhat"):
        fig = result[system]
        assert fig["records_read"] > 0
        assert fig["read_calls"] > 0 and fig["write_calls"] > 0
        assert fig["read_calls_per_1k"] >= fig["read_min_per_1k"] > 0, system
        assert fig["write_calls_per_1k"] >= fig["write_min_per_1k"] > 0, system
        assert fig["read_assoc_calls_per_1k"] >= fig["read_assoc_min_per_1k"], system
        for native, obj in fig["by_object"].items():
            assert obj["read_page_calls"] >= obj["read_page_min"] >= 1, (system, native)
            assert obj["update_calls"] >= obj["update_min"], (system, native)
            assert obj["create_calls"] >= obj["create_min"] >= 1, (system, native)
            assert obj["creates"] == 3
            assert obj["updates"] == obj["records_read"]
            assert obj["failed_writes"] == 0, obj.get("write_errors")


def test_counts_come_from_the_sandbox(result: dict) -> None:
    for system in ("salesforce", "hubspot", "planhat"):
        fig = result[system]
        counted = sum(sum(ep.values()) for ep in fig["by_endpoint"].values())
        assert counted == fig["total_calls"], system
        assert fig["total_calls"] == fig["read_calls"] + fig["read_assoc_calls"] + fig[
            "read_overhead_calls"] + fig["write_calls"], system
    sf = result["salesforce"]
    assert sf["client_matches_sandbox"] is True
    assert sf["by_endpoint"]["connect"].get("oauth") == 1


def test_minimum_arithmetic(bench: ModuleType) -> None:
    assert bench.pages(0, 100) == 1
    assert bench.pages(100, 100) == 1
    assert bench.pages(101, 100) == 2
    assert bench.offset_pages(100, 100) == 2  # only a short page ends a limit/offset listing
    assert bench.batches(0, 200) == 0
    assert bench.batches(401, 200) == 3
    assert bench.per_1k(3, 1500) == 2.0
    assert bench.soql_kind("SELECT COUNT() FROM Lead") == "count"
    assert bench.soql_kind("SELECT Id, Email FROM User") == "owners"
    assert bench.soql_kind("SELECT OpportunityId FROM OpportunityContactRole WHERE x") == "assoc"
    assert bench.soql_kind("SELECT Id, Name FROM Account ORDER BY SystemModstamp, Id") == "page"


def test_cli_prints_one_json_object(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--accounts", "2", "--seed", "5", "--creates", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert {"salesforce", "hubspot", "planhat"} <= set(out)
    assert out["creates_per_object"] == 1


def _response(url: str, body: dict) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp._content = json.dumps(body).encode()
    resp.request = requests.Request("GET", url).prepare()
    return resp


def test_salesforce_call_log_follows_query_more_cursors(bench: ModuleType) -> None:
    log = bench.SalesforceCallLog()
    base = "https://sf.test/services/data/v59.0"
    roles = "SELECT OpportunityId FROM OpportunityContactRole WHERE OpportunityId IN ('006')"
    log.hook(_response(f"{base}/query/?{urlencode({'q': roles})}",
                       {"done": False, "nextRecordsUrl": "/services/data/v59.0/query/01gA-2000"}))
    log.hook(_response(f"{base}/query/?{urlencode({'q': 'SELECT Id FROM Opportunity'})}",
                       {"done": False, "nextRecordsUrl": "/services/data/v59.0/query/01gB-2000"}))
    log.hook(_response(f"{base}/query/01gA-2000", {"done": True}))
    log.hook(_response(f"{base}/query/01gB-2000", {"done": True}))
    log.hook(_response(f"{base}/sobjects/Opportunity/describe", {}))
    log.hook(_response("https://sf.test/services/oauth2/token", {}))
    assert log.take() == {"assoc": 2, "page": 2, "describe": 1, "auth": 1}
    assert log.take() == {}
