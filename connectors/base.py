"""The connector contract: what every external system implements.

A connector reads native records page by page (``read_pages``), writes batches of
``WriteOp`` and returns one ``WriteResult`` per op, reports deletes and merges
(``read_deleted``) and checks its credentials (``check``). It holds no cursor state:
the engine passes ``since`` in. Only connectors do HTTP.

Errors come in families:
``RetriableError`` is retried by ``retrying`` with jittered backoff and an explicit
stop; ``AuthError`` refreshes once then fails the run; ``RecordError`` is one bad
record (it travels inside a ``WriteResult``, never stops a batch); ``FatalError`` is
config or permissions; ``QuotaExhausted`` ends the run cleanly (resume next cycle).
"""

from __future__ import annotations

import abc
import importlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from connectors.schema import NativeSchema
from connectors.values import NativeValues
from mapping.canonical import ObjectType

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "revsync.connectors"
#: ``Connector.roles``: the system the closed-won handoff hands accounts to
CUSTOMER_SUCCESS = "customer_success"

#: one field-map row: (native field, canonical field, transform, direction)
MapRow = tuple[str, str, str, str]


# --------------------------------------------------------------------------- errors


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class RetriableError(ConnectorError):
    """A call that may succeed if repeated: 429, 5xx, timeouts, resets, row locks."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(RetriableError):
    """The system cannot be reached at all (connection refused, unknown host).

    Retried like any ``RetriableError``, but only ``RetryPolicy.unreachable_attempts``
    times: the run defers that system to the next cycle instead of waiting out an outage.
    """


_UNREACHABLE_NAMES = frozenset({
    "NewConnectionError", "NameResolutionError", "ConnectionRefusedError", "gaierror",
    "NoRouteToHostError",
})


def unreachable_cause(exc: BaseException) -> str | None:
    """"connection refused" / "unknown host" when ``exc`` (or what it wraps) says the
    host could not be reached at all; None for timeouts, resets and the rest."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        name = type(e).__name__
        text = str(e)
        if name in ("NameResolutionError", "gaierror") or "Name or service not known" in text \
                or "nodename nor servname" in text or "Temporary failure in name resolution" in text:
            return "unknown host"
        if name in _UNREACHABLE_NAMES or "Connection refused" in text:
            return "connection refused"
        nexts = (getattr(e, "reason", None), e.__cause__, e.__context__, *getattr(e, "args", ()))
        todo.extend(n for n in nexts if isinstance(n, BaseException))
    return None


class QuotaExhausted(ConnectorError):
    """A daily (or other long-window) quota is used up: end the run cleanly, resume later."""

    def __init__(self, message: str, *, resets_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class AuthError(ConnectorError):
    """Credentials are invalid or could not be refreshed."""


class FatalError(ConnectorError):
    """Configuration or permission problem: retrying will not help."""


class ResyncRequired(ConnectorError):
    """The system can no longer answer incrementally (e.g. delete log purged)."""


class ErrorCategory(StrEnum):
    """Categories recorded in the error ledger (the one list: ``revsync errors
    --category`` accepts exactly these)."""

    VALIDATION = "validation"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"
    TOO_LONG = "too_long"
    PERMISSION = "permission"
    LOCKED = "locked"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    AUTH = "auth"
    MAPPING = "mapping"
    BAD_VALUE = "bad_value"  # one unreadable value on read: the field, not the record
    UNKNOWN = "unknown"


class RecordError(ConnectorError):
    """One bad record: the batch goes on; the record goes to the error ledger."""

    def __init__(
        self,
        message: str,
        *,
        category: ErrorCategory = ErrorCategory.VALIDATION,
        remote_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.remote_id = remote_id
        self.field = field


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Cursor:
    """Incremental position: inclusive lower bound on (modstamp, remote_id)."""

    modstamp: datetime
    remote_id: str = ""


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """One native record as a system returned it.

    ``fields`` is the native record (property names as the API spells them, values as
    the API returns them). ``native_type`` distinguishes e.g. Salesforce Lead from
    Contact. ``associations`` maps a canonical object type to remote ids
    (e.g. a contact's ``{"account": ("001…",)}``).
    """

    system: str
    object_type: ObjectType
    remote_id: str
    modstamp: datetime | None
    fields: Mapping[str, Any]
    native_type: str = ""
    deleted: bool = False
    merged_into: str | None = None
    associations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class OpKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"
    MERGE = "merge"


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One change to make in one system.

    ``key`` is our idempotency key (the canonical id, written to the system's
    external-id field), so a retried create can never make a duplicate.
    ``remote_id`` is set for updates/deletes of records we already know.
    """

    kind: OpKind
    object_type: ObjectType
    key: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    remote_id: str | None = None
    associations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    merge_from: tuple[str, ...] = ()
    #: the native object to write (e.g. Salesforce "Lead" vs "Contact"); "" = the
    #: connector's first native object for ``object_type``
    native_type: str = ""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one ``WriteOp`` (same order as the ops)."""

    op: WriteOp
    success: bool
    remote_id: str | None = None
    created: bool = False
    category: ErrorCategory | None = None
    message: str | None = None
    field: str | None = None

    @classmethod
    def failed(cls, op: WriteOp, error: RecordError) -> WriteResult:
        return cls(
            op=op,
            success=False,
            remote_id=op.remote_id or error.remote_id,
            category=error.category,
            message=str(error),
            field=error.field,
        )


# --------------------------------------------------------------------------- API budget


@dataclass
class BudgetState:
    calls: int = 0
    limit: int | None = None
    remaining: int | None = None
    window: str = "daily"


class ApiBudget:
    """Calls made per system, and the limits the APIs report; shared by every job.

    Connectors call ``spend`` once per HTTP call and ``observe`` when a response
    carries rate-limit headers. The engine persists ``snapshot()`` to the store.
    ``max_calls`` (from config) stops a run before it uses more than its share.
    """

    def __init__(self, max_calls: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, BudgetState] = {}
        self._max = dict(max_calls or {})

    def spend(self, system: str, calls: int = 1) -> None:
        with self._lock:
            st = self._state.setdefault(system, BudgetState())
            st.calls += calls
            cap = self._max.get(system)
            over = cap is not None and st.calls > cap
        if over:
            raise QuotaExhausted(f"{system}: configured API budget of {cap} calls is used up")

    def observe(
        self, system: str, *, limit: int | None, remaining: int | None, window: str = "daily"
    ) -> None:
        with self._lock:
            st = self._state.setdefault(system, BudgetState())
            st.limit, st.remaining, st.window = limit, remaining, window

    def calls(self, system: str) -> int:
        with self._lock:
            st = self._state.get(system)
            return st.calls if st else 0

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                s: {"calls": st.calls, "limit": st.limit, "remaining": st.remaining,
                    "window": st.window}
                for s, st in self._state.items()
            }


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """How ``retrying`` behaves. Tests pass ``sleep=lambda s: None``."""

    attempts: int = 6
    max_delay: float = 120.0  # total seconds spent waiting, across attempts
    unreachable_attempts: int = 3  # an unreachable host is deferred sooner
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            return min(float(exc.retry_after), policy.cap)
        # full jitter exponential backoff
        ceiling = min(policy.cap, policy.base * (2 ** (state.attempt_number - 1)))
        return random.uniform(0, ceiling)

    return wait


def retrying(fn: Callable[[], T], *, policy: RetryPolicy, what: str) -> T:
    """Call ``fn`` and retry it on ``RetriableError`` with jittered backoff.

    The stop is explicit (attempts and total delay). ``Retry-After`` is honoured.
    Any other error propagates at once.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        # INFO: a retry that then succeeds is routine; one that never does is reported
        # by the run (one line per system), not by a warning per attempt
        log.info("%s: attempt %d failed (%s); retrying", what, state.attempt_number, exc)

    base_stop = stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_delay)

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Unreachable) and state.attempt_number >= policy.unreachable_attempts:
            return True
        return bool(base_stop(state))

    r = Retrying(
        retry=retry_if_exception_type(RetriableError),
        stop=stop,
        wait=_wait(policy),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return r(fn)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ConnectionSettings:
    """One ``[connections.NAME]`` table of ``revsync.toml``, secrets already resolved.

    ``options`` holds the non-secret keys as written (URLs, batch sizes, ca_bundle…);
    ``secrets`` holds values read from the environment or the secrets file. ``repr``
    never shows secret values.
    """

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        redacted = dict.fromkeys(self.secrets, "***")
        return (
            f"ConnectionSettings(name={self.name!r}, kind={self.kind!r}, "
            f"options={dict(self.options)!r}, secrets={redacted!r})"
        )

    def secret(self, key: str) -> str:
        try:
            return self.secrets[key]
        except KeyError:
            raise FatalError(
                f"connection {self.name!r}: secret {key!r} is not set "
                "(set the environment variable named in revsync.toml, or the secrets file)"
            ) from None


# --------------------------------------------------------------------------- the contract

#: option keys of every connection (read by the engine, not the connector)
COMMON_OPTIONS = frozenset({"budget", "external_id_field"})


class Connector(abc.ABC):
    """One external system. Subclasses declare ``name`` and ``objects``."""

    #: registry name (the entry point's name)
    name: ClassVar[str]
    #: canonical object type → native object name(s) read for it
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]]
    #: native objects whose duplicates ``write`` can merge (``OpKind.MERGE``); the
    #: engine plans merges (policy ``merges = "merge"``) only for these
    mergeable: ClassVar[frozenset[str]] = frozenset()
    #: the ``[connections.NAME]`` option keys this connector reads (besides the ones
    #: every connection has, ``COMMON_OPTIONS``); config rejects any other key.
    #: ``None``: not declared (a third-party connector), every key is accepted.
    option_keys: ClassVar[frozenset[str] | None] = None

    # ---- declarations the engine and the mapping layer read (the SDK contract) ----
    #: the vendor's native schema: native object → its fields (read-only fields are
    #: never written, lengths are checked before a write)
    schema: ClassVar[NativeSchema] = {}
    #: the default field map this connector ships: native object → (canonical type,
    #: rows of (native field, canonical field, transform, direction)); a user's
    #: ``[mapping."<name>.<native>"]`` table overrides it
    field_maps: ClassVar[Mapping[str, tuple[ObjectType, tuple[MapRow, ...]]]] = {}
    #: the native field behind the ``_owner_email`` pseudo-field (None: no owner)
    owner_field: ClassVar[str | None] = None
    #: the field our writes carry the canonical id in (the upsert key of a create)
    key_field: ClassVar[str | None] = None
    #: where a record may carry its revsync id, in order (the first UUID wins)
    revsync_id_fields: ClassVar[tuple[str, ...]] = ()
    #: the field a linked record gets its entity's revsync id written into
    stamp_field: ClassVar[str | None] = None
    #: canonical fields whose native value must be unique in the system, per native
    #: object (with duplicates kept linked, only the record holding the value keeps it)
    unique_fields: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: native fields sent along with a changed field, per native object
    #: (``{"Opportunity": {"StageName": ("Probability",)}}``)
    write_with: ClassVar[Mapping[str, Mapping[str, tuple[str, ...]]]] = {}
    #: associations ``write`` sets, per native object ("account", "contact"); a
    #: native object not listed: all of them
    writable_associations: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: native objects that can never be an association's target (Salesforce Lead)
    not_associable: ClassVar[frozenset[str]] = frozenset()
    #: new entities are created here unless a policy's ``create_in`` says otherwise
    creates_by_default: ClassVar[bool] = True
    #: policy ``merges = "merge"`` calls this system's merge unless ``merge_in`` says otherwise
    merges_by_default: ClassVar[bool] = False
    #: how canonical values travel to this API (see ``connectors.values``): JSON
    #: numbers and ISO dates by default; dotted native names nest when ``nested``
    native_values: ClassVar[NativeValues] = NativeValues()
    #: the default shared definitions (``mapping.definitions``): value set (``stage``,
    #: ``industry``…) → canonical value → the native value written (and read) for it;
    #: ``[definitions.*]`` in revsync.toml overrides them
    picklists: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    #: further native values read as a canonical value: value set → native → canonical
    #: (a native value several canonical values write, read-only values)
    picklist_reads: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    #: value set → the pipeline its values are written with (a ``pipeline`` map row)
    pipelines: ClassVar[Mapping[str, str]] = {}
    # ---- defaults the product derives from the registry (no vendor named in sync/) ----
    #: place in the default ``source_priority`` (lower first); None: not in the default
    #: order (a plugin is ranked by a policy the user writes)
    default_rank: ClassVar[int | None] = None
    #: canonical fields whose value this system owns by default, per canonical object
    #: (``"account"``): the default policy of each is ``prefer:<connection>``
    authoritative_for: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: roles this system plays in the revenue process; ``"customer_success"``: the
    #: closed-won handoff writes licenses here (``licenses`` / ``write_licenses``)
    roles: ClassVar[frozenset[str]] = frozenset()
    #: secret key → environment variable the starter config names for it (and the
    #: sandbox's secrets file fills in)
    secret_env: ClassVar[Mapping[str, str]] = {}
    #: the ``[connections.NAME]`` options that point this connector at a server's base
    #: URL (``{url}`` stands for it): what ``revsync init``'s starter config writes for
    #: the local sandbox, and what tests write for a sandbox on other ports
    url_options: ClassVar[Mapping[str, str]] = {}
    #: further options the starter config sets, and its daily call budget (None: none)
    starter_options: ClassVar[Mapping[str, Any]] = {}
    starter_budget: ClassVar[int | None] = None
    #: ``"module:function"`` building the go-live checker (``revsync check`` / ``setup``),
    #: called as ``function(connector, name=…, options=…)``; loaded only when asked for
    readiness_factory: ClassVar[str | None] = None

    @abc.abstractmethod
    def read_pages(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[Sequence[RemoteRecord]]:
        """Yield pages of records modified at or after ``since`` (all when ``None``),
        oldest first. Never collects a whole listing in memory.

        ``native`` picks one of ``objects[object_type]`` (e.g. Salesforce "Lead" for
        contacts); the engine keeps one cursor per (system, native object). ``None``
        reads the first native object.
        """

    def read(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        """Records one by one (flattened pages)."""
        for page in self.read_pages(object_type, since=since, native=native):
            yield from page

    @abc.abstractmethod
    def write(self, object_type: ObjectType, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` in the largest batches the API allows; one result per op, in order."""

    def read_deleted(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        """Records deleted or merged away since ``since`` (``deleted``/``merged_into`` set)."""
        return iter(())

    def list_ids(self, object_type: ObjectType, *, native: str | None = None) -> Iterator[str]:
        """Every live remote id (for the nightly sweep that finds hard deletes)."""
        for rec in self.read(object_type, since=None, native=native):
            yield rec.remote_id

    def check(self) -> dict[str, Any]:
        """Verify credentials and reachability; return facts worth showing."""
        return {}

    def readiness(self, *, name: str, options: Mapping[str, Any]) -> Any:
        """The go-live checker (``revsync check`` / ``setup``) for this connection, or
        None when the connector declares none (``readiness_factory``)."""
        if not self.readiness_factory:
            return None
        module, _, attr = self.readiness_factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory(self, name=name, options=options)

    def owner_known(self, email: str) -> bool | None:
        """Whether a user of this system has the owner email ``email`` (case-insensitive);
        None: this connector cannot tell. A write of an owner the system does not know
        leaves the owner unchanged, so plan does not ask for it (it would be asked for
        again every time the record is read back)."""
        return None

    @classmethod
    @abc.abstractmethod
    def from_settings(
        cls, settings: ConnectionSettings, *, budget: ApiBudget, retry: RetryPolicy | None = None
    ) -> Connector:
        """Build the connector (and its real client) from a connection's settings."""


# --------------------------------------------------------------------------- registry


class UnknownConnectorError(LookupError):
    """No connector is registered under that name."""


def load_connector_class(name: str) -> type[Connector]:
    """Find a connector class through the ``revsync.connectors`` entry points.

    The recipe follows APScheduler 3.x's plugin loading: lazy lookup, ``issubclass``
    check, ``LookupError`` for an unknown name.
    """
    eps = entry_points(group=ENTRY_POINT_GROUP)
    matches = [ep for ep in eps if ep.name == name]
    if not matches:
        known = ", ".join(sorted(ep.name for ep in eps)) or "none"
        raise UnknownConnectorError(
            f"no connector named {name!r} (group {ENTRY_POINT_GROUP!r}; known: {known})"
        )
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"entry point {name!r} does not point to a Connector subclass: {cls!r}")
    return cls


def known_connectors() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[T] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
