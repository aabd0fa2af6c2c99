"""In-cycle matching of a single-process cycle takes the matcher's lease, the one
``revsync dedupe`` takes: a batch dedupe and a cycle's tier 2 never run at once.

Both directions through the real code paths (``Runner.run_cycle`` with fake
connectors, ``revsync dedupe`` through the CLI) on one SQLite store: the matcher's
entry points are wrapped to record when each side was inside them, and one side is
held inside while the other tries."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import EXIT_SKIPPED, app
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.match import Deduper, DedupeReport
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector

cli = CliRunner()


class Spans:
    """Who was inside the matcher when: (who, object, start, end), by thread."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, float, float]] = []
        self.lock = threading.Lock()

    def wrap(self, monkeypatch: pytest.MonkeyPatch, hold: dict[str, threading.Event]) -> None:
        def entry(name: str) -> Any:
            def run(deduper: Deduper, object_type: str, **_kw: Any) -> DedupeReport:
                who = threading.current_thread().name
                t0 = time.monotonic()
                inside = hold.get(f"{who}:{object_type}:inside")
                if inside is not None:
                    inside.set()
                    assert hold[f"{who}:{object_type}:go"].wait(60), "never let go"
                else:
                    time.sleep(0.05)
                with self.lock:
                    self.spans.append((who, object_type, t0, time.monotonic()))
                return DedupeReport(object_type, name, "link")
            return run

        monkeypatch.setattr(Deduper, "run_pending", entry("incremental"))
        monkeypatch.setattr(Deduper, "run_batch", entry("batch"))

    def of(self, who: str) -> list[tuple[str, float, float]]:
        return [(o, a, b) for w, o, a, b in self.spans if w == who]

    def overlaps(self) -> list[Any]:
        """Pairs of a cycle span and a dedupe span of one object that overlap in time."""
        return [(c, d) for c in self.of("cycle") for d in self.of("MainThread")
                if c[0] == d[0] and c[1] < d[2] and d[1] < c[2]]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Runner]:
    url = f"sqlite:///{tmp_path / 'match.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = FakeConnector("salesforce", clock), FakeConnector("hubspot", clock)
    sf.add("Account", {"Name": "Acme, Inc.", "Website": "https://www.acme.com"})
    hs.add("companies", {"name": "Acme Corporation", "domain": "acme.example"})
    store = st.Store.from_url(url)
    conns = {"salesforce": Connection("salesforce", "salesforce", sf),
             "hubspot": Connection("hubspot", "hubspot", hs)}
    config = tmp_path / "revsync.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[fleet]\nlease_seconds = 30\n', encoding="utf-8")
    # the real clock: the cycle's leases and the CLI's are compared on one time line
    return config, Runner(store, conns, parse({"fleet": {"lease_seconds": 30}}))


def _held(monkeypatch: pytest.MonkeyPatch, who: str) -> tuple[Spans, dict[str, threading.Event]]:
    """Spans recorded, with ``who``'s account batch held inside until its ``go`` is set."""
    spans = Spans()
    hold = {f"{who}:account:inside": threading.Event(), f"{who}:account:go": threading.Event()}
    spans.wrap(monkeypatch, hold)
    return spans, hold


def _cycle_in_thread(runner: Runner, out: dict[str, Any]) -> threading.Thread:
    t = threading.Thread(target=lambda: out.setdefault("report", runner.run_cycle()), name="cycle")
    t.start()
    return t


def test_a_dedupe_is_refused_while_a_cycles_tier2_holds_the_match_lease(
        world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config, runner = world
    spans, hold = _held(monkeypatch, "cycle")
    out: dict[str, Any] = {}
    t = _cycle_in_thread(runner, out)
    try:
        assert hold["cycle:account:inside"].wait(60), "the cycle never reached tier 2"
        r = cli.invoke(app, ["--config", str(config), "dedupe", "--object", "account"])
        assert r.exit_code == EXIT_SKIPPED, r.output
        assert "another job is matching account" in r.output
        # another object's lease is free: a dedupe of contacts runs meanwhile
        r = cli.invoke(app, ["--config", str(config), "dedupe", "--object", "contact"])
        assert r.exit_code == 0, r.output
    finally:
        hold["cycle:account:go"].set()
        t.join(120)
    assert out["report"].status == "ok", out["report"].messages
    assert [o for o, _a, _b in spans.of("MainThread")] == ["contact"]
    assert spans.overlaps() == []
    # the cycle's lease is gone with it: a dedupe of accounts runs now
    r = cli.invoke(app, ["--config", str(config), "dedupe", "--object", "account"])
    assert r.exit_code == 0, r.output


def test_a_cycle_leaves_tier2_to_the_next_while_a_dedupe_holds_the_match_lease(
        world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config, runner = world
    spans, hold = _held(monkeypatch, "MainThread")
    out: dict[str, Any] = {}

    def cycle_while_inside() -> None:
        # the dedupe is inside its account batch: a whole cycle runs meanwhile
        assert hold["MainThread:account:inside"].wait(60)
        t = _cycle_in_thread(runner, out)
        t.join(120)
        hold["MainThread:account:go"].set()

    helper = threading.Thread(target=cycle_while_inside, name="helper")
    helper.start()
    r = cli.invoke(app, ["--config", str(config), "dedupe", "--object", "account"])
    helper.join(120)
    assert r.exit_code == 0, r.output
    report = out["report"]
    # the cycle matched its contacts but not its accounts, and said why
    assert [o for o, _a, _b in spans.of("cycle")] == ["contact", "opportunity"]
    assert "dedupe account: another job is matching (its lease); tier 2 waits for the next cycle" in report.messages
    assert spans.overlaps() == []
    # the next cycle, the lease free, matches its accounts again
    out.clear()
    _cycle_in_thread(runner, out).join(120)
    again = out["report"]
    assert "account" in [o for o, _a, _b in spans.of("cycle")][2:], spans.spans
    assert not any("another job is matching" in m for m in again.messages)
