"""Opportunity matcher benchmark: pairwise precision / recall / F1 against the sandbox truth.

    python -m bench.match_opportunity --accounts 10000 [--seed 7] [--bands]

The sandbox generator's seed data (``bench.throughput.data_dir``: generated once into
``bench/out/data-a<N>-s<S>/``) is read record by record through
``mapping.fieldmap.to_entity`` as the engine reads it: Salesforce ``Opportunity`` and
HubSpot ``deals``. Each record's canonical account is its account record's *true*
entity from ``ground_truth.json`` (so the opportunity matcher is scored on its own,
not on the account matcher's mistakes), its ``account_name`` that account record's
name, and ``systems`` its one system. No tier-1 key runs first: every record is
matched by ``sync.dedupe_opportunity.match_opportunities`` with the default
thresholds, and the clusters are scored pairwise against the truth's opportunity
clusters (``bench.match_quality.score``).

Prints ONE JSON object: accounts, records, true_pairs, predicted_pairs, precision,
recall, f1, links, review (pairs queued), review_share (queued pairs per record),
split_cross / split_within (true pairs left apart, across / within one system),
wrong_links, seconds (matching only). ``--bands`` adds precision per probability band
over every scored pair (the review band included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.match_quality import score
from bench.throughput import data_dir
from mapping.fieldmap import OWNER_PSEUDO_FIELD, to_entity
from sync.dedupe import MatchResult
from sync.dedupe_opportunity import Options, match_opportunities

FIELDS = ("name", "amount", "currency", "stage", "close_date", "type", "owner_email")


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load(data: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(opportunity match records, record id → true entity) from a generated data dir."""
    truth_doc = json.loads((data / "ground_truth.json").read_text(encoding="utf-8"))
    entity_of = {
        f"{r['system']}:{r['id']}": cluster["entity"]
        for kind in ("account", "opportunity")
        for cluster in truth_doc["entities"][kind]
        for r in cluster["records"]
    }
    del truth_doc
    # one name per account, as the store holds one (Salesforce's first, as the default policy)
    names: dict[str, Any] = {}
    for c in _load(data / "hubspot" / "companies.json"):
        names[entity_of[f"hubspot:{c['id']}"]] = c["properties"].get("name")
    for a in _load(data / "salesforce" / "Account.json"):
        names[entity_of[f"salesforce:{a['Id']}"]] = a.get("Name")
    deal_company = {
        a["fromId"]: a["toId"] for a in _load(data / "hubspot" / "associations.json")
        if a.get("fromType") == "deals" and a.get("toType") == "companies"
    }
    # owners as the connectors resolve them (``_owner_email``)
    sf_users = {u["Id"]: u.get("Email") for u in _load(data / "salesforce" / "User.json")}
    hs_owners = {o["id"]: o.get("email") for o in _load(data / "hubspot" / "owners.json")}
    records = []
    for raw in _load(data / "salesforce" / "Opportunity.json"):
        account = f"salesforce:{raw['AccountId']}" if raw.get("AccountId") else None
        fields = {**raw, OWNER_PSEUDO_FIELD: sf_users.get(raw.get("OwnerId") or "")}
        records.append(_record("salesforce", "Opportunity", raw["Id"], fields, account, names, entity_of))
    for raw in _load(data / "hubspot" / "deals.json"):
        company = deal_company.get(raw["id"])
        account = f"hubspot:{company}" if company else None
        props = raw["properties"]
        fields = {**props, OWNER_PSEUDO_FIELD: hs_owners.get(props.get("hubspot_owner_id") or "")}
        records.append(_record("hubspot", "deals", raw["id"], fields, account, names, entity_of))
    truth = {r["id"]: entity_of.get(r["id"], r["id"]) for r in records}
    return records, truth


def _record(system: str, obj: str, rid: str, fields: dict[str, Any], account: str | None,
            names: dict[str, Any], entity_of: dict[str, str]) -> dict[str, Any]:
    entity = to_entity(system, obj, fields)
    values = {f: getattr(entity, f, None) for f in FIELDS}
    account_id = entity_of.get(account) if account else None
    return {"id": f"{system}:{rid}", **values, "account_id": account_id,
            "account_name": names.get(account_id) if account_id else None, "systems": [system]}


def bands(records: list[dict[str, Any]], truth: dict[str, str]) -> list[dict[str, Any]]:
    """Precision of every scored pair per probability band (from 0.5 up), across and
    within one system, before clustering."""
    edges = (0.5, 0.8, 0.9, 0.95, 0.99, 0.998, 0.9998, 1.01)
    every = match_opportunities(records, options=Options(review_from=0.5, auto_link=1.0, near_certain=1.0))
    system = {r["id"]: r["systems"][0] for r in records}
    counts: dict[tuple[int, bool], Counter[bool]] = {}
    for p in [*every.links, *every.review]:
        k = next(i for i in range(len(edges) - 1) if edges[i] <= p.probability < edges[i + 1])
        counts.setdefault((k, system[p.left] == system[p.right]), Counter())[truth[p.left] == truth[p.right]] += 1
    return [{"from": edges[k], "to": min(edges[k + 1], 1.0), "within_system": within, "pairs": sum(c.values()),
             "same_deal": c[True], "precision": round(c[True] / sum(c.values()), 5)}
            for (k, within), c in sorted(counts.items())]


def in_sync(data: Path, *, tier2: bool = True, after_reconcile: bool = False) -> dict[str, Any]:
    """One full cycle against the sandbox serving ``data`` (as ``bench.throughput``);
    the store's opportunity clusters (records of one canonical id) scored against the
    truth. ``tier2=False`` leaves opportunities to tier 1 (accounts and contacts are
    matched as usual either way). ``after_reconcile``: the cycle runs as a dry run
    without opportunity tier 2, then the opportunities are matched on the reconciled
    entities (the order the cycle is moving to: match after reconcile, before push)."""
    import shutil
    import tempfile

    import sync.match
    from bench.throughput import sandbox_process
    from cli import make_runner, sandbox_settings
    from sync import store as st
    from sync.migrate import upgrade

    truth_doc = json.loads((data / "ground_truth.json").read_text(encoding="utf-8"))
    truth = {(r["system"], r["id"]): c["entity"] for c in truth_doc["entities"]["opportunity"] for r in c["records"]}
    del truth_doc
    work = Path(tempfile.mkdtemp(prefix="revsync-opp-"))
    matched = sync.match.MATCHED_OBJECTS
    try:
        if not tier2 or after_reconcile:
            sync.match.MATCHED_OBJECTS = tuple(o for o in matched if o != "opportunity")
        db_url = f"sqlite:///{work / 'bench.db'}"
        with sandbox_process(data, work / "ca") as info:
            upgrade(db_url)
            runner = make_runner(sandbox_settings(info, db_url))
            start = time.perf_counter()
            report = runner.run_cycle(force=True, dry_run=after_reconcile)
            if after_reconcile:
                from sync.jobs import utcnow

                deduper = sync.match.Deduper(runner.store, runner.settings.dedupe, now=utcnow,
                                                policies=runner.settings.policies)
                dr = deduper.run_batch("opportunity")
                report.matched_links, report.review_queued = dr.links, dr.review_added
            seconds = time.perf_counter() - start
        store = st.Store.from_url(db_url)
        with store.session() as s:
            refs = s.execute(select(st.ExternalRefRow.system, st.ExternalRefRow.remote_id,
                                    st.ExternalRefRow.canonical_id)
                             .where(st.ExternalRefRow.object_type == "opportunity")).all()
    finally:
        sync.match.MATCHED_OBJECTS = matched
        shutil.rmtree(work, ignore_errors=True)
    clusters: dict[str, list[str]] = {}
    for system, rid, cid in refs:
        if (system, rid) in truth:  # records the cycle created are not in the truth
            clusters.setdefault(cid, []).append(f"{system}:{rid}")
    flat = {f"{system}:{rid}": entity for (system, rid), entity in truth.items()}
    result = MatchResult([], [], [c for c in clusters.values() if len(c) > 1], [], "")
    out: dict[str, Any] = {"tier2": tier2, "after_reconcile": after_reconcile, "status": report.status,
                           "seconds": round(seconds, 1)}
    out |= score(result, flat)
    out |= {"entities": len(clusters), "true_entities": len(set(truth.values())),
            "matched_links": report.matched_links, "review_queued": report.review_queued}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bands", action="store_true", help="precision per probability band")
    parser.add_argument("--sync", action="store_true",
                        help="also score a full cycle against the sandbox, with and without opportunity tier 2")
    args = parser.parse_args(argv)
    records, truth = load(data_dir(args.accounts, args.seed))
    start = time.perf_counter()
    result = match_opportunities(records, options=Options())
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {"accounts": args.accounts, "seed": args.seed, "records": len(records)}
    report |= score(result, truth)
    system = {r["id"]: r["systems"][0] for r in records}
    cluster_of = {i: n for n, c in enumerate(result.clusters) for i in c}
    by_entity: dict[str, list[str]] = {}
    for rid, entity in truth.items():
        by_entity.setdefault(entity, []).append(rid)
    split = Counter()
    for ids in by_entity.values():
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if cluster_of.get(a, a) != cluster_of.get(b, b):
                    split["within" if system[a] == system[b] else "cross"] += 1
    wrong = [p for p in result.links if truth[p.left] != truth[p.right]]
    report |= {
        "links": len(result.links), "review": len(result.review),
        "review_share": round(len(result.review) / max(len(records), 1), 5),
        "split_cross": split["cross"], "split_within": split["within"], "wrong_links": len(wrong),
        "seconds": round(seconds, 2),
    }
    if args.bands:
        report["bands"] = bands(records, truth)
    if args.sync:
        data = data_dir(args.accounts, args.seed)
        report["sync_tier1_only"] = in_sync(data, tier2=False)
        report["sync"] = in_sync(data)
        report["sync_after_reconcile"] = in_sync(data, after_reconcile=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
