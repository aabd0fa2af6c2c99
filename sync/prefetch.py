"""Read ahead: the next page is fetched while the current one is mapped and stored.

``prefetched(pages, depth)`` runs a page iterator (a connector's ``read_pages``) in one
thread and hands its pages over through a bounded queue, so at most ``depth`` pages
wait in memory besides the one being applied. The connector is only ever called from
that thread; the store only from the caller's. An error in the reader is raised in the
caller at the point the failed page would have come; when the caller stops early (an
error while applying a page, a stop request) the reader is told to stop, its
generator is closed in its own thread, and the thread is joined. The reader runs in a
copy of the caller's ``contextvars`` context (the log context of sync/logs.py). A crash loses the
fetched pages with the page in flight: the cursor only moves once a page is stored.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Generator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

#: pages fetched ahead of the one being applied
DEFAULT_DEPTH = 2
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(pages: Iterable[T], depth: int = DEFAULT_DEPTH, *, name: str = "revsync-read") -> Generator[T, None, None]:
    """The items of ``pages`` in order, read ahead by a thread into a queue of ``depth``.

    Close the generator (``contextlib.closing``) when stopping early: an exception's
    traceback would otherwise keep it, and the reader, alive until it is handled."""
    if depth <= 0:
        yield from pages
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        it = iter(pages)
        try:
            for page in it:
                if not put(page):
                    break
            else:
                put(_DONE)
        except BaseException as e:  # handed to the caller, raised there
            put(_Failed(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    # the reader logs with the caller's context (run id, system: sync/logs.py)
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(read,), name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
