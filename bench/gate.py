"""The governance gate's cost inside real cycles: ``bench.throughput`` with the gate's
parts timed.

    nice -n 10 .venv/bin/python -m bench.gate --accounts 10000 [--seed 42] [--gap 60]

Runs ``bench.throughput`` (sandbox subprocess, cycles 1, 2 and 3 with the default
governance: the required-field rules, the schema pre-flight that checks every written
picklist value against the target's live picklists, i.e. the shared definitions, and the
closed-won handoff's company creates) and times, per gate call (one per cycle):

- ``gate_s``: the whole gate (``sync.governance.gate_outbox``: paging the outbox, holding
  and releasing ops, their ledger entries);
- ``required_s``: loading the entities a blocking rule needs and checking the rules
  (``_entities`` + ``RequiredRule.missing``);
- ``preflight_s``: the schema/definitions pre-flight per op (``Preflight.check``,
  including its describe calls, cached per cycle);
- ``handoff_creates_s``: queueing the handoff's company creates (``queue_company_creates``);
- ``ops_checked``, ``held`` and ``us_per_op``.

Prints ONE JSON object: ``throughput`` (what ``bench.throughput`` prints, whose
``cycles.N.stages.gate`` is the runner's whole ``_gate`` stage) and ``gate`` (the list
above, one entry per cycle).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def _timed_gate() -> Iterator[list[dict[str, Any]]]:
    """Wrap the gate's parts (bench only: the product is not changed)."""
    from sync import governance, handoff, preflight

    calls: list[dict[str, Any]] = []
    acc = {"required_s": 0.0, "preflight_s": 0.0, "handoff_creates_s": 0.0}
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, key: str, *, generator: bool = False) -> None:
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return list(fn(*a, **kw)) if generator else fn(*a, **kw)  # a generator runs when drained
            finally:
                acc[key] += time.perf_counter() - t

        setattr(owner, name, timed)

    patch(governance, "_entities", "required_s")
    patch(governance.RequiredRule, "missing", "required_s")
    patch(preflight.Preflight, "check", "preflight_s", generator=True)
    patch(handoff, "queue_company_creates", "handoff_creates_s")
    gate: Callable[..., Any] = governance.gate_outbox

    def gate_outbox(*a: Any, **kw: Any) -> Any:
        before = dict(acc)
        t = time.perf_counter()
        stats = gate(*a, **kw)
        total = time.perf_counter() - t
        parts = {k: round(acc[k] - before[k], 3) for k in ("required_s", "preflight_s")}
        calls.append({"gate_s": round(total, 3), **parts, "ops_checked": stats.checked,
                      "held": stats.total_held, "released": stats.released,
                      "us_per_op": round(total / stats.checked * 1e6, 1) if stats.checked else None})
        return stats

    saved.append((governance, "gate_outbox", gate))
    governance.gate_outbox = gate_outbox  # type: ignore[assignment]
    try:
        yield calls
    finally:
        # the handoff's creates run just before each gate call: credit them to it
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)
        acc_h = acc["handoff_creates_s"]
        if calls:
            calls[0]["handoff_creates_total_s"] = round(acc_h, 3)


def main(argv: list[str] | None = None) -> int:
    from bench import throughput

    out = io.StringIO()
    with _timed_gate() as calls, contextlib.redirect_stdout(out):
        throughput.main(argv)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    sys.stdout.write(json.dumps({"throughput": result, "gate": calls}, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
