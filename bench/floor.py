"""The plain-read floor: the pages a full sync reads, fetched with nothing but
``requests`` + ``json`` and stored with one ``executemany`` per page into SQLite.

    .venv/bin/python -m bench.floor --accounts 1000 [--seed 42]

It is what a sync could cost if revsync did no work of its own: the same objects,
fields (Salesforce SOQL select list, HubSpot properties, Planhat models) and page
sizes the connectors use, read over the same TLS sandbox, each record stored as one
JSON row (``INSERT … ON CONFLICT DO UPDATE``), one transaction per page. It reads no
associations (HubSpot's v4 batch reads) and maps nothing, so it is a lower bound.
``bench/throughput.py`` runs it in the same process and run as the cycles it compares.

Prints ONE JSON object: ``seconds``, ``records``, ``records_per_s``, ``api_calls``
per system (counted here), ``bytes`` read.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from mapping.canonical import ObjectType

#: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
SF_API = "v59.0"


class _Reader:
    """One system's plain reads: a session, its auth header, a call counter."""

    def __init__(self, ca: str, token: str) -> None:
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = ca
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.calls = 0
        self.bytes = 0

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        resp = self.http.get(url, params=params, timeout=120)
        resp.raise_for_status()
        self.calls += 1
        self.bytes += len(resp.content)
        return json.loads(resp.content)


def salesforce_token(info: Mapping[str, Any]) -> str:
    """An access token by the OAuth refresh-token flow, as the connector gets one."""
    creds = info["credentials"]["salesforce"]
    resp = requests.post(
        f"{info['salesforce']}/services/oauth2/token",
        data={"grant_type": "refresh_token", **{k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}},
        verify=info["ca_cert"], timeout=60,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def salesforce_pages(r: _Reader, base: str, native: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    """``GET /query?q=SELECT … ORDER BY SystemModstamp, Id``, then ``nextRecordsUrl``."""
    soql = f"SELECT {', '.join(fields)} FROM {native} ORDER BY SystemModstamp, Id"
    body = r.get(f"{base}/services/data/{SF_API}/query/", {"q": soql})
    while True:
        yield body.get("records") or []
        nxt = body.get("nextRecordsUrl")
        if body.get("done", True) or not nxt:
            return
        body = r.get(f"{base}{nxt}")


def hubspot_pages(r: _Reader, host: str, native: str, props: list[str], limit: int) -> Iterator[list[dict[str, Any]]]:
    """``GET /crm/v3/objects/{type}?limit&after&properties`` (https://developers.hubspot.com/docs/api/crm/contacts)."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, "properties": ",".join(props)}
        if after:
            params["after"] = after
        body = r.get(f"{host}/crm/v3/objects/{native}", params)
        yield body.get("results") or []
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def planhat_pages(r: _Reader, base: str, model: str, limit: int) -> Iterator[list[dict[str, Any]]]:
    """``GET /{model}?limit&offset&sort=_id`` until a short page (https://docs.planhat.com/#get_companies)."""
    offset = 0
    while True:
        page = r.get(f"{base}/{model}", {"limit": limit, "offset": offset, "sort": "_id"})
        yield page
        if len(page) < limit:
            return
        offset += len(page)


def read_plan(connections: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(system, native, how) for every object the connectors read, with their field
    lists and page sizes (learnt from the connectors before the clock starts)."""
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for name, conn in connections.items():
        c = conn.connector
        for ot in (ObjectType.ACCOUNT, ObjectType.CONTACT, ObjectType.OPPORTUNITY):
            for native in c.objects.get(ot, ()):
                if conn.kind == "salesforce":
                    plan.append((name, native, {"fields": c.select_fields(native)}))
                elif conn.kind == "hubspot":
                    plan.append((name, native, {"props": list(c.properties(native)), "limit": c.LIST_PAGE}))
                elif conn.kind == "planhat":
                    plan.append((name, native, {"limit": c._limit(native)}))
    return plan


def run_floor(info: Mapping[str, Any], plan: list[tuple[str, str, dict[str, Any]]], db: Path) -> dict[str, Any]:
    """Read every planned object with plain requests into ``db``; the timings."""
    started = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS raw (system TEXT, native TEXT, id TEXT, body TEXT, "
                "PRIMARY KEY (system, native, id))")
    readers = {
        "salesforce": _Reader(info["ca_cert"], salesforce_token(info)),
        "hubspot": _Reader(info["ca_cert"], info["credentials"]["hubspot"]["access_token"]),
        "planhat": _Reader(info["ca_cert"], info["credentials"]["planhat"]["api_token"]),
    }
    records = 0
    for system, native, how in plan:
        r = readers[system]
        if system == "salesforce":
            pages = salesforce_pages(r, info["salesforce"], native, how["fields"])
        elif system == "hubspot":
            pages = hubspot_pages(r, info["hubspot"], native, how["props"], how["limit"])
        else:
            pages = planhat_pages(r, info["planhat"], native, how["limit"])
        for page in pages:
            rows = [(system, native, str(rec.get("Id") or rec.get("id") or rec.get("_id")), json.dumps(rec))
                    for rec in page]
            with con:
                con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?) ON CONFLICT (system, native, id) "
                                "DO UPDATE SET body = excluded.body", rows)
            records += len(rows)
    con.close()
    seconds = round(time.perf_counter() - started, 3)
    return {
        "seconds": seconds,
        "records": records,
        "records_per_s": round(records / seconds, 1) if seconds else None,
        "api_calls": {k: v.calls for k, v in sorted(readers.items())},
        "bytes": sum(v.bytes for v in readers.values()),
    }


def main(argv: list[str] | None = None) -> int:
    import shutil
    import tempfile

    from bench.throughput import ROOT, data_dir, sandbox_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, required=True, help="real companies in the seed data")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    sys.path.insert(0, str(ROOT))
    from cli import make_runner, sandbox_settings
    from sync.migrate import upgrade

    work = Path(tempfile.mkdtemp(prefix="revsync-floor-"))
    try:
        with sandbox_process(data_dir(args.accounts, args.seed), work / "ca") as info:
            db_url = f"sqlite:///{work / 'store.db'}"
            upgrade(db_url)
            runner = make_runner(sandbox_settings(info, db_url))
            result = run_floor(info, read_plan(runner.connections), work / "floor.db")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(json.dumps({"accounts": args.accounts, "seed": args.seed, **result}, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
