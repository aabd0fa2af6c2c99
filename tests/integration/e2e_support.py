"""Helpers for the end-to-end tests of the sync engine against the sandbox.

A ``World`` is one sandbox plus one SQLite store and a ``Runner`` built the way
``revsync demo`` builds it (``cli.sandbox_settings`` + ``cli.make_runner``: the real
simple-salesforce, hubspot-api-client and Planhat clients over TLS). The functions
below read the end state from both sides (the canonical store and the remote
systems, read back through the connectors) and turn it into plain data the tests
compare: agreement mismatches, ground-truth scores, a run-independent "stable state"
and duplicate counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, update

from cli import make_runner, sandbox_settings
from connectors.base import ApiBudget, RecordError, RemoteRecord, RetryPolicy
from mapping.canonical import ENTITY_CLASSES, ObjectType, encode_value
from mapping.fieldmap import from_entity, get_field_map
from sandbox.schema import SCHEMAS
from sandbox.server import Sandbox
from sync import store as st
from sync.jobs import CycleReport, Runner, build_connections
from sync.link import EXTERNAL_ID_FIELDS
from sync.migrate import upgrade
from sync.plan import UNIQUE_FIELDS, WRITABLE_ASSOCIATIONS
from sync.reconcile import FieldPolicy, is_blank
from sync.views import map_record, row_entity

SYSTEM_NAMES = ("salesforce", "hubspot", "planhat")
OBJECTS = (ObjectType.ACCOUNT, ObjectType.CONTACT, ObjectType.OPPORTUNITY)
#: at most this many cycles to reach a cycle that writes nothing
MAX_CYCLES = 4
#: association fields are compared elsewhere (they are remote ids, not values)
ASSOC_FIELDS = frozenset({"account_id", "contact_ids"})
#: native objects that can never be an association target (a Lead is not a Contact)
ASSOC_TARGET_EXCLUDED = frozenset({"Lead"})
#: canonical fields derived from the stage (never written on their own)
DERIVED_FIELDS = frozenset({"is_closed", "is_won"})

#: endpoint labels (sandbox stats ``by_endpoint``) that change remote data
WRITE_ENDPOINTS: dict[str, frozenset[str]] = {
    "salesforce": frozenset({"composite/sobjects", "composite", "upsert", "sobject", "bulk2.ingest"}),
    "hubspot": frozenset({
        "crm.batch.create", "crm.batch.update", "crm.batch.upsert", "crm.batch.archive",
        "crm.create", "crm.update", "crm.archive", "crm.merge",
        "assoc.batch.create", "assoc.batch.archive", "assoc.batch.default",
    }),
    "planhat": frozenset({
        f"{m}.{op}" for m in ("companies", "endusers", "licenses", "users")
        for op in ("bulk", "create", "update", "delete")
    }),
}  # fmt: skip


@dataclass
class World:
    """One sandbox, one store, one runner."""

    sb: Sandbox
    db_url: str
    runner: Runner
    reports: list[CycleReport] = field(default_factory=list)

    @property
    def store(self) -> st.Store:
        return self.runner.store

    @property
    def policies(self) -> dict[str, FieldPolicy]:
        return {ot: FieldPolicy.from_config(p) for ot, p in self.runner.settings.policies.items()}


def open_world(sb: Sandbox, workdir: Path, name: str = "revsync", *, retry: RetryPolicy | None = None) -> World:
    """A fresh SQLite store (migrated) and a Runner with the real connectors for ``sb``.

    Without ``retry`` the runner is ``cli.make_runner``'s; with it (e.g. waits patched
    to zero for fault tests) the same connections are built with that policy.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / f'{name}.db'}"
    upgrade(db_url)
    settings = sandbox_settings(sb.info, db_url)
    if retry is None:
        return World(sb, db_url, make_runner(settings))
    budget = ApiBudget()
    conns = build_connections(settings, budget=budget, retry=retry)
    return World(sb, db_url, Runner(st.Store.from_url(db_url), conns, settings, budget=budget))


def no_wait_retry() -> RetryPolicy:
    """The connectors' retry policy with every wait skipped (fault tests)."""
    return RetryPolicy(attempts=8, sleep=lambda _s: None)


def pending_ops(world: World) -> int:
    """Outbox rows still waiting to be written (deferred by a failed batch, or new)."""
    with world.store.session() as s:
        return sum(st.pending_counts(s).values())


def release_backoff(world: World) -> None:
    """Make deferred outbox rows and scheduled retries of failed writes due now (a
    test's fast-forward over the backoff; parked failures stay parked)."""
    with world.store.session() as s:
        s.execute(update(st.OutboxRow).where(st.OutboxRow.state == "pending").values(next_attempt_at=None))
        s.execute(update(st.ErrorLedgerRow).where(st.ErrorLedgerRow.state == "open",
                                                  st.ErrorLedgerRow.next_attempt_at.is_not(None))
                  .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC)))


def outbox_left(world: World) -> dict[str, int]:
    """Outbox rows by state (an empty outbox: {})."""
    with world.store.session() as s:
        return {state: n for state, n in s.execute(
            select(st.OutboxRow.state, func.count()).group_by(st.OutboxRow.state))}


def sync_until_quiet(world: World, max_cycles: int = MAX_CYCLES) -> list[CycleReport]:
    """Run cycles (the first forced past the caps) until one writes nothing and leaves
    nothing pending. Deferred writes are made due before each further cycle."""
    reports: list[CycleReport] = []
    for i in range(max_cycles):
        if i:
            release_backoff(world)
        report = world.runner.run_cycle(force=i == 0)
        reports.append(report)
        if report.status == "failed":
            break
        if i > 0 and report.writes == 0 and not report.messages and pending_ops(world) == 0:
            break
    world.reports.extend(reports)
    return reports


# --------------------------------------------------------------------------- sandbox stats


def secret_environment(info: Mapping[str, Any]) -> dict[str, str]:
    """The sandbox's credentials under the starter config's variable names
    (``Connector.secret_env``): for a config whose secrets come from the environment."""
    from connectors.registry import starter_secret_env

    creds = info["credentials"]
    return {var: creds[system][key] for system, names in starter_secret_env().items()
            for key, var in names.items() if key in creds.get(system, {})}


def write_config(info: Mapping[str, Any], workdir: Path, *, database_url: str | None = None,
                 limits: Mapping[str, int] | None = None, extra: str = "", secrets_file: bool = True) -> Path:
    """``workdir/revsync.toml`` for the sandbox ``info``: the product's own starter
    config (``sync.config.starter_config``, what ``revsync init`` writes) pointed at this
    sandbox's ports and CA, with the secrets file ``revsync sandbox serve --secrets-file``
    writes (``sandbox.cli.write_secrets_file``) beside it (``secrets_file=False``: no
    file, the caller sets ``secret_environment(info)``); ``extra`` TOML is appended."""
    from sandbox.cli import write_secrets_file
    from sync.config import known_kinds, starter_config

    secrets = workdir / "secrets.toml"
    if secrets_file:
        write_secrets_file(secrets, dict(info["credentials"]))
    text = starter_config(urls={k: info[k] for k in known_kinds() if k in info}, ca_bundle=str(info["ca_cert"]),
                          secrets_file=str(secrets) if secrets_file else None,
                          database_url=database_url or f"sqlite:///{workdir / 'revsync.db'}", limits=limits)
    path = workdir / "revsync.toml"
    path.write_text(text + ("\n" + extra.strip() + "\n" if extra.strip() else ""), encoding="utf-8")
    return path


def https(sb: Sandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sb.info["ca_cert"])
    return session


def fetch_stats(sb: Sandbox) -> dict[str, Any]:
    """``GET /__sandbox/stats`` (never counted, never faulted)."""
    resp = https(sb).get(sb.info["stats"], timeout=30)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def write_calls(stats: Mapping[str, Any]) -> dict[str, int]:
    """Calls to data-changing endpoints per system."""
    out: dict[str, int] = {}
    for system, labels in WRITE_ENDPOINTS.items():
        by_ep = stats.get(system, {}).get("by_endpoint", {})
        out[system] = sum(n for ep, n in by_ep.items() if ep in labels)
    return out


def write_calls_by_endpoint(stats: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    return {
        system: {ep: n for ep, n in stats.get(system, {}).get("by_endpoint", {}).items() if ep in labels}
        for system, labels in WRITE_ENDPOINTS.items()
    }


def records_written(stats: Mapping[str, Any]) -> dict[str, int]:
    return {s: int(stats.get(s, {}).get("records_written", 0)) for s in SYSTEM_NAMES}


def delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(after) | set(before))}


# --------------------------------------------------------------------------- remote side


def read_remote(world: World) -> dict[tuple[str, str], list[RemoteRecord]]:
    """Every live remote record, read back through the connectors: (system, native) → records."""
    out: dict[tuple[str, str], list[RemoteRecord]] = {}
    for name, conn in world.runner.connections.items():
        for ot in OBJECTS:
            for native in conn.connector.objects.get(ot, ()):
                out[(name, native)] = list(conn.connector.read(ot, native=native))
    return out


def remote_counts(sb: Sandbox) -> dict[str, dict[str, int]]:
    """Record counts per system and object, as the emulators hold them."""
    return {s: dict(e.counts()) for s, e in sorted(sb.emulators.items())}


def duplicate_external_ids(remote: Mapping[tuple[str, str], Sequence[RemoteRecord]]) -> dict[str, list[str]]:
    """(system/native) → external-id values that more than one live record carries."""
    out: dict[str, list[str]] = {}
    for (system, native), recs in remote.items():
        key = EXTERNAL_ID_FIELDS.get(system)
        if key is None:
            continue
        seen = Counter(str(v) for r in recs if (v := r.fields.get(key)) not in (None, ""))
        dups = sorted(v for v, n in seen.items() if n > 1)
        if dups:
            out[f"{system}/{native}"] = dups
    return out


# --------------------------------------------------------------------------- canonical side


@dataclass(frozen=True)
class Ref:
    system: str
    native: str
    remote_id: str
    live: bool


def canonical_state(world: World) -> dict[str, dict[str, tuple[Any, list[Ref]]]]:
    """object → canonical id → (entity, refs) for every entity not deleted or merged away."""
    out: dict[str, dict[str, tuple[Any, list[Ref]]]] = {}
    with world.store.session() as s:
        for ot in OBJECTS:
            table: Any = st.ENTITY_TABLES[ot.value]
            rows: list[Any] = list(s.scalars(select(table).where(table.deleted_at.is_(None), table.merged_into.is_(None))))
            ids = [r.id for r in rows]
            refs = st.refs_for_entities(s, ot.value, ids)
            contacts = st.opportunity_contacts(s, ids) if ot is ObjectType.OPPORTUNITY else {}
            per: dict[str, tuple[Any, list[Ref]]] = {}
            for row in rows:
                ent = row_entity(ot.value, row, contacts.get(row.id, ()))
                per[row.id] = (ent, [Ref(r.system, r.native_type, r.remote_id, r.deleted_at is None)
                                     for r in refs.get(row.id, [])])
            out[ot.value] = per
    return out


def _written_canonical_fields(system: str, native: str) -> set[str]:
    """Canonical fields a (system, native object) writes: a write rule to an updateable field."""
    schema = {f.name: f for f in SCHEMAS.get(system, {}).get(native, ())}
    out: set[str] = set()
    for rule in get_field_map(system, native).write_rules:
        if rule.extras_key is not None:
            continue
        spec = schema.get(rule.native) or schema.get(rule.native.split(".", 1)[0])
        if spec is not None and not spec.updateable:
            continue
        out.add(rule.canonical)
    return out - ASSOC_FIELDS - DERIVED_FIELDS


def _roundtrip(system: str, native: str, entity: Any) -> dict[str, Any]:
    """What ``entity`` reads as once written to (system, native): the lossless target."""
    fields = from_entity(system, native, entity)
    rec = RemoteRecord(system, ObjectType.ACCOUNT, "", None, fields, native_type=native)
    return map_record(system, rec)


def _same(a: Any, b: Any) -> bool:
    if is_blank(a) and is_blank(b):
        return True
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except (InvalidOperation, ValueError):
        return bool(a == b)


@dataclass(frozen=True)
class Mismatch:
    object_type: str
    canonical_id: str
    system: str
    native: str
    remote_id: str
    field: str
    canonical: Any
    remote: Any

    def __str__(self) -> str:
        return (f"{self.object_type} {self.canonical_id[:8]} {self.system}/{self.native} {self.remote_id} "
                f"{self.field}: canonical={self.canonical!r} remote={self.remote!r}")


def agreement_mismatches(world: World) -> tuple[list[Mismatch], Counter[str]]:
    """Every (entity, live record, written field) where the remote disagrees with the store.

    The remote record is read back through its connector and mapped with the real
    mapping; the canonical value is compared after the same write→read round trip, so
    a lossy native representation (a picklist with fewer values) is not a mismatch.
    Skipped: fields the system does not write (no write rule, read-only in the
    schema, policy direction), and ``UNIQUE_FIELDS`` on an entity with several
    records in that system (only one of them may hold the value). Associations the
    system writes (``WRITABLE_ASSOCIATIONS``): the remote record must point at one of
    the records of the canonical account (and of each canonical contact) there.
    Returns the mismatches and how many (system/native, field) pairs were checked.
    """
    remote = read_remote(world)
    by_id = {(s, n, r.remote_id): r for (s, n), recs in remote.items() for r in recs}
    policies = world.policies
    checked: Counter[str] = Counter()
    out: list[Mismatch] = []
    state = canonical_state(world)
    # (object, canonical id, system) → live remote ids there (for association checks)
    where: dict[tuple[str, str, str], set[str]] = {}
    for ot, entities in state.items():
        for cid, (_e, refs) in entities.items():
            for r in refs:
                if r.live and r.native not in ASSOC_TARGET_EXCLUDED:
                    where.setdefault((ot, cid, r.system), set()).add(r.remote_id)
    for ot, entities in state.items():
        policy = policies.get(ot) or FieldPolicy()
        for cid, (entity, refs) in entities.items():
            live = [r for r in refs if r.live]
            per_system = Counter(r.system for r in live)
            for ref in live:
                rec = by_id.get((ref.system, ref.native, ref.remote_id))
                if rec is None:
                    out.append(Mismatch(ot, cid, ref.system, ref.native, ref.remote_id, "(record)", "live",
                                        "missing"))
                    continue
                try:
                    got = map_record(ref.system, rec)
                    want = _roundtrip(ref.system, ref.native, entity)
                except RecordError as e:
                    out.append(Mismatch(ot, cid, ref.system, ref.native, ref.remote_id, "(mapping)", None, str(e)))
                    continue
                unique = UNIQUE_FIELDS.get((ref.system, ref.native), frozenset())
                for f in sorted(_written_canonical_fields(ref.system, ref.native)):
                    if not policy.writes_to(ref.system, f):
                        continue
                    if f in unique and per_system[ref.system] > 1:
                        continue
                    checked[f"{ref.system}/{ref.native}.{f}"] += 1
                    if not _same(want.get(f), got.get(f)):
                        out.append(Mismatch(ot, cid, ref.system, ref.native, ref.remote_id, f,
                                            want.get(f), got.get(f)))
                allowed = WRITABLE_ASSOCIATIONS.get((ref.system, ref.native), frozenset())
                for f, obj, targets in (("account_id", "account", [entity.account_id] if getattr(
                        entity, "account_id", None) else []),
                                        ("contact_ids", "contact", list(getattr(entity, "contact_ids", ()) or ()))):
                    if obj not in allowed or not policy.writes_to(ref.system, f):
                        continue
                    have = set(rec.associations.get(obj, ()))
                    for target in targets:
                        rids = where.get((obj, target, ref.system))
                        if not rids:
                            continue  # the target entity has no record in this system
                        checked[f"{ref.system}/{ref.native}.{f}"] += 1
                        if not rids & have:
                            out.append(Mismatch(ot, cid, ref.system, ref.native, ref.remote_id, f,
                                                sorted(rids), sorted(have)))
    return out, checked


# --------------------------------------------------------------------------- ground truth


@dataclass
class TruthScore:
    clusters: dict[str, int] = field(default_factory=dict)  # kind → clusters in the ground truth
    split: dict[str, int] = field(default_factory=dict)  # kind → clusters spread over >1 entity
    unlinked: dict[str, int] = field(default_factory=dict)  # kind → clusters with a record not in the store
    merged: dict[str, int] = field(default_factory=dict)  # kind → entities holding records of >1 cluster
    samples: Counter[str] = field(default_factory=Counter)  # "kind.field" → scored values
    agree: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)

    def rate(self, key: str) -> float:
        return self.agree[key] / self.samples[key] if self.samples[key] else 1.0

    def table(self) -> str:
        lines = [f"{k:40} {self.agree[k]:4}/{self.samples[k]:<4} {self.rate(k):.3f}" for k in sorted(self.samples)]
        lines += [f"{kind}: {self.clusters[kind]} clusters, {self.split.get(kind, 0)} split over several "
                  f"entities, {self.unlinked.get(kind, 0)} with a record not in the store, "
                  f"{self.merged.get(kind, 0)} entities wrongly merging clusters"
                  for kind in sorted(self.clusters)]
        return "\n".join(lines)


def load_ground_truth(sb: Sandbox) -> dict[str, Any]:
    path = sb.info["ground_truth"]
    assert path, "the sandbox has no ground_truth.json"
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _truth_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual
    if expected is None or actual is None:
        return expected is None and actual is None
    try:
        return Decimal(str(expected)) == Decimal(str(actual))
    except (InvalidOperation, ValueError):
        return str(expected) == str(encode_value(actual))


def score_ground_truth(world: World) -> TruthScore:
    """Compare the canonical store with ``ground_truth.json``'s expected values.

    A cluster is scored only when all its records landed on one canonical entity
    (tier-1 linking does not find every duplicate); the others are counted as split.
    """
    truth = load_ground_truth(world.sb)
    score = TruthScore()
    with world.store.session() as s:
        for kind, clusters in truth["entities"].items():
            table: Any = st.ENTITY_TABLES[kind]
            score.clusters[kind] = len(clusters)
            pairs = {(r["system"], r["id"]) for c in clusters for r in c["records"]}
            owner: dict[tuple[str, str], str] = {}
            rows = s.execute(select(st.ExternalRefRow.system, st.ExternalRefRow.remote_id,
                                    st.ExternalRefRow.canonical_id)
                             .where(st.ExternalRefRow.object_type == kind))
            for system, rid, cid in rows:
                if (system, rid) in pairs:
                    owner[(system, rid)] = cid
            clusters_of: dict[str, set[str]] = {}
            for c in clusters:
                for r in c["records"]:
                    if (cid_ := owner.get((r["system"], r["id"]))) is not None:
                        clusters_of.setdefault(cid_, set()).add(c["entity"])
            score.merged[kind] = sum(1 for v in clusters_of.values() if len(v) > 1)
            for c in clusters:
                cids = {owner.get((r["system"], r["id"])) for r in c["records"]}
                if None in cids:
                    score.unlinked[kind] = score.unlinked.get(kind, 0) + 1
                    continue
                if len(cids) > 1:
                    score.split[kind] = score.split.get(kind, 0) + 1
                    continue
                cid = str(next(iter(cids)))
                row: Any = s.get(table, cid)
                assert row is not None, f"{kind} {cid} referenced but missing"
                while row.merged_into:
                    row = s.get(table, row.merged_into)
                    assert row is not None
                for f, want in sorted(c["expected"].items()):
                    key = f"{kind}.{f}"
                    got = getattr(row, f)
                    score.samples[key] += 1
                    if _truth_equal(want, got):
                        score.agree[key] += 1
                    else:
                        score.mismatches.append(f"{c['entity']} ({cid[:8]}) {key}: expected {want!r}, "
                                                f"got {encode_value(got)!r}; records "
                                                f"{[(r['system'], r['id']) for r in c['records']]}")
    return score


# --------------------------------------------------------------------------- stable state


def seeded_ids(sb: Sandbox) -> set[tuple[str, str]]:
    """(system, remote id) of every entity record of the seed data."""
    truth = load_ground_truth(sb)
    return {(r["system"], r["id"]) for clusters in truth["entities"].values() for c in clusters for r in c["records"]}


def _value(v: Any) -> Any:
    if isinstance(v, tuple | list | set | frozenset):
        return sorted(str(x) for x in v)
    return encode_value(v)


def stable_state(world: World) -> dict[str, Any]:
    """The end state keyed by what two runs share: seeded remote ids, not canonical UUIDs.

    Each entity is keyed by the sorted seeded (system, id) pairs of its live records;
    its value is its business fields, with associations (canonical ids) replaced by the
    key of the entity they point to. Entities without a seeded record are listed by
    count only.
    """
    seeded = seeded_ids(world.sb)
    state = canonical_state(world)
    keys: dict[tuple[str, str], str] = {}
    for ot, entities in state.items():
        for cid, (_e, refs) in entities.items():
            own = sorted(f"{r.system}:{r.remote_id}" for r in refs if r.live and (r.system, r.remote_id) in seeded)
            keys[(ot, cid)] = "|".join(own) if own else f"(unseeded {ot})"
    out: dict[str, Any] = {}
    for ot, entities in state.items():
        cls = ENTITY_CLASSES[ObjectType(ot)]
        per: dict[str, Any] = {}
        unseeded = 0
        for cid, (entity, refs) in entities.items():
            key = keys[(ot, cid)]
            if key.startswith("(unseeded"):
                unseeded += 1
                continue
            values: dict[str, Any] = {}
            for f in cls.business_fields():
                v = getattr(entity, f)
                if f in ("account_id", "parent_id"):  # an account, for a contact or a subsidiary
                    v = keys.get(("account", v)) if v else None
                elif f == "contact_ids":
                    v = sorted(keys.get(("contact", c), "?") for c in v or ())
                values[f] = _value(v)
            values["extras"] = json.loads(json.dumps(entity.extras, sort_keys=True, default=str))
            values["systems"] = sorted(Counter(f"{r.system}/{r.native}" for r in refs if r.live).items())
            assert key not in per, f"two {ot} entities share the seeded records {key}"
            per[key] = values
        out[ot] = {"entities": per, "unseeded": unseeded}
    return out


def entity_keys(world: World) -> dict[tuple[str, str], str]:
    """(object, canonical id) → a run-independent key: its seeded records (or, for an
    entity without one, "(unseeded)")."""
    seeded = seeded_ids(world.sb)
    keys: dict[tuple[str, str], str] = {}
    for ot, entities in canonical_state(world).items():
        for cid, (_e, refs) in entities.items():
            own = sorted(f"{r.system}:{r.remote_id}" for r in refs if r.live and (r.system, r.remote_id) in seeded)
            keys[(ot, cid)] = "|".join(own) if own else "(unseeded)"
    return keys


def remote_state(world: World) -> dict[str, list[Any]]:
    """The systems' end state by canonical content, not by remote id: per system/native,
    every live record as (its entity's key, its values read through the mapping, its
    associations as entity keys), sorted. A record revsync created is keyed by the
    revsync id it carries; one the store does not know is "(unknown)" (a duplicate)."""
    keys = entity_keys(world)
    with world.store.session() as s:
        owner = {(r.system, r.remote_id): (r.object_type, r.canonical_id) for r in s.scalars(
            select(st.ExternalRefRow).where(st.ExternalRefRow.deleted_at.is_(None)))}
    out: dict[str, list[Any]] = {}
    for (system, native), recs in read_remote(world).items():
        rows: list[Any] = []
        for rec in recs:
            ot_cid = owner.get((system, rec.remote_id))
            key = keys.get(ot_cid, "(merged away)") if ot_cid else "(unknown)"
            try:
                values = map_record(system, rec)
            except RecordError as e:
                values = {"(unreadable)": str(e)}
            assoc: dict[str, list[str]] = {}
            for obj, rids in sorted(rec.associations.items()):
                named = []
                for rid in rids:
                    o = owner.get((system, rid))
                    named.append(keys.get(o, "?") if o else "(unknown)")
                assoc[obj] = sorted(named)
            rows.append(json.dumps([key, values, assoc], sort_keys=True, default=str))
        out[f"{system}/{native}"] = sorted(rows)
    return out


def diff_remote(a: Mapping[str, list[Any]], b: Mapping[str, list[Any]], limit: int = 20) -> list[str]:
    """Records in one ``remote_state`` and not in the other."""
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        ca, cb = Counter(a.get(k, [])), Counter(b.get(k, []))
        out += [f"{k} only in the first: {r}" for r in sorted((ca - cb).elements())]
        out += [f"{k} only in the second: {r}" for r in sorted((cb - ca).elements())]
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def diff_states(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Readable differences between two ``stable_state`` results."""
    out: list[str] = []
    for ot in sorted(set(a) | set(b)):
        ea, eb = a.get(ot, {}).get("entities", {}), b.get(ot, {}).get("entities", {})
        for key in sorted(set(ea) - set(eb)):
            out.append(f"{ot} {key}: only in the first")
        for key in sorted(set(eb) - set(ea)):
            out.append(f"{ot} {key}: only in the second")
        for key in sorted(set(ea) & set(eb)):
            for f in sorted(set(ea[key]) | set(eb[key])):
                if ea[key].get(f) != eb[key].get(f):
                    out.append(f"{ot} {key} {f}: {ea[key].get(f)!r} != {eb[key].get(f)!r}")
        ua, ub = a.get(ot, {}).get("unseeded"), b.get(ot, {}).get("unseeded")
        if ua != ub:
            out.append(f"{ot}: {ua} != {ub} entities without a seeded record")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def summarize(reports: Iterable[CycleReport]) -> list[dict[str, Any]]:
    return [{"run": r.run_id, "status": r.status, "written": r.written, "failed": r.failed,
             "messages": r.messages, "errors": r.errors} for r in reports]


def stale_views(world: World) -> list[Mismatch]:
    """Live external refs whose stored view (``canonical_fields``, the engine's "last
    known remote state") disagrees with the remote record read back now, on the fields
    that system writes. A stale view makes the planner write (or skip) the wrong things.
    """
    remote = read_remote(world)
    by_id = {(s, n, r.remote_id): r for (s, n), recs in remote.items() for r in recs}
    out: list[Mismatch] = []
    with world.store.session() as s:
        refs = s.scalars(select(st.ExternalRefRow).where(st.ExternalRefRow.deleted_at.is_(None)))
        for ref in refs:
            rec = by_id.get((ref.system, ref.native_type, ref.remote_id))
            if rec is None:
                continue
            got = map_record(ref.system, rec)
            view = ref.canonical_fields or {}
            for f in sorted(_written_canonical_fields(ref.system, ref.native_type)):
                if not _same(view.get(f), got.get(f)):
                    out.append(Mismatch(ref.object_type, ref.canonical_id, ref.system, ref.native_type,
                                        ref.remote_id, f, view.get(f), got.get(f)))
    return out



def changed_seed_values(world: World, kind: str, fields: Sequence[str]) -> list[str]:
    """Seeded records of ``kind`` whose ``fields`` now read differently from the seed,
    though the ground truth records no conflict on that field for their entity (so
    nothing should have changed them)."""
    truth = load_ground_truth(world.sb)
    data = world.sb.data_dir
    assert data is not None
    seeded: dict[tuple[str, str], dict[str, Any]] = {}
    for c in truth["entities"][kind]:
        for r in c["records"]:
            seeded[(r["system"], r["id"])] = {"cluster": c["entity"], "expected": c["expected"]}
    seed_fields: dict[tuple[str, str], dict[str, Any]] = {}
    for system, native, id_key in (("salesforce", "Opportunity", "Id"), ("hubspot", "deals", "id"),
                                   ("salesforce", "Contact", "Id"), ("salesforce", "Account", "Id"),
                                   ("hubspot", "contacts", "id"), ("hubspot", "companies", "id")):
        path = data / system / f"{native}.json"
        if not path.is_file():
            continue
        for row in json.loads(path.read_text(encoding="utf-8")):
            key = (system, str(row[id_key]))
            if key in seeded:
                native_fields = row.get("properties", row) if system == "hubspot" else row
                rec = RemoteRecord(system, ObjectType(kind), key[1], None, native_fields, native_type=native)
                try:
                    seed_fields[key] = map_record(system, rec)
                except RecordError:
                    continue
    out: list[str] = []
    for (system, native), recs in read_remote(world).items():
        for rec in recs:
            key = (system, rec.remote_id)
            if key not in seed_fields:
                continue
            now = map_record(system, rec)
            for f in fields:
                before, after = seed_fields[key].get(f), now.get(f)
                if f in seeded[key]["expected"] or is_blank(before):
                    continue
                if not _same(before, after):
                    out.append(f"{seeded[key]['cluster']} {system}/{native} {rec.remote_id} {f}: "
                               f"{before!r} -> {after!r}")
    return sorted(out)
