"""Salesforce readiness: what ``revsync check`` inspects and ``revsync setup`` provisions.

- API version: the configured one must be offered by the org (``GET /services/data``)
  and be at least ``MIN_API_VERSION`` (sObject Collections upsert, ``created`` flag).
- Access: describe of Account, Contact, Lead and Opportunity; the object createable and
  updateable, every mapped field present (field-level security hides the others) and,
  when revsync writes it, createable/updateable.
- External id: ``Revsync_Id__c`` (Text 36, External ID, Unique, case-sensitive) on the
  four objects, visible and editable. The Metadata API (``readMetadata``) tells a
  missing field from one the integration user cannot see.
- Headroom: ``/limits`` ``DailyApiRequests``.

``setup --apply`` creates the missing fields with ``createMetadata`` (CustomField) and
grants read/edit on them in the integration user's permission set (option
``permission_set``, default ``Revsync_Integration``) with ``upsertMetadata``
(PermissionSet), both through simple-salesforce's ``mdapi`` (zeep over the connector's
own session: same CA bundle, timeouts and API budget).
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_createMetadata.htm
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_permissionset.htm
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from connectors.base import Connector, ConnectorError
from connectors.readiness import FAIL, OK, WARN, Change, Finding
from connectors.salesforce import SalesforceConnector

log = logging.getLogger(__name__)

#: the objects that carry the external-id field (contacts may be created as Leads)
EXTERNAL_ID_OBJECTS = ("Account", "Contact", "Lead", "Opportunity")
EXTERNAL_ID_LENGTH = 36  # a UUID
MIN_API_VERSION = 46.0
DEFAULT_PERMISSION_SET = "Revsync_Integration"
#: below this share of the daily allocation left, check warns; at zero it fails
HEADROOM_WARN = 0.10
#: createMetadata / readMetadata take at most 10 components a call
METADATA_BATCH = 10


class SalesforceReadiness:
    """Checks and provisioning for one Salesforce connection."""

    def __init__(self, connector: SalesforceConnector, *, permission_set: str = DEFAULT_PERMISSION_SET) -> None:
        self.sf = connector
        self.name = connector.connection
        self.field = connector.external_id_field
        self.permission_set = permission_set
        self._mdapi: Any = None
        self._describes: dict[str, dict[str, Any] | None] = {}

    # ------------------------------------------------------------------ helpers

    def _f(self, check: str, level: str, message: str, fixable: bool = False) -> Finding:
        return Finding(self.name, check, level, message, fixable)

    @property
    def mdapi(self) -> Any:
        """simple-salesforce's Metadata API client, sending on the connector's session."""
        if self._mdapi is None:
            md = self.sf.client.mdapi
            # zeep makes its own requests.Session; use ours (CA bundle, timeout, budget)
            md._client.transport.session = self.sf.client.session
            self._mdapi = md
        return self._mdapi

    def _full(self, obj: str) -> str:
        return f"{obj}.{self.field}"

    # ------------------------------------------------------------------ check

    def check(self, mapped: Mapping[str, Sequence[tuple[str, bool]]]) -> list[Finding]:
        """Every finding for this connection (credentials were proven by building it)."""
        out = [self._f("credentials", OK, f"token granted for {self.sf.client.sf_instance}")]
        out.append(self._api_version())
        for obj in EXTERNAL_ID_OBJECTS:
            out.extend(self._access(obj, mapped.get(obj, ())))
        out.extend(self._external_ids())
        out.append(self._headroom())
        return out

    def _api_version(self) -> Finding:
        version = str(self.sf.client.sf_version)
        url = f"https://{self.sf.client.sf_instance}/services/data/"
        try:
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_versions.htm
            resp = self.sf.client.session.get(url, headers=self.sf.client.headers)
            offered = [str(v.get("version")) for v in resp.json()] if resp.status_code == 200 else []
        except (requests.RequestException, ValueError) as exc:
            return self._f("api_version", FAIL, f"cannot list the org's API versions ({type(exc).__name__})")
        if float(version) < MIN_API_VERSION:
            return self._f("api_version", FAIL, f"api_version {version} is older than {MIN_API_VERSION}: "
                           f"set api_version to one of {', '.join(offered[-3:]) or 'the org offers'}")
        if offered and version not in offered:
            return self._f("api_version", FAIL, f"the org does not offer API {version} (newest: {offered[-1]}); "
                           "set the connection's api_version to one it offers")
        return self._f("api_version", OK, f"API v{version} supported (org offers up to v{offered[-1] if offered else '?'})")

    def _describe_body(self, obj: str) -> dict[str, Any] | None:
        """The describe of ``obj`` as the integration user sees it (None: refused)."""
        if obj not in self._describes:
            try:
                # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
                self._describes[obj] = self.sf._call(lambda: self.sf._sobject(obj).describe(),
                                                     what=f"describe {obj}")
            except ConnectorError as exc:
                log.info("%s: describe %s failed: %s", self.name, obj, exc)
                self._describes[obj] = None
        return self._describes[obj]

    def _describe(self, obj: str) -> Mapping[str, Mapping[str, Any]] | None:
        body = self._describe_body(obj)
        return None if body is None else {str(f["name"]): f for f in body.get("fields", [])}

    def _access(self, obj: str, fields: Sequence[tuple[str, bool]]) -> list[Finding]:
        described = self._describe(obj)
        if described is None:
            return [self._f("access", FAIL, f"{obj}: the integration user cannot describe it; "
                            f"give its permission set Read/Create/Edit on {obj}")]
        summary = self._describe_body(obj) or {}
        out: list[Finding] = []
        if summary and not (summary.get("createable") and summary.get("updateable")):
            out.append(self._f("access", FAIL, f"{obj}: the integration user cannot create and edit {obj} "
                               "records; give its permission set Create and Edit on it"))
        hidden = [n for n, _ in fields if n not in described]
        locked = [n for n, writes in fields if writes and n in described
                  and not (described[n].get("createable") or described[n].get("updateable"))]
        if hidden:
            out.append(self._f("access", FAIL, f"{obj}: mapped field(s) not visible to the integration user: "
                               f"{', '.join(hidden)}; grant Read (and Edit) field access in its permission set, "
                               "or unmap them under [mapping]"))
        if locked:
            out.append(self._f("access", FAIL, f"{obj}: mapped field(s) revsync writes are read-only for the "
                               f"integration user: {', '.join(locked)}; grant Edit field access, or set their "
                               "direction to read under [mapping]"))
        if not out:
            out.append(self._f("access", OK, f"{obj}: {len(fields)} mapped field(s) readable, written ones editable"))
        return out

    def external_id_state(self) -> dict[str, str]:
        """Per object: ``ok``, ``missing``, ``hidden`` (no field-level access),
        ``readonly`` (no edit access) or ``flags`` (not External ID + Unique)."""
        states: dict[str, str] = {}
        absent: list[str] = []
        for obj in EXTERNAL_ID_OBJECTS:
            described = self._describe(obj) or {}
            f = described.get(self.field)
            if f is None:
                absent.append(obj)
            elif not (f.get("externalId") and f.get("unique")):
                states[obj] = "flags"
            elif not (f.get("createable") and f.get("updateable")):
                states[obj] = "readonly"
            else:
                states[obj] = "ok"
        if absent:
            existing = self._existing_fields(absent)
            for obj in absent:
                states[obj] = "hidden" if self._full(obj) in existing else "missing"
        return states

    def _existing_fields(self, objects: Sequence[str]) -> set[str]:
        """Full names of the custom fields that exist (readMetadata), visible or not."""
        found: set[str] = set()
        names = [self._full(o) for o in objects]
        for i in range(0, len(names), METADATA_BATCH):
            try:
                got = self.mdapi.CustomField.read(names[i:i + METADATA_BATCH])
            except Exception as exc:  # zeep Fault, transport errors: treat as not found
                log.info("%s: readMetadata CustomField failed: %s", self.name, type(exc).__name__)
                continue
            for rec in got if isinstance(got, list) else [got]:
                full = getattr(rec, "fullName", None)
                if full:
                    found.add(str(full))
        return found

    def _external_ids(self) -> list[Finding]:
        out = []
        field = self.field
        for obj, state in self.external_id_state().items():
            if state == "ok":
                out.append(self._f("external_id", OK, f"{obj}.{field} is an editable External ID, Unique"))
            elif state == "missing":
                out.append(self._f("external_id", FAIL, f"{obj}.{field} does not exist: run `revsync setup --apply` "
                                   f"(Text {EXTERNAL_ID_LENGTH}, External ID, Unique, case-sensitive)", True))
            elif state == "hidden":
                out.append(self._f("external_id", FAIL, f"{obj}.{field} exists but the integration user cannot see "
                                   f"it: run `revsync setup --apply` (grants it in permission set "
                                   f"{self.permission_set})", True))
            elif state == "readonly":
                out.append(self._f("external_id", FAIL, f"{obj}.{field} is read-only for the integration user: "
                                   f"run `revsync setup --apply` (grants Edit in {self.permission_set})", True))
            else:
                out.append(self._f("external_id", FAIL, f"{obj}.{field} is not marked External ID and Unique: "
                                   "edit the field in Setup > Object Manager (setup never changes an existing field)"))
        return out

    def _headroom(self) -> Finding:
        try:
            info = self.sf.check()
        except ConnectorError as exc:
            return self._f("headroom", WARN, f"cannot read /limits ({exc})")
        mx, left = info.get("daily_api_max"), info.get("daily_api_remaining")
        if mx is None or left is None:
            return self._f("headroom", WARN, "/limits has no DailyApiRequests")
        if left <= 0:
            return self._f("headroom", FAIL, f"daily API requests used up (0 of {mx} left); wait for the rolling "
                           "24 h window or raise the org's allocation")
        if left < HEADROOM_WARN * mx:
            return self._f("headroom", WARN, f"only {left} of {mx} daily API requests left; a first sync of a big "
                           "org may run out (lower the budget or sync at night)")
        return self._f("headroom", OK, f"{left} of {mx} daily API requests left")

    # ------------------------------------------------------------------ setup

    def setup(self, *, apply: bool) -> list[Change]:
        """Create the missing external-id fields and grant the integration user access."""
        states = self.external_id_state()
        changes: list[Change] = []
        missing = [o for o, s in states.items() if s == "missing"]
        need_access = [o for o, s in states.items() if s in ("missing", "hidden", "readonly")]
        for obj, s in states.items():
            if s == "ok":
                changes.append(Change(self.name, f"field {self._full(obj)}", "exists"))
            elif s == "flags":
                changes.append(Change(self.name, f"field {self._full(obj)}", "manual",
                                      "exists without External ID + Unique: fix it in Setup"))
        changes.extend(Change(self.name, f"field {self._full(obj)}", "missing" if not apply else "created",
                              f"Text {EXTERNAL_ID_LENGTH}, External ID, Unique, case-sensitive") for obj in missing)
        if need_access:
            what = f"field access in permission set {self.permission_set}"
            detail = "read+edit on " + ", ".join(self._full(o) for o in need_access)
            changes.append(Change(self.name, what, "missing" if not apply else "created", detail))
        else:
            changes.append(Change(self.name, f"field access in permission set {self.permission_set}", "exists"))
        if not apply or not need_access:
            return changes
        failed = self._create_fields(missing)
        changes = [Change(c.connection, c.what, "failed", failed[c.what[6:]]) if c.what[6:] in failed else c
                   for c in changes]
        grant_note = self._grant([o for o in need_access if self._full(o) not in failed])
        if grant_note:
            changes.append(Change(self.name, f"permission set {self.permission_set}", "manual", grant_note))
        self.sf.reset_caches()
        self._describes.clear()
        return changes

    def _create_fields(self, objects: Sequence[str]) -> dict[str, str]:
        """createMetadata CustomField for each object; full name → error (empty when all made)."""
        md = self.mdapi
        fields = [md.CustomField(fullName=self._full(o), label="Revsync Id", type="Text",
                                 length=EXTERNAL_ID_LENGTH, externalId=True, unique=True, caseSensitive=True,
                                 description="Canonical revsync id (a UUID); revsync upserts on it.")
                  for o in objects]
        failed: dict[str, str] = {}
        for i in range(0, len(fields), METADATA_BATCH):
            batch = fields[i:i + METADATA_BATCH]
            try:
                results = md._service.createMetadata(batch, _soapheaders=[md._session_header])
            except Exception as exc:
                for f in batch:
                    failed[str(f.fullName)] = f"createMetadata failed ({type(exc).__name__}: {exc})"
                continue
            for r in results:
                errs = list(getattr(r, "errors", None) or [])
                if not r.success and not any(getattr(e, "statusCode", "") == "DUPLICATE_DEVELOPER_NAME" for e in errs):
                    failed[str(r.fullName)] = "; ".join(f"{e.statusCode}: {e.message}" for e in errs)
        return failed

    def _grant(self, objects: Sequence[str]) -> str:
        """Read+edit on the fields in the permission set (read, merge, upsert); a note
        when the set had to be created (an admin must then assign it)."""
        if not objects:
            return ""
        md = self.mdapi
        try:
            current = md.PermissionSet.read([self.permission_set])
        except Exception as exc:
            return f"cannot read it ({type(exc).__name__}); grant read+edit on the fields by hand"
        existing = getattr(current, "fullName", None)
        perms = {str(p.field): p for p in (getattr(current, "fieldPermissions", None) or [])} if existing else {}
        for obj in objects:
            perms[self._full(obj)] = {"field": self._full(obj), "readable": True, "editable": True}
        ps = md.PermissionSet(fullName=self.permission_set, label=getattr(current, "label", None) or
                              self.permission_set.replace("_", " "), fieldPermissions=list(perms.values()))
        try:
            md.PermissionSet.upsert([ps])
        except Exception as exc:
            return f"upsertMetadata failed ({exc}); grant read+edit on the fields by hand"
        if not existing:
            return ("created; assign it to the integration user (Setup > Users > Permission Set Assignments), "
                    "then run `revsync check`")
        return ""

#: the connection option naming the permission set ``setup --apply`` assigns
PERMISSION_SET_OPTION = "permission_set"


def readiness_for(connector: Connector, *, name: str, options: Mapping[str, Any]) -> SalesforceReadiness:
    """The checker ``Connector.readiness`` builds (``readiness_factory``)."""
    return SalesforceReadiness(
        connector,  # type: ignore[arg-type]
        permission_set=str(options.get(PERMISSION_SET_OPTION) or DEFAULT_PERMISSION_SET),
    )
