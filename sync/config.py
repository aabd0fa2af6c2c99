"""``revsync.toml``: one file for the database, connections, policies, limits and schedules.

Secrets never live in the file itself: a connection's ``[connections.NAME.secrets]``
table names environment variables (``client_secret = "REVSYNC_SF_CLIENT_SECRET"``),
read from the environment or, failing that, from the secrets file (a TOML table of
``VARIABLE = "value"``, path from ``[secrets] file`` or ``REVSYNC_SECRETS_FILE``).

The file is checked by the pydantic models below (``extra="forbid"`` everywhere, so an
unknown key is an error, inside connection options too). Every problem is one
``ConfigError`` line naming the key path and what is wrong; ``parse`` then builds the
``Settings`` the rest of revsync reads.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from connectors.base import ConnectionSettings
from connectors.registry import starter_secret_env
from mapping.defaults import default_policies, default_source_priority
from mapping.definitions import DefinitionError, Definitions
from mapping.definitions import build as build_definitions
from mapping.definitions import using as using_definitions
from sync.governance import Governance, GovernanceError
from sync.governance import parse as parse_governance

CONFIG_ENV = "REVSYNC_CONFIG"
DATABASE_ENV = "REVSYNC_DATABASE_URL"
SECRETS_ENV = "REVSYNC_SECRETS_FILE"
BROKER_ENV = "REVSYNC_BROKER_URL"
DEFAULT_CONFIG = Path("revsync.toml")
DEFAULT_DATABASE_URL = "sqlite:///revsync.db"
KNOWN_OBJECTS = ("account", "contact", "opportunity")
RULE_NAMES = ("source_priority", "latest")
RULE_PREFIXES = ("prefer:", "always:")
DIRECTIONS = ("read", "write", "both", "none")




def known_kinds() -> tuple[str, ...]:
    """The built-in connectors (those ranked in the default source priority), in rank order."""
    return default_source_priority()


def __getattr__(name: str) -> Any:
    # KNOWN_KINDS, STARTER_SECRET_ENV and STARTER come from the connectors' declarations
    # (``Connector.default_rank``, ``Connector.secret_env``), read when first asked for
    if name == "KNOWN_KINDS":
        return known_kinds()
    if name == "STARTER_SECRET_ENV":
        return starter_secret_env()
    if name == "STARTER":
        return starter_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SANDBOX_DIR = ".revsync/sandbox"
#: the sandbox's customer-success pod: the CSM every won account is handed to
SANDBOX_CSM = "cs-team@sandbox.example"


class ConfigError(Exception):
    """A problem with revsync.toml, naming the key."""


# --------------------------------------------------------------------------- building blocks

#: in a check's message, stands for the key path of the table being checked
HERE = "<here>"


def _type_name(v: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            dict: "a table", list: "a list"}.get(type(v), type(v).__name__)


def _problem(message: str, **ctx: Any) -> PydanticCustomError:
    """A check's failure; ``ctx["key"]`` (if given) extends the key path."""
    return PydanticCustomError("revsync", "{message}", {"message": message, **ctx})


def _typed(kinds: type | tuple[type, ...], what: str) -> BeforeValidator:
    """Reject a value of the wrong TOML type with ``must be <what> (got <its type>)``."""
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)

    def check(v: Any) -> Any:
        if (isinstance(v, bool) and bool not in allowed) or not isinstance(v, allowed):
            raise _problem(f"must be {what} (got {_type_name(v)})")
        return v

    return BeforeValidator(check)


def _check(test: Callable[[Any], bool], message: str) -> AfterValidator:
    """``message`` (formatted with ``v``) unless ``test(v)``."""

    def check(v: Any) -> Any:
        if not test(v):
            raise _problem(message.format(v=v))
        return v

    return AfterValidator(check)


Table = _typed(dict, "a table")
WholeNumber = Annotated[int, _typed(int, "a whole number")]
NonNegative = Annotated[WholeNumber, _check(lambda v: v >= 0, "must not be negative (got {v})")]
Days = Annotated[int, _typed(int, "a whole number of days"), _check(lambda v: v >= 1, "must be at least 1 (got {v})")]
Minutes = Annotated[int | float, _typed((int, float), "a number of minutes"),
                    _check(lambda v: v > 0, "must be greater than 0 (got {v})")]
Probability = Annotated[int | float, _typed((int, float), "a probability"),
                        _check(lambda v: 0 < v <= 1, "must be in (0, 1] (got {v})")]


def _systems(info: ValidationInfo) -> tuple[str, ...]:
    return tuple((info.context or {}).get("systems", known_kinds()))


def _check_system(name: str, info: ValidationInfo) -> str:
    """``name`` must be a configured connection (or a built-in system kind)."""
    known = sorted(set(_systems(info)))
    if name not in known:
        raise _problem(f"unknown system {name!r} (known: {', '.join(known)})")
    return name


def _check_rule(rule: str, info: ValidationInfo) -> str:
    if rule in RULE_NAMES:
        return rule
    for prefix in RULE_PREFIXES:
        if rule.startswith(prefix) and rule[len(prefix):]:
            _check_system(rule[len(prefix):], info)
            return rule
    raise _problem(
        f"unknown rule {rule!r} (expected source_priority, latest, prefer:<system> or always:<system>)"
    )


def _one_of(values: tuple[str, ...], message: str) -> BeforeValidator:
    def check(v: Any) -> Any:
        if v not in values:
            raise _problem(message.format(v=v))
        return v

    return BeforeValidator(check)


System = Annotated[str, AfterValidator(_check_system)]
Rule = Annotated[str, _typed(str, "a rule name"), AfterValidator(_check_rule)]
Systems = Annotated[list[Annotated[str, _typed(str, "a system name"), AfterValidator(_check_system)]],
                    _typed(list, "a list of system names")]
ConnectionNames = Annotated[
    list[Annotated[str, _typed(str, "a connection name"), AfterValidator(_check_system)]],
    _typed(list, "a list of connection names"),
]
DirectionName = Annotated[str, _one_of(DIRECTIONS, f"must be one of {', '.join(DIRECTIONS)} (got {{v!r}})")]


class _Table(BaseModel):
    """One TOML table: unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    #: what an unknown key is called in the error (``policies.lead: unknown object``)
    unknown_key_is: ClassVar[str] = "key"


# --------------------------------------------------------------------------- the file's tables


class Database(_Table):
    url: Annotated[str, _typed(str, "a database URL"),
                   _check(lambda v: "://" in v, "{v!r} is not a database URL (e.g. sqlite:///revsync.db)")
                   ] = DEFAULT_DATABASE_URL


class SecretsSection(_Table):
    file: Annotated[str, _typed(str, "a path")] | None = None


class Policy(_Table):
    """``[policies.<object>]``: rules over the defaults (``mapping.defaults``)."""

    default: Rule | None = None
    source_priority: Systems | None = None
    never_blank: Annotated[bool, _typed(bool, "true or false")] | None = None
    fields: Annotated[dict[str, Rule], Table] = Field(default_factory=dict)
    direction: Annotated[
        dict[System, Annotated[dict[str, DirectionName], _typed(dict, "a table of field = direction")]], Table,
    ] = Field(default_factory=dict)
    deletes: Annotated[str, _one_of(("flag", "propagate"), "must be 'flag' or 'propagate' (got {v!r})")
                       ] | None = None
    merges: Annotated[str, _one_of(("link", "merge"), "must be 'link' or 'merge' (got {v!r})")] | None = None
    create_in: ConnectionNames | None = None
    merge_in: ConnectionNames | None = None


class OpportunityPolicy(Policy):
    @field_validator("merges")
    @classmethod
    def _merge_needs_duplicates(cls, v: str | None) -> str | None:
        if v == "merge":
            raise _problem("'merge' is available for account and contact only (revsync finds duplicates of those)")
        return v


class Policies(_Table):
    unknown_key_is: ClassVar[str] = "object"

    account: Annotated[Policy, Table] | None = None
    contact: Annotated[Policy, Table] | None = None
    opportunity: Annotated[OpportunityPolicy, Table] | None = None


class Limits(_Table):
    """Blast-radius caps per run (a plan over a cap stops unless --force)."""

    max_creates: NonNegative = 5_000
    max_updates: NonNegative = 50_000
    max_deletes: NonNegative = 100
    max_merges: NonNegative = 100


class Schedule(_Table):
    cycle_minutes: Minutes = 15.0
    sweep_cron: Annotated[str, _typed(str, "a crontab expression"),
                          _check(lambda v: len(v.split()) == 5, "{v!r} is not a 5-field crontab expression")
                          ] = "0 3 * * *"
    retry_minutes: Minutes = 30.0
    misfire_grace_seconds: WholeNumber = 300


class DedupeThresholds(_Table):
    """``[dedupe.account]`` / ``[dedupe.contact]``: thresholds for one object."""

    auto_link: Probability | None = None
    review_from: Probability | None = None
    # the review queue of one run holds at most this share of its records in pairs
    max_review_share: Probability | None = None

    @model_validator(mode="after")
    def _review_below_auto_link(self) -> DedupeThresholds:
        review = 0.8 if self.review_from is None else self.review_from
        if review > (0.99 if self.auto_link is None else self.auto_link):
            raise _problem(f"must not be above {HERE}.auto_link", key="review_from")
        return self


class Dedupe(DedupeThresholds):
    enabled: Annotated[bool, _typed(bool, "true or false")] | None = None
    max_cluster_size: Annotated[WholeNumber, _check(lambda v: v >= 2, "must be at least 2 (got {v})")
                                ] | None = None
    account: Annotated[DedupeThresholds, Table] | None = None
    contact: Annotated[DedupeThresholds, Table] | None = None


def _field_names(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(f, str) for f in v):
        raise _problem("must be a list of field names")
    return v


FieldNames = Annotated[list[str], BeforeValidator(_field_names)]


class RequiredFields(_Table):
    account: FieldNames | None = None
    contact: FieldNames | None = None
    opportunity: FieldNames | None = None


class Quality(_Table):
    """``[quality]``: stale_days, renewal_days, and ``[quality.required]`` OBJECT = [fields]."""

    stale_days: Days | None = None
    renewal_days: Days | None = None
    required: Annotated[RequiredFields, Table] | None = None


Positive = Annotated[WholeNumber, _check(lambda v: v > 0, "must be greater than 0 (got {v})")]


class Fleet(_Table):
    """``[fleet]``: fleet mode (``sync.tasks``), off while ``broker_url`` is empty.

    ``task_time_limit`` (seconds) is the hard limit of one task; the soft limit is 90%
    of it. ``visibility_timeout`` must exceed it: Redis hands an unacknowledged task
    to another worker after that long, so a shorter one would run a live task twice.
    ``lease_seconds``: a lease not renewed (its holder died) is free after that long.
    ``resolve_shards``: reconcile tasks per object (by canonical-id range).
    """

    broker_url: Annotated[str, _typed(str, "a URL (redis://host:port/db)")] = ""
    result_backend: Annotated[str, _typed(str, "a URL (redis://host:port/db)")] = ""
    task_time_limit: Positive = 1800
    visibility_timeout: Positive = 3600
    lease_seconds: Positive = 60
    resolve_shards: Positive = 4

    @property
    def enabled(self) -> bool:
        return bool(self.broker_url)

    @model_validator(mode="after")
    def _visibility_over_time_limit(self) -> Fleet:
        if self.enabled and self.visibility_timeout <= self.task_time_limit:
            raise _problem(f"must be longer than fleet.task_time_limit ({self.visibility_timeout} <= "
                           f"{self.task_time_limit}), else a running task is handed to a second worker",
                           key="visibility_timeout")
        return self


def _native_value(v: Any) -> Any:
    if isinstance(v, str) and v.strip():
        return v
    if isinstance(v, list) and v and all(isinstance(i, str) and i.strip() for i in v):
        return v
    raise _problem("must be a native value or a non-empty list of them (the first is written, all are read)")


NativeValue = Annotated[str | list[str], BeforeValidator(_native_value)]
ValueName = Annotated[str, _typed(str, "a canonical value name")]


class ValueSetDefinition(_Table):
    """``[definitions.<value set>]``: canonical values added (``values``), renamed,
    retired, and each system's native value(s) for each (``mapping.definitions``)."""

    rename: Annotated[dict[str, ValueName], Table] = Field(default_factory=dict)
    retire: Annotated[list[ValueName], _typed(list, "a list of canonical values")] = Field(default_factory=list)
    values: Annotated[dict[str, Annotated[dict[str, NativeValue], Table]], Table] = Field(default_factory=dict)
    pipeline: Annotated[dict[str, Annotated[str, _typed(str, "a pipeline id")]], Table] = Field(default_factory=dict)
    #: system → pipeline id → the canonical values written with that pipeline
    pipelines: Annotated[dict[str, Annotated[dict[str, Annotated[list[ValueName], _typed(
        list, "a list of canonical values")]], Table]], Table] = Field(default_factory=dict)


class DefinitionsSection(_Table):
    """``[definitions]``: one table per value set."""

    unknown_key_is: ClassVar[str] = "value set"

    stage: Annotated[ValueSetDefinition, Table] | None = None
    lifecycle_stage: Annotated[ValueSetDefinition, Table] | None = None
    lead_status: Annotated[ValueSetDefinition, Table] | None = None
    industry: Annotated[ValueSetDefinition, Table] | None = None
    customer_status: Annotated[ValueSetDefinition, Table] | None = None
    lead_source: Annotated[ValueSetDefinition, Table] | None = None
    type: Annotated[ValueSetDefinition, Table] | None = None
    country: Annotated[ValueSetDefinition, Table] | None = None


class RevsyncFile(_Table):
    """The whole ``revsync.toml``; ``connections`` tables are checked per kind (``connection_model``)."""

    database: Annotated[Database, Table] = Database()
    secrets: Annotated[SecretsSection, Table] = SecretsSection()
    connections: Annotated[dict[str, Annotated[dict[str, Any], Table]], Table] = Field(default_factory=dict)
    policies: Annotated[Policies, Table] = Policies()
    limits: Annotated[Limits, Table] = Limits()
    schedule: Annotated[Schedule, Table] = Schedule()
    mapping: Annotated[dict[str, Any], Table] = Field(default_factory=dict)
    dedupe: Annotated[Dedupe, Table] = Dedupe()
    quality: Annotated[Quality, Table] = Quality()
    # checked by ``sync.governance.parse`` (its own key paths and messages)
    governance: Annotated[dict[str, Any], Table] = Field(default_factory=dict)
    fleet: Annotated[Fleet, Table] = Fleet()
    definitions: Annotated[DefinitionsSection, Table] = DefinitionsSection()


# --------------------------------------------------------------------------- connections


class Budget(_Table):
    calls_per_day: Positive | None = None
    calls_per_second: Positive | None = None  # shared by every worker in fleet mode




#: types of the option keys connectors declare (``Connector.option_keys``); a declared
#: key not listed here takes any value and the connector reads it as it likes
OPTION_TYPES: dict[str, Any] = {
    "budget": Annotated[Budget, Table],
    "ca_bundle": Annotated[str, _typed(str, "a path to a PEM file")],
    "external_id_field": Annotated[str, _typed(str, "a field name")],
    "timeout": Annotated[int | float, _typed((int, float), "a number of seconds")],
    "bulk_poll_seconds": Annotated[int | float, _typed((int, float), "a number of seconds")],
    **dict.fromkeys(("page_size", "bulk_size", "bulk_threshold"), WholeNumber),
    **dict.fromkeys(("instance_url", "token_url", "host", "base_url", "jwt_audience"),
                    Annotated[str, _typed(str, "a URL")]),
    **dict.fromkeys(("create_contacts_as", "permission_set"), Annotated[str, _typed(str, "a name")]),
    "opportunity_contacts": Annotated[bool, _typed(bool, "true or false")],
}


class Connection(_Table):
    """``[connections.NAME]``: ``kind``, ``[secrets]`` (names of variables) and the options."""

    kind: str
    secrets: Annotated[
        dict[str, Annotated[str, _typed(str, "the name of an environment variable")]],
        _typed(dict, "a table of name = ENV_VARIABLE"),
    ] = Field(default_factory=dict)


def _check_kind(table: Mapping[str, Any]) -> str:
    """The connection's ``kind`` (a built-in or an installed connector), or a problem."""
    if "kind" not in table:
        raise _problem(f"missing (expected one of: {', '.join(known_kinds())} or an installed connector)")
    kind = table["kind"]
    if not isinstance(kind, str):
        raise _problem(f"must be a connector name (got {_type_name(kind)})")
    if kind not in known_kinds():
        from connectors.base import known_connectors

        if kind not in known_connectors():
            raise _problem(
                f"unknown connector {kind!r} (known: {', '.join(known_connectors()) or ', '.join(known_kinds())})"
            )
    return kind


def _option_fields(types_: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (t | None, None) for k, t in types_.items()}


class OpenConnection(Connection):
    """A connection whose connector declares no option keys: any option, common ones typed."""

    model_config = ConfigDict(extra="allow")


@functools.cache
def connection_model(kind: str) -> type[Connection]:
    """The model of a ``kind`` connection: its declared option keys, typed; no others.

    A connector that declares no ``option_keys`` (a third-party one) accepts any option.
    """
    keys = _option_keys(kind)
    if keys is None:
        return create_model(f"{kind}_connection", __base__=OpenConnection,
                            **_option_fields({k: OPTION_TYPES[k] for k in ("budget", "ca_bundle", "external_id_field")}))
    return create_model(f"{kind}_connection", __base__=Connection,
                        **_option_fields({k: OPTION_TYPES.get(k, Any) for k in sorted(keys)}))


def _option_keys(kind: str) -> frozenset[str] | None:
    """The option keys a connector of ``kind`` declares (None: it declares none)."""
    from connectors.base import COMMON_OPTIONS, load_connector_class

    try:
        cls = load_connector_class(kind)
    except (LookupError, ImportError, TypeError):
        return None
    return None if cls.option_keys is None else cls.option_keys | COMMON_OPTIONS



# --------------------------------------------------------------------------- errors


def _path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def _model_at(model: type[BaseModel], loc: Iterable[str | int]) -> Any:
    """The type found at ``loc`` inside ``model`` (through sub-models, tables and lists)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = tp.model_fields[str(part)].annotation
        else:  # dict[K, V] (part is a key) or list[V] (part is an index)
            tp = typing.get_args(tp)[-1]
    return _unwrap(tp)


def _messages(err: ValidationError, model: type[BaseModel], where: tuple[str, ...] = ()) -> list[str]:
    """One ``key.path: what is wrong`` line per pydantic error."""
    out = []
    for e in err.errors(include_url=False, include_input=False):
        inner = [p for p in e["loc"] if p != "[key]"]
        loc = [*where, *inner]
        ctx = e.get("ctx") or {}
        if e["type"] == "revsync":
            if "key" in ctx:
                loc.append(ctx["key"])
            msg = str(ctx["message"]).replace(HERE, _path(loc[:-1]))
        elif e["type"] == "extra_forbidden":
            table = _model_at(model, inner[:-1])
            msg = (f"unknown {table.unknown_key_is} "
                   f"(expected one of: {', '.join(sorted(table.model_fields))})")
        else:  # a shape no check above describes (not reachable from TOML, but never a traceback)
            msg = e["msg"]
        out.append(f"{_path(loc)}: {msg}" if loc else msg)
    return out


# --------------------------------------------------------------------------- settings


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
    governance: Governance = field(default_factory=Governance)  # [governance]: rules, pre-flight, handoff
    fleet: Fleet = field(default_factory=Fleet)  # [fleet]: Celery workers (off without a broker)
    #: [definitions]: the effective shared definitions (None: the connectors' defaults)
    definitions: Definitions | None = None

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


# --------------------------------------------------------------------------- parsing

_SECRETS_FILE: TypeAdapter[dict[str, SecretStr]] = TypeAdapter(dict[str, SecretStr], config=ConfigDict(strict=True))


def _read_secrets_file(path: Path) -> dict[str, SecretStr]:
    """``VARIABLE = "value"`` pairs; the values stay ``SecretStr`` until a connection takes them."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        # not fatal: `revsync status` then lists the secrets that are missing
        logging.getLogger(__name__).warning("secrets.file: %s does not exist", path)
        return {}
    except tomllib.TOMLDecodeError as e:
        # never echo the file's content: it holds secrets
        raise ConfigError(f"secrets.file: {path} is not valid TOML ({e})") from None
    try:
        return _SECRETS_FILE.validate_python(data)
    except ValidationError as e:
        raise ConfigError(f"secrets file {path}: {e.errors()[0]['loc'][0]} must be a string") from None


def _with_environment(data: Mapping[str, Any]) -> dict[str, Any]:
    """``REVSYNC_DATABASE_URL``, ``REVSYNC_SECRETS_FILE`` and ``REVSYNC_BROKER_URL`` over
    the file's values."""
    out = dict(data)
    for env, table, key in ((DATABASE_ENV, "database", "url"), (SECRETS_ENV, "secrets", "file"),
                            (BROKER_ENV, "fleet", "broker_url")):
        value = os.environ.get(env)
        if value and isinstance(out.get(table, {}), dict):
            out[table] = {**out.get(table, {}), key: value}
    return out


def _policies(doc: Policies) -> dict[str, dict[str, Any]]:
    """``[policies.*]`` over the defaults."""
    policies = default_policies()
    for obj in KNOWN_OBJECTS:
        given: Policy | None = getattr(doc, obj)
        if given is None:
            continue
        target, values = policies[obj], given.model_dump(exclude_unset=True)
        fields = values.pop("fields", {})
        if fields:
            target.setdefault("fields", {}).update(fields)
        if not values.get("direction", True):
            del values["direction"]
        target.update(values)
    return policies


def check_mapping(table: Mapping[str, Any]) -> dict[str, Any]:
    """``[mapping."<system>.<native object>"]`` overrides of the field maps; the key of a bad one."""
    if not table:
        return {}
    from mapping.fieldmap import FieldMapError, check_overrides

    try:
        check_overrides(table)
    except FieldMapError as e:
        key = getattr(e, "key", None)
        raise ConfigError(f"mapping{'.' + str(key) if key else ''}: {e}") from None
    return dict(table)


def _connection(
    name: str, table: Mapping[str, Any], secrets_file: Mapping[str, SecretStr] | None, resolve: bool,
    base: Path | None, problems: list[str],
) -> ConnectionSettings | None:
    where = ("connections", name)
    try:
        kind = _check_kind(table)
    except PydanticCustomError as e:
        problems.append(f"{_path(where)}.kind: {e.context['message'] if e.context else e}")
        return None
    model = connection_model(kind)
    try:
        conn = model.model_validate(table)
    except ValidationError as e:
        problems.extend(_messages(e, model, where))
        return None
    secrets: dict[str, str] = {}
    for sk, env_name in conn.secrets.items() if resolve else ():
        value = os.environ.get(env_name)
        if value is None and secrets_file is not None and env_name in secrets_file:
            value = secrets_file[env_name].get_secret_value()
        if value is not None:
            secrets[sk] = value
    options = conn.model_dump(exclude_unset=True, exclude={"kind", "secrets"})
    if "ca_bundle" in options:
        ca = Path(options["ca_bundle"])
        if base is not None and not ca.is_absolute():
            # relative to the config file's directory (like the secrets file), not to
            # the working directory: `--config other/dir/revsync.toml` finds it
            ca = base / ca
        options["ca_bundle"] = str(ca.absolute())
    return ConnectionSettings(name=name, kind=kind, options=options, secrets=secrets)


def parse(data: Mapping[str, Any], *, path: Path | None = None, resolve_secrets: bool = True) -> Settings:
    """Validate a parsed TOML document into ``Settings``; every problem in one ``ConfigError`` line."""
    data = _with_environment(data)
    raw_connections = data.get("connections")
    systems = (*known_kinds(), *(raw_connections if isinstance(raw_connections, dict) else ()))
    problems: list[str] = []
    try:
        doc = RevsyncFile.model_validate(data, context={"systems": systems})
    except ValidationError as e:
        problems.extend(_messages(e, RevsyncFile))
        # still check the connection tables, so one run names every problem
        tables = {n: t for n, t in (raw_connections or {}).items() if isinstance(t, dict)} \
            if isinstance(raw_connections, dict) else {}
        for name, table in tables.items():
            _connection(name, table, None, False, None, problems)
        raise ConfigError("; ".join(problems)) from None

    secrets_file_path = Path(doc.secrets.file) if doc.secrets.file else None
    if path is not None and secrets_file_path is not None and not secrets_file_path.is_absolute():
        secrets_file_path = path.parent / secrets_file_path
    secrets_file = _read_secrets_file(secrets_file_path) if resolve_secrets and secrets_file_path else None

    connections = {}
    for name, table in doc.connections.items():
        conn = _connection(name, table, secrets_file, resolve_secrets, path.parent if path else None, problems)
        if conn is not None:
            connections[name] = conn
    definitions = None
    admin = doc.definitions.model_dump(exclude_none=True, exclude_defaults=False)
    if admin:
        kinds = {c.kind for c in connections.values()} or None  # None: every registered connector
        try:
            definitions = build_definitions(admin, kinds)
        except DefinitionError as e:
            problems.append(str(e))
    governance = Governance()
    mapping: dict[str, Any] = {}
    with using_definitions(definitions):  # rules and value overrides name canonical values
        try:
            governance = parse_governance(doc.governance, systems)
        except GovernanceError as e:
            problems.append(str(e))
        try:
            mapping = check_mapping(doc.mapping)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(
        path=path,
        database_url=doc.database.url,
        connections=connections,
        policies=_policies(doc.policies),
        limits=doc.limits,
        schedule=doc.schedule,
        mapping=mapping,
        dedupe=doc.dedupe.model_dump(exclude_unset=True),
        quality=doc.quality.model_dump(exclude_unset=True),
        secrets_file=secrets_file_path,
        governance=governance,
        fleet=doc.fleet,
        definitions=definitions,
    )


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


#: the sandbox's first port: ``revsync sandbox serve --port 8441`` serves the built-in
#: connectors on consecutive ports, in their default rank order
STARTER_PORT = 8441
STARTER_LIMITS: Mapping[str, int] = {"max_creates": 5000, "max_updates": 50000, "max_deletes": 100,
                                     "max_merges": 100}


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v))


def starter_config(
    *,
    urls: Mapping[str, str] | None = None,
    ca_bundle: str = f"{SANDBOX_DIR}/sandbox-ca.pem",
    secrets_file: str | None = f"{SANDBOX_DIR}/secrets.toml",
    database_url: str = DEFAULT_DATABASE_URL,
    limits: Mapping[str, int] | None = None,
) -> str:
    """The commented starter ``revsync.toml`` (``revsync init``; ``STARTER``), built from
    the built-in connectors' declarations: one connection each (``url_options``,
    ``starter_options``, ``secret_env``, ``starter_budget``) pointing at the local
    sandbox, or at ``urls`` (connection name → base URL; tests give a sandbox's own
    ports), and the default policies they imply. ``secrets_file=None``: no secrets
    file, every secret from the environment."""
    from connectors.registry import connector_classes

    classes = connector_classes()
    kinds = known_kinds()
    out = [
        "# revsync configuration. Every key is optional except each connection's `kind`.",
        "# Secrets never go in this file: [connections.NAME.secrets] names environment",
        "# variables (or keys of the secrets file below).",
        "",
        "[database]",
        "# SQLite file by default; REVSYNC_DATABASE_URL overrides this.",
        '# PostgreSQL: "postgresql+psycopg://user@127.0.0.1:5432/revsync"',
        f"url = {_toml(database_url)}",
        "",
        "[secrets]",
        '# Optional TOML file of VARIABLE = "value" pairs, read when a variable is not set in',
        "# the environment. This one is written by",
        f"#   revsync sandbox serve --port {STARTER_PORT} --ca-dir {SANDBOX_DIR} --secrets-file {SANDBOX_DIR}/secrets.toml",
        "# with the (non-secret) credentials the sandbox accepts. For real systems, set the",
        "# variables in the environment or point this at your own file (never commit it).",
        f"file = {_toml(secrets_file)}" if secrets_file else "# file = (none: every secret comes from the environment)",
        "",
    ]
    ports = [f"{name} on {STARTER_PORT + i}" for i, name in enumerate(kinds)]
    out += [
        f"# The {len(kinds)} connections point at the local sandbox (`revsync sandbox serve --port {STARTER_PORT}`",
        f"# serves {', '.join(ports[:-1])} and {ports[-1]}). For real systems," if len(ports) > 1 else
        f"# serves {ports[0] if ports else 'nothing'}). For real systems,",
        "# change the URLs and drop ca_bundle.",
    ]
    for i, name in enumerate(kinds):
        cls = classes[name]
        url = (urls or {}).get(name, f"https://127.0.0.1:{STARTER_PORT + i}")
        out += [f"[connections.{name}]", f"kind = {_toml(name)}"]
        out += [f"{k} = {_toml(v.replace('{url}', url))}" for k, v in cls.url_options.items()]
        out += [f"ca_bundle = {_toml(ca_bundle)}"]
        out += [f"{k} = {_toml(v)}" for k, v in cls.starter_options.items()]
        if cls.secret_env:
            out += [f"[connections.{name}.secrets]", *(f"{k} = {_toml(v)}" for k, v in cls.secret_env.items())]
        if cls.starter_budget:
            out += [f"[connections.{name}.budget]", f"calls_per_day = {cls.starter_budget}"]
        out.append("")
    account = default_policies()["account"]
    owned = [(f, r.partition(":")[2]) for f, r in account["fields"].items() if r.startswith("prefer:")]
    owners = sorted({o for _, o in owned}, key=kinds.index)
    out += [
        f"# Field policies. Defaults: source_priority {' > '.join(account['source_priority'])}, a blank",
        "# value never overwrites a filled one;"
        + "".join(f" {o} owns {', '.join(f for f, w in owned if w == o)};" for o in owners),
        "# lifecycle, title and phone follow the latest edit. Rules: source_priority, latest,",
        "# prefer:<system> (unless blank), always:<system>.",
        "[policies.account]",
        f"source_priority = {_toml(account['source_priority'])}",
        "never_blank = true",
        "[policies.account.fields]",
        *(f"{f} = {_toml('prefer:' + o)}" for f, o in owned),
        "",
        "[policies.contact.fields]",
        'lifecycle_stage = "latest"',
        "",
        "# Blast-radius caps per run: a plan over a cap stops (override with --force).",
        "[limits]",
        *(f"{k} = {v}" for k, v in {**STARTER_LIMITS, **(limits or {})}.items()),
        "",
        "[schedule]",
        "cycle_minutes = 15",
        'sweep_cron = "0 3 * * *"',
        "retry_minutes = 30",
        "",
        "# Closed-won handoffs to the customer-success system need a CSM: the sandbox's",
        "# customer-success pod takes every won account (a real org sets csm_by_owner, or",
        "# maps a CSM field).",
        "[governance.handoff]",
        f"default_csm = {_toml(SANDBOX_CSM)}",
        "",
        "# Shared definitions: each value set's canonical values and each system's value for",
        "# them (defaults: what the connectors ship; `revsync definitions` shows them). E.g. a",
        "# custom deal stage, once both CRMs have it:",
        "# [definitions.stage.values.pilot]",
        '# salesforce = "Pilot"            # a list reads several values: ["Pilot", "Trial"]',
        '# hubspot = "pilot"               # the stage id in the deal pipeline',
        "# [definitions.stage]",
        '# rename = { negotiation = "negotiating" }',
        '# retire = ["contract"]',
        "",
    ]
    return "\n".join(out)
