"""Prometheus metrics: the store's gauges, the run counters, the exporter on its own port."""

from __future__ import annotations

import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from sync import metrics
from sync.jobs import CycleReport
from tests.sync.quality_seed import NOW, seed


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_store_gauges(tmp_path):
    store = seed(f"sqlite:///{tmp_path / 'm.db'}")
    reg = metrics.CollectorRegistry()
    reg.register(metrics.StoreCollector(store, now=lambda: NOW))
    got = _samples(metrics.exposition(reg).decode())
    assert got[("revsync_errors_open", (("category", "bad_value"), ("object", "contact"), ("system", "hubspot")))] == 1
    assert got[("revsync_review_queue", (("object", "account"),))] == 1
    assert got[("revsync_api_budget_remaining", (("system", "salesforce"),))] == 14993
    assert got[("revsync_api_calls_today", (("system", "salesforce"),))] == 7
    assert got[("revsync_entities", (("object", "opportunity"),))] == 2
    assert got[("revsync_last_run_seconds", (("kind", "cycle"),))] == 42


def test_a_cycle_counts_pulled_per_system_and_object(tmp_path):
    from sync import config as cfg
    from sync import store as st
    from sync.engine import Connection
    from sync.jobs import Runner
    from sync.migrate import upgrade
    from tests.sync.fakes import Clock, FakeConnector

    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    sf.add("Account", {"Name": "Kestrel Farms", "Website": "https://kestrel.example"})
    sf.add("Account", {"Name": "Ibis Partners", "Website": "https://ibis.example"})
    runner = Runner(st.Store.from_url(url), {"salesforce": Connection("salesforce", "salesforce", sf),
                                             "hubspot": Connection("hubspot", "hubspot", hs)}, cfg.parse({}), now=clock)
    pulled = metrics.PULLED.labels("salesforce", "account")._value.get()
    runs = metrics.RUNS.labels("cycle", "ok")._value.get()
    report = runner.run_cycle()
    assert report.status == "ok"
    assert metrics.PULLED.labels("salesforce", "account")._value.get() == pulled + 2
    assert metrics.RUNS.labels("cycle", "ok")._value.get() == runs + 1


def test_observe_push_counts_per_system_and_object():
    from types import SimpleNamespace

    w = metrics.WRITTEN.labels("hubspot", "contact")._value.get()
    f = metrics.FAILED.labels("salesforce", "contact")._value.get()
    metrics.observe_push("contact", SimpleNamespace(written={"hubspot": 5}, failed={"salesforce": 1}))
    assert metrics.WRITTEN.labels("hubspot", "contact")._value.get() == w + 5
    assert metrics.FAILED.labels("salesforce", "contact")._value.get() == f + 1


def test_observe_cycle_counts_runs():
    rep = CycleReport(run_id=1, kind="cycle", status="ok", pulled={"hubspot": 3}, written={"planhat": 4},
                      api_calls={"hubspot": 2}, seconds=1.5)
    before = metrics.API_CALLS.labels("hubspot")._value.get()
    metrics.observe_cycle(rep)
    assert metrics.API_CALLS.labels("hubspot")._value.get() == before + 2
    text = metrics.exposition(metrics.registry(None)).decode()
    assert 'revsync_api_calls_total{system="hubspot"}' in text
    assert "revsync_run_duration_seconds_count" in text


def test_exporter_on_its_own_port(tmp_path):
    store = seed(f"sqlite:///{tmp_path / 'm.db'}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server, thread = metrics.serve_metrics(store, port)
    try:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
    assert 'revsync_review_queue{object="account"} 1.0' in body
