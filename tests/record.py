"""Record the connector scenarios' traffic to ``tests/cassettes`` (see ``tests/recording.py``).

    python -m tests.record                       # against a fresh local sandbox
    python -m tests.record --config revsync.toml --out DIR [--writes]   # real orgs (README)

Each scenario drives a real connector (real client, real HTTP) and its traffic goes to
``<name>.yaml``, scrubbed. Against the sandbox, ``<name>.truth.json`` also keeps what
the *server* holds (the emulator's own record counts), so a replay test checks the
connector's reading against the server's state rather than against itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    Connector,
    Cursor,
    OpKind,
    RemoteRecord,
    RetryPolicy,
    WriteOp,
    WriteResult,
    load_connector_class,
)
from mapping.canonical import ObjectType
from sync.config import ConfigError
from tests.recording import CASSETTES, PLACEHOLDERS, record

#: the connection options that point a connector at a base URL
URL_OPTIONS = {
    "salesforce": lambda base: {"instance_url": base, "token_url": f"{base}/services/oauth2/token"},
    "hubspot": lambda base: {"host": base},
    "planhat": lambda base: {"base_url": base},
}
#: stand-in secrets for replay (the recorded ones were scrubbed)
REPLAY_SECRETS = {
    "salesforce": {"client_id": "replay", "client_secret": "replay", "refresh_token": "replay"},
    "hubspot": {"access_token": "replay"},
    "planhat": {"api_token": "replay"},
}
#: small pages so a small org still pages
OPTIONS = {"salesforce": {"page_size": 200}, "hubspot": {}, "planhat": {"page_size": 10}}
#: fixed revsync ids for the records the write scenarios create (re-recording upserts them again)
NEW_KEYS = ("7b0c6a52-5d7e-4c1a-9a51-000000000001", "7b0c6a52-5d7e-4c1a-9a51-000000000002")


def connector(system: str, settings: ConnectionSettings) -> Connector:
    cls = load_connector_class(system)
    return cls.from_settings(settings, budget=ApiBudget(),  # type: ignore[attr-defined,no-any-return]
                             retry=RetryPolicy(attempts=3, sleep=lambda s: None))


def replay_connector(system: str) -> Connector:
    """The connector a replay test drives: placeholder host, stand-in secrets, no CA file."""
    base = PLACEHOLDERS[system]
    settings = ConnectionSettings(name=system, kind=system,
                                  options={**URL_OPTIONS[system](base), **OPTIONS[system]},
                                  secrets=REPLAY_SECRETS[system])
    return connector(system, settings)


# --------------------------------------------------------------------------- scenarios
# Each takes a connector and returns what the replay test checks. They must send the
# same requests on replay as when recorded: every input comes from fixed values or
# from earlier (recorded) responses, never from the clock.


def read_pages(conn: Connector, ot: ObjectType) -> list[list[RemoteRecord]]:
    """A full listing, page by page."""
    return [list(p) for p in conn.read_pages(ot)]


def read_since_middle(conn: Connector, ot: ObjectType) -> tuple[list[RemoteRecord], Cursor, list[RemoteRecord]]:
    """A full listing, then an incremental read from the middle record's modstamp."""
    everything = [r for p in conn.read_pages(ot) for r in p]
    stamps = sorted(r.modstamp for r in everything if r.modstamp)
    since = Cursor(stamps[len(stamps) // 2] - timedelta(seconds=0))
    return everything, since, [r for p in conn.read_pages(ot, since=since) for r in p]


NEW_ACCOUNT_FIELDS: Mapping[str, dict[str, Any]] = {
    "salesforce": {"Name": "Recorded Widgets Ltd", "Website": "https://recorded-widgets.example"},
    "hubspot": {"name": "Recorded Widgets Ltd", "domain": "recorded-widgets.example"},
    "planhat": {"name": "Recorded Widgets Ltd", "website": "https://recorded-widgets.example"},
}
RENAMED: Mapping[str, dict[str, Any]] = {
    "salesforce": {"Name": "Recorded Rename Inc"},
    "hubspot": {"name": "Recorded Rename Inc"},
    "planhat": {"name": "Recorded Rename Inc"},
}


def upsert_accounts(conn: Connector) -> tuple[list[WriteResult], list[RemoteRecord]]:
    """Create two accounts by external id and rename an existing one; then read them back."""
    first = next(iter(conn.read_pages(ObjectType.ACCOUNT)))[0]
    system = conn.name
    ops = [
        WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, key=NEW_KEYS[0],
                fields={**NEW_ACCOUNT_FIELDS[system]}),
        WriteOp(OpKind.UPSERT, ObjectType.ACCOUNT, key=NEW_KEYS[1],
                fields={**NEW_ACCOUNT_FIELDS[system], **RENAMED[system]}),
        WriteOp(OpKind.UPDATE, ObjectType.ACCOUNT, key=NEW_KEYS[0].replace("0001", "0003"),
                fields=RENAMED[system], remote_id=first.remote_id),
    ]
    results = conn.write(ObjectType.ACCOUNT, ops)
    after = [r for p in conn.read_pages(ObjectType.ACCOUNT) for r in p]
    return results, after


Scenario = Callable[[Connector], Any]
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "salesforce_read_contacts_paged": ("salesforce", lambda c: read_pages(c, ObjectType.CONTACT)),
    "salesforce_read_accounts_since": ("salesforce", lambda c: read_since_middle(c, ObjectType.ACCOUNT)),
    "salesforce_upsert_accounts": ("salesforce", upsert_accounts),
    "hubspot_read_contacts_paged": ("hubspot", lambda c: read_pages(c, ObjectType.CONTACT)),
    "hubspot_read_companies_since": ("hubspot", lambda c: read_since_middle(c, ObjectType.ACCOUNT)),
    "hubspot_upsert_companies": ("hubspot", upsert_accounts),
    "planhat_read_companies_paged": ("planhat", lambda c: read_pages(c, ObjectType.ACCOUNT)),
    "planhat_upsert_companies": ("planhat", upsert_accounts),
    "salesforce_read_leads": ("salesforce", lambda c: list(c.read(ObjectType.CONTACT, native="Lead"))),
    "salesforce_read_opportunities": ("salesforce", lambda c: list(c.read(ObjectType.OPPORTUNITY))),
    "salesforce_list_account_ids": ("salesforce", lambda c: list(c.list_ids(ObjectType.ACCOUNT))),
    "hubspot_read_deals": ("hubspot", lambda c: list(c.read(ObjectType.OPPORTUNITY))),
    "planhat_read_endusers": ("planhat", lambda c: list(c.read(ObjectType.CONTACT))),
    "planhat_list_company_ids": ("planhat", lambda c: list(c.list_ids(ObjectType.ACCOUNT))),
}
#: what the emulator holds, per system, after each scenario (``<name>.truth.json``)
TRUTH_OBJECTS = {"salesforce": ("Account", "Contact", "Opportunity"), "hubspot": ("companies", "contacts", "deals"),
                 "planhat": ("companies", "endusers")}


def _sandbox_truth(sb: Any, system: str) -> dict[str, Any]:
    """The server's own view, read from the emulator's store (never through a connector)."""
    emu = sb.emulators[system]
    counts = emu.counts()
    truth: dict[str, Any] = {obj: counts[obj] for obj in TRUTH_OBJECTS[system]}
    if system == "salesforce":
        records = emu.org.records
        truth["unconverted_leads"] = sorted(
            i for i, r in records["Lead"].items() if not r.get("IsDeleted") and not r.get("IsConverted"))
        roles: dict[str, list[str]] = {}
        for r in records["OpportunityContactRole"].values():
            if not r.get("IsDeleted"):
                roles.setdefault(r["OpportunityId"], []).append(r["ContactId"])
        truth["contact_roles"] = {k: sorted(v) for k, v in sorted(roles.items())}
        truth["account_ids"] = sorted(i for i, r in records["Account"].items() if not r.get("IsDeleted"))
    if system == "planhat":
        truth["enduser_company"] = {i: d.get("companyId") for i, d in sorted(emu._docs["endusers"].items())}
        truth["company_ids"] = sorted(emu._docs["companies"])
    return truth


# --------------------------------------------------------------------------- recording


def _sandbox_settings(sb: Any, system: str) -> ConnectionSettings:
    creds = sb.info["credentials"][system]
    return ConnectionSettings(
        name=system, kind=system,
        options={**URL_OPTIONS[system](sb.urls[system]), "ca_bundle": str(sb.info["ca_cert"]), **OPTIONS[system]},
        secrets={k: creds[k] for k in REPLAY_SECRETS[system]},
    )


def _origins(system: str, options: Mapping[str, Any]) -> list[str]:
    """Every ``scheme://host[:port]`` the connection talks to (the scrubber replaces them all).

    A Salesforce org's instance URL, when the config does not name it, is learnt from
    the token reply while recording (``Scrubber``).
    """
    from urllib.parse import urlsplit

    from connectors.hubspot import DEFAULT_HOST
    from connectors.planhat_client import DEFAULT_BASE_URL
    from connectors.salesforce_auth import DEFAULT_TOKEN_URL

    defaults = {"salesforce": {"token_url": DEFAULT_TOKEN_URL}, "hubspot": {"host": DEFAULT_HOST},
                "planhat": {"base_url": DEFAULT_BASE_URL}}[system]
    urls = {**defaults, **{k: v for k, v in options.items() if k in ("instance_url", "token_url", "host", "base_url") and v}}
    return sorted({f"{urlsplit(str(u)).scheme}://{urlsplit(str(u)).netloc}" for u in urls.values()})


WRITES = tuple(n for n in SCENARIOS if "_upsert_" in n)


def record_all(out: Path, config: Path | None, only: list[str], *, writes: bool = False) -> list[str]:
    """Record the scenarios; return the cassette names written."""
    names = [n for n in SCENARIOS if not only or n in only]
    written = []
    if config is None:
        from sandbox.server import Sandbox

        # a small seeded org: seed and size fixed so re-recording gives the same data
        with Sandbox(accounts=115, seed=11, tier="off") as sb:
            for name in names:
                system, scenario = SCENARIOS[name]
                settings = _sandbox_settings(sb, system)
                with record(name, {sb.urls[system]: PLACEHOLDERS[system]}, out):
                    scenario(connector(system, settings))
                truth = _sandbox_truth(sb, system)
                (out / f"{name}.truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
                written.append(name)
        return written
    from sync.config import load

    loaded = load(config)
    by_kind: dict[str, ConnectionSettings] = {}
    for cs in loaded.connections.values():
        by_kind.setdefault(cs.kind, cs)  # the first connection of each kind
    for name in names:
        system, scenario = SCENARIOS[name]
        if name in WRITES and not writes:
            print(f"skip {name}: it creates two accounts and renames one (--writes, in a sandbox org only)",
                  file=sys.stderr)
            continue
        found = by_kind.get(system)
        if found is None:
            print(f"skip {name}: no {system} connection in {config}", file=sys.stderr)
            continue
        real = ConnectionSettings(found.name, found.kind, {**found.options, **OPTIONS[system]}, found.secrets)
        with record(name, dict.fromkeys(_origins(system, found.options), PLACEHOLDERS[system]), out):
            scenario(connector(system, real))
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.record", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="record against the connections of this revsync.toml")
    ap.add_argument("--out", type=Path, help="cassette directory (default: tests/cassettes; required with --config)")
    ap.add_argument("--writes", action="store_true",
                    help="with --config: also record the write scenarios (they change data: a sandbox org only)")
    ap.add_argument("scenario", nargs="*", help=f"only these (default: all of {', '.join(SCENARIOS)})")
    args = ap.parse_args(argv)
    unknown = [s for s in args.scenario if s not in SCENARIOS]
    if unknown:
        print(f"error: unknown scenario {unknown[0]!r} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2
    if args.config is not None and args.out is None:
        print("error: --config needs --out DIR (the committed sandbox cassettes stay as they are)", file=sys.stderr)
        return 2
    if args.config is not None and not args.config.exists():
        print(f"error: {args.config}: no such config file", file=sys.stderr)
        return 2
    out = args.out or CASSETTES
    try:
        names = record_all(out, args.config, args.scenario, writes=args.writes)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in names:
        print(f"recorded {out / name}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
