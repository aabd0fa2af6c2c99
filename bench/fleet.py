"""Fleet benchmark: a full sync with 1, 2 and 4 ``revsync worker`` processes (Celery,
Redis, PostgreSQL) against a seeded sandbox, and where the time goes.

    scripts/with-postgres scripts/with-redis .venv/bin/python -m bench.fleet --accounts 1000 --workers 1,2,4

Needs REVSYNC_TEST_POSTGRES_URL and REVSYNC_TEST_REDIS_URL (the scripts set them).
For each worker count: a fresh database and sandbox, one forced cycle, then a quiet
one. Prints ONE JSON object: per worker count, ``records`` pulled, ``seconds`` of the
first cycle, ``records_per_s``, and ``task_seconds`` (summed run time per task kind,
from the workers' logs: where the time goes). On a machine with few cores, more
workers than cores compete for them: read the figures with the core count (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

TASK_LINE = re.compile(r"Task (revsync\.\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


def _database(base: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"revsync_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(base, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def one(accounts: int, seed: int, workers: int, pg: str, redis_url: str) -> dict[str, Any]:
    import redis

    from sandbox.server import Sandbox
    from sync import store as st
    from sync.migrate import upgrade
    from tests.fleet import fleet_support as F

    redis.Redis.from_url(redis_url).flushdb()
    url = _database(pg)
    upgrade(url)
    work = Path(tempfile.mkdtemp(prefix="revsync-bench-fleet-"))
    with Sandbox(accounts=accounts, seed=seed, tier="off") as sb:
        # production's limits (the test helper's are short): a big first match or push
        # must not hit the time limit
        config = F.write_config(sb, work, url, redis_url, shards=max(4, 2 * workers), task_time_limit=1800,
                                visibility_timeout=3600, lease_seconds=60)
        store = st.Store.from_url(url)
        with F.workers(config, work, n=workers, concurrency=1):
            t0 = time.monotonic()
            run = F.wait_run(store, F.enqueue_cycle(config, force=True), timeout=7200)
            seconds = time.monotonic() - t0
            t1 = time.monotonic()
            run2 = F.wait_run(store, F.enqueue_cycle(config), timeout=7200)
            quiet = time.monotonic() - t1
    per_task: dict[str, float] = defaultdict(float)
    for log in work.glob("worker-*.log"):
        for m in TASK_LINE.finditer(log.read_text(errors="replace")):
            per_task[m.group(1)] += float(m.group(2))
    records = sum((run.counts.get("pulled") or {}).values())
    return {"workers": workers, "records": records, "seconds": round(seconds, 1),
            "records_per_s": round(records / seconds, 1) if seconds else None,
            "status": run.status, "written": run.counts.get("written"),
            "second_cycle": {"seconds": round(quiet, 1), "written": run2.counts.get("written")},
            "task_seconds": {k: round(v, 1) for k, v in sorted(per_task.items())},
            "load_avg": [round(x, 1) for x in os.getloadavg()]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", default="1,2,4")
    a = p.parse_args()
    pg, rd = os.environ.get("REVSYNC_TEST_POSTGRES_URL"), os.environ.get("REVSYNC_TEST_REDIS_URL")
    if not pg or not rd:
        print("bench.fleet: run under scripts/with-postgres scripts/with-redis", file=sys.stderr)
        raise SystemExit(2)
    out: dict[str, Any] = {"accounts": a.accounts, "seed": a.seed, "cores": os.cpu_count(), "runs": []}
    for n in a.workers.split(","):
        out["runs"].append(one(a.accounts, a.seed, int(n), pg, rd))
        # each worker count as it ends (a long run stopped early keeps what it measured)
        print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
