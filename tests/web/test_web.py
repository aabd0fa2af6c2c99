"""The console over HTTP (Starlette's TestClient): login, CSRF, actions, audit, secrets."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from sync import store as st
from tests.sync.quality_seed import NOW
from tests.web.conftest import PASSWORD, SECRET_IN_DATA
from web.auth import Credentials, hash_password, load_credentials, verify_password

PAGES = ["/", "/errors", "/review", "/plan", "/explain", "/explain?q=zephyr", "/explain/a-1", "/quality",
         "/definitions", "/audit"]


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client: TestClient, password: str = PASSWORD) -> str:
    page = client.get("/login")
    r = client.post("/login", data={"user": "admin", "password": password, "csrf": _csrf(page.text), "next": "/"},
                    follow_redirects=False)
    return r


@pytest.mark.parametrize("path", [*PAGES, "/metrics"])
def test_no_page_without_login(app, path):
    client = TestClient(app)
    r = client.get(path, follow_redirects=False)
    assert r.status_code in (303, 401)
    if r.status_code == 303:
        assert r.headers["location"].startswith("/login")


def test_posts_without_login_are_refused(app):
    client = TestClient(app)
    for path in ("/errors/retry", "/review/decide", "/quality/refresh"):
        assert client.post(path, data={"id": "1"}, follow_redirects=False).status_code == 401


def test_wrong_password_is_refused_and_audited(app, console):
    client = TestClient(app)
    r = login(client, "hunter2")
    assert r.status_code == 401 and "wrong user or password" in r.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert console.audit.tail()[0]["action"] == "login_failed"


def test_every_page_renders_after_login(app):
    client = TestClient(app)
    assert login(client).status_code == 303
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "cdn" not in r.text.lower()


def test_pages_show_the_store(app):
    client = TestClient(app)
    login(client)
    assert "#1" in client.get("/").text
    errors = client.get("/errors?category=validation").text
    assert "Name must be set" in errors and "call me maybe" not in errors
    plan = client.get("/plan").text
    assert "closed_won" in plan and "negotiation" in plan
    for q in ("zephyr-oel", "ZEPHYR-OEL.DE", "Ölwerke", "Quokka", "001a000002", "9001"):
        assert "/explain/" in client.get("/explain", params={"q": q}).text, q
    assert "nothing matches" in client.get("/explain?q=100%25").text
    explain = client.get("/explain/salesforce:006A000001").text
    assert "source_priority" in explain and "45000" in explain  # HubSpot's claim beside the decided value
    q = client.get("/quality").text
    assert "handoffs: 0 complete, 0 waiting" in q and "held writes: 0" in q and "45,000" in q


def test_post_without_csrf_is_refused(app, console):
    client = TestClient(app)
    login(client)
    r = client.post("/errors/retry", data={"id": "2"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/errors/retry", data={"id": "2", "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    with console.store.session() as s:
        assert s.query(st.OutboxRow).filter_by(state="failed").count() == 1


def test_retry_and_review_act_and_are_audited(app, console):
    client = TestClient(app)
    login(client)
    page = client.get("/errors")
    err_id = re.search(r'name="id" value="(\d+)"', page.text).group(1)
    r = client.post("/errors/retry", data={"id": err_id, "csrf": _csrf(page.text)})
    assert "1 failed write(s) due now" in r.text
    with console.store.session() as s:
        # the write is due now: the next cycle's retry step takes it (and plans it anew)
        assert st.due_write_retries(s, NOW) == {"account": ["a-2"]}
    page = client.get("/review")
    r = client.post("/review/decide", data={"id": "1", "decision": "reject", "csrf": _csrf(page.text)})
    assert "review 1: rejected" in r.text
    with console.store.session() as s:
        assert s.get(st.MatchReviewRow, 1).state == "rejected"
    actions = [(e["action"], e["user"]) for e in console.audit.tail()]
    assert ("retry", "admin") in actions and ("review_reject", "admin") in actions
    lines = console.audit.path.read_text().splitlines()
    assert all(json.loads(x)["at"] for x in lines)


def test_secrets_are_never_rendered(app, console):
    with console.store.session() as s:
        e = s.get(st.ErrorLedgerRow, 2)
        e.message = f"INVALID_SESSION_ID: session {SECRET_IN_DATA} expired"
    client = TestClient(app)
    login(client)
    html = client.get("/errors").text
    assert "INVALID_SESSION_ID" in html and SECRET_IN_DATA not in html and "***" in html
    assert PASSWORD not in html


def test_sessions_expire(console, monkeypatch):
    import time

    from web.app import create_app

    client = TestClient(create_app(console, session_seconds=60))
    assert login(client).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_metrics_with_a_session_or_the_bearer_password(app):
    client = TestClient(app)
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": f"Bearer {PASSWORD}"})
    assert r.status_code == 200 and 'revsync_review_queue{object="account"} 1.0' in r.text


def test_password_is_hashed_and_never_kept(monkeypatch):
    monkeypatch.setenv("REVSYNC_WEB_PASSWORD", "s3cret-pass")
    creds = load_credentials()
    assert "s3cret-pass" not in repr(creds) and "s3cret-pass" not in creds.password_hash
    assert creds.check("admin", "s3cret-pass") and not creds.check("admin", "s3cret-pasS")
    h = hash_password("x" * 12)
    assert verify_password("x" * 12, h) and h != hash_password("x" * 12)  # salted
    monkeypatch.delenv("REVSYNC_WEB_PASSWORD")
    monkeypatch.setenv("REVSYNC_WEB_PASSWORD_HASH", h)
    assert load_credentials().check("admin", "x" * 12)
    assert isinstance(load_credentials({"REVSYNC_WEB_USER": "ops"}), Credentials)


def test_cli_web_needs_a_password_and_hashes_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import cli
    from tests.sync.quality_seed import seed

    url = f"sqlite:///{tmp_path / 'w.db'}"
    seed(url)
    monkeypatch.setenv("REVSYNC_DATABASE_URL", url)
    monkeypatch.delenv("REVSYNC_WEB_PASSWORD", raising=False)
    monkeypatch.delenv("REVSYNC_WEB_PASSWORD_HASH", raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli.app, ["web", "--port", "1"])
    assert res.exit_code == 2 and "REVSYNC_WEB_PASSWORD" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli.app, ["web", "--hash-password"], input="pass phrase here\n")
    assert res.exit_code == 0 and verify_password("pass phrase here", res.stdout.strip())
    monkeypatch.setenv("REVSYNC_WEB_PASSWORD_HASH", res.stdout.strip())
    app = cli._web_app(cli.load_settings(resolve_secrets=False), st.Store.from_url(url), tmp_path / "a.jsonl", 5)
    client = TestClient(app)
    page = client.get("/login")
    r = client.post("/login", data={"user": "admin", "password": "pass phrase here", "csrf": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303


#: an admin's definitions unlike the defaults: a stage added with each CRM's own label,
#: one renamed, one retired, and an industry written differently in HubSpot
ADMIN_DEFINITIONS = {
    "stage": {"values": {"pilot": {"salesforce": "Paid Pilot", "hubspot": "pilotstage"}},
              "rename": {"proposal": "quote"}, "retire": ["contract"]},
}


def test_definitions_page_shows_each_value_and_each_systems_value_read_only(console):
    from mapping.definitions import build, defaults
    from web.app import create_app

    console.definitions = build(ADMIN_DEFINITIONS)
    client = TestClient(create_app(console))
    login(client)
    html = client.get("/definitions").text
    section = html[html.index('id="set-stage"'):html.index("</section>", html.index('id="set-stage"'))]
    pilot = re.search(r'<tr data-value="pilot">(.*?)</tr>', section, re.S)
    assert pilot is not None
    assert "<b>Paid Pilot</b>" in pilot.group(1) and "<b>pilotstage</b>" in pilot.group(1)
    assert 'data-value="quote"' in section and 'data-value="proposal"' not in section
    assert "renamed: proposal → quote" in section and "retired: contract" in section
    # every set of the definitions in force has its section, with the systems' written values
    for name, vs in build(ADMIN_DEFINITIONS).sets.items():
        assert f'id="set-{name}"' in html
        for system, written in vs.writes.items():
            for native in list(written.values())[:3]:
                assert f"<b>{native}</b>".replace("&", "&amp;") in html, (name, system, native)
    # read only: no form, nothing to post
    assert "<form" not in html[html.index("<h1>"):] and client.post("/definitions").status_code == 405
    console.definitions = None  # the defaults when revsync.toml has no [definitions]
    html = TestClient(create_app(console))
    login(html)
    page = html.get("/definitions").text
    assert 'data-value="pilot"' not in page
    assert all(f'id="set-{name}"' in page for name in defaults().sets)
