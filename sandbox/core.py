"""The sandbox core: clock, faults, stats, rate windows, context and the Emulator ABC.

Each emulator (``sandbox/salesforce.py``, ``hubspot.py``, ``planhat.py``) subclasses
``Emulator``; ``sandbox/server.py`` serves it over HTTPS and hands every request to
``Emulator.handle`` together with the fault drawn for that call (if any).
"""

from __future__ import annotations

import abc
import json
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from sandbox.faults import (
    FAULT_KINDS,
    SYSTEMS,
    WRITE_ONLY_KINDS,
    Fault,
    FaultInjector,
    FaultSpec,
    FaultSpecError,
    parse_spec,
)

__all__ = [
    "FAULT_KINDS",
    "SYSTEMS",
    "TIERS",
    "WRITE_ONLY_KINDS",
    "Clock",
    "Emulator",
    "Fault",
    "FaultInjector",
    "FaultSpec",
    "FaultSpecError",
    "RateWindow",
    "SandboxContext",
    "Stats",
    "json_response",
    "parse_spec",
]

# "off": no rate limits at all (benchmarks). The emulators map the others to the
# vendors' documented limits (see /shared API notes: HubSpot B8, Salesforce A11).
TIERS = ("free", "pro", "enterprise", "off")


class Clock:
    """Aware-UTC time the emulators stamp records with.

    Real time by default; ``Clock(fixed=dt)`` freezes it. ``advance`` moves either
    kind forward (tests use it to expire rate windows without sleeping).
    """

    def __init__(self, fixed: datetime | None = None) -> None:
        if fixed is not None and fixed.tzinfo is None:
            raise ValueError("Clock(fixed=...) needs an aware datetime")
        self._fixed = fixed.astimezone(UTC) if fixed is not None else None
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current time, aware UTC."""
        if self._fixed is not None:
            return self._fixed + timedelta(seconds=self._offset)
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def timestamp(self) -> float:
        """The current time as POSIX seconds (cheaper than ``now()`` for counters)."""
        if self._fixed is not None:
            return self._fixed.timestamp() + self._offset
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        with self._lock:
            self._offset += seconds


def _zero_system() -> dict[str, Any]:
    return {
        "calls": 0,
        "by_endpoint": {},
        "by_status": {},
        "records_served": 0,
        "records_written": 0,
        "faults": {},
    }


class Stats:
    """Thread-safe counters of calls, statuses, records and faults, per system."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        self.reset()

    def _sys(self, system: str) -> dict[str, Any]:
        entry = self._data.get(system)
        if entry is None:
            entry = self._data[system] = _zero_system()
        return entry

    def call(self, system: str, endpoint: str, status: int) -> None:
        """Count one HTTP call and its status."""
        with self._lock:
            entry = self._sys(system)
            entry["calls"] += 1
            by_ep = entry["by_endpoint"]
            by_ep[endpoint] = by_ep.get(endpoint, 0) + 1
            key = str(status)
            by_st = entry["by_status"]
            by_st[key] = by_st.get(key, 0) + 1

    def served(self, system: str, n: int) -> None:
        """Count records returned."""
        with self._lock:
            self._sys(system)["records_served"] += n

    def written(self, system: str, n: int) -> None:
        """Count records created, updated or deleted."""
        with self._lock:
            self._sys(system)["records_written"] += n

    def fault(self, system: str, kind: str) -> None:
        """Count one injected fault."""
        with self._lock:
            faults = self._sys(system)["faults"]
            faults[kind] = faults.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of all counters, JSON-ready."""
        with self._lock:
            return {
                system: {
                    key: dict(value) if isinstance(value, dict) else value
                    for key, value in entry.items()
                }
                for system, entry in self._data.items()
            }

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._data = {system: _zero_system() for system in SYSTEMS}


class RateWindow:
    """A sliding-window counter: at most ``limit`` hits in any ``seconds``.

    Hits are kept in buckets of ``seconds / RESOLUTION`` so memory stays small even
    for daily limits of millions; a bucket expires whole, so a slot may free up to
    one bucket width early.
    """

    RESOLUTION = 100

    def __init__(self, limit: int, seconds: float, clock: Clock) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("RateWindow needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = float(seconds)
        self._clock = clock
        self._width = self.seconds / self.RESOLUTION
        self._buckets: deque[list[float]] = deque()  # [bucket start, hits]
        self._count = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        horizon = now - self.seconds
        buckets = self._buckets
        while buckets and buckets[0][0] + self._width <= horizon + 1e-9:
            self._count -= int(buckets.popleft()[1])

    def hit(self) -> tuple[bool, int, float]:
        """Try one call: (allowed, remaining after it, seconds until a slot frees)."""
        with self._lock:
            now = self._clock.timestamp()
            self._expire(now)
            if self._count >= self.limit:
                oldest = self._buckets[0][0]
                wait = max(0.0, oldest + self._width + self.seconds - now)
                return False, 0, wait
            start = now - (now % self._width)
            if self._buckets and self._buckets[-1][0] == start:
                self._buckets[-1][1] += 1
            else:
                self._buckets.append([start, 1])
            self._count += 1
            oldest = self._buckets[0][0]
            reset = max(0.0, oldest + self._width + self.seconds - now)
            return True, self.limit - self._count, reset

    def remaining(self) -> int:
        """Calls left in the current window, without spending one."""
        with self._lock:
            self._expire(self._clock.timestamp())
            return max(0, self.limit - self._count)


@dataclass
class SandboxContext:
    """What every emulator shares: time, faults, stats, tier, credentials, seed."""

    clock: Clock
    faults: FaultInjector
    stats: Stats
    tier: str
    credentials: dict[str, dict[str, str]]  # per system, the credentials it accepts
    seed: int
    # Base URL per system ("https://127.0.0.1:PORT"), filled by the server once bound.
    urls: dict[str, str] = field(default_factory=dict)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON werkzeug Response (compact separators, UTF-8).

    Text holding a lone surrogate (stored from a ``\\udc80`` escape) cannot be UTF-8:
    such a body goes out ASCII-escaped, as the vendors send it."""
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    try:
        data = payload.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
    resp = Response(data, status=status, mimetype="application/json")
    if headers:
        for key, value in headers.items():
            resp.headers[key] = value
    return resp


class Emulator(abc.ABC):
    """One vendor API, in memory. The server calls ``handle`` for every request."""

    system: ClassVar[str]  # "salesforce" | "hubspot" | "planhat"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def load(self, data_dir: Path) -> None:
        """Read ``<data_dir>/<system>/*.json``; a missing directory means no data."""

    @abc.abstractmethod
    def handle(self, request: Request, fault: Fault | None) -> Response:
        """Auth, rate limits, routing, faults (vendor-shaped) and stats for one call."""

    @abc.abstractmethod
    def apply_edits(
        self, rng: random.Random, n: int, kinds: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Make ``n`` realistic edits of the given kinds; describe each one."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Live (not deleted) records held, per native object."""

    def endpoint_name(self, request: Request) -> str:
        """A stable label for stats and fault matching (emulators refine it)."""
        return request.path.strip("/") or "/"
