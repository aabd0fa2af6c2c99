"""The shared API budget: one daily allocation and one rate for every process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import QuotaExhausted
from sync.budget import SharedBudget

SPENDER = """
import sys
from connectors.base import QuotaExhausted
from sync.budget import SharedBudget
b = SharedBudget(sys.argv[1], {"hubspot": (int(sys.argv[2]), None)})
n = 0
try:
    for _ in range(1000):
        b.spend("hubspot")
        n += 1
except QuotaExhausted:
    pass
print(n)
"""


def test_processes_together_never_pass_the_daily_allocation(redis_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", SPENDER, redis_url, "137"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    counts = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(counts) == 137, counts  # exactly the allocation: no process spent its own
    figures = SharedBudget(redis_url, {"hubspot": (137, None)}).shared()["hubspot"]
    assert figures["calls"] == 137 and figures["remaining"] == 0


def test_the_allocation_starts_again_the_next_utc_day(redis_url: str) -> None:
    day = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    clock = [day]
    b = SharedBudget(redis_url, {"salesforce": (3, None)}, now=lambda: clock[0])
    for _ in range(3):
        b.spend("salesforce")
    with pytest.raises(QuotaExhausted, match="shared daily API budget of 3"):
        b.spend("salesforce")
    # another worker, same day: refused too (the count is not per process)
    with pytest.raises(QuotaExhausted):
        SharedBudget(redis_url, {"salesforce": (3, None)}, now=lambda: clock[0]).spend("salesforce")
    clock[0] = day + timedelta(minutes=2)  # 00:01 the next day
    b.spend("salesforce")
    assert b.shared()["salesforce"]["calls"] == 1
    assert b.calls("salesforce") == 4  # this process's own count, for its run report


def test_the_rate_is_shared_and_waited_for(redis_url: str) -> None:
    """Two budgets (two workers) at 5 calls/second: no second window holds more than 5
    of their calls together; the calls over it waited (they were not refused)."""
    import threading
    import time

    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        b = SharedBudget(redis_url, {"planhat": (None, 5)})
        for _ in range(8):
            b.spend("planhat")
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(stamps) == 16
    stamps.sort()
    # a moving window: any 6 consecutive calls span about a second at least (without
    # the limit, 16 calls take milliseconds); the margin is for threads under load
    tight = [stamps[i + 5] - stamps[i] for i in range(len(stamps) - 5)]
    assert min(tight) >= 0.8, tight
