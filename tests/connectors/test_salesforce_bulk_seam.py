"""The private seam of simple-salesforce that the Bulk 2.0 reads use.

``SalesforceConnector._bulk_query_pages`` calls ``bulk2.<T>._client.create_job`` /
``wait_for_job`` / ``get_query_results`` one by one so each call is retried on its
own. An upgrade that renames or reshapes them must fail here, not silently in a read."""

from __future__ import annotations

import inspect

from simple_salesforce import bulk2

from connectors.salesforce import DEFAULT_BULK_POLL


def _params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_the_bulk2_client_methods_we_call_keep_their_shape() -> None:
    client = bulk2._Bulk2Client
    assert _params(client.create_job)[:3] == ["self", "operation", "query"]
    assert _params(client.wait_for_job)[:4] == ["self", "job_id", "is_query", "wait"]
    assert _params(client.get_query_results)[:4] == ["self", "job_id", "locator", "max_records"]
    assert bulk2.Operation.query.value == "query"
    # the result of get_query_results carries the records and the next locator
    assert {"locator", "records"} <= set(bulk2.QueryResult.__annotations__)


def test_each_object_handle_exposes_its_client() -> None:
    init = inspect.getsource(bulk2.SFBulk2Type.__init__)
    assert "self._client" in init


def test_a_quick_job_is_polled_after_a_short_first_wait_with_backoff(monkeypatch) -> None:
    """wait_for_job sleeps ``wait`` first, then a growing interval: with our default a
    job that is already done costs half a second, a slow one is polled less and less."""
    slept: list[float] = []
    monkeypatch.setattr(bulk2, "sleep", slept.append)
    states = iter(["InProgress"] * 8 + ["JobComplete"])
    client = object.__new__(bulk2._Bulk2Client)
    monkeypatch.setattr(client, "get_job", lambda job_id, is_query: {"state": next(states)}, raising=False)
    assert client.wait_for_job("750x", True, DEFAULT_BULK_POLL) == "JobComplete"
    assert slept[0] == DEFAULT_BULK_POLL <= 1.0
    assert slept[1:] == sorted(slept[1:]) and slept[-1] > slept[1]  # backs off
