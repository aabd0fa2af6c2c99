"""Console page times on a large store.

    .venv/bin/python -m bench.web_pages --accounts 10000 [--contacts 6] [--opportunities 3] [--repeat 5]

Builds (once per size, reused from ``bench/out/``) a SQLite store with ``accounts``
accounts, ``contacts`` contacts and ``opportunities`` opportunities per account (10,000
accounts → 100,000 entities), two remote records per entity whose values disagree now
and then, field provenance, open errors, a review queue, runs, API usage and a pending
plan, all written with Core bulk inserts. Then requests every console page in process
(Starlette's TestClient, logged in) ``repeat`` times and prints ONE JSON object: per
page the median and worst milliseconds and the response size, plus the time the
background quality report took (pages never wait for it: it is cached).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from sync import store as st
from sync.migrate import upgrade

OUT = Path(__file__).parent / "out"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "contract", "closed_won", "closed_lost")
PAGES = ("/", "/errors", "/errors?category=validation&system=hubspot", "/review", "/plan", "/explain",
         "/explain?q=acme-0042", "/explain?q=jane.doe-77-1@", "/explain?q=Jane Doe42", "/explain/{account}", "/explain/salesforce:{sf_id}",
         "/quality", "/audit", "/metrics")


def build(path: Path, accounts: int, contacts: int, opportunities: int, seed: int = 7) -> dict[str, Any]:
    """Fill a fresh store at ``path``; returns ids the page list needs."""
    rnd = random.Random(seed)
    url = f"sqlite:///{path}"
    upgrade(url)
    store = st.Store.from_url(url)
    acc_rows, con_rows, opp_rows, refs, prov = [], [], [], [], []
    ids: dict[str, Any] = {}

    def ref(system: str, obj: str, native: str, cid: str, fields: dict[str, Any]) -> None:
        refs.append({"canonical_id": cid, "system": system, "object_type": obj, "native_type": native,
                     "remote_id": f"{system[:2]}{len(refs):015d}", "remote_modstamp": NOW - timedelta(days=rnd.randint(0, 500)),
                     "canonical_fields": fields, "associations": {}, "link_rule": "external_id",
                     "first_seen_at": NOW, "last_seen_at": NOW})

    base = {"created_at": NOW, "updated_at": NOW, "deleted_at": None, "merged_into": None, "extras": {},
            "dirty": False}
    for i in range(accounts):
        aid = str(uuid.UUID(int=rnd.getrandbits(128)))
        a = {"id": aid, "name": f"Acme-{i:04d} Holdings", "domain": f"acme-{i:04d}.example",
             "industry": rnd.choice(["software", "energy", None]), "country": rnd.choice(["DE", "US", "FR"]),
             "owner_email": rnd.choice(["kai@corp.example", None]), "arr": rnd.randint(0, 500) * 1000,
             "renewal_date": date(2026, rnd.randint(1, 12), 1), **base}
        acc_rows.append(a)
        fields = {k: a[k] for k in ("name", "domain", "industry", "country", "owner_email")}
        ref("salesforce", "account", "Account", aid, fields)
        ref("hubspot", "account", "companies", aid,
            {**fields, "name": a["name"] if rnd.random() > 0.1 else a["name"].upper()})
        prov.extend({"object_type": "account", "entity_id": aid, "field": f, "value": a[f], "system": "salesforce",
                     "remote_id": None, "remote_modstamp": NOW, "rule": "source_priority", "run_id": 1,
                     "decided_at": NOW} for f in ("name", "domain", "industry"))
        ids.setdefault("account", aid)
        for j in range(contacts):
            cid = str(uuid.UUID(int=rnd.getrandbits(128)))
            c = {"id": cid, "email": f"jane.doe-{i}-{j}@acme-{i:04d}.example", "first_name": "Jane",
                 "last_name": f"Doe{i}", "account_id": aid, "owner_email": "kai@corp.example", **base}
            con_rows.append(c)
            cf = {k: c[k] for k in ("email", "first_name", "last_name", "owner_email")}
            ref("hubspot", "contact", "contacts", cid, cf)
            ref("salesforce", "contact", "Contact", cid, cf)
        for _j in range(opportunities):
            oid = str(uuid.UUID(int=rnd.getrandbits(128)))
            stage = rnd.choice(STAGES)
            o = {"id": oid, "name": f"Acme-{i:04d} deal", "account_id": aid, "amount": rnd.randint(1, 200) * 500,
                 "stage": stage, "close_date": date(2026, rnd.randint(1, 12), 15), "owner_email": "kai@corp.example",
                 "is_closed": stage.startswith("closed"), "is_won": stage == "closed_won", **base}
            opp_rows.append(o)
            of = {"name": o["name"], "amount": str(o["amount"]), "stage": stage, "close_date": o["close_date"].isoformat()}
            ref("salesforce", "opportunity", "Opportunity", oid, of)
            ref("hubspot", "opportunity", "deals", oid,
                {**of, "stage": rnd.choice(STAGES) if rnd.random() < 0.05 else stage})
    ids["sf_id"] = refs[0]["remote_id"]
    with store.session() as s:
        for table, rows in ((st.AccountRow, acc_rows), (st.ContactRow, con_rows), (st.OpportunityRow, opp_rows),
                            (st.ExternalRefRow, refs), (st.FieldProvenanceRow, prov)):
            for k in range(0, len(rows), 5000):
                s.execute(insert(table), rows[k:k + 5000])
        s.execute(insert(st.ErrorLedgerRow), [
            {"system": rnd.choice(["salesforce", "hubspot"]), "object_type": "contact", "native_type": "Contact",
             "remote_id": f"003{k:012d}", "canonical_id": None, "direction": rnd.choice(["read", "write"]),
             "category": rnd.choice(["validation", "bad_value", "duplicate"]), "field": "phone",
             "message": f"value {k} rejected", "payload": None, "first_seen_at": NOW, "last_seen_at": NOW,
             "attempts": 1, "state": "open"} for k in range(2000)])
        s.execute(insert(st.MatchReviewRow), [
            {"object_type": "account", "left_id": acc_rows[2 * k]["id"], "right_id": acc_rows[2 * k + 1]["id"],
             "probability": 0.85, "evidence": {"name": "fuzzy"}, "state": "open", "created_at": NOW}
            for k in range(min(500, accounts // 2))])
        s.execute(insert(st.SyncRunRow), [
            {"kind": "cycle", "scope": {}, "started_at": NOW - timedelta(hours=k), "finished_at": NOW - timedelta(hours=k) + timedelta(seconds=90),
             "status": "ok", "counts": {"entities": {"account": accounts}, "pulled": {"salesforce": 900, "hubspot": 700}, "written": {"planhat": 40},
                                        "failed": {"hubspot": 2}, "api_calls": {"salesforce": 12}, "seconds": 90.0}}
            for k in range(500)])
        s.execute(insert(st.OutboxRow), [
            {"system": "hubspot", "object_type": "contact", "native_type": "contacts", "kind": "update",
             "canonical_id": con_rows[k]["id"], "remote_id": None,
             "payload": {"changes": [["phone", None, "+49 30 1234567", "source_priority"]]}, "state": "pending",
             "attempts": 0, "created_at": NOW, "updated_at": NOW} for k in range(min(5000, len(con_rows)))])
    return ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--contacts", type=int, default=6, help="contacts per account")
    ap.add_argument("--opportunities", type=int, default=3, help="opportunities per account")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from starlette.testclient import TestClient

    from web.app import Console, create_app
    from web.auth import AuditLog, Credentials, hash_password

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"web-{args.accounts}-{args.contacts}-{args.opportunities}.db"
    meta = path.with_suffix(".json")
    built = None
    if not (path.exists() and meta.exists()):
        path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        meta.write_text(json.dumps(build(path, args.accounts, args.contacts, args.opportunities)))
        built = round(time.perf_counter() - t0, 1)
    ids = json.loads(meta.read_text())
    store = st.Store.from_url(f"sqlite:///{path}")
    console = Console(store=store, credentials=Credentials("admin", hash_password("bench")),
                      audit=AuditLog(OUT / "web-audit.jsonl"))
    t0 = time.perf_counter()
    console.refresh_quality(wait=True)
    quality_s = time.perf_counter() - t0
    client = TestClient(create_app(console))
    page = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"user": "admin", "password": "bench", "csrf": csrf})
    pages: dict[str, Any] = {}
    for p in PAGES:
        url = p.format(**ids)
        times, size = [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                print(f"{url}: HTTP {r.status_code}", file=sys.stderr)
            size = len(r.content)
        pages[p] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1), "bytes": size}
    with store.session() as s:
        entities = st.entity_counts(s)
    print(json.dumps({"entities": entities, "entities_total": sum(entities.values()), "built_seconds": built,
                      "quality_report_seconds": round(quality_s, 2), "repeat": args.repeat, "pages": pages,
                      "slowest_median_ms": max(v["median_ms"] for v in pages.values())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
