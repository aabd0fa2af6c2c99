"""Going live: check connections before the first sync, provision what they lack.

``check`` builds each configured connector (which proves its credentials) and runs
its kind's readiness checks (``connectors/<kind>_setup.py``); ``setup`` lists, and with
``apply`` creates, the external-id fields revsync upserts on; ``external_id_gaps`` is
what ``revsync sync`` asks before it writes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    Connector,
    ConnectorError,
    RetryPolicy,
    UnknownConnectorError,
    load_connector_class,
)
from connectors.readiness import FAIL, OK, WARN, Change, Finding
from sync.config import Settings
from sync.connection import Connection

log = logging.getLogger(__name__)

#: checks give up on an unreachable system quickly
CHECK_RETRY = RetryPolicy(attempts=3, max_delay=10.0, base=0.5, cap=4.0)
#: Salesforce option naming the integration user's permission set
PERMISSION_SET_OPTION = "permission_set"


def mapped_fields(settings: Settings, kind: str) -> dict[str, list[tuple[str, bool]]]:
    """Native object → (native field, revsync writes it) for every mapped field of ``kind``."""
    from mapping.fieldmap import Direction, build_field_maps

    out: dict[str, list[tuple[str, bool]]] = {}
    for (system, native), fm in build_field_maps(settings.mapping).items():
        if system != kind:
            continue
        seen: dict[str, bool] = {}
        for rule in fm.rules:
            name = rule.native
            if rule.direction == Direction.NONE or name.startswith("_") or "." in name:
                continue  # _owner_email is resolved through the owner; dotted names are nested
            seen[name] = seen.get(name, False) or rule.writes
        out[native] = list(seen.items())
    return out


def readiness(conn: Connection, cs: ConnectionSettings) -> Any:
    """The connector's go-live checker (``Connector.readiness``; None when it has none)."""
    make = getattr(conn.connector, "readiness", None)
    return make(name=conn.name, options=cs.options) if callable(make) else None


def _build(cs: ConnectionSettings, budget: ApiBudget) -> tuple[Connection | None, Finding | None]:
    """The connection, or the one finding saying why it cannot be built."""
    try:
        cls: type[Connector] = load_connector_class(cs.kind)
        return Connection(cs.name, cs.kind, cls.from_settings(cs, budget=budget, retry=CHECK_RETRY)), None
    except UnknownConnectorError as exc:
        return None, Finding(cs.name, "credentials", FAIL, str(exc))
    except AuthError as exc:
        return None, Finding(cs.name, "credentials", FAIL, f"{exc}")
    except ConnectorError as exc:
        return None, Finding(cs.name, "credentials", FAIL, f"cannot connect: {exc}")


def _only(settings: Settings, systems: Sequence[str] | None) -> list[ConnectionSettings]:
    return [cs for n, cs in settings.connections.items() if not systems or n in systems]


def check(settings: Settings, *, systems: Sequence[str] | None = None) -> list[Finding]:
    """Every finding for every (selected) connection; never raises for a system's trouble."""
    budget = ApiBudget()
    findings: list[Finding] = []
    for cs in _only(settings, systems):
        conn, failed = _build(cs, budget)
        if conn is None:
            findings.append(failed)  # type: ignore[arg-type]
            continue
        ready = readiness(conn, cs)
        try:
            if ready is None:
                info = conn.connector.check()
                findings.append(Finding(cs.name, "credentials", OK, f"connector check passed ({info})"))
                findings.append(Finding(cs.name, "external_id", WARN,
                                        f"no readiness checks for kind {cs.kind!r}: see its documentation"))
            else:
                findings.extend(ready.check(mapped_fields(settings, cs.kind)))
        except ConnectorError as exc:
            findings.append(Finding(cs.name, "access", FAIL, f"check stopped: {exc}"))
        findings.extend(definition_findings(settings, conn))
    return findings


def definition_findings(settings: Settings, conn: Connection) -> list[Finding]:
    """The shared definitions against ``conn``'s live picklists: a ``warn`` per value
    it lacks (those writes are held by the pre-flight), else one ``ok``; nothing for a
    system without a live schema (Planhat)."""
    from mapping import definitions
    from mapping.fieldmap import build_field_maps
    from sync.preflight import Preflight, definition_gaps

    if getattr(conn.connector, "live_schema", None) is None:
        return []
    pre = Preflight({conn.name: conn})
    with definitions.using(settings.definitions):
        gaps = definition_gaps(pre, conn.name, conn.kind, build_field_maps(settings.mapping))
    out = [Finding(conn.name, "definitions", WARN, note) for note in pre.notes]
    out += [Finding(conn.name, "definitions", WARN, g.line()) for g in gaps]
    if not out:
        out.append(Finding(conn.name, "definitions", OK, "every defined value is in the live picklists"))
    return out


def setup(settings: Settings, *, apply: bool, systems: Sequence[str] | None = None) -> tuple[list[Change], list[Finding]]:
    """What is missing (``apply``: created), and the connections that could not be reached."""
    budget = ApiBudget()
    changes: list[Change] = []
    problems: list[Finding] = []
    for cs in _only(settings, systems):
        conn, failed = _build(cs, budget)
        if conn is None:
            problems.append(failed)  # type: ignore[arg-type]
            continue
        ready = readiness(conn, cs)
        if ready is None:
            changes.append(Change(cs.name, "external id", "manual", f"kind {cs.kind!r}: see its documentation"))
            continue
        try:
            changes.extend(ready.setup(apply=apply))
        except ConnectorError as exc:
            problems.append(Finding(cs.name, "setup", FAIL, f"stopped: {exc}"))
    return changes, problems


def external_id_gaps(connections: Mapping[str, Connection], settings: Settings,
                     unchecked: dict[str, str] | None = None) -> list[str]:
    """``"salesforce: Account.Revsync_Id__c missing"``… for every external-id field a
    write would need and the system lacks (empty: a sync may write).

    ``unchecked``: when given, a system that cannot be asked (credentials refused, out
    of reach) is entered there with the reason and skipped — the run then reports it in
    its one line per system — instead of raising ``ConnectorError``."""
    gaps: list[str] = []
    for name, conn in connections.items():
        cs = settings.connections.get(name) or ConnectionSettings(name, conn.kind)
        ready = readiness(conn, cs)
        if ready is None or not hasattr(ready, "external_id_state"):
            continue
        field = getattr(ready, "field", None)
        try:
            states = ready.external_id_state()
        except ConnectorError as exc:
            if unchecked is None:
                raise
            unchecked[name] = str(exc)
            continue
        for obj, state in states.items():
            if state != "ok":
                what = f"{obj}.{field}" if field else f"{obj}.revsync_id"
                gaps.append(f"{name}: {what} {state.replace('_', ' ')}")
    return gaps
