"""What the shared definitions cost per picklist value read and written.

    .venv/bin/python -m bench.definitions [--values 100000] [--repeat 5]

Reads Salesforce ``StageName`` and HubSpot ``dealstage`` values (every stage, mixed
case, an unmapped one) through the ``stage`` transform and writes every canonical
stage back, under the connectors' defaults and under an admin's ``[definitions]``
(a stage added, one renamed, one retired). The best of ``--repeat`` runs.

Prints ONE JSON object: per case, ``read_us`` and ``write_us`` (microseconds per value).
"""

from __future__ import annotations

import argparse
import json
import timeit
from typing import Any

from connectors.base import RecordError
from mapping import definitions
from mapping.transforms import Context, get_transform

ADMIN = {"stage": {"values": {"pilot": {"salesforce": "Pilot", "hubspot": "pilot"}},
                   "rename": {"negotiation": "negotiating"}, "retire": ["contract"]}}


def _case(defs: definitions.Definitions, n: int, repeat: int) -> dict[str, float]:
    stage = get_transform("stage")
    contexts = [Context(system="salesforce", native_type="Opportunity", field="StageName"),
                Context(system="hubspot", native_type="deals", field="dealstage")]
    natives = [(ctx, v) for ctx in contexts for v in (
        [*defs["stage"].native_values(ctx.system), "Discovery"] + [x.upper() for x in defs["stage"].native_values(ctx.system)])]
    reads = (natives * (n // len(natives) + 1))[:n]
    writes = ([(ctx, c) for ctx in contexts for c in defs["stage"].values] * n)[:n]

    def read() -> None:
        for ctx, v in reads:
            try:
                stage.read(v, ctx)
            except RecordError:
                pass

    def write() -> None:
        for ctx, c in writes:
            stage.write(c, ctx)

    with definitions.using(defs):
        r = min(timeit.repeat(read, number=1, repeat=repeat))
        w = min(timeit.repeat(write, number=1, repeat=repeat))
    return {"read_us": round(r / n * 1e6, 3), "write_us": round(w / n * 1e6, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--values", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    out = {"values": a.values,
           "defaults": _case(definitions.defaults(), a.values, a.repeat),
           "admin_definitions": _case(definitions.build(ADMIN), a.values, a.repeat)}
    print(json.dumps(out, sort_keys=True))
    return out


if __name__ == "__main__":
    main()
