"""The standard connector test suite: one class of tests every connector passes.

Like singer-sdk's and the Airbyte CDK's generated suites, a connector's test module
declares a ``Harness`` (how to reach the connector's recordings, stub or sandbox) as a
pytest fixture and asks the factory for the test class::

    @pytest.fixture
    def mycrm_harness(stub): return MyCrmHarness(stub)

    TestMyCrmStandard = connector_test_class("mycrm_harness")

The tests cover what breaks connectors in production: paging with many records on
one modstamp (cursor ties across page boundaries), the inclusive ``since`` bound,
deletes, batch limits (more ops than one batch holds), partial batch failures, an
expired token mid-run and rate limits / server errors. Nothing here imports pytest:
the class only asks its ``request`` for the harness fixture.
"""

from __future__ import annotations

import abc
import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.base import AuthError, Connector, Cursor, OpKind, WriteOp
from mapping.canonical import ObjectType

__all__ = ["Harness", "connector_test_class"]


class Harness(abc.ABC):
    """What the standard suite needs from one connector and the system behind it."""

    #: the object the suite reads and writes, and its native name
    object_type: ObjectType
    native: str
    #: records per page the connector built by ``connect`` reads
    page_size: int
    #: the most records one write call of this connector sends
    batch_limit: int
    #: the connector gets a new token itself when the system says its token expired
    refreshes_auth: bool = True
    #: ``read(since=…)`` leaves records older than ``since`` out (False: the API has
    #: no modified-since filter and the connector lists everything, as Planhat)
    since_filters: bool = True
    #: the connector reports deletes through ``read_deleted`` (False: a deleted
    #: record is only absent from ``list_ids``)
    reports_deletes: bool = True

    @abc.abstractmethod
    def connect(self) -> Connector:
        """A fresh connector (page size ``page_size``, retries without sleeping)."""

    @abc.abstractmethod
    def seed(self, n: int, modstamp: datetime) -> list[str]:
        """Put ``n`` new records into the system, all last modified at ``modstamp``;
        their remote ids."""

    @abc.abstractmethod
    def delete(self, remote_id: str) -> None:
        """Delete one record as a user of the system would."""

    @abc.abstractmethod
    def new_fields(self, i: int) -> dict[str, Any]:
        """Native fields of a valid new record (``i`` makes it distinct)."""

    @abc.abstractmethod
    def bad_fields(self) -> dict[str, Any]:
        """Native fields the system refuses for one record (e.g. a required field empty)."""

    @abc.abstractmethod
    def inject(self, kind: str, count: int) -> None:
        """The next ``count`` read calls fail with ``kind``: ``rate_limit``,
        ``server_error`` or ``expired_token``."""

    @abc.abstractmethod
    def clear_faults(self) -> None:
        """No more injected faults."""

    def write_calls(self) -> int | None:
        """Write requests the system has served so far (None: cannot count them)."""
        return None

    def base_time(self) -> datetime:
        """A modstamp later than anything already in the system."""
        return datetime.now().astimezone() + timedelta(minutes=5)


def _ids(records: Any) -> list[str]:
    return [r.remote_id for r in records]


def _create(h: Harness, i: int, fields: Mapping[str, Any]) -> WriteOp:
    return WriteOp(OpKind.CREATE, h.object_type, str(uuid.uuid4()), dict(fields), native_type=h.native)


def connector_test_class(harness_fixture: str) -> type:
    """A test class whose tests run against the ``Harness`` the named fixture gives."""

    class StandardConnectorTests:
        def _h(self, request: Any) -> Harness:
            h = request.getfixturevalue(harness_fixture)
            assert isinstance(h, Harness)
            return h

        def test_given_ties_across_pages_when_read_since_then_every_record_once(self, request: Any) -> None:
            h = self._h(request)
            tie = h.base_time()
            older = h.seed(2, tie - timedelta(days=1))
            tied = h.seed(2 * h.page_size + 1, tie)
            conn = h.connect()
            got = _ids(conn.read(h.object_type, since=Cursor(tie), native=h.native))
            assert len(got) == len(set(got)), "a record came twice"
            assert set(tied) <= set(got), "the inclusive lower bound lost records sharing a modstamp"
            if h.since_filters:
                assert not set(older) & set(got), "records older than since were read"
            everything = _ids(conn.read(h.object_type, since=None, native=h.native))
            assert len(everything) == len(set(everything))
            assert set(tied) | set(older) <= set(everything)

        def test_given_pages_when_read_then_oldest_first_in_pages_no_larger_than_asked(self, request: Any) -> None:
            h = self._h(request)
            tie = h.base_time()
            h.seed(h.page_size + 2, tie)
            h.seed(1, tie + timedelta(seconds=1))
            pages = list(h.connect().read_pages(h.object_type, since=Cursor(tie), native=h.native))
            assert len(pages) >= 2
            stamps = [r.modstamp for page in pages for r in page]
            assert all(s is not None for s in stamps)
            assert stamps == sorted(stamps), "records are not oldest first"  # type: ignore[type-var]

        def test_given_a_deleted_record_when_read_then_it_is_reported_or_gone(self, request: Any) -> None:
            h = self._h(request)
            tie = h.base_time()
            gone, kept = h.seed(2, tie)
            h.delete(gone)
            conn = h.connect()
            live = set(conn.list_ids(h.object_type, native=h.native))
            assert kept in live and gone not in live
            if h.reports_deletes:
                deleted = _ids(conn.read_deleted(h.object_type, since=Cursor(tie - timedelta(days=1)),
                                                 native=h.native))
                assert gone in deleted and kept not in deleted

        def test_given_more_ops_than_a_batch_when_write_then_one_result_per_op_in_order(self, request: Any) -> None:
            h = self._h(request)
            ops = [_create(h, i, h.new_fields(i)) for i in range(2 * h.batch_limit + 1)]
            before = h.write_calls()
            results = h.connect().write(h.object_type, ops)
            assert [r.op for r in results] == ops
            assert all(r.success and r.remote_id for r in results), [r.message for r in results if not r.success]
            assert len({r.remote_id for r in results}) == len(ops)
            after = h.write_calls()
            if before is not None and after is not None:
                assert after - before >= math.ceil(len(ops) / h.batch_limit)

        def test_given_one_bad_record_when_write_then_only_it_fails(self, request: Any) -> None:
            h = self._h(request)
            ops = [_create(h, 0, h.new_fields(10_000)), _create(h, 1, h.bad_fields()),
                   _create(h, 2, h.new_fields(10_001))]
            results = h.connect().write(h.object_type, ops)
            assert [r.success for r in results] == [True, False, True]
            bad = results[1]
            assert bad.category is not None and bad.message and bad.op is ops[1]

        def test_given_a_retried_create_when_written_twice_then_one_record(self, request: Any) -> None:
            h = self._h(request)
            op = _create(h, 0, h.new_fields(20_000))
            conn = h.connect()
            first = conn.write(h.object_type, [op])[0]
            again = conn.write(h.object_type, [op])[0]  # the engine re-sends the same create
            assert first.success and again.success and first.remote_id == again.remote_id

        def test_given_an_expired_token_when_read_then_refreshed_or_auth_error(self, request: Any) -> None:
            h = self._h(request)
            tied = h.seed(3, h.base_time())
            conn = h.connect()
            list(conn.read(h.object_type, since=None, native=h.native))  # signed in
            h.inject("expired_token", 1)
            try:
                if h.refreshes_auth:
                    got = _ids(conn.read(h.object_type, since=None, native=h.native))
                    assert set(tied) <= set(got)
                else:
                    try:
                        list(conn.read(h.object_type, since=None, native=h.native))
                    except AuthError:
                        pass
                    else:
                        raise AssertionError("an expired token neither refreshed nor raised AuthError")
            finally:
                h.clear_faults()

        def test_given_rate_limits_and_server_errors_when_read_then_every_record_once(self, request: Any) -> None:
            h = self._h(request)
            tied = h.seed(h.page_size + 1, h.base_time())
            conn = h.connect()
            for kind in ("rate_limit", "server_error"):
                h.inject(kind, 2)
                try:
                    got = _ids(conn.read(h.object_type, since=None, native=h.native))
                finally:
                    h.clear_faults()
                assert len(got) == len(set(got)) and set(tied) <= set(got), kind

    StandardConnectorTests.__name__ = f"StandardConnectorTests[{harness_fixture}]"
    return StandardConnectorTests
