"""Salesforce Metadata API (SOAP) emulation: CustomField and PermissionSet, and the
field-level security that decides what describe shows the API user.

``POST /services/Soap/m/{version}``, the session id in the ``SessionHeader``, calls
``createMetadata``, ``readMetadata``, ``upsertMetadata`` and ``updateMetadata``.
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_createMetadata.htm
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_readMetadata.htm
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm

- ``CustomField``: a Text field (``length``, ``externalId``, ``unique``,
  ``caseSensitive``) on a standard object the sandbox serves. Creating one that exists
  is a ``DUPLICATE_DEVELOPER_NAME`` error in its ``SaveResult``.
- A new custom field is visible to nobody until a permission set assigned to the
  user grants it (``fieldPermissions``: ``readable``/``editable``), as in an org where
  the integration user has no "View All Fields": describe, SOQL and DML then see it
  (updateable only when ``editable``).
- ``readMetadata`` of a name that does not exist returns an empty record (no
  ``fullName``), as Salesforce does.
- ``PermissionSet`` upsert/update merges ``fieldPermissions`` by field (entries not
  sent are kept) [verify: Salesforce documents additive permission deploys for
  profiles; revsync always sends the full list it read, so either reading works].
- The sandbox's API user holds the permission sets in ``MetadataState.assigned``;
  the fresh-org mode starts with ``Revsync_Integration`` assigned and empty (the
  README's "create the integration user's permission set" step already done).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from werkzeug.wrappers import Request, Response

from connectors.salesforce_schema import SALESFORCE
from connectors.schema import FieldSpec
from sandbox.core import Fault

if TYPE_CHECKING:
    from sandbox.salesforce import SalesforceEmulator

_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_META = "http://soap.sforce.com/2006/04/metadata"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: createMetadata / readMetadata take at most 10 components of one type per call.
MAX_COMPONENTS = 10
#: the permission set the sandbox's API user holds in fresh-org mode
INTEGRATION_PERMISSION_SET = "Revsync_Integration"
#: fields the fresh-org mode removes (and the Metadata API can bring back)
FRESH_ORG_FIELDS = tuple(
    f"{obj}.{f.name}" for obj, fields in SALESFORCE.items() for f in fields
    if f.custom and f.external_id
)


@dataclass
class MetadataState:
    """Custom fields, permission sets and the API user's assignments of one org."""

    custom_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # fullName → attributes
    permission_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → {label, fields}
    assigned: set[str] = field(default_factory=set)
    #: fields whose visibility follows field-level security (the others: always visible)
    governed: set[str] = field(default_factory=set)
    #: the schema spec of each governed field as first described
    specs: dict[str, FieldSpec] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[Any, MetadataState] = weakref.WeakKeyDictionary()


def state(emu: SalesforceEmulator) -> MetadataState:
    """The metadata of ``emu``'s org (built from its schema on first use)."""
    st = _STATES.get(emu)
    if st is None:
        st = MetadataState()
        for obj, specs in emu.org.schema.items():
            for spec in specs.values():
                if spec.custom:
                    st.custom_fields[f"{obj}.{spec.name}"] = _attrs_of(spec)
        _STATES[emu] = st
    return st


def _attrs_of(spec: FieldSpec) -> dict[str, Any]:
    return {"label": spec.label or spec.name, "type": "Text" if spec.type == "string" else spec.type,
            "length": spec.length, "externalId": spec.external_id, "unique": spec.unique,
            "caseSensitive": spec.unique and spec.external_id}


def make_fresh(emu: SalesforceEmulator) -> None:
    """Fresh-org mode: the external-id fields do not exist; the integration user holds
    an empty ``Revsync_Integration`` permission set."""
    with emu.lock:
        st = state(emu)
        for full in FRESH_ORG_FIELDS:
            obj, _, name = full.partition(".")
            spec = emu.org.schema[obj].pop(name.lower(), None)
            if spec is not None:
                st.specs[full] = spec
            st.custom_fields.pop(full, None)
            st.governed.add(full)
        st.permission_sets.setdefault(INTEGRATION_PERMISSION_SET,
                                      {"label": "Revsync integration", "fields": {}})
        st.assigned.add(INTEGRATION_PERMISSION_SET)


def _access(st: MetadataState, full: str) -> tuple[bool, bool]:
    readable = editable = False
    for name in st.assigned:
        perm = st.permission_sets.get(name, {}).get("fields", {}).get(full)
        if perm:
            readable = readable or perm[0]
            editable = editable or perm[1]
    return readable, editable


def refresh_visibility(emu: SalesforceEmulator) -> None:
    """Show each governed field in describe/SOQL/DML as field-level security allows."""
    st = state(emu)
    for full in st.governed:
        obj, _, name = full.partition(".")
        attrs = st.custom_fields.get(full)
        readable, editable = _access(st, full)
        if attrs is None or not readable:
            emu.org.schema[obj].pop(name.lower(), None)
            continue
        base = st.specs.get(full) or FieldSpec(name=name, type="string", custom=True)
        emu.org.schema[obj][name.lower()] = replace(
            base, label=str(attrs.get("label") or name), length=int(attrs.get("length") or 255),
            unique=bool(attrs.get("unique")), external_id=bool(attrs.get("externalId")),
            updateable=editable, custom=True,
        )


# ---------------------------------------------------------------------------- SOAP


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(node: Any, name: str) -> list[Any]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: Any, name: str) -> str | None:
    found = _children(node, name)
    return (found[0].text or "").strip() if found else None


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _envelope(body: str, status: int = 200) -> Response:
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_ENV}" xmlns="{_META}" xmlns:xsi="{_XSI}">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>",
        status=status, mimetype="text/xml", content_type="text/xml; charset=utf-8",
    )


def fault(code: str, message: str, status: int = 500) -> Response:
    """A SOAP fault as the Metadata API renders one."""
    return _envelope(
        f"<soapenv:Fault><faultcode>sf:{escape(code)}</faultcode>"
        f"<faultstring>{escape(code)}: {escape(message)}</faultstring></soapenv:Fault>",
        status,
    )


def _save_result(full: str, error: tuple[str, str] | None, *, created: bool | None = None) -> str:
    out = "<result>"
    if created is not None:
        out += f"<created>{'true' if created else 'false'}</created>"
    if error is not None:
        out += (f"<errors><message>{escape(error[1])}</message>"
                f"<statusCode>{escape(error[0])}</statusCode></errors>")
    return out + f"<fullName>{escape(full)}</fullName><success>{'false' if error else 'true'}</success></result>"


def handle(emu: SalesforceEmulator, request: Request, fault_: Fault | None) -> Response:
    """``POST /services/Soap/m/{version}``."""
    if request.method != "POST":
        return fault("INVALID_OPERATION", "SOAP requests must be POSTed", 405)
    try:
        root = ElementTree.fromstring(request.get_data())
    except ElementTree.ParseError as exc:
        return fault("INVALID_XML", f"could not parse the request: {exc}")
    sessions = [c for c in root.iter() if _local(c.tag) == "sessionId"]
    token = (sessions[0].text or "").strip() if sessions else ""
    if token not in emu.tokens:
        return fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
    if fault_ is not None and fault_.kind in ("server_error", "unavailable"):
        emu.ctx.stats.fault("salesforce", fault_.kind)
        return fault("UNKNOWN_EXCEPTION", "An unexpected error occurred.")
    if not emu.spend_soap():
        return fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    bodies = [c for c in root if _local(c.tag) == "Body"]
    call = next(iter(bodies[0]), None) if bodies else None
    if call is None:
        return fault("INVALID_OPERATION", "empty SOAP body")
    op = _local(call.tag)
    st = state(emu)
    if op == "readMetadata":
        return _read(emu, st, call)
    if op in ("createMetadata", "upsertMetadata", "updateMetadata"):
        items = _children(call, "metadata")
        if len(items) > MAX_COMPONENTS:
            return fault("LIMIT_EXCEEDED", f"at most {MAX_COMPONENTS} components per call")
        results = [_save(st, op, item) for item in items]
        refresh_visibility(emu)
        return _envelope(f"<{op}Response>{''.join(results)}</{op}Response>")
    return fault("INVALID_OPERATION", f"the sandbox does not emulate the Metadata API call {op}")


def _type_of(item: Any) -> str:
    return str(item.get(f"{{{_XSI}}}type") or "").rpartition(":")[2]


def _save(st: MetadataState, op: str, item: Any) -> str:
    kind = _type_of(item)
    full = _text(item, "fullName") or ""
    upsert = op == "upsertMetadata"
    if kind == "CustomField":
        obj, dot, name = full.partition(".")
        if not dot or obj not in SALESFORCE or not name.endswith("__c"):
            return _save_result(full, ("INVALID_CROSS_REFERENCE_KEY", f"invalid field name {full!r}"))
        exists = full in st.custom_fields
        if op == "createMetadata" and exists:
            return _save_result(full, ("DUPLICATE_DEVELOPER_NAME",
                                       f"There is already a field named {name[:-3]} on {obj}."))
        if op == "updateMetadata" and not exists:
            return _save_result(full, ("INVALID_CROSS_REFERENCE_KEY", f"no CustomField named {full}"))
        ftype = _text(item, "type") or ""
        if ftype != "Text":
            return _save_result(full, ("FIELD_INTEGRITY_EXCEPTION",
                                       "the sandbox creates Text custom fields only"))
        length = int(_text(item, "length") or 0)
        if not 1 <= length <= 255:
            return _save_result(full, ("FIELD_INTEGRITY_EXCEPTION", "Length: value outside of valid range"))
        st.custom_fields[full] = {
            "label": _text(item, "label") or name, "type": ftype, "length": length,
            "externalId": _bool(_text(item, "externalId")), "unique": _bool(_text(item, "unique")),
            "caseSensitive": _bool(_text(item, "caseSensitive")),
        }
        st.governed.add(full)
        return _save_result(full, None, created=not exists if upsert else None)
    if kind == "PermissionSet":
        exists = full in st.permission_sets
        if op == "createMetadata" and exists:
            return _save_result(full, ("DUPLICATE_DEVELOPER_NAME", f"A permission set named {full} exists"))
        if op == "updateMetadata" and not exists:
            return _save_result(full, ("INVALID_CROSS_REFERENCE_KEY", f"no PermissionSet named {full}"))
        ps = st.permission_sets.setdefault(full, {"label": full, "fields": {}})
        ps["label"] = _text(item, "label") or ps["label"]
        for fp in _children(item, "fieldPermissions"):
            target = _text(fp, "field") or ""
            if target not in st.custom_fields and target.partition(".")[0] not in SALESFORCE:
                return _save_result(full, ("INVALID_CROSS_REFERENCE_KEY", f"no such field {target}"))
            ps["fields"][target] = (_bool(_text(fp, "readable")), _bool(_text(fp, "editable")))
        return _save_result(full, None, created=not exists if upsert else None)
    return _save_result(full, ("INVALID_TYPE", f"the sandbox does not emulate metadata type {kind or '?'}"))


def _read(emu: SalesforceEmulator, st: MetadataState, call: Any) -> Response:
    kind = _text(call, "type") or ""
    names = [(c.text or "").strip() for c in _children(call, "fullNames")]
    if len(names) > MAX_COMPONENTS:
        return fault("LIMIT_EXCEEDED", f"at most {MAX_COMPONENTS} components per call")
    records = []
    for full in names:
        if kind == "CustomField" and full in st.custom_fields:
            a = st.custom_fields[full]
            records.append(
                f'<records xsi:type="CustomField"><fullName>{escape(full)}</fullName>'
                f"<caseSensitive>{str(a['caseSensitive']).lower()}</caseSensitive>"
                f"<externalId>{str(a['externalId']).lower()}</externalId>"
                f"<label>{escape(str(a['label']))}</label><length>{int(a['length'])}</length>"
                f"<type>{escape(str(a['type']))}</type><unique>{str(a['unique']).lower()}</unique></records>"
            )
        elif kind == "PermissionSet" and full in st.permission_sets:
            ps = st.permission_sets[full]
            perms = "".join(
                f"<fieldPermissions><editable>{str(e).lower()}</editable><field>{escape(f)}</field>"
                f"<readable>{str(r).lower()}</readable></fieldPermissions>"
                for f, (r, e) in sorted(ps["fields"].items())
            )
            records.append(f'<records xsi:type="PermissionSet"><fullName>{escape(full)}</fullName>'
                           f"{perms}<label>{escape(str(ps['label']))}</label></records>")
        elif kind in ("CustomField", "PermissionSet"):
            records.append(f'<records xsi:type="{kind}"/>')  # a name that does not exist
        else:
            return fault("INVALID_TYPE", f"the sandbox does not emulate metadata type {kind or '?'}")
    return _envelope(f"<readMetadataResponse><result>{''.join(records)}</result></readMetadataResponse>")
