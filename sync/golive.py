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
    """The readiness object of a built-in kind (None for a third-party connector)."""
    if conn.kind == "salesforce":
        from connectors.salesforce_setup import DEFAULT_PERMISSION_SET, SalesforceReadiness

        return SalesforceReadiness(conn.connector,  # type: ignore[arg-type]
                                   permission_set=str(cs.options.get(PERMISSION_SET_OPTION) or DEFAULT_PERMISSION_SET))
    if conn.kind == "hubspot":
        from connectors.hubspot_setup import HubSpotReadiness

        return HubSpotReadiness(conn.connector, name=conn.name)  # type: ignore[arg-type]
    if conn.kind == "planhat":
        from connectors.planhat_setup import PlanhatReadiness

        return PlanhatReadiness(conn.connector, name=conn.name)  # type: ignore[arg-type]
    return None


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
    return findings


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


def external_id_gaps(connections: Mapping[str, Connection], settings: Settings) -> list[str]:
    """``"salesforce: Account.Revsync_Id__c missing"``… for every external-id field a
    write would need and the system lacks (empty: a sync may write)."""
    gaps: list[str] = []
    for name, conn in connections.items():
        cs = settings.connections.get(name) or ConnectionSettings(name, conn.kind)
        ready = readiness(conn, cs)
        if ready is None or not hasattr(ready, "external_id_state"):
            continue
        field = getattr(ready, "field", None)
        for obj, state in ready.external_id_state().items():
            if state != "ok":
                what = f"{obj}.{field}" if field else f"{obj}.revsync_id"
                gaps.append(f"{name}: {what} {state.replace('_', ' ')}")
    return gaps
