"""End-to-end truth benchmark: one full cycle of the sandbox, the store's clusters scored.

    .venv/bin/python -m bench.truth --accounts 10000 [--seed 42] [--noise real|classic]
        [--data DIR] [--keep DIR] [--cycles N]

Seed data is generated once per (accounts, seed, noise) into ``bench/out/`` (gitignored,
shared with ``bench.throughput``) or read from ``--data``. The sandbox runs in a
subprocess; cycle 1 (forced past the blast-radius caps: the initial load) and cycle 2
(no change) run in-process against a fresh SQLite store; ``--cycles N`` runs more no-change
cycles after those (``later_cycles``: each one's writes, which must all be 0). Then every remote record of
``ground_truth.json`` is looked up in the store (``external_ref``: system, native
object, remote id → canonical id, followed through ``merged_into``) and the store's
clusters are scored per object against the truth: pairwise precision, recall and F1,
real entities vs canonical entities. Prints ONE JSON object (see ``bench/README.md``).
``--keep DIR`` copies the SQLite store there afterwards (to inspect cycle 2's writes).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.throughput import OUT, SandboxStats, data_dir, peak_rss_mb, sandbox_process, timed  # noqa: E402

KINDS = ("account", "contact", "opportunity")
_KIND_BY_PREFIX = {"A": "account", "C": "contact", "O": "opportunity"}
# One remote record: (system, native object, remote id).
RecordKey = tuple[str, str, str]
SAMPLE_WRITES = 25


def iter_truth(path: Path) -> Iterator[tuple[str, str, list[RecordKey]]]:
    """(kind, entity, records) of every entity of a ``ground_truth.json``, streamed.

    The generator writes one entity per line (sorted keys, so ``"entity"`` first); the
    file is read line by line so that 100,000 accounts (over a million records) never
    sit in memory as one JSON tree.
    """
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            text = line.strip().rstrip(",")
            if not text.startswith('{"entity"'):
                continue
            item = json.loads(text)
            entity = str(item["entity"])
            kind = _KIND_BY_PREFIX[entity[0]]
            yield kind, entity, [(r["system"], r["object"], str(r["id"])) for r in item["records"]]


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(truth: Iterable[Iterable[RecordKey]], predicted: Mapping[RecordKey, str]) -> dict[str, Any]:
    """Pairwise precision / recall / F1 of predicted clusters against true ones.

    ``truth`` is the true clusters (every record in exactly one); ``predicted`` maps a
    record to its cluster label. A record missing from ``predicted`` is a cluster of
    its own (it never reached the store). Counts are over the truth's records only.
    """
    true_pairs = 0
    cells: Counter[tuple[int, str]] = Counter()
    labels: Counter[str] = Counter()
    entities = 0
    for n, cluster in enumerate(truth):
        members = list(cluster)
        entities += 1
        true_pairs += _pairs(len(members))
        for rec in members:
            label = predicted.get(rec)
            if label is None:
                label = "\x00missing:" + "|".join(rec)
            cells[n, label] += 1
            labels[label] += 1
    tp = sum(_pairs(c) for c in cells.values())
    pred_pairs = sum(_pairs(c) for c in labels.values())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "real_entities": entities,
        "canonical_entities": len(labels),
        "records": sum(labels.values()),
        "missing_records": sum(c for label, c in labels.items() if label.startswith("\x00missing:")),
        "true_pairs": true_pairs,
        "predicted_pairs": pred_pairs,
        "true_positive_pairs": tp,
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
    }


def store_clusters(db_url: str) -> dict[str, dict[RecordKey, str]]:
    """Per object type: every remote record the store knows → its live canonical id."""
    from sqlalchemy import select

    from sync.store import ENTITY_TABLES, ExternalRefRow, make_engine

    engine = make_engine(db_url)
    out: dict[str, dict[RecordKey, str]] = {kind: {} for kind in KINDS}
    try:
        with engine.connect() as conn:
            for kind in KINDS:
                table = ENTITY_TABLES[kind]
                merged = {
                    row.id: row.merged_into
                    for row in conn.execute(select(table.id, table.merged_into).where(table.merged_into.is_not(None)))
                }
                refs = conn.execute(
                    select(
                        ExternalRefRow.system, ExternalRefRow.native_type, ExternalRefRow.remote_id,
                        ExternalRefRow.canonical_id,
                    ).where(ExternalRefRow.object_type == kind)
                )  # fmt: skip
                for system, native_type, remote_id, canonical_id in refs:
                    out[kind][system, native_type, remote_id] = _survivor(canonical_id, merged)
    finally:
        engine.dispose()
    return out


def _survivor(entity_id: str, merged: Mapping[str, str]) -> str:
    seen = {entity_id}
    while entity_id in merged:
        entity_id = merged[entity_id]
        if entity_id in seen:  # a cycle would be a store bug; stop rather than spin
            break
        seen.add(entity_id)
    return entity_id


def score_store(truth_path: Path, db_url: str) -> dict[str, dict[str, Any]]:
    """Score the store's clusters per object against ``ground_truth.json``."""
    predicted = store_clusters(db_url)
    clusters: dict[str, list[list[RecordKey]]] = {kind: [] for kind in KINDS}
    for kind, _entity, records in iter_truth(truth_path):
        clusters[kind].append(records)
    return {kind: score(clusters[kind], predicted[kind]) for kind in KINDS}


def _name_key(name: Any) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", str(name or "").casefold()).split())


def split_patterns(truth_path: Path, db_url: str) -> dict[str, Any]:
    """The true deal pairs the store keeps apart, counted by what tells their two records
    apart (as the store last read them): ``same system`` (a duplicate within one
    system), ``account`` (their accounts are other entities, or one has none), ``name``
    (another name once case and punctuation are gone), ``close date``, ``amount`` (two
    typed amounts differ), ``amount blank`` (blank on one side or both); ``identical``
    when none of these. Which group to fix first (issue #19)."""
    from sqlalchemy import select

    from sync.store import ExternalRefRow, make_engine

    predicted = store_clusters(db_url)
    engine = make_engine(db_url)
    views: dict[RecordKey, tuple[str, str, Any, Any, str | None]] = {}
    try:
        with engine.connect() as conn:
            accounts = predicted["account"]
            account_of = {(system, rid): cid for (system, _native, rid), cid in accounts.items()}
            rows = conn.execute(select(
                ExternalRefRow.system, ExternalRefRow.native_type, ExternalRefRow.remote_id,
                ExternalRefRow.canonical_fields, ExternalRefRow.associations,
            ).where(ExternalRefRow.object_type == "opportunity"))  # fmt: skip
            for system, native, rid, fields, assoc in rows:
                view = _loaded(fields)
                acc = next(iter(_loaded(assoc).get("account") or ()), None)
                views[system, native, rid] = (system, _name_key(view.get("name")), str(view.get("close_date") or ""),
                                              view.get("amount"), account_of.get((system, str(acc))) if acc else None)
    finally:
        engine.dispose()
    patterns: Counter[str] = Counter()
    entities = 0
    for kind, _entity, records in iter_truth(truth_path):
        if kind != "opportunity":
            continue
        labels = {r: predicted["opportunity"].get(r) for r in records}
        if len(set(labels.values())) < 2:
            continue
        entities += 1
        for i, a in enumerate(records):
            for b in records[i + 1:]:
                if labels[a] == labels[b] or a not in views or b not in views:
                    continue
                (sa, na, ca, ma, aa), (sb, nb, cb, mb, ab) = views[a], views[b]
                tags = [tag for tag, differs in (
                    ("same system", sa == sb), ("account", aa is None or aa != ab), ("name", na != nb),
                    ("close date", ca != cb),
                    ("amount blank", ma in (None, "") or mb in (None, "")),
                    ("amount", ma not in (None, "") and mb not in (None, "") and str(ma) != str(mb)),
                ) if differs]  # fmt: skip
                patterns[" + ".join(tags) or "identical"] += 1
    return {"split_entities": entities, "split_pairs": sum(patterns.values()),
            "by_pattern": dict(patterns.most_common())}


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def score_hierarchy(truth_path: Path, db_url: str) -> dict[str, int]:
    """Account hierarchies: of the truth's subsidiaries (entities with a ``parent``),
    how many have, in the store, the parent's entity as ``parent_id`` (``right``), another
    account (``wrong``), or none (``missing``); ``fused``: a subsidiary in one cluster
    with its parent (the domain key must never do that)."""
    from sqlalchemy import select

    from sync.store import AccountRow, make_engine

    predicted = store_clusters(db_url)["account"]
    subs: dict[str, str] = {}
    records: dict[str, list[RecordKey]] = {}
    with Path(truth_path).open(encoding="utf-8") as fh:
        for line in fh:
            text = line.strip().rstrip(",")
            if not text.startswith('{"entity": "A') and not text.startswith('{"entity":"A'):
                continue
            item = json.loads(text)
            records[item["entity"]] = [(r["system"], r["object"], str(r["id"])) for r in item["records"]]
            if item.get("parent"):
                subs[item["entity"]] = item["parent"]

    def entity_of(truth_entity: str) -> str | None:
        found = Counter(predicted[k] for k in records.get(truth_entity, []) if k in predicted)
        return found.most_common(1)[0][0] if found else None

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            parents: dict[str, str | None] = {r.id: r.parent_id for r in conn.execute(
                select(AccountRow.id, AccountRow.parent_id))}
            merged: dict[str, str] = {r.id: r.merged_into for r in conn.execute(
                select(AccountRow.id, AccountRow.merged_into).where(AccountRow.merged_into.is_not(None)))}
    finally:
        engine.dispose()
    out = {"subsidiaries": len(subs), "right": 0, "wrong": 0, "missing": 0, "fused": 0}
    for sub, parent in subs.items():
        child_e, parent_e = entity_of(sub), entity_of(parent)
        if child_e is not None and child_e == parent_e:
            out["fused"] += 1
            continue
        got = parents.get(child_e) if child_e else None
        got = _survivor(got, merged) if got else None
        out["right" if got and got == parent_e else "wrong" if got else "missing"] += 1
    return out


#: a bench-only copy of every op planned from cycle 2 on (the push deletes the ops it completes)
OP_LOG = "bench_op_log"


def log_ops(db_path: Path) -> None:
    """Copy every outbox row inserted from now on into ``bench_op_log`` (a SQLite trigger:
    the ops cycle 2 and later planned stay visible after their push deleted them)."""
    with closing(sqlite3.connect(db_path)) as conn:
        conn.executescript(
            f"""CREATE TABLE IF NOT EXISTS {OP_LOG} (
                run_id INTEGER, system TEXT, native_type TEXT, kind TEXT, canonical_id TEXT,
                remote_id TEXT, payload TEXT);
            CREATE TRIGGER IF NOT EXISTS {OP_LOG}_copy AFTER INSERT ON outbox BEGIN
                INSERT INTO {OP_LOG} VALUES (NEW.run_id, NEW.system, NEW.native_type, NEW.kind,
                    NEW.canonical_id, NEW.remote_id, NEW.payload);
            END;"""
        )


def _logged(db_path: Path, run_id: int) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(
            f"SELECT system, native_type, kind, canonical_id, remote_id, payload FROM {OP_LOG} WHERE run_id = ?",
            (run_id,),
        ).fetchall()


def cycle_write_summary(db_path: Path, run_id: int) -> dict[str, int]:
    """A run's planned ops counted by ``system/object/kind/what``: what = the changed
    canonical fields (sorted, joined by ``+``), or ``associations`` when only links moved."""
    counts: Counter[str] = Counter()
    for system, native, kind, _cid, _rid, payload in _logged(db_path, run_id):
        data = json.loads(payload) if payload else {}
        changed = sorted({str(c[0]) for c in data.get("changes") or ()})
        if not changed and data.get("fields"):
            changed = sorted(f"native:{k}" for k in data["fields"])
        what = "+".join(changed) if changed else "associations"
        counts[f"{system}/{native}/{kind}/{what}"] += 1
    return dict(counts.most_common())


def cycle_writes(db_path: Path, run_id: int, limit: int = SAMPLE_WRITES) -> list[dict[str, Any]]:
    """Up to ``limit`` of a run's planned ops, as planned (fields, associations, changes)."""
    return [
        {"system": system, "native_type": native, "kind": kind, "canonical_id": cid, "remote_id": rid,
         "payload": json.loads(payload) if payload else None}
        for system, native, kind, cid, rid, payload in _logged(db_path, run_id)[:limit]
    ]


def run(
    accounts: int, seed: int, noise: str | None = None, *, data: Path | None = None, keep: Path | None = None,
    out: Path = OUT, cycles: int = 2,
) -> dict[str, Any]:
    """Generate (or reuse) data, serve it, sync twice, score the store; the JSON result."""
    from cli import make_runner, sandbox_settings
    from sync.migrate import upgrade

    data = Path(data) if data is not None else data_dir(accounts, seed, out, noise=noise)
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="revsync-truth-"))
    try:
        db_url = f"sqlite:///{work / 'truth.db'}"
        with sandbox_process(data, work / "ca") as info:
            upgrade(db_url)
            runner = make_runner(sandbox_settings(info, db_url))
            stats = SandboxStats(info)
            stats.reset()
            first, seconds_1 = timed(lambda: runner.run_cycle(force=True))
            log_ops(work / "truth.db")
            stats.reset()
            second, seconds_2 = timed(runner.run_cycle)
            calls_2 = stats.calls()
            later: list[tuple[Any, float, dict[str, int]]] = []
            for _ in range(max(0, cycles - 2)):
                stats.reset()
                extra, seconds_n = timed(runner.run_cycle)
                later.append((extra, seconds_n, stats.calls()))
        started = time.perf_counter()
        scores = score_store(data / "ground_truth.json", db_url)
        hier = score_hierarchy(data / "ground_truth.json", db_url)
        splits = split_patterns(data / "ground_truth.json", db_url)
        score_s = round(time.perf_counter() - started, 3)
        writes = cycle_writes(work / "truth.db", second.run_id)
        summary = cycle_write_summary(work / "truth.db", second.run_id)
        if keep is not None:
            _backup(work / "truth.db", keep / "truth.db")
        return {
            "accounts": accounts,
            "seed": seed,
            "noise": manifest.get("noise", "classic"),
            "data": str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else data.name,
            "objects": scores,
            "hierarchy": hier,
            "opportunity_splits": splits,
            "first_cycle": {
                "seconds": seconds_1,
                "status": first.status,
                "written": first.written,
                "failed": first.failed,
                "entities": first.entities,
                "links": first.links,
                "matched_links": first.matched_links,
                "review_queued": first.review_queued,
            },
            "second_cycle": {
                "seconds": seconds_2,
                "status": second.status,
                "written": second.written,
                "written_total": sum(second.written.values()),
                "failed": second.failed,
                "entities": second.entities,
                "api_calls": calls_2,
                "writes": writes,
                "writes_by": summary,
            },
            "later_cycles": [
                {
                    "seconds": seconds_n, "status": extra.status, "written": extra.written,
                    "written_total": sum(extra.written.values()), "failed": extra.failed, "api_calls": calls_n,
                    "writes_by": cycle_write_summary(work / "truth.db", extra.run_id)
                    if any(extra.written.values()) or any(extra.failed.values()) else {},
                }
                for extra, seconds_n, calls_n in later
            ],
            "score_seconds": score_s,
            "peak_rss_mb": peak_rss_mb(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _backup(src: Path, dst: Path) -> None:
    """Copy a SQLite store with its WAL applied (a file copy would miss the last writes)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    with closing(sqlite3.connect(src)) as source, closing(sqlite3.connect(dst)) as target:
        source.backup(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, required=True, help="real companies in the seed data")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--noise", default=None, choices=("classic", "real"), help="generator noise profile (default: the generator's)")
    parser.add_argument("--data", type=Path, default=None, help="use this generated directory instead")
    parser.add_argument("--keep", type=Path, default=None, help="copy the SQLite store into this directory")
    parser.add_argument("--cycles", type=int, default=2, help="no-change cycles in all, from 2 (default 2)")
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if args.data is not None and not (args.data / "ground_truth.json").is_file():
        parser.error(f"--data {args.data}: no ground_truth.json there")
    result = run(args.accounts, args.seed, args.noise, data=args.data, keep=args.keep, cycles=args.cycles)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
