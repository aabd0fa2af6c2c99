"""``revsync.toml``: one file for the database, connections, policies, limits and schedules.

Secrets never live in the file itself: a connection's ``[connections.NAME.secrets]``
table names environment variables (``client_secret = "REVSYNC_SF_CLIENT_SECRET"``),
read from the environment or, failing that, from the secrets file (a TOML table of
``VARIABLE = "value"``, path from ``[secrets] file`` or ``REVSYNC_SECRETS_FILE``).
Every problem with the file is one ``ConfigError`` naming the key and what is wrong.
"""

from __future__ import annotations

import copy
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import ConnectionSettings
from sync.defaults import DEFAULT_POLICIES

CONFIG_ENV = "REVSYNC_CONFIG"
DATABASE_ENV = "REVSYNC_DATABASE_URL"
SECRETS_ENV = "REVSYNC_SECRETS_FILE"
BROKER_ENV = "REVSYNC_BROKER_URL"
DEFAULT_CONFIG = Path("revsync.toml")
DEFAULT_DATABASE_URL = "sqlite:///revsync.db"
KNOWN_KINDS = ("salesforce", "hubspot", "planhat")
KNOWN_OBJECTS = ("account", "contact", "opportunity")
RULE_NAMES = ("source_priority", "latest")
RULE_PREFIXES = ("prefer:", "always:")
DIRECTIONS = ("read", "write", "both", "none")


#: environment-variable names the starter config gives each connection's secrets
#: (``revsync sandbox serve --secrets-file`` writes the sandbox's values under them)
STARTER_SECRET_ENV: dict[str, dict[str, str]] = {
    "salesforce": {"client_id": "REVSYNC_SF_CLIENT_ID", "client_secret": "REVSYNC_SF_CLIENT_SECRET",
                   "refresh_token": "REVSYNC_SF_REFRESH_TOKEN"},
    "hubspot": {"access_token": "REVSYNC_HUBSPOT_TOKEN"},
    "planhat": {"api_token": "REVSYNC_PLANHAT_TOKEN"},
}
SANDBOX_DIR = ".revsync/sandbox"


class ConfigError(Exception):
    """A problem with revsync.toml, naming the key."""


@dataclass(frozen=True)
class Limits:
    """Blast-radius caps per run (a plan over a cap stops unless --force)."""

    max_creates: int = 5_000
    max_updates: int = 50_000
    max_deletes: int = 100
    max_merges: int = 100


@dataclass(frozen=True)
class Schedule:
    cycle_minutes: float = 15.0
    sweep_cron: str = "0 3 * * *"
    retry_minutes: float = 30.0
    misfire_grace_seconds: int = 300


@dataclass(frozen=True)
class Fleet:
    """Fleet mode (``sync.tasks``): off while ``broker_url`` is empty.

    ``task_time_limit`` (seconds) is the hard limit of one task; the soft limit is 90%
    of it. ``visibility_timeout`` must exceed it: Redis hands an unacknowledged task
    to another worker after that long, so a shorter one would run a live task twice.
    ``lease_seconds``: a lease not renewed (its holder died) is free after that long.
    ``resolve_shards``: reconcile tasks per object (by canonical-id range).
    """

    broker_url: str = ""
    result_backend: str = ""
    task_time_limit: int = 1800
    visibility_timeout: int = 3600
    lease_seconds: int = 60
    resolve_shards: int = 4

    @property
    def enabled(self) -> bool:
        return bool(self.broker_url)


@dataclass(frozen=True)
class Settings:
    """The whole configuration, validated. ``repr`` never shows secret values."""

    path: Path | None
    database_url: str
    connections: dict[str, ConnectionSettings]
    policies: dict[str, dict[str, Any]]
    limits: Limits = field(default_factory=Limits)
    schedule: Schedule = field(default_factory=Schedule)
    mapping: dict[str, Any] = field(default_factory=dict)
    dedupe: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    secrets_file: Path | None = None  # where [secrets] file points (resolved), if anywhere
    fleet: Fleet = field(default_factory=Fleet)

    def __repr__(self) -> str:
        return (
            f"Settings(path={self.path!r}, database_url={redact_url(self.database_url)!r}, "
            f"connections={list(self.connections.values())!r}, limits={self.limits!r})"
        )

    def secret_values(self) -> list[str]:
        """Every resolved secret value (for the log redactor)."""
        return [v for c in self.connections.values() for v in c.secrets.values() if v]


def redact_url(url: str) -> str:
    """Hide the password in a database URL."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def database_url(path: Path | None = None) -> str:
    """The database URL: ``REVSYNC_DATABASE_URL``, else the config file's, else the default."""
    env = os.environ.get(DATABASE_ENV)
    if env:
        return env
    cfg_path = path or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
    if cfg_path.exists():
        return load(cfg_path, resolve_secrets=False).database_url
    return DEFAULT_DATABASE_URL


# --------------------------------------------------------------------------- loading


def _type_name(v: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            dict: "a table", list: "a list"}.get(type(v), type(v).__name__)


def _expect(value: Any, types: type | tuple[type, ...], key: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{key}: must be {what} (got {_type_name(value)})")
    if not isinstance(value, types):
        raise ConfigError(f"{key}: must be {what} (got {_type_name(value)})")
    return value


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for k in table:
        if k not in allowed:
            raise ConfigError(
                f"{where}.{k}: unknown key (expected one of: {', '.join(sorted(allowed))})"
                if where else f"{k}: unknown key (expected one of: {', '.join(sorted(allowed))})"
            )


def _read_secrets_file(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        # not fatal: `revsync status` then lists the secrets that are missing
        logging.getLogger(__name__).warning("secrets.file: %s does not exist", path)
        return {}
    except tomllib.TOMLDecodeError as e:
        # never echo the file's content: it holds secrets
        raise ConfigError(f"secrets.file: {path} is not valid TOML ({e})") from None
    out: dict[str, str] = {}
    for k, v in data.items():
        if not isinstance(v, str):
            raise ConfigError(f"secrets file {path}: {k} must be a string")
        out[k] = v
    return out


def _check_system(name: str, key: str, systems: Iterable[str]) -> str:
    """``name`` must be a configured connection (or a built-in system kind)."""
    known = sorted(set(systems))
    if name not in known:
        raise ConfigError(f"{key}: unknown system {name!r} (known: {', '.join(known)})")
    return name


def _check_rule(rule: Any, key: str, systems: Iterable[str] = KNOWN_KINDS) -> str:
    _expect(rule, str, key, "a rule name")
    if rule in RULE_NAMES:
        return str(rule)
    for prefix in RULE_PREFIXES:
        if rule.startswith(prefix) and rule[len(prefix):]:
            _check_system(rule[len(prefix):], key, systems)
            return str(rule)
    raise ConfigError(
        f"{key}: unknown rule {rule!r} (expected source_priority, latest, prefer:<system> or always:<system>)"
    )


def _policies(raw: Mapping[str, Any], systems: Iterable[str] = KNOWN_KINDS) -> dict[str, dict[str, Any]]:
    """``[policies.*]`` over the defaults; every system named must be a known one."""
    systems = tuple(systems)
    policies = copy.deepcopy(DEFAULT_POLICIES)
    for obj, table in raw.items():
        key = f"policies.{obj}"
        if obj not in KNOWN_OBJECTS:
            raise ConfigError(f"{key}: unknown object (expected one of: {', '.join(KNOWN_OBJECTS)})")
        _expect(table, dict, key, "a table")
        _check_keys(table, ("default", "source_priority", "never_blank", "fields", "direction", "deletes", "merges",
                           "create_in", "merge_in"), key)
        target = policies[obj]
        if "default" in table:
            target["default"] = _check_rule(table["default"], f"{key}.default", systems)
        if "source_priority" in table:
            sp = _expect(table["source_priority"], list, f"{key}.source_priority", "a list of system names")
            for i, s in enumerate(sp):
                _expect(s, str, f"{key}.source_priority[{i}]", "a system name")
                _check_system(s, f"{key}.source_priority[{i}]", systems)
            target["source_priority"] = list(sp)
        if "never_blank" in table:
            target["never_blank"] = _expect(table["never_blank"], bool, f"{key}.never_blank", "true or false")
        for fname, rule in _expect(table.get("fields", {}), dict, f"{key}.fields", "a table").items():
            target.setdefault("fields", {})[fname] = _check_rule(rule, f"{key}.fields.{fname}", systems)
        directions = _expect(table.get("direction", {}), dict, f"{key}.direction", "a table")
        for system, per_field in directions.items():
            _check_system(system, f"{key}.direction.{system}", systems)
            _expect(per_field, dict, f"{key}.direction.{system}", "a table of field = direction")
            for fname, d in per_field.items():
                if d not in DIRECTIONS:
                    raise ConfigError(
                        f"{key}.direction.{system}.{fname}: must be one of {', '.join(DIRECTIONS)} (got {d!r})"
                    )
        if directions:
            target["direction"] = directions
        if "deletes" in table:
            if table["deletes"] not in ("flag", "propagate"):
                raise ConfigError(f"{key}.deletes: must be 'flag' or 'propagate' (got {table['deletes']!r})")
            target["deletes"] = table["deletes"]
        if "merges" in table:
            if table["merges"] not in ("link", "merge"):
                raise ConfigError(f"{key}.merges: must be 'link' or 'merge' (got {table['merges']!r})")
            if table["merges"] == "merge" and obj not in ("account", "contact"):
                raise ConfigError(f"{key}.merges: 'merge' is available for account and contact only "
                                  "(revsync finds duplicates of those)")
            target["merges"] = table["merges"]
        if "merge_in" in table:
            mi = _expect(table["merge_in"], list, f"{key}.merge_in", "a list of connection names")
            for i, name in enumerate(mi):
                _expect(name, str, f"{key}.merge_in[{i}]", "a connection name")
                _check_system(name, f"{key}.merge_in[{i}]", systems)
            target["merge_in"] = list(mi)
        if "create_in" in table:
            ci = _expect(table["create_in"], list, f"{key}.create_in", "a list of connection names")
            for i, name in enumerate(ci):
                _expect(name, str, f"{key}.create_in[{i}]", "a connection name")
                _check_system(name, f"{key}.create_in[{i}]", systems)
            target["create_in"] = list(ci)
    return policies


def _connection(
    name: str, table: Any, secrets_file: Mapping[str, str] | None, resolve: bool, base: Path | None = None,
) -> ConnectionSettings:
    key = f"connections.{name}"
    _expect(table, dict, key, "a table")
    kind = table.get("kind")
    if kind is None:
        raise ConfigError(f"{key}.kind: missing (expected one of: {', '.join(KNOWN_KINDS)} or an installed connector)")
    _expect(kind, str, f"{key}.kind", "a connector name")
    if kind not in KNOWN_KINDS:
        from connectors.base import known_connectors

        if kind not in known_connectors():
            raise ConfigError(
                f"{key}.kind: unknown connector {kind!r} (known: {', '.join(known_connectors()) or ', '.join(KNOWN_KINDS)})"
            )
    secret_names = _expect(table.get("secrets", {}), dict, f"{key}.secrets", "a table of name = ENV_VARIABLE")
    secrets: dict[str, str] = {}
    for sk, env_name in secret_names.items():
        _expect(env_name, str, f"{key}.secrets.{sk}", "the name of an environment variable")
        if not resolve:
            continue
        value = os.environ.get(env_name)
        if value is None and secrets_file is not None:
            value = secrets_file.get(env_name)
        if value is not None:
            secrets[sk] = value
    options = {k: v for k, v in table.items() if k not in ("kind", "secrets")}
    allowed = _option_keys(kind)
    if allowed is not None:
        _check_keys(table, allowed | {"kind", "secrets"}, key)
    if "ca_bundle" in options:
        ca = Path(_expect(options["ca_bundle"], str, f"{key}.ca_bundle", "a path to a PEM file"))
        if base is not None and not ca.is_absolute():
            # relative to the config file's directory (like the secrets file), not to
            # the working directory: `--config other/dir/revsync.toml` finds it
            ca = base / ca
        options["ca_bundle"] = str(ca.absolute())
    if "budget" in options:
        budget = _expect(options["budget"], dict, f"{key}.budget", "a table")
        _check_keys(budget, ("calls_per_day", "calls_per_second"), f"{key}.budget")
        for k in ("calls_per_day", "calls_per_second"):
            if k in budget and _expect(budget[k], int, f"{key}.budget.{k}", "a whole number") <= 0:
                raise ConfigError(f"{key}.budget.{k}: must be greater than 0 (got {budget[k]})")
    return ConnectionSettings(name=name, kind=kind, options=options, secrets=secrets)


def _option_keys(kind: str) -> frozenset[str] | None:
    """The option keys a connector of ``kind`` declares (None: it declares none)."""
    from connectors.base import COMMON_OPTIONS, load_connector_class

    try:
        cls = load_connector_class(kind)
    except (LookupError, ImportError, TypeError):
        return None
    return None if cls.option_keys is None else cls.option_keys | COMMON_OPTIONS


def parse(data: Mapping[str, Any], *, path: Path | None = None, resolve_secrets: bool = True) -> Settings:
    """Validate a parsed TOML document into ``Settings``."""
    _check_keys(data, ("database", "secrets", "connections", "policies", "limits", "schedule", "mapping", "dedupe", "quality", "fleet"), "")
    db = _expect(data.get("database", {}), dict, "database", "a table")
    _check_keys(db, ("url",), "database")
    url = os.environ.get(DATABASE_ENV) or db.get("url") or DEFAULT_DATABASE_URL
    _expect(url, str, "database.url", "a database URL")
    if "://" not in url:
        raise ConfigError(f"database.url: {url!r} is not a database URL (e.g. sqlite:///revsync.db)")

    sec = _expect(data.get("secrets", {}), dict, "secrets", "a table")
    _check_keys(sec, ("file",), "secrets")
    secrets_path = os.environ.get(SECRETS_ENV) or sec.get("file")
    secrets_file = None
    secrets_file_path = None
    if secrets_path:
        secrets_file_path = Path(_expect(secrets_path, str, "secrets.file", "a path"))
        if path is not None and not secrets_file_path.is_absolute():
            secrets_file_path = path.parent / secrets_file_path
    if resolve_secrets and secrets_file_path is not None:
        secrets_file = _read_secrets_file(secrets_file_path)

    conns_raw = _expect(data.get("connections", {}), dict, "connections", "a table")
    connections = {
        n: _connection(n, t, secrets_file, resolve_secrets, base=path.parent if path else None)
        for n, t in conns_raw.items()
    }
    policies = _policies(_expect(data.get("policies", {}), dict, "policies", "a table"),
                         systems=(*KNOWN_KINDS, *connections))

    lim_raw = _expect(data.get("limits", {}), dict, "limits", "a table")
    _check_keys(lim_raw, Limits.__dataclass_fields__, "limits")
    for k, v in lim_raw.items():
        _expect(v, int, f"limits.{k}", "a whole number")
        if v < 0:
            raise ConfigError(f"limits.{k}: must not be negative (got {v})")
    sch_raw = _expect(data.get("schedule", {}), dict, "schedule", "a table")
    _check_keys(sch_raw, Schedule.__dataclass_fields__, "schedule")
    for k in ("cycle_minutes", "retry_minutes"):
        if k in sch_raw:
            v = _expect(sch_raw[k], (int, float), f"schedule.{k}", "a number of minutes")
            if v <= 0:
                raise ConfigError(f"schedule.{k}: must be greater than 0 (got {v})")
    if "sweep_cron" in sch_raw:
        cron = _expect(sch_raw["sweep_cron"], str, "schedule.sweep_cron", "a crontab expression")
        if len(cron.split()) != 5:
            raise ConfigError(f"schedule.sweep_cron: {cron!r} is not a 5-field crontab expression")
    return Settings(
        path=path,
        database_url=url,
        connections=connections,
        policies=policies,
        limits=Limits(**lim_raw),
        schedule=Schedule(**sch_raw),
        mapping=_mapping(_expect(data.get("mapping", {}), dict, "mapping", "a table")),
        dedupe=_dedupe(_expect(data.get("dedupe", {}), dict, "dedupe", "a table")),
        quality=_quality(_expect(data.get("quality", {}), dict, "quality", "a table")),
        secrets_file=secrets_file_path,
        fleet=_fleet(_expect(data.get("fleet", {}), dict, "fleet", "a table")),
    )


def _fleet(table: Mapping[str, Any]) -> Fleet:
    """``[fleet]``; ``REVSYNC_BROKER_URL`` overrides ``broker_url``."""
    _check_keys(table, Fleet.__dataclass_fields__, "fleet")
    values = dict(table)
    for k in ("broker_url", "result_backend"):
        if k in values:
            _expect(values[k], str, f"fleet.{k}", "a URL (redis://host:port/db)")
    if os.environ.get(BROKER_ENV):
        values["broker_url"] = os.environ[BROKER_ENV]
    for k in ("task_time_limit", "visibility_timeout", "lease_seconds", "resolve_shards"):
        if k in values and _expect(values[k], int, f"fleet.{k}", "a whole number") <= 0:
            raise ConfigError(f"fleet.{k}: must be greater than 0 (got {values[k]})")
    fleet = Fleet(**values)
    if fleet.enabled and fleet.visibility_timeout <= fleet.task_time_limit:
        raise ConfigError(f"fleet.visibility_timeout: must be longer than fleet.task_time_limit "
                          f"({fleet.visibility_timeout} <= {fleet.task_time_limit}), else a running "
                          "task is handed to a second worker")
    return fleet


def _mapping(table: Mapping[str, Any]) -> dict[str, Any]:
    """``[mapping."<system>.<native object>"]`` overrides of the default field maps."""
    if not table:
        return {}
    from mapping.fieldmap import FieldMapError, build_field_maps

    try:
        build_field_maps(table)
    except FieldMapError as e:
        key = getattr(e, "key", None)
        raise ConfigError(f"mapping{'.' + str(key) if key else ''}: {e}") from None
    return dict(table)


def _dedupe(table: Mapping[str, Any], where: str = "dedupe") -> dict[str, Any]:
    objects = ("account", "contact") if where == "dedupe" else ()
    _check_keys(table, ("enabled", "auto_link", "review_from", "max_cluster_size", *objects), where)
    if "enabled" in table:
        _expect(table["enabled"], bool, f"{where}.enabled", "true or false")
    for k in ("auto_link", "review_from"):
        if k in table:
            v = _expect(table[k], (int, float), f"{where}.{k}", "a probability")
            if not 0 < v <= 1:
                raise ConfigError(f"{where}.{k}: must be in (0, 1] (got {v})")
    if table.get("review_from", 0.8) > table.get("auto_link", 0.99):
        raise ConfigError(f"{where}.review_from: must not be above {where}.auto_link")
    for obj in objects:  # [dedupe.account] / [dedupe.contact]: thresholds for one object
        if obj in table:
            sub = _expect(table[obj], dict, f"dedupe.{obj}", "a table")
            _check_keys(sub, ("auto_link", "review_from"), f"dedupe.{obj}")
            _dedupe(sub, f"dedupe.{obj}")
    if "max_cluster_size" in table:
        v = _expect(table["max_cluster_size"], int, "dedupe.max_cluster_size", "a whole number")
        if v < 2:
            raise ConfigError(f"dedupe.max_cluster_size: must be at least 2 (got {v})")
    return dict(table)


def _quality(table: Mapping[str, Any]) -> dict[str, Any]:
    """``[quality]``: stale_days, renewal_days, and ``[quality.required]`` OBJECT = [fields]."""
    _check_keys(table, ("stale_days", "renewal_days", "required"), "quality")
    for k in ("stale_days", "renewal_days"):
        if k in table and (_expect(table[k], int, f"quality.{k}", "a whole number of days") < 1):
            raise ConfigError(f"quality.{k}: must be at least 1 (got {table[k]})")
    req = _expect(table.get("required", {}), dict, "quality.required", "a table")
    _check_keys(req, KNOWN_OBJECTS, "quality.required")
    for obj, fields in req.items():
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"quality.required.{obj}: must be a list of field names")
    return dict(table)


def load(path: Path | None = None, *, resolve_secrets: bool = True) -> Settings:
    """Read and validate ``revsync.toml`` (``REVSYNC_CONFIG`` or ./revsync.toml).

    A missing file gives the defaults (SQLite, no connections).
    """
    p = path or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
    if not p.exists():
        if path is not None:
            raise ConfigError(f"{p}: no such config file (run `revsync init` to write one)")
        return parse({}, path=None, resolve_secrets=resolve_secrets)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        return parse(data, path=p, resolve_secrets=resolve_secrets)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


# --------------------------------------------------------------------------- log redaction


class SecretRedactor(logging.Filter):
    """Replaces every known secret value in log records with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        msg = record.getMessage()
        redacted = msg
        for s in self.secrets:
            redacted = redacted.replace(s, "***")
        if redacted != msg:
            record.msg, record.args = redacted, None
        return True


def install_redactor(settings: Settings) -> SecretRedactor:
    """Attach a redactor for ``settings``' secrets to every root handler."""
    redactor = SecretRedactor(settings.secret_values())
    root = logging.getLogger()
    root.addFilter(redactor)
    for h in root.handlers:
        h.addFilter(redactor)
    return redactor


STARTER = """\
# revsync configuration. Every key is optional except each connection's `kind`.
# Secrets never go in this file: [connections.NAME.secrets] names environment
# variables (or keys of the secrets file below).

[database]
# SQLite file by default; REVSYNC_DATABASE_URL overrides this.
# PostgreSQL: "postgresql+psycopg://user@127.0.0.1:5432/revsync"
url = "sqlite:///revsync.db"

[secrets]
# Optional TOML file of VARIABLE = "value" pairs, read when a variable is not set in
# the environment. This one is written by
#   revsync sandbox serve --port 8441 --ca-dir .revsync/sandbox --secrets-file .revsync/sandbox/secrets.toml
# with the (non-secret) credentials the sandbox accepts. For real systems, set the
# variables in the environment or point this at your own file (never commit it).
file = ".revsync/sandbox/secrets.toml"

# The three connections point at the local sandbox (`revsync sandbox serve --port 8441`
# serves Salesforce on 8441, HubSpot on 8442 and Planhat on 8443). For real systems,
# change the URLs and drop ca_bundle.
[connections.salesforce]
kind = "salesforce"
instance_url = "https://127.0.0.1:8441"
token_url = "https://127.0.0.1:8441/services/oauth2/token"
ca_bundle = ".revsync/sandbox/sandbox-ca.pem"
external_id_field = "Revsync_Id__c"
bulk_threshold = 10000
[connections.salesforce.secrets]
client_id = "REVSYNC_SF_CLIENT_ID"
client_secret = "REVSYNC_SF_CLIENT_SECRET"
refresh_token = "REVSYNC_SF_REFRESH_TOKEN"
[connections.salesforce.budget]
calls_per_day = 50000

[connections.hubspot]
kind = "hubspot"
host = "https://127.0.0.1:8442"
ca_bundle = ".revsync/sandbox/sandbox-ca.pem"
[connections.hubspot.secrets]
access_token = "REVSYNC_HUBSPOT_TOKEN"
[connections.hubspot.budget]
calls_per_day = 200000

[connections.planhat]
kind = "planhat"
base_url = "https://127.0.0.1:8443"
ca_bundle = ".revsync/sandbox/sandbox-ca.pem"
[connections.planhat.secrets]
api_token = "REVSYNC_PLANHAT_TOKEN"

# Field policies. Defaults: source_priority salesforce > hubspot > planhat, a blank
# value never overwrites a filled one; Planhat owns health/ARR/renewal; lifecycle,
# title and phone follow the latest edit. Rules: source_priority, latest,
# prefer:<system> (unless blank), always:<system>.
[policies.account]
source_priority = ["salesforce", "hubspot", "planhat"]
never_blank = true
[policies.account.fields]
health = "prefer:planhat"
arr = "prefer:planhat"
renewal_date = "prefer:planhat"

[policies.contact.fields]
lifecycle_stage = "latest"

# Blast-radius caps per run: a plan over a cap stops (override with --force).
[limits]
max_creates = 5000
max_updates = 50000
max_deletes = 100
max_merges = 100

[schedule]
cycle_minutes = 15
sweep_cron = "0 3 * * *"
retry_minutes = 30
"""
