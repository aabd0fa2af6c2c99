"""The cycle's canvas: every unit once, for the right object, in the right order."""

from __future__ import annotations

from typing import Any

from celery import chord, group
from celery.canvas import _chain

from sync.tasks import cycle_canvas, shard_bounds


def _flatten(sig: Any) -> list[tuple[str, tuple[Any, ...], str | None]]:
    """Every task signature of a canvas, in the order the canvas runs them (Celery folds
    "a group, then the rest" into a chord whose body is the rest)."""
    if isinstance(sig, chord):
        return [x for t in sig.tasks for x in _flatten(t)] + _flatten(sig.body)
    if isinstance(sig, (group, _chain)):
        return [x for t in sig.tasks for x in _flatten(t)]
    return [(sig.task, tuple(sig.args), sig.options.get("queue"))]


def test_every_unit_once_in_order() -> None:
    steps = _flatten(cycle_canvas(7, ["salesforce", "hubspot"], shards=3))
    names = [n for n, _a, _q in steps]
    pulls = [a[1:] for n, a, _q in steps if n == "revsync.pull"]
    assert pulls == [("salesforce", "account"), ("salesforce", "contact"), ("salesforce", "opportunity"),
                     ("hubspot", "account"), ("hubspot", "contact"), ("hubspot", "opportunity")]
    resolves = [a[1:] for n, a, _q in steps if n == "revsync.resolve"]
    assert resolves == [(ot, lo, hi) for ot in ("account", "contact", "opportunity")
                        for lo, hi in shard_bounds(3)]
    pushes = [a[1:] for n, a, _q in steps if n == "revsync.push"]
    assert pushes == [(c, ot) for ot in ("account", "contact", "opportunity") for c in ("salesforce", "hubspot")]
    # pulls and pushes on their connection's queue
    assert all(q == f"revsync.{a[1]}" for n, a, q in steps if n in ("revsync.pull", "revsync.push"))
    # every step belongs to run 7; the order of stages
    assert all(a[0] == 7 for _n, a, _q in steps)
    first = {n: names.index(n) for n in reversed(names)}
    last = {n: len(names) - 1 - names[::-1].index(n) for n in names}
    assert last["revsync.pull"] < first["revsync.prepare"] < first["revsync.resolve"]
    assert last["revsync.match"] < first["revsync.caps"] < first["revsync.push"]
    assert names[-1] == "revsync.finish"


def test_pulls_of_each_connection_run_beside_the_others() -> None:
    """The pulls are one group of per-connection chains (each connection's objects in
    order, on its queue): a slow API holds up its own chain, not the others'."""
    canvas = cycle_canvas(7, ["salesforce", "hubspot", "planhat"], shards=2)
    head = canvas.tasks[0]
    header = head.tasks
    assert isinstance(head, (chord, group)) and len(header) == 3
    for conn, chain_sig in zip(["salesforce", "hubspot", "planhat"], header, strict=True):
        assert isinstance(chain_sig, _chain)
        assert [(s.task, tuple(s.args)[1:], s.options["queue"]) for s in chain_sig.tasks] == [
            ("revsync.pull", (conn, ot), f"revsync.{conn}") for ot in ("account", "contact", "opportunity")]


def test_shards_cover_every_uuid_once() -> None:
    import uuid

    bounds = shard_bounds(5)
    for _ in range(2000):
        u = str(uuid.uuid4())
        assert sum(1 for lo, hi in bounds if lo <= u < hi) == 1
