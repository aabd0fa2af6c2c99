"""Salesforce connector (simple-salesforce): SOQL paging, queryAll, sObject Collections,
Bulk API 2.0.

Reads are incremental on ``SystemModstamp`` with an inclusive bound and an ``Id``
tiebreak, page by page (``query`` + ``query_more``, up to ``SOQL_PAGE`` records a
page). Fields come from describe, so custom fields work and a configured field that
no longer exists is skipped with a warning. Deletes and merges come from ``queryAll``
(``IsDeleted``/``MasterRecordId``) cross-checked with getDeleted. Writes upsert on the
external-id field (creates) or update by ``Id`` through sObject Collections
(``SF_COLLECTION`` records a call, ``allOrNone=false``), or through Bulk API 2.0 above
``bulk_threshold`` records. Every API call goes through ``_call``: one retry layer,
error translation, one token refresh on an expired session.

Options (``[connections.NAME]``): ``instance_url`` (else the token reply's),
``token_url`` (default login.salesforce.com), ``api_version`` ("59.0"), ``ca_bundle``,
``timeout`` (s), ``external_id_field`` ("Revsync_Id__c"), ``bulk_threshold`` (10,000;
0 turns Bulk off), ``bulk_poll_seconds``, ``page_size`` (200 to 2,000), ``fields``
(sObject → field names to read; default every field describe lists),
``create_contacts_as`` ("Contact" or "Lead"), ``opportunity_contacts`` (read
OpportunityContactRole for opportunity → contact associations). Secrets: ``client_id``,
``client_secret`` and ``refresh_token``, or ``username`` and ``password`` (plus an
optional ``security_token``), or ``client_id``, ``username`` and ``private_key`` for the
JWT bearer flow (``connectors/salesforce_jwt.py``; option ``jwt_audience``). Option
``permission_set`` names the integration user's permission set ``revsync setup`` grants
field access in (``connectors/salesforce_setup.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote_plus, urlencode

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceOperationError,
)

from connectors import salesforce_map
from connectors.base import (
    ApiBudget,
    AuthError,
    ConnectionSettings,
    Connector,
    Cursor,
    FatalError,
    QuotaExhausted,
    RemoteRecord,
    ResyncRequired,
    RetriableError,
    RetryPolicy,
    Unreachable,
    retrying,
    unreachable_cause,
)
from connectors.salesforce_auth import SalesforceAuth, build_session, meter_session
from connectors.salesforce_bulk import typed_rows
from connectors.salesforce_errors import (
    SalesforceApiError,
    SessionExpired,
    category_for,
    error_code,
)
from connectors.salesforce_jwt import auth_from_settings
from connectors.salesforce_schema import SALESFORCE
from connectors.salesforce_soap import MERGEABLE
from connectors.salesforce_write import KEY_PREFIXES, SF_COLLECTION, SalesforceWriter
from connectors.schema import NativeSchema
from connectors.values import NativeValues
from mapping.canonical import ObjectType

__all__ = [
    "DEFAULT_BULK_THRESHOLD",
    "KEY_PREFIXES",
    "SF_COLLECTION",
    "SOQL_PAGE",
    "SalesforceApiError",
    "SalesforceConnector",
    "category_for",
    "parse_sf_datetime",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM = "salesforce"
DEFAULT_API_VERSION = "59.0"
DEFAULT_EXTERNAL_ID = "Revsync_Id__c"

# Records per query/queryMore batch (the maximum; Salesforce may return fewer).
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
SOQL_PAGE = 2000
SOQL_PAGE_MIN = 200
# Above this many records a full read or a write goes through Bulk API 2.0.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm
DEFAULT_BULK_THRESHOLD = 10_000
# Records per Bulk API 2.0 query-results page (``maxRecords``).
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
BULK_QUERY_PAGE = 10_000
# First wait before a Bulk job's status is read; simple-salesforce's wait_for_job then
# backs off (wait + e^n/1000 s, growing until it passes 2 s), so a quick job is read
# after half a second instead of five.
DEFAULT_BULK_POLL = 0.5
# Longest request URI Salesforce accepts (longer: HTTP 414); a query is sent in the URL,
# so an ``IN (...)`` list of Ids holds as many as fit (about 590 18-character Ids; the
# 100,000-character SOQL statement limit is never the tighter one).
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/api_rest_limits.htm
MAX_URI_BYTES = 16_384
# getDeleted works at minute granularity; end must lie after start.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm
GET_DELETED_MIN_SPAN = timedelta(minutes=1)

# Describe types SOQL cannot select one by one in Bulk, or that we never sync.
SKIPPED_TYPES = frozenset({"address", "location", "base64"})

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

def parse_sf_datetime(value: str | None) -> datetime | None:
    """``2024-05-01T10:00:00.000+0000`` → aware UTC datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SalesforceConnector(SalesforceWriter, Connector):
    """Salesforce through simple-salesforce; see the module docstring."""

    name: ClassVar[str] = SYSTEM
    option_keys: ClassVar[frozenset[str] | None] = frozenset({
        "instance_url", "token_url", "ca_bundle", "timeout", "api_version", "fields",
        "external_id_field", "bulk_threshold", "bulk_poll_seconds", "create_contacts_as",
        "opportunity_contacts", "page_size", "jwt_audience", "permission_set",
    })
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {
        ObjectType.ACCOUNT: ("Account",),
        ObjectType.CONTACT: ("Contact", "Lead"),
        ObjectType.OPPORTUNITY: ("Opportunity",),
    }
    # SOAP merge() (connectors/salesforce_soap.py); policy merge uses it only where
    # merge_in names the connection
    mergeable: ClassVar[frozenset[str]] = MERGEABLE
    schema: ClassVar[NativeSchema] = SALESFORCE
    field_maps = salesforce_map.TABLES
    picklists = salesforce_map.PICKLISTS
    picklist_reads = salesforce_map.PICKLIST_READS
    owner_field = salesforce_map.OWNER_FIELD
    key_field = DEFAULT_EXTERNAL_ID
    revsync_id_fields = (DEFAULT_EXTERNAL_ID,)
    stamp_field = DEFAULT_EXTERNAL_ID  # an instance's ``external_id_field`` overrides it
    # Salesforce resets Probability to the stage's default when StageName changes alone;
    # a national-format phone is read with the record's country as its region, so a
    # country change is written with the phone in E.164 (else the phone's meaning moves)
    write_with = {"Opportunity": {"StageName": ("Probability",)}, "Account": {"BillingCountry": ("Phone",)}}
    writable_associations = {
        "Contact": frozenset({"account"}),
        "Lead": frozenset(),  # a Lead has no account until it is converted
        "Opportunity": frozenset({"account", "contact"}),  # contacts as contact roles
        "Account": frozenset({"parent"}),  # ParentId: the account hierarchy
    }
    # a Lead can never be an opportunity's contact role, nor anyone's account
    not_associable = frozenset({"Lead"})
    # a Salesforce merge cannot be undone: policy merge calls it only where merge_in says so
    merges_by_default = False
    # first in the default source priority: the CRM of record
    default_rank = 10
    secret_env: ClassVar[Mapping[str, str]] = {
        "client_id": "REVSYNC_SF_CLIENT_ID", "client_secret": "REVSYNC_SF_CLIENT_SECRET",
        "refresh_token": "REVSYNC_SF_REFRESH_TOKEN"}
    url_options: ClassVar[Mapping[str, str]] = {"instance_url": "{url}", "token_url": "{url}/services/oauth2/token"}
    starter_options: ClassVar[Mapping[str, Any]] = {"external_id_field": DEFAULT_EXTERNAL_ID,
                                                    "bulk_threshold": DEFAULT_BULK_THRESHOLD}
    starter_budget = 50000
    # date-times as Salesforce writes them: 2024-05-01T10:00:00.000+0000
    native_values = NativeValues(datetime_format="%Y-%m-%dT%H:%M:%S.%f3+0000")
    readiness_factory = "connectors.salesforce_setup:readiness_for"

    def __init__(
        self,
        client: Salesforce,
        *,
        budget: ApiBudget | None = None,
        retry: RetryPolicy | None = None,
        auth: SalesforceAuth | None = None,
        connection: str = SYSTEM,
        external_id_field: str = DEFAULT_EXTERNAL_ID,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk_poll_seconds: float = DEFAULT_BULK_POLL,
        fields: Mapping[str, Sequence[str]] | None = None,
        create_contacts_as: str = "Contact",
        opportunity_contacts: bool = True,
        page_size: int = SOQL_PAGE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not _IDENT.match(external_id_field):
            raise FatalError(f"connection {connection!r}: bad external_id_field {external_id_field!r}")
        if create_contacts_as not in ("Contact", "Lead"):
            raise FatalError(f"connection {connection!r}: create_contacts_as must be Contact or Lead")
        self.client = client
        self.budget = budget or ApiBudget()
        self.retry = retry or RetryPolicy()
        self.auth = auth
        self.connection = connection
        self.external_id_field = external_id_field
        self.bulk_threshold = bulk_threshold
        self.bulk_poll_seconds = bulk_poll_seconds
        self.fields = {k: tuple(v) for k, v in (fields or {}).items()}
        self.create_contacts_as = create_contacts_as
        self.opportunity_contacts = opportunity_contacts
        self.page_size = min(max(int(page_size), SOQL_PAGE_MIN), SOQL_PAGE)
        self.clock = clock
        self._describes: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._owners: dict[str, str] | None = None
        self._owner_ids: tuple[dict[str, str], dict[str, str]] | None = None
        self._bodies = {}
        self._last_status = 0
        self._last_retry_after: float | None = None
        meter_session(client.session, self._before_request)
        client.session.hooks.setdefault("response", []).append(self._on_response)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_settings(
        cls, settings: ConnectionSettings, *, budget: ApiBudget, retry: RetryPolicy | None = None
    ) -> SalesforceConnector:
        """Get a token (refresh-token or password grant) and build the client on one session."""
        opts = settings.options
        policy = retry or RetryPolicy()
        session = build_session(opts)
        auth = auth_from_settings(settings)

        meter_session(session, lambda: budget.spend(SYSTEM))
        token = retrying(lambda: auth.fetch(session), policy=policy, what=f"{settings.name}: token")
        if token.refresh_token and auth.refresh_token:
            auth = dataclasses.replace(auth, refresh_token=token.refresh_token)
        instance_url = str(opts.get("instance_url") or token.instance_url or "")
        if not instance_url:
            raise FatalError(f"connection {settings.name!r}: no instance_url (option or token reply)")
        client = Salesforce(
            instance_url=instance_url,
            session_id=token.access_token,
            session=session,
            version=str(opts.get("api_version", DEFAULT_API_VERSION)),
        )
        raw_fields = opts.get("fields") or {}
        if not isinstance(raw_fields, Mapping):
            raise FatalError(
                f"connection {settings.name!r}: option 'fields' maps an sObject to field names"
            )
        return cls(
            client,
            budget=budget,
            retry=policy,
            auth=auth,
            connection=settings.name,
            external_id_field=str(opts.get("external_id_field", DEFAULT_EXTERNAL_ID)),
            bulk_threshold=int(opts.get("bulk_threshold", DEFAULT_BULK_THRESHOLD)),
            bulk_poll_seconds=float(opts.get("bulk_poll_seconds", DEFAULT_BULK_POLL)),
            fields={str(k): tuple(str(f) for f in v) for k, v in raw_fields.items()},
            create_contacts_as=str(opts.get("create_contacts_as", "Contact")),
            opportunity_contacts=bool(opts.get("opportunity_contacts", True)),
            page_size=int(opts.get("page_size", SOQL_PAGE)),
        )

    # ------------------------------------------------------------------ the call layer

    def _before_request(self) -> None:
        """Adapter hook, ahead of every HTTP call: spend one call of the budget.

        Raises ``QuotaExhausted`` (the call is not sent) once the configured cap is used.
        """
        self.budget.spend(SYSTEM)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Session hook: remember Retry-After and report ``Sforce-Limit-Info`` to the budget.

        The session sees every call, including the Bulk API ones simple-salesforce makes
        without updating ``sf.api_usage`` (and ``SFType`` calls, which update only a
        throwaway ``SFType.api_usage``), so it is the one place budgets are fed.
        """
        self._last_status = response.status_code
        retry_after = response.headers.get("Retry-After")
        try:
            self._last_retry_after = float(retry_after) if retry_after else None
        except ValueError:
            self._last_retry_after = None
        info = response.headers.get("Sforce-Limit-Info")
        if info:
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
            usage = Salesforce.parse_api_usage(info).get("api-usage")
            if usage is not None:
                self.budget.observe(
                    SYSTEM, limit=usage.total, remaining=max(usage.total - usage.used, 0)
                )

    def _translate(self, exc: SalesforceError, what: str) -> Exception:
        code, message = error_code(exc.content)
        status = int(exc.status)
        where = f"{self.connection}: {what}"
        if isinstance(exc, SalesforceAuthenticationFailed):
            return AuthError(f"{where}: authentication failed ({exc.code})")
        if status == 401:
            if code == "INVALID_SESSION_ID":
                return SessionExpired(f"{where}: session expired or invalid")
            return AuthError(f"{where}: {code or 'unauthorized'}: {message}")
        if code == "REQUEST_LIMIT_EXCEEDED":
            return QuotaExhausted(f"{where}: Salesforce API request limit exceeded ({message})")
        if status == 403:
            # the user may not do this at all (API disabled, no object permission):
            # ends Salesforce's part of the run like refused credentials
            return AuthError(f"{where}: HTTP 403 {code or 'FORBIDDEN'}: {message}")
        if code == "UNABLE_TO_LOCK_ROW":
            return RetriableError(f"{where}: {code}: {message}")
        if status == 429 or status >= 500:
            retry_after = self._last_retry_after if status == self._last_status else None
            return RetriableError(f"{where}: HTTP {status} {code}".rstrip(), retry_after=retry_after)
        return SalesforceApiError(
            f"{where}: HTTP {status} {code}: {message}", code=code or str(status), status=status
        )

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """Run one API call: translate errors, retry, refresh an expired token once."""

        def attempt() -> T:
            try:
                return fn()
            except SalesforceError as exc:
                raise self._translate(exc, what) from exc
            except SalesforceOperationError as exc:
                raise FatalError(f"{self.connection}: {what}: {exc}") from exc
            except requests.exceptions.SSLError as exc:
                if not _is_cert_failure(exc):
                    # e.g. SSLEOFError: a connection reset during TLS is transient
                    raise RetriableError(f"{self.connection}: {what}: {type(exc).__name__}") from exc
                raise FatalError(
                    f"{self.connection}: {what}: TLS verification failed; check the instance URL "
                    "and the 'ca_bundle' option"
                ) from exc
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                cause = unreachable_cause(exc)
                if cause:
                    raise Unreachable(f"{self.connection}: {what}: {cause}") from exc
                raise RetriableError(f"{self.connection}: {what}: {type(exc).__name__}") from exc

        try:
            return retrying(attempt, policy=self.retry, what=f"{self.connection}: {what}")
        except SessionExpired:
            self._refresh()
        try:
            return retrying(attempt, policy=self.retry, what=f"{self.connection}: {what}")
        except SessionExpired as exc:
            raise AuthError(
                f"connection {self.connection!r}: Salesforce still rejects the session after "
                "a token refresh"
            ) from exc

    def _refresh(self) -> None:
        """Get a new access token and give it to the client (and so to Bulk calls)."""
        if self.auth is None:
            raise AuthError(
                f"connection {self.connection!r}: the Salesforce session expired and no "
                "credentials are configured to refresh it"
            )
        auth = self.auth
        token = retrying(
            lambda: auth.fetch(self.client.session),
            policy=self.retry,
            what=f"{self.connection}: token refresh",
        )
        self.client.session_id = token.access_token
        self.client.headers = {**self.client.headers, "Authorization": f"Bearer {token.access_token}"}
        if token.refresh_token and auth.refresh_token:
            # Refresh-token rotation: the old one stops working once used.
            self.auth = dataclasses.replace(auth, refresh_token=token.refresh_token)
        log.info("%s: Salesforce access token refreshed", self.connection)

    def _sobject(self, native: str) -> Any:
        return getattr(self.client, native)

    def _bulk2(self, native: str) -> Any:
        # Built on each use so it carries the current access token.
        return getattr(self.client.bulk2, native)

    # ------------------------------------------------------------------ describe & fields

    def _native(self, object_type: ObjectType, native: str | None) -> str:
        natives = self.objects.get(object_type)
        if not natives:
            raise FatalError(f"{self.connection}: Salesforce does not sync {object_type}")
        if native is None:
            return natives[0]
        if native not in natives:
            raise FatalError(f"{self.connection}: {native!r} is not read as {object_type}")
        return native

    def describe(self, native: str) -> dict[str, Mapping[str, Any]]:
        """Fields of ``native`` by name (describe, cached per connector)."""
        if native not in self._describes:
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
            body = self._call(lambda: self._sobject(native).describe(), what=f"describe {native}")
            self._describes[native] = {
                str(f["name"]): f for f in body.get("fields", []) if _IDENT.match(str(f["name"]))
            }
        return self._describes[native]

    def live_schema(self, native: str) -> dict[str, dict[str, Any]]:
        """The live fields of ``native`` (a fresh describe, for the schema pre-flight):
        name → {type, updateable, createable, picklist (active values, or None)}."""
        self._describes.pop(native, None)
        out: dict[str, dict[str, Any]] = {}
        for name, f in self.describe(native).items():
            picks = [str(p["value"]) for p in f.get("picklistValues") or () if p.get("active", True)]
            restricted = bool(f.get("restrictedPicklist")) or f.get("type") == "picklist"
            out[name] = {"type": str(f.get("type", "")), "updateable": bool(f.get("updateable", True)),
                         "createable": bool(f.get("createable", True)),
                         "picklist": picks if restricted and picks else None}
        return out

    def _warn_missing(self, native: str, name: str, why: str) -> None:
        if (native, name) not in self._warned:
            self._warned.add((native, name))
            log.warning(
                "%s: field %s.%s %s; skipped (schema drift?)", self.connection, native, name, why
            )

    def select_fields(self, native: str) -> list[str]:
        """The fields to read: describe's, or the configured ones that still exist."""
        described = self.describe(native)
        wanted = self.fields.get(native)
        if wanted is None:
            names = [n for n, f in described.items() if f.get("type") not in SKIPPED_TYPES]
        else:
            names = []
            for n in wanted:
                if n in described:
                    names.append(n)
                else:
                    self._warn_missing(native, n, "is configured but not in describe")
        for required in (
            "Id", "SystemModstamp", "OwnerId", "AccountId", *(("ParentId",) if native == "Account" else ()),
            self.external_id_field,
        ):
            if required in described and required not in names:
                names.append(required)
        return names

    def _types(self, native: str) -> dict[str, str]:
        return {n: str(f.get("type", "")) for n, f in self.describe(native).items()}

    def reset_caches(self) -> None:
        """Forget describe results and the owner map (the next call reloads them)."""
        self._describes.clear()
        self._owners = None
        self._warned.clear()

    # ------------------------------------------------------------------ owners

    def owners(self) -> dict[str, str]:
        """User Id → email, loaded once per connector (one run)."""
        if self._owners is None:
            soql = "SELECT Id, Email FROM User"
            owners: dict[str, str] = {}
            for page in self._query_pages(soql, what="users"):
                for u in page:
                    if u.get("Email"):
                        owners[str(u["Id"])] = str(u["Email"])
            self._owners = owners
        return self._owners

    def _owner_id(self, email: Any) -> str | None:
        """The User Id for an owner email (case-insensitive), or None."""
        if not email:
            return None
        owners = self.owners()
        if self._owner_ids is None or self._owner_ids[0] is not owners:
            by_email: dict[str, str] = {}
            for uid, mail in owners.items():
                by_email.setdefault(mail.strip().lower(), uid)
            self._owner_ids = (owners, by_email)
        return self._owner_ids[1].get(str(email).strip().lower())

    def owner_known(self, email: str) -> bool | None:
        """Whether a Salesforce User has this email (the owner a write can set)."""
        return self._owner_id(email) is not None

    # ------------------------------------------------------------------ reads

    def _query_headers(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.page_size}"}

    def _query_first(self, soql: str, *, what: str, include_deleted: bool = False) -> dict[str, Any]:
        """The first batch of one SOQL query (``totalSize``, ``done``, ``nextRecordsUrl``).

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
        """
        headers = self._query_headers()
        result: dict[str, Any] = self._call(
            lambda: self.client.query(soql, include_deleted=include_deleted, headers=headers),
            what=what,
        )
        return result

    def _query_pages(
        self, soql: str, *, what: str, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Raw record pages of one SOQL query (query, then queryMore by nextRecordsUrl)."""
        first = self._query_first(soql, what=what, include_deleted=include_deleted)
        yield from self._follow(first, what=what)

    def _follow(self, result: dict[str, Any], *, what: str) -> Iterator[list[dict[str, Any]]]:
        """The records of ``result`` and of every batch after it (queryMore)."""
        headers = self._query_headers()
        seen: set[str] = set()
        while True:
            records = [
                {k: v for k, v in r.items() if k != "attributes"} for r in result.get("records", [])
            ]
            if records:
                yield records
            if result.get("done", True):
                return
            next_url = str(result["nextRecordsUrl"])
            if next_url in seen:
                raise FatalError(f"{self.connection}: {what}: nextRecordsUrl repeats ({next_url})")
            seen.add(next_url)
            result = self._call(
                lambda u=next_url: self.client.query_more(  # type: ignore[misc]
                    u, identifier_is_url=True, headers=headers
                ),
                what=f"{what} (queryMore)",
            )

    def _where(self, native: str, since: Cursor | None, *extra: str) -> str:
        clauses = list(extra)
        if native == "Lead":
            clauses.append(format_soql("IsConverted = {}", False))
        if since is not None:
            clauses.append(format_soql("SystemModstamp >= {}", since.modstamp))
        return (" WHERE " + " AND ".join(clauses)) if clauses else ""

    def read_pages(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[list[RemoteRecord]]:
        """Pages of records with ``SystemModstamp >= since``, ordered by (SystemModstamp, Id)."""
        native = self._native(object_type, native)
        pages = self._read_raw(native, since)
        try:
            first = next(pages, None)
        except SalesforceApiError as e:
            if e.code != "INVALID_FIELD":
                raise
            # a field was deleted since the cached describe (an admin's schema edit
            # between cycles): describe again, once, and read without it
            log.info("%s: %s; describing %s again", self.connection, str(e).splitlines()[0], native)
            self._describes.pop(native, None)
            pages = self._read_raw(native, since)
            first = next(pages, None)
        if first is None:
            return
        yield self._to_records(object_type, native, first)
        for raw in pages:
            yield self._to_records(object_type, native, raw)

    def _read_raw(self, native: str, since: Cursor | None) -> Iterator[list[dict[str, Any]]]:
        fields = self.select_fields(native)
        where = self._where(native, since)
        soql = format_soql(
            "SELECT {:literal} FROM {:literal}{:literal} ORDER BY SystemModstamp, Id",
            ", ".join(fields),
            native,
            where,
        )
        uri = len(self.client.base_url) + len("query/?") + len(urlencode({"q": soql}))
        if uri > MAX_URI_BYTES:
            raise FatalError(
                f"{self.connection}: the {native} query selects {len(fields)} fields and would "
                f"be a {uri}-byte URL (Salesforce's limit: {MAX_URI_BYTES}); list the fields "
                f"to sync in the connection's 'fields' option"
            )
        what = f"read {native}"
        pages: Iterator[list[dict[str, Any]]]
        if since is None and self.bulk_threshold > 0:
            pages = self._rest_or_bulk(native, soql, what=what)
        else:
            pages = self._query_pages(soql, what=what)
        yield from pages

    def _rest_or_bulk(self, native: str, soql: str, *, what: str) -> Iterator[list[dict[str, Any]]]:
        """A full read: the REST query's first batch tells the size (``totalSize``); over
        ``bulk_threshold`` the REST cursor is dropped and a Bulk API 2.0 job reads it all,
        else the REST pages go on. No separate ``SELECT COUNT()`` call."""
        first = self._query_first(soql, what=what)
        total = int(first.get("totalSize") or 0)
        if total > self.bulk_threshold:
            log.info("%s: %d %s records (over %d): reading through Bulk API 2.0",
                     self.connection, total, native, self.bulk_threshold)
            yield from self._bulk_query_pages(native, soql)
        else:
            yield from self._follow(first, what=what)

    def _bulk_query_pages(self, native: str, soql: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of a Bulk API 2.0 query job, values typed by describe.

        simple-salesforce's public ``bulk2.<T>.query()`` is one generator over the whole
        job, so a failed page could only be retried by starting the job again; the job's
        three calls are made one by one through its ``_Bulk2Client`` instead, each under
        our retry layer. That seam is private: the dependency is pinned to one minor
        version and tests/connectors/test_salesforce_bulk_seam.py checks its signatures.

        ORDER BY is kept (it turns PK chunking off, so the job is slower) because the
        engine checkpoints the cursor after every page: pages must come oldest first.
        """
        types = self._types(native)
        poll = self.bulk_poll_seconds
        # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
        job = self._call(
            lambda: self._bulk2(native)._client.create_job(Operation.query, soql),
            what=f"bulk query {native}",
        )
        job_id = str(job["id"])
        # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
        self._call(
            lambda: self._bulk2(native)._client.wait_for_job(job_id, True, poll),
            what=f"bulk query {native} (wait)",
        )
        locator = ""
        while True:
            # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
            page = self._call(
                lambda loc=locator: self._bulk2(native)._client.get_query_results(  # type: ignore[misc]
                    job_id, loc, BULK_QUERY_PAGE
                ),
                what=f"bulk query {native} (results)",
            )
            rows = list(typed_rows(str(page.get("records") or ""), types))
            if rows:
                yield rows
            locator = str(page.get("locator") or "")
            if not locator or locator == "null":
                return

    def _to_records(
        self, object_type: ObjectType, native: str, raw: list[dict[str, Any]]
    ) -> list[RemoteRecord]:
        contacts: dict[str, list[str]] = {}
        if native == "Opportunity" and self.opportunity_contacts and raw:
            contacts = self._opportunity_contacts([str(r["Id"]) for r in raw])
        owners = self.owners() if any(r.get("OwnerId") for r in raw) else {}
        out: list[RemoteRecord] = []
        for rec in raw:
            fields = dict(rec)
            owner = rec.get("OwnerId")
            if owner:
                fields["_owner_email"] = owners.get(str(owner))
            assoc: dict[str, tuple[str, ...]] = {}
            if rec.get("AccountId") and native in ("Contact", "Opportunity"):
                assoc["account"] = (str(rec["AccountId"]),)
            if "ParentId" in rec and native == "Account":
                # the account hierarchy; an empty parent: read, and none (sync.hierarchy)
                assoc["parent"] = (str(rec["ParentId"]),) if rec["ParentId"] else ()
            rid = str(rec["Id"])
            if rid in contacts:
                assoc["contact"] = tuple(contacts[rid])
            out.append(
                RemoteRecord(
                    system=SYSTEM,
                    object_type=object_type,
                    remote_id=rid,
                    modstamp=parse_sf_datetime(rec.get("SystemModstamp")),
                    fields=fields,
                    native_type=native,
                    associations=assoc,
                )
            )
        return out

    def _in_queries(self, template: str, ids: Sequence[str]) -> Iterator[str]:
        """``template`` (one ``{}`` for an ``IN`` list) filled with ``ids`` in as few
        statements as the URL limit allows: each query URL stays ≤ ``MAX_URI_BYTES``."""
        fixed = (
            len(self.client.base_url) + len("query/?")
            + len(urlencode({"q": format_soql(template, [])}))
        )
        chunk: list[str] = []
        size = fixed
        for rid in ids:
            cost = len(quote_plus(format_soql("{}", rid))) + (len(quote_plus(",")) if chunk else 0)
            if chunk and size + cost > MAX_URI_BYTES:
                yield format_soql(template, chunk)
                chunk, size = [], fixed
                cost = len(quote_plus(format_soql("{}", rid)))
            chunk.append(rid)
            size += cost
        if chunk:
            yield format_soql(template, chunk)

    def _opportunity_contacts(self, opp_ids: list[str]) -> dict[str, list[str]]:
        """Opportunity Id → contact Ids, from OpportunityContactRole (primary first);
        as many Ids a query as the URL limit allows."""
        out: dict[str, list[str]] = {}
        template = (
            "SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole "
            "WHERE OpportunityId IN {} ORDER BY OpportunityId, IsPrimary DESC, ContactId"
        )
        for soql in self._in_queries(template, list(dict.fromkeys(opp_ids))):
            for page in self._query_pages(soql, what="opportunity contact roles"):
                for row in page:
                    lst = out.setdefault(str(row["OpportunityId"]), [])
                    if row.get("ContactId") and str(row["ContactId"]) not in lst:
                        lst.append(str(row["ContactId"]))
        return out

    def read_deleted(
        self, object_type: ObjectType, *, since: Cursor | None = None, native: str | None = None
    ) -> Iterator[RemoteRecord]:
        """Deleted and merged-away records (queryAll), plus getDeleted's log; converted
        Leads come back as merged into their Contact.

        Raises ``ResyncRequired`` when the delete log no longer reaches back to ``since``.
        """
        native = self._native(object_type, native)
        described = self.describe(native)
        log_entries = self._get_deleted(native, since) if since is not None else []
        seen: set[str] = set()
        cols = ["Id", "SystemModstamp"]
        if "MasterRecordId" in described:
            cols.append("MasterRecordId")
        since_clause = (
            [format_soql("SystemModstamp >= {}", since.modstamp)] if since is not None else []
        )
        soql = format_soql(
            "SELECT {:literal} FROM {:literal} WHERE {:literal} ORDER BY SystemModstamp, Id",
            ", ".join(cols),
            native,
            " AND ".join(["IsDeleted = true", *since_clause]),
        )
        for page in self._query_pages(soql, what=f"deleted {native}", include_deleted=True):
            for rec in page:
                seen.add(str(rec["Id"]))
                yield self._tombstone(object_type, native, rec, rec.get("MasterRecordId"))
        if native == "Lead":
            soql = format_soql(
                "SELECT Id, SystemModstamp, ConvertedContactId FROM Lead WHERE {:literal} "
                "ORDER BY SystemModstamp, Id",
                " AND ".join(["IsConverted = true", *since_clause]),
            )
            for page in self._query_pages(soql, what="converted leads"):
                for rec in page:
                    seen.add(str(rec["Id"]))
                    yield self._tombstone(object_type, native, rec, rec.get("ConvertedContactId"))
        for entry in log_entries:
            rid = str(entry.get("id"))
            if rid not in seen:
                seen.add(rid)
                yield RemoteRecord(
                    system=SYSTEM,
                    object_type=object_type,
                    remote_id=rid,
                    modstamp=parse_sf_datetime(entry.get("deletedDate")),
                    fields={"Id": rid},
                    native_type=native,
                    deleted=True,
                )

    def _tombstone(
        self, object_type: ObjectType, native: str, rec: Mapping[str, Any], into: Any
    ) -> RemoteRecord:
        return RemoteRecord(
            system=SYSTEM,
            object_type=object_type,
            remote_id=str(rec["Id"]),
            modstamp=parse_sf_datetime(rec.get("SystemModstamp")),
            fields=dict(rec),
            native_type=native,
            deleted=True,
            merged_into=str(into) if into else None,
        )

    def _get_deleted(self, native: str, since: Cursor) -> list[Mapping[str, Any]]:
        """getDeleted from ``since`` to now; ``ResyncRequired`` if the log starts later."""
        start = since.modstamp.astimezone(UTC)
        end = max(self.clock().astimezone(UTC), start + GET_DELETED_MIN_SPAN)
        try:
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm
            body = self._call(
                lambda: self._sobject(native).deleted(start, end), what=f"getDeleted {native}"
            )
        except SalesforceApiError as exc:
            if exc.code == "INVALID_REPLICATION_DATE":
                raise ResyncRequired(
                    f"{self.connection}: Salesforce no longer keeps {native} deletes back to "
                    f"{start.isoformat()} ({exc}); run a full resync (revsync backfill)"
                ) from exc
            raise
        earliest = parse_sf_datetime(body.get("earliestDateAvailable"))
        # getDeleted ignores seconds: compare at minute granularity.
        if earliest is not None and earliest > start.replace(second=0, microsecond=0):
            raise ResyncRequired(
                f"{self.connection}: Salesforce's {native} delete log starts at "
                f"{earliest.isoformat()}, after the cursor {start.isoformat()}: deletes in "
                "between may be lost; run a full resync (revsync backfill)"
            )
        return list(body.get("deletedRecords") or [])

    def list_ids(self, object_type: ObjectType, *, native: str | None = None) -> Iterator[str]:
        """Every live Id of ``native`` (a cheap Id-only query)."""
        native = self._native(object_type, native)
        soql = format_soql(
            "SELECT Id FROM {:literal}{:literal} ORDER BY Id", native, self._where(native, None)
        )
        for page in self._query_pages(soql, what=f"ids {native}"):
            for rec in page:
                yield str(rec["Id"])

    def check(self) -> dict[str, Any]:
        """Call /limits/ and report the instance and the daily API allowance."""
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
        limits = self._call(lambda: self.client.limits(), what="limits")
        daily = limits.get("DailyApiRequests") or {}
        if daily.get("Max") is not None:
            self.budget.observe(SYSTEM, limit=daily.get("Max"), remaining=daily.get("Remaining"))
        return {
            "instance": self.client.sf_instance,
            "api_version": self.client.sf_version,
            "daily_api_max": daily.get("Max"),
            "daily_api_remaining": daily.get("Remaining"),
        }


def _is_cert_failure(exc: BaseException) -> bool:
    """True when an SSLError chain holds a certificate verification failure (fatal);
    other TLS errors (EOF, reset mid-handshake) are transient."""
    import ssl

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        stack.extend([e.__cause__, e.__context__, *(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))])
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    text = str(exc).lower()
    return "certificate_verify_failed" in text or "certificate verify failed" in text
