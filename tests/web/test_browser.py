"""The console in a real browser: Debian's headless Chromium driven by Playwright.

Playwright is pointed at the system browser (``executable_path``); it never downloads
one. Without Chromium the tests skip with the reason; ``.ci/run`` installs it
(``scripts/with-chromium``). A screenshot of every page is kept under
``tests/artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync import store as st
from tests.sync.quality_seed import NOW
from tests.web.conftest import PASSWORD

CHROMIUM = os.environ.get("REVSYNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (scripts/with-chromium installs it)"),
]


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture
def page(server: str) -> Iterator[Any]:
    pw_api = pytest.importorskip("playwright.sync_api")
    with pw_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(15_000)
        pg.base = server
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.js_errors = errors
        yield pg
        browser.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def login(page: Any) -> None:
    page.goto(page.base + "/")
    assert "/login" in page.url
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(page.base + "/")


def test_refused_without_login(page):
    page.goto(page.base + "/errors")
    assert "/login" in page.url
    shot(page, "login")
    resp = page.request.post(page.base + "/errors/retry", form={"id": "1"})
    assert resp.status == 401
    page.fill("#password", "not the password")
    page.click("#login")
    assert page.locator("#login-error").inner_text() == "wrong user or password"


def test_console_walkthrough(page, console):
    login(page)
    # a run on the timeline, with its per-system counts and the chart drawn
    assert page.locator("#runs tr.run").count() == 1
    assert "salesforce 5" in page.locator("#runs").inner_text()
    page.wait_for_function("document.getElementById('runs-chart').width > 0")
    shot(page, "runs")

    # retry an error
    page.click("text=Errors")
    page.check("input[name=id]")
    page.click("#retry")
    assert "1 failed write(s) due now" in page.locator("#notice").inner_text()
    shot(page, "errors")
    with console.store.session() as s:
        # the write is due now: the next cycle's retry step takes it (and plans it anew)
        assert st.due_write_retries(s, NOW) == {"account": ["a-2"]}

    # the plan with its field diffs
    page.click("text=Plan")
    assert "negotiation" in page.locator("#plan").inner_text()
    shot(page, "plan")

    # find an entity by its domain (htmx live results) and read its explanation
    page.click("text=Explain")
    page.fill("#q", "zephyr-oel")
    page.locator("#hits a").first.wait_for()
    shot(page, "explain-search")
    page.click("#hits a >> text=Zephyr")
    assert "Zephyr" in page.locator("#entity-title").inner_text()
    assert "planhat" in page.locator("#records").inner_text()
    fields = page.locator("#fields").inner_text()
    assert "source_priority" in fields and "prefer:planhat" in fields and "Zephyr Olwerke" in fields
    shot(page, "explain")

    # accept a review pair (evidence side by side)
    page.click("text=Review")
    assert "Quokka Logistics" in page.locator("#pair-1").inner_text()
    shot(page, "review")
    page.click("#accept-1")
    assert "review 1: accepted" in page.locator("#notice").inner_text()
    with console.store.session() as s:
        assert s.get(st.MatchReviewRow, 1).state == "accepted"

    page.click("text=Quality")
    page.wait_for_function("document.querySelector('canvas.completeness').width > 0")
    assert "handoffs: 0 complete, 0 waiting" in page.content()
    shot(page, "quality")

    page.click("text=Definitions")
    stage = page.locator("#set-stage").inner_text()
    assert "closed_won" in stage and "Closed Won" in stage and "closedwon" in stage
    assert page.locator("#set-stage form").count() == 0  # read only
    shot(page, "definitions")

    page.click("text=Audit")
    audit = page.locator("#audit").inner_text()
    assert "retry" in audit and "review_accept" in audit and "login" in audit
    shot(page, "audit")
    assert page.js_errors == []
