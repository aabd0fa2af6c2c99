"""A system that cannot be used ends only its own part of a cycle (fake connectors).

Credentials refused on a read or a write: the system is *failed* for the run, one
line; a host out of reach: *deferred*, its writes wait in the outbox. The other
system's pull and push go on, and the next cycle catches up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from connectors.base import AuthError, Cursor, RemoteRecord, Unreachable, WriteOp, WriteResult
from mapping.canonical import ObjectType
from sync import store as st
from sync.config import parse
from sync.engine import Connection
from sync.jobs import Runner
from sync.migrate import upgrade
from tests.sync.fakes import Clock, FakeConnector


class Flaky(FakeConnector):
    """A fake whose reads or writes raise ``error`` while it is set."""

    def __init__(self, kind: str, clock: Clock) -> None:
        super().__init__(kind, clock)
        self.read_error: Exception | None = None
        self.write_error: Exception | None = None

    def read_pages(self, object_type: ObjectType, *, since: Cursor | None = None,
                   native: str | None = None) -> Iterator[Sequence[RemoteRecord]]:
        if self.read_error is not None:
            raise self.read_error
        return super().read_pages(object_type, since=since, native=native)

    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        if self.write_error is not None:
            raise self.write_error
        return super().write(object_type, ops)


@pytest.fixture
def world(tmp_path: Any) -> tuple[st.Store, Clock, Flaky, Flaky, Runner]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade(url)
    clock = Clock()
    sf, hs = Flaky("salesforce", clock), Flaky("hubspot", clock)
    store = st.Store.from_url(url)
    conns = {"salesforce": Connection("salesforce", "salesforce", sf),
             "hubspot": Connection("hubspot", "hubspot", hs)}
    return store, clock, sf, hs, Runner(store, conns, parse({}), now=clock)


def _seed(sf: Flaky, hs: Flaky) -> None:
    acct = sf.add("Account", {"Name": "Acme, Inc.", "Website": "https://www.acme.com"})
    sf.add("Contact", {"FirstName": "Jane", "LastName": "Doe", "Email": "jane@acme.com"}, assoc={"account": (acct,)})
    hs.add("companies", {"name": "Globex", "domain": "globex.com"})


def test_auth_error_on_read_fails_that_system_only(world: Any) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    hs.read_error = AuthError("list companies: HTTP 401 EXPIRED_AUTHENTICATION")

    report = runner.run_cycle()

    assert list(report.failed_systems) == ["hubspot"]
    line = report.failed_systems["hubspot"]
    assert line.startswith("hubspot: credentials refused") and "401" in line
    assert report.messages.count(line) == 1
    assert report.status == "partial" and not report.deferred_systems
    assert report.pulled.get("salesforce", 0) == 2 and "hubspot" not in report.pulled
    assert hs.write_calls == 0  # nothing pushed to the failed system
    with store.session() as s:
        assert st.pending_counts(s)  # its writes wait in the outbox
    # fixed: the next cycle catches up
    hs.read_error = None
    clock.tick(60)
    again = runner.run_cycle()
    assert again.status == "ok" and not again.failed_systems, again.messages
    assert any(r.get("name") == "Acme, Inc." for r in hs.live("companies").values())


def test_auth_error_on_write_fails_the_system_and_stops_its_pushes(world: Any) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    hs.write_error = AuthError("batch upsert companies: HTTP 403 MISSING_SCOPES")

    report = runner.run_cycle()

    assert list(report.failed_systems) == ["hubspot"] and "403" in report.failed_systems["hubspot"]
    assert hs.write_calls == 0 and report.written.get("salesforce", 0) > 0
    assert report.status == "partial"


def test_unreachable_system_is_deferred_not_failed(world: Any) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    sf.read_error = Unreachable("salesforce: query Account: connection refused")

    report = runner.run_cycle()

    assert list(report.deferred_systems) == ["salesforce"] and not report.failed_systems
    assert "deferred to the next cycle" in report.deferred_systems["salesforce"]
    assert report.status == "partial"
    assert report.pulled.get("hubspot", 0) == 1


def test_every_system_failing_on_auth_fails_the_run(world: Any) -> None:
    store, clock, sf, hs, runner = world
    _seed(sf, hs)
    sf.read_error = AuthError("token refused")
    hs.read_error = AuthError("token refused")

    report = runner.run_cycle()

    assert report.status == "failed" and set(report.failed_systems) == {"salesforce", "hubspot"}
    with store.session() as s:
        run = s.get(st.SyncRunRow, report.run_id)
        assert run is not None and run.status == "failed"
        assert "salesforce: credentials refused" in (run.error or "")
