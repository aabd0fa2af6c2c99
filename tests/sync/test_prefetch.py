"""Read-ahead of pages (sync/prefetch.py): order, bound, errors, early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from sync.prefetch import prefetched


class Pages:
    """A page iterator that records what was fetched, from which thread, and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.fetched = 0
        self.threads: set[str] = set()
        self.closed = False

    def __iter__(self) -> Iterator[list[int]]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise ConnectionResetError(f"page {i}: connection reset")
                self.threads.add(threading.current_thread().name)
                self.fetched += 1
                yield [i, i]
        finally:
            self.closed = True


def test_pages_come_in_order_from_a_reader_thread() -> None:
    pages = Pages(7)
    assert list(prefetched(pages, 2, name="reader-x")) == [[i, i] for i in range(7)]
    assert pages.threads == {"reader-x"}
    assert pages.closed


def test_the_reader_stays_at_most_depth_pages_ahead() -> None:
    pages = Pages(50)
    it = prefetched(pages, 3)
    assert next(it) == [0, 0]
    time.sleep(0.3)  # give the reader every chance to run ahead
    # one handed over, three queued, one fetched and waiting for room
    assert pages.fetched <= 1 + 3 + 1
    it.close()


def test_a_read_error_is_raised_where_its_page_would_have_come() -> None:
    pages = Pages(5, fail_at=3)
    got = []
    with pytest.raises(ConnectionResetError, match="page 3"):
        for page in prefetched(pages, 2):
            got.append(page)
    assert got == [[0, 0], [1, 1], [2, 2]]


def test_stopping_early_stops_and_closes_the_reader() -> None:
    pages = Pages(1000)
    before = threading.active_count()
    with pytest.raises(RuntimeError):
        for page in prefetched(pages, 2):
            if page[0] == 2:
                raise RuntimeError("the store refused the page")
    assert pages.closed
    assert pages.fetched < 10
    assert threading.active_count() == before  # the reader thread was joined


def test_depth_zero_reads_inline() -> None:
    pages = Pages(3)
    assert list(prefetched(pages, 0)) == [[0, 0], [1, 1], [2, 2]]
    assert pages.threads == {threading.current_thread().name}


def test_closing_stops_the_reader_before_the_error_is_handled() -> None:
    """As sync.pull uses it: by the time the caller handles the error, the reader
    thread is gone and will not touch the connector again."""
    pages = Pages(1000)
    before = threading.active_count()
    try:
        with closing(prefetched(pages, 2)) as ahead:
            for page in ahead:
                if page[0] == 1:
                    raise RuntimeError("stop requested")
    except RuntimeError:
        assert pages.closed
        assert threading.active_count() == before
        fetched = pages.fetched
        time.sleep(0.2)
        assert pages.fetched == fetched
    else:
        raise AssertionError("the error was swallowed")
