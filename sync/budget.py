"""One API budget for every process and machine: per-system request rate and daily
allocation held in Redis (fleet mode).

The counters are the ``limits`` library's, on Redis storage: a fixed window per
system and UTC day (the key names the day, so the allocation starts again at
midnight UTC) and a moving window for the request rate. ``hit`` is one atomic Redis
operation, so workers on any number of machines together never pass the
allocation: a call that would is refused (``QuotaExhausted``: the run parks the
rest and resumes the next day), and a call over the rate waits for the window.

Connectors call ``spend`` once per HTTP call (``connectors.base.ApiBudget``), so
this class is a drop-in for the per-process budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import ApiBudget, ConnectorError, QuotaExhausted

#: the day counter of a system without a configured allocation still counts (status)
UNLIMITED = 10**12
NAMESPACE = "revsync-budget"


class BrokerUnreachable(ConnectorError):
    """The fleet's Redis (broker and shared budget) cannot be reached: one line naming it."""


def unreachable_line(url: str, exc: BaseException | None = None) -> str:
    """What to tell the user when the fleet's Redis at ``url`` does not answer."""
    from sync.config import redact_url

    why = f" ({str(exc).strip() or type(exc).__name__})" if exc is not None else ""
    return (f"the fleet's Redis at {redact_url(url)} is out of reach{why}: it holds the broker and the "
            "shared API budget; start it or fix [fleet] broker_url")


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """Raise ``BrokerUnreachable`` unless the Redis at ``url`` answers a PING in ``timeout`` s."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as e:
        raise BrokerUnreachable(unreachable_line(url, e)) from None


def budget_limits(connections: Mapping[str, Any]) -> dict[str, tuple[int | None, int | None]]:
    """system → (calls per day, calls per second) from each connection's ``budget`` table."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for c in connections.values():
        b = c.options.get("budget") if isinstance(c.options.get("budget"), dict) else {}
        out[c.kind] = (b.get("calls_per_day"), b.get("calls_per_second"))
    return out


class SharedBudget(ApiBudget):
    """``ApiBudget`` whose allocation and rate live in Redis (``redis://`` URL)."""

    def __init__(self, url: str, limits: Mapping[str, tuple[int | None, int | None]], *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from limits import RateLimitItemPerDay, RateLimitItemPerSecond
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        super().__init__()
        self.url = url
        self.storage = storage_from_string(url)
        self._daily = FixedWindowRateLimiter(self.storage)
        self._rate = MovingWindowRateLimiter(self.storage)
        self._per_day = {s: RateLimitItemPerDay(d or UNLIMITED) for s, (d, _r) in limits.items()}
        self._per_second = {s: RateLimitItemPerSecond(r) for s, (_d, r) in limits.items() if r}
        self._configured = {s: d for s, (d, _r) in limits.items()}
        self.now, self.sleep = now, sleep

    def _day_item(self, system: str) -> Any:
        from limits import RateLimitItemPerDay

        return self._per_day.get(system) or RateLimitItemPerDay(UNLIMITED)

    def _day(self) -> str:
        return self.now().astimezone(UTC).date().isoformat()

    def spend(self, system: str, calls: int = 1) -> None:
        """Count ``calls`` against the shared allocation (refused past it) and the rate
        (waits for the window); then locally, for the run's report. Redis out of reach:
        ``BrokerUnreachable`` (the call is not made: nobody could count it)."""
        import redis

        try:
            self._spend(system, calls)
        except redis.RedisError as e:
            raise BrokerUnreachable(unreachable_line(self.url, e)) from None
        super().spend(system, calls)

    def _spend(self, system: str, calls: int) -> None:
        if not self._daily.hit(self._day_item(system), NAMESPACE, system, self._day(), cost=calls):
            cap = self._configured.get(system)
            raise QuotaExhausted(f"{system}: the shared daily API budget of {cap} calls is used up "
                                 f"(every worker together); it starts again at 00:00 UTC")
        rate = self._per_second.get(system)
        while rate is not None and not self._rate.hit(rate, NAMESPACE, system, cost=calls):
            stats = self._rate.get_window_stats(rate, NAMESPACE, system)
            self.sleep(max(0.01, min(1.0, stats.reset_time - time.time())))

    def shared(self) -> dict[str, dict[str, Any]]:
        """Today's figures for every configured system, as every worker sees them."""
        day = self._day()
        out: dict[str, dict[str, Any]] = {}
        for system, cap in self._configured.items():
            stats = self._daily.get_window_stats(self._day_item(system), NAMESPACE, system, day)
            used = (cap or UNLIMITED) - stats.remaining
            midnight = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            out[system] = {"day": day, "calls": used, "calls_per_day": cap,
                           "remaining": (cap - used) if cap else None,
                           "calls_per_second": self._per_second[system].amount if system in self._per_second else None,
                           "resets_at": midnight.isoformat()}
        return out

    def reset(self) -> None:
        """Forget every counter (tests)."""
        self.storage.reset()
