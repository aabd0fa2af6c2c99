"""The sandbox server over real HTTPS, with a tiny test emulator (no vendor emulators)."""

from __future__ import annotations

import http.client
import json
import random
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from werkzeug.wrappers import Request, Response

from sandbox.core import Emulator, Fault, json_response
from sandbox.server import Sandbox, SandboxError, load_emulator_class, make_credentials


class EchoEmulator(Emulator):
    """Answers every call with what it saw; renders faults as 500 {"fault": kind}."""

    system: ClassVar[str] = "planhat"

    def load(self, data_dir: Path) -> None:
        self.loaded_from = data_dir
        path = data_dir / self.system / "companies.json"
        self.records: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []

    def endpoint_name(self, request: Request) -> str:
        return request.path.strip("/").split("/")[0] or "/"

    def handle(self, request: Request, fault: Fault | None) -> Response:
        endpoint = self.endpoint_name(request)
        if fault is not None:
            self.ctx.stats.fault(self.system, fault.kind)
            self.ctx.stats.call(self.system, endpoint, 500)
            return json_response({"fault": fault.kind, "params": dict(fault.params)}, 500)
        self.ctx.stats.call(self.system, endpoint, 200)
        self.ctx.stats.served(self.system, len(self.records))
        return json_response({"method": request.method, "path": request.path, "records": self.records})

    def apply_edits(self, rng: random.Random, n: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {"system": self.system, "object": "companies", "id": str(rng.randrange(10**6)),
             "kind": kinds[i % len(kinds)], "fields": ["name"]}
            for i in range(n)
        ]

    def counts(self) -> dict[str, int]:
        return {"companies": len(self.records)}


class BrokenEmulator(EchoEmulator):
    def handle(self, request: Request, fault: Fault | None) -> Response:
        raise RuntimeError("boom")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(emulators={"planhat": EchoEmulator}, seed=11) as sb:
        yield sb


def _session(sb: Sandbox) -> requests.Session:
    # trust_env off: REQUESTS_CA_BUNDLE in the environment would override session.verify.
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sb.info["ca_cert"])
    return session


def test_serves_over_https_verified_against_the_ca_file(sandbox: Sandbox) -> None:
    url = sandbox.urls["planhat"]
    assert url.startswith("https://127.0.0.1:")
    resp = _session(sandbox).get(f"{url}/companies?limit=1")
    assert resp.status_code == 200
    assert resp.json()["path"] == "/companies"
    # the certificate also names localhost
    port = url.rsplit(":", 1)[1]
    assert _session(sandbox).get(f"https://localhost:{port}/companies").status_code == 200


def test_tls_fails_without_the_ca(sandbox: Sandbox) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = True  # the system trust store does not know the throwaway CA
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{sandbox.urls['planhat']}/companies")


def test_plain_http_gets_no_answer(sandbox: Sandbox) -> None:
    plain = sandbox.urls["planhat"].replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{plain}/companies", timeout=5)


def test_ca_file_is_a_pem_certificate_and_loads_into_an_ssl_context(sandbox: Sandbox) -> None:
    pem = Path(sandbox.info["ca_cert"]).read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    ssl.create_default_context(cafile=sandbox.info["ca_cert"])  # raises if not a CA bundle


def test_info_is_the_ready_line(sandbox: Sandbox) -> None:
    info = sandbox.info
    assert info["planhat"] == sandbox.urls["planhat"]
    assert info["salesforce"] is None and info["hubspot"] is None
    assert info["stats"] == f"{sandbox.urls['planhat']}/__sandbox/stats"
    assert info["ground_truth"] is None
    assert info["credentials"] == {"planhat": make_credentials(11)["planhat"]}
    json.dumps(info)  # JSON-ready


def test_credentials_are_derived_from_the_seed() -> None:
    a, b, c = make_credentials(1), make_credentials(1), make_credentials(2)
    assert a == b and a != c
    assert set(a["salesforce"]) == {"client_id", "client_secret", "refresh_token", "username", "password"}
    assert set(a["hubspot"]) == {"access_token", "client_id", "client_secret", "refresh_token"}
    assert set(a["planhat"]) == {"api_token"}


def test_reset_fault_drops_the_connection(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec({"script": [{"system": "planhat", "nth": 1, "kind": "reset"}]})
    session = _session(sandbox)
    with pytest.raises(requests.ConnectionError):
        session.get(f"{sandbox.urls['planhat']}/companies", timeout=5)
    # the next call is served normally, and the reset was counted
    assert session.get(f"{sandbox.urls['planhat']}/companies", timeout=5).status_code == 200
    stats = sandbox.ctx.stats.snapshot()["planhat"]
    assert stats["faults"]["reset"] == 1
    assert stats["by_status"] == {"0": 1, "200": 1}


def test_slow_fault_makes_a_short_client_timeout_fire(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec(
        {"script": [{"system": "planhat", "nth": 1, "kind": "slow", "params": {"seconds": 0.6}}]}
    )
    session = _session(sandbox)
    with pytest.raises(requests.Timeout):
        session.get(f"{sandbox.urls['planhat']}/companies", timeout=0.2)
    assert session.get(f"{sandbox.urls['planhat']}/companies", timeout=5).status_code == 200
    assert sandbox.ctx.stats.snapshot()["planhat"]["faults"]["slow"] == 1


def test_slow_fault_answers_normally_to_a_patient_client(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec(
        {"script": [{"system": "planhat", "nth": 1, "kind": "slow", "params": {"seconds": 0.1}}]}
    )
    resp = _session(sandbox).get(f"{sandbox.urls['planhat']}/companies", timeout=10)
    assert resp.status_code == 200 and "fault" not in resp.json()


def test_other_faults_reach_the_emulator_with_their_params(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec("planhat/companies:rate_limit=1;retry_after=2")
    session = _session(sandbox)
    resp = session.get(f"{sandbox.urls['planhat']}/companies")
    assert resp.status_code == 500
    assert resp.json() == {"fault": "rate_limit", "params": {"retry_after": 2}}
    assert session.get(f"{sandbox.urls['planhat']}/endusers").status_code == 200


def test_write_flag_follows_the_http_method(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec("planhat:partial=1;fraction=0.5")
    session = _session(sandbox)
    assert session.get(f"{sandbox.urls['planhat']}/companies").status_code == 200
    resp = session.put(f"{sandbox.urls['planhat']}/companies", json=[{"name": "x"}])
    assert resp.json()["fault"] == "partial"


def test_emulator_exception_becomes_a_500_and_is_counted() -> None:
    with Sandbox(emulators={"planhat": BrokenEmulator}) as sb:
        resp = _session(sb).get(f"{sb.urls['planhat']}/companies")
        assert resp.status_code == 500
        assert resp.json()["error"] == "sandbox emulator error"
        assert sb.ctx.stats.snapshot()["planhat"]["by_status"] == {"500": 1}


# --------------------------------------------------------------------------- control routes


def test_control_stats_and_reset(sandbox: Sandbox) -> None:
    session = _session(sandbox)
    base = sandbox.urls["planhat"]
    session.get(f"{base}/companies")
    session.get(f"{base}/companies")
    stats = session.get(f"{base}/__sandbox/stats").json()
    assert stats["planhat"]["calls"] == 2  # control calls are not counted
    assert stats["planhat"]["by_endpoint"] == {"companies": 2}
    assert session.post(f"{base}/__sandbox/stats/reset").json() == {"status": "ok"}
    assert session.get(f"{base}/__sandbox/stats").json()["planhat"]["calls"] == 0


def test_control_faults_replaces_the_spec_and_rejects_bad_ones(sandbox: Sandbox) -> None:
    session = _session(sandbox)
    base = sandbox.urls["planhat"]
    resp = session.post(f"{base}/__sandbox/faults", json={"rules": "planhat:server_error=1", "seed": 3})
    assert resp.status_code == 200
    assert resp.json()["rules"][0]["kind"] == "server_error"
    assert session.get(f"{base}/companies").status_code == 500
    bad = session.post(f"{base}/__sandbox/faults", json={"rules": "planhat:melt=1"})
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
    assert session.get(f"{base}/__sandbox/faults").json()["rules"][0]["kind"] == "server_error"
    session.post(f"{base}/__sandbox/faults", json=None)  # clear
    assert session.get(f"{base}/companies").status_code == 200


def test_control_faults_are_never_drawn_for_control_routes(sandbox: Sandbox) -> None:
    sandbox.ctx.faults.set_spec("*:reset=1")
    resp = _session(sandbox).get(f"{sandbox.urls['planhat']}/__sandbox/health")
    assert resp.status_code == 200


def test_control_edits_calls_apply_edits_with_a_seeded_rng(sandbox: Sandbox) -> None:
    session = _session(sandbox)
    url = f"{sandbox.urls['planhat']}/__sandbox/edits"
    body = {"system": "planhat", "n": 3, "kinds": ["update", "create"], "seed": 5}
    first = session.post(url, json=body).json()
    assert first == session.post(url, json=body).json()
    expected_rng = random.Random(5)
    assert [e["id"] for e in first] == [str(expected_rng.randrange(10**6)) for _ in range(3)]
    assert [e["kind"] for e in first] == ["update", "create", "update"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"system": "hubspot", "n": 1}, 400),
        ({"n": -1}, 400),
        ({"n": 1, "kinds": ["explode"]}, 400),
        ({"n": 1, "kinds": []}, 400),
        ({"n": 1, "seed": "x"}, 400),
        ([1, 2], 400),
    ],
)
def test_control_edits_rejects_bad_bodies(sandbox: Sandbox, body: object, status: int) -> None:
    resp = _session(sandbox).post(f"{sandbox.urls['planhat']}/__sandbox/edits", json=body)
    assert resp.status_code == status and "error" in resp.json()


def test_control_health_and_unknown_routes(sandbox: Sandbox) -> None:
    session = _session(sandbox)
    base = sandbox.urls["planhat"]
    health = session.get(f"{base}/__sandbox/health").json()
    assert health == {"status": "ok", "system": "planhat", "systems": ["planhat"], "tier": "pro",
                      "counts": {"planhat": {"companies": 0}}}
    assert session.get(f"{base}/__sandbox/nope").status_code == 404
    assert session.delete(f"{base}/__sandbox/stats").status_code == 405
    bad_json = session.post(f"{base}/__sandbox/faults", data="{oops",
                            headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400


# --------------------------------------------------------------------------- lifecycle and data


def test_data_dir_is_loaded_and_ground_truth_reported(tmp_path: Path) -> None:
    (tmp_path / "planhat").mkdir()
    (tmp_path / "planhat" / "companies.json").write_text(json.dumps([{"_id": "a" * 24, "name": "Acme"}]))
    (tmp_path / "manifest.json").write_text(json.dumps({"seed": 1, "accounts": 1}))
    (tmp_path / "ground_truth.json").write_text("{}")
    with Sandbox(tmp_path, emulators={"planhat": EchoEmulator}) as sb:
        assert sb.emulators["planhat"].counts() == {"companies": 1}
        assert sb.info["ground_truth"] == str(tmp_path / "ground_truth.json")
        assert sb.manifest == {"seed": 1, "accounts": 1}
        records = _session(sb).get(f"{sb.urls['planhat']}/companies").json()["records"]
        assert records[0]["name"] == "Acme"


def test_no_data_means_empty_emulators_loaded_from_a_missing_dir() -> None:
    with Sandbox(emulators={"planhat": EchoEmulator}) as sb:
        emulator = sb.emulators["planhat"]
        assert isinstance(emulator, EchoEmulator)
        assert not (emulator.loaded_from / "planhat").exists()


def test_ca_dir_receives_the_ca_and_it_survives_stop(tmp_path: Path) -> None:
    sb = Sandbox(emulators={"planhat": EchoEmulator}, ca_dir=tmp_path / "ca")
    sb.start()
    ca = Path(sb.info["ca_cert"])
    assert ca.parent == tmp_path / "ca"
    sb.stop()
    assert ca.is_file()


def test_stop_closes_the_port_and_removes_the_temp_dir(tmp_path: Path) -> None:
    sb = Sandbox(emulators={"planhat": EchoEmulator}).start()
    url, ca = sb.urls["planhat"], Path(sb.info["ca_cert"])
    kept_ca = tmp_path / "ca.pem"
    kept_ca.write_bytes(ca.read_bytes())
    assert _session(sb).get(f"{url}/x").status_code == 200
    sb.stop()
    assert not ca.exists()
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/x", timeout=2, verify=str(kept_ca))


def test_stop_closes_kept_alive_connections_too(tmp_path: Path) -> None:
    sb = Sandbox(emulators={"planhat": EchoEmulator}, ca_dir=tmp_path).start()
    session = _session(sb)
    url = f"{sb.urls['planhat']}/companies"
    assert session.get(url).status_code == 200  # the pool now holds an open connection
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=5)


def test_three_systems_get_three_ports() -> None:
    classes = {s: type(f"Echo_{s}", (EchoEmulator,), {"system": s}) for s in ("salesforce", "hubspot", "planhat")}
    with Sandbox(emulators=classes) as sb:
        ports = {url.rsplit(":", 1)[1] for url in sb.urls.values()}
        assert len(ports) == 3
        session = _session(sb)
        for system in ("salesforce", "hubspot", "planhat"):
            assert session.get(f"{sb.urls[system]}/x").status_code == 200
        stats = session.get(f"{sb.urls['hubspot']}/__sandbox/stats").json()
        assert all(stats[s]["calls"] == 1 for s in ("salesforce", "hubspot", "planhat"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tier": "platinum"}, "unknown tier"),
        ({"faults": "planhat:nope=1"}, "bad fault spec"),
        ({"systems": ("zendesk",)}, "unknown system"),
        ({"data_dir": Path("does-not-exist-anywhere")}, "does not exist"),
        ({"accounts": -1}, "accounts must be"),
    ],
)
def test_bad_arguments_raise_sandbox_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        Sandbox(**kwargs)


def test_unknown_system_class_fails_loudly() -> None:
    with pytest.raises(SandboxError, match="unknown system"):
        load_emulator_class("zendesk")


# --------------------------------------------------------------------------- keep-alive


def _connection(sb: Sandbox) -> http.client.HTTPSConnection:
    port = int(sb.urls["planhat"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(sb.info["ca_cert"]))
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)


def test_connections_are_kept_alive_and_unread_bodies_are_drained(sandbox: Sandbox) -> None:
    conn = _connection(sandbox)
    try:
        conn.request("GET", "/companies")
        first = conn.getresponse()
        assert first.status == 200 and first.getheader("Connection") == "keep-alive"
        first.read()
        sock = conn.sock
        # the test emulator never reads the body: the server must drain it
        conn.request("PUT", "/companies", body=b"x" * 100_000, headers={"Content-Type": "application/json"})
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["method"] == "PUT"
        conn.request("GET", "/endusers")
        third = conn.getresponse()
        assert json.loads(third.read())["path"] == "/endusers"
        assert conn.sock is sock  # one TLS connection for all three calls
    finally:
        conn.close()


def test_client_connection_close_is_honoured(sandbox: Sandbox) -> None:
    conn = _connection(sandbox)
    try:
        conn.request("GET", "/companies", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.getheader("Connection") == "close"
        assert json.loads(resp.read())["path"] == "/companies"
    finally:
        conn.close()


def test_requests_session_reuses_one_connection_for_many_calls(sandbox: Sandbox) -> None:
    session = _session(sandbox)
    for i in range(20):
        resp = session.get(f"{sandbox.urls['planhat']}/companies?i={i}")
        assert resp.status_code == 200
    adapter = session.get_adapter(sandbox.urls["planhat"])
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    pools = list(adapter.poolmanager.pools._container.values())
    assert len(pools) == 1 and pools[0].num_connections == 1
