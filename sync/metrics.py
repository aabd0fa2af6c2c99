"""Prometheus metrics (prometheus-client).

Two sources, one exposition:

- counters and a histogram this process updates at the end of every run
  (``observe_cycle``, called by ``Runner._finish``): records pulled / written / failed,
  API calls, run duration;
- a collector that reads the store on each scrape (``StoreCollector``): outbox depth,
  open errors by category, review-queue size, matcher links, records seen per
  (system, object), API calls and budget left today, the last run's duration. These
  are the same whichever process serves them (``revsync web``, ``revsync serve``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sync import store as st

log = logging.getLogger(__name__)

#: the process's own run counters (registered into every registry built here)
PULLED = Counter("revsync_records_pulled", "Records pulled per system and object (this process's runs)",
                 ["system", "object"], registry=None)
WRITTEN = Counter("revsync_records_written", "Records written per system and object (this process's runs)",
                  ["system", "object"], registry=None)
FAILED = Counter("revsync_records_failed", "Record writes that failed per system and object (this process's runs)",
                 ["system", "object"], registry=None)
API_CALLS = Counter("revsync_api_calls", "API calls per system (this process's runs)", ["system"], registry=None)
RUNS = Counter("revsync_runs", "Runs finished by kind and status (this process)", ["kind", "status"],
               registry=None)
DURATION = Histogram("revsync_run_duration_seconds", "Wall time of a run", ["kind"], registry=None,
                     buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")))
_PROCESS = (PULLED, WRITTEN, FAILED, API_CALLS, RUNS, DURATION)


def observe_pull(system: str, object_type: str, pulled: int) -> None:
    """Count records pulled from one (system, object) scope."""
    PULLED.labels(system, object_type).inc(pulled)


def observe_push(object_type: str, stats: Any) -> None:
    """Count one object's push (``written`` / ``failed`` per system)."""
    for system, n in (getattr(stats, "written", None) or {}).items():
        WRITTEN.labels(system, object_type).inc(n)
    for system, n in (getattr(stats, "failed", None) or {}).items():
        FAILED.labels(system, object_type).inc(n)


def observe_cycle(report: Any) -> None:
    """Count one finished run (a ``CycleReport``) into the process metrics."""
    for system, n in (report.api_calls or {}).items():
        API_CALLS.labels(system).inc(n)
    RUNS.labels(report.kind, report.status).inc()
    DURATION.labels(report.kind).observe(float(report.seconds or 0))


class StoreCollector(Collector):
    """Gauges read from the store at scrape time (a handful of grouped counts)."""

    def __init__(self, store: st.Store, now: Any = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(UTC))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        outbox = GaugeMetricFamily("revsync_outbox_ops", "Outbox operations by system, object and state",
                                   labels=["system", "object", "state"])
        errors = GaugeMetricFamily("revsync_errors_open", "Open error-ledger entries",
                                   labels=["system", "object", "category"])
        review = GaugeMetricFamily("revsync_review_queue", "Doubtful pairs waiting for review", labels=["object"])
        links = GaugeMetricFamily("revsync_matcher_links", "Links and merges in the merge ledger (not undone)",
                                  labels=["object"])
        seen = GaugeMetricFamily("revsync_records_seen", "Records pulled per system and native object (cursor)",
                                 labels=["system", "object"])
        calls = GaugeMetricFamily("revsync_api_calls_today", "API calls today (UTC) per system", labels=["system"])
        left = GaugeMetricFamily("revsync_api_budget_remaining", "API calls left as last reported by the system",
                                 labels=["system"])
        entities = GaugeMetricFamily("revsync_entities", "Live canonical entities (at the end of the last run)",
                                     labels=["object"])
        last = GaugeMetricFamily("revsync_last_run_seconds", "Duration of the last finished run", labels=["kind"])
        try:
            with self.store.session() as s:
                o = st.OutboxRow
                for system, obj, state, n in s.execute(
                    select(o.system, o.object_type, o.state, func.count()).group_by(o.system, o.object_type, o.state)
                ):
                    outbox.add_metric([system, obj, state], n)
                e = st.ErrorLedgerRow
                for system, obj, cat, n in s.execute(
                    select(e.system, e.object_type, e.category, func.count()).where(e.state == "open")
                    .group_by(e.system, e.object_type, e.category)
                ):
                    errors.add_metric([system, obj, cat], n)
                r = st.MatchReviewRow
                for obj, n in s.execute(select(r.object_type, func.count()).where(r.state == "open")
                                        .group_by(r.object_type)):
                    review.add_metric([obj], n)
                m = st.MergeLedgerRow
                for obj, n in s.execute(select(m.object_type, func.count()).where(m.undone_at.is_(None))
                                        .group_by(m.object_type)):
                    links.add_metric([obj], n)
                for c in s.scalars(select(st.SyncCursorRow)):
                    seen.add_metric([c.system, c.native_type], c.records_seen or 0)
                today = self.now().date()
                for u in s.scalars(select(st.ApiUsageRow).where(st.ApiUsageRow.day == today)):
                    calls.add_metric([u.system], u.calls)
                    if u.remaining is not None:
                        left.add_metric([u.system], u.remaining)
                run = st.SyncRunRow
                # as counted at the end of the last run (counting every scrape costs ~0.2 s at 100k)
                last_counts = s.scalars(select(run.counts).where(run.finished_at.is_not(None))
                                        .order_by(run.id.desc()).limit(1)).first() or {}
                for obj, n in (last_counts.get("entities") or st.entity_counts(s)).items():
                    entities.add_metric([obj], n)
                for kind, in s.execute(select(run.kind).distinct()):
                    row = s.scalars(select(run).where(run.kind == kind, run.finished_at.is_not(None))
                                    .order_by(run.id.desc()).limit(1)).first()
                    if row is not None and row.finished_at is not None:
                        last.add_metric([kind], (row.finished_at - row.started_at).total_seconds())
        except Exception as exc:  # a scrape never fails the process; the gap shows in the graphs
            log.warning("metrics: store not readable: %s", type(exc).__name__)
        yield from (outbox, errors, review, links, seen, calls, left, entities, last)


def registry(store: st.Store | None) -> CollectorRegistry:
    """A registry with the process counters and (given a store) the store's gauges."""
    reg = CollectorRegistry(auto_describe=True)
    for c in _PROCESS:
        reg.register(c)
    if store is not None:
        reg.register(StoreCollector(store))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The text format a Prometheus server scrapes."""
    return generate_latest(reg)


def serve_metrics(store: st.Store, port: int, host: str = "127.0.0.1") -> Any:
    """Serve /metrics on its own port in a daemon thread (``revsync serve --metrics-port``)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=registry(store))
