"""Salesforce SOAP API (partner WSDL) emulation: ``merge()`` only.

``POST /services/Soap/u/{version}``; the session id travels in the ``SessionHeader``.
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_merge.htm

- Lead, Contact and Account only; a request merges one or two records into its
  master (three in all), at most 200 requests per call, each its own transaction.
- The master keeps its Id and values; the others go to the recycle bin with
  ``MasterRecordId`` set (``queryAll`` shows them); children are re-parented
  (contacts and opportunities of an account, contact roles of a contact).
- Per-request errors come back in the ``MergeResult`` (``success`` false, ``errors``
  with ``statusCode``/``message``); a refused call is a SOAP fault with HTTP 500
  (``sf:INVALID_SESSION_ID``, ``sf:REQUEST_LIMIT_EXCEEDED``, ``sf:UNKNOWN_EXCEPTION``).
- [verify] Status codes for a type the call does not support, a fourth record and a
  master among its own victims (here INVALID_TYPE, LIMIT_EXCEEDED, INVALID_OPERATION);
  field values set on ``masterRecord`` are not applied (revsync never sends any).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from werkzeug.wrappers import Request, Response

from sandbox.core import Fault
from sandbox.salesforce_store import merge_into

if TYPE_CHECKING:
    from sandbox.salesforce_state import SalesforceState

MERGEABLE = ("Account", "Contact", "Lead")
MAX_VICTIMS = 2
MAX_REQUESTS = 200
_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_PARTNER = "urn:partner.soap.sforce.com"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(node: Any, name: str) -> list[Any]:
    return [c for c in node.iter() if _local(c.tag) == name]


def _xml(body: str, status: int = 200) -> Response:
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_ENV}" xmlns="{_PARTNER}" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>",
        status=status, mimetype="text/xml", content_type="text/xml; charset=utf-8",
    )


def fault(code: str, message: str, status: int = 500) -> Response:
    """A SOAP fault (``sf:CODE``) as Salesforce renders one."""
    return _xml(
        f"<soapenv:Fault><faultcode>sf:{escape(code)}</faultcode>"
        f"<faultstring>{escape(code)}: {escape(message)}</faultstring>"
        '<detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault">'
        f"<sf:exceptionCode>{escape(code)}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:UnexpectedErrorFault></detail></soapenv:Fault>",
        status,
    )


def _result(master: str | None, merged: list[str], related: list[str],
            error: tuple[str, str] | None) -> str:
    if error is not None:
        code, message = error
        return (f"<result><errors><message>{escape(message)}</message><statusCode>{escape(code)}"
                f"</statusCode></errors><id>{escape(master or '')}</id><success>false</success></result>")
    return ("<result>" + f"<id>{escape(master or '')}</id>"
            + "".join(f"<mergedRecordIds>{escape(m)}</mergedRecordIds>" for m in merged)
            + "<success>true</success>"
            + "".join(f"<updatedRelatedIds>{escape(r)}</updatedRelatedIds>" for r in related)
            + "</result>")


def handle(emu: SalesforceState, request: Request, fault_: Fault | None) -> Response:
    """``POST /services/Soap/u/{version}``: the ``merge`` call."""
    if request.method != "POST":
        return fault("INVALID_OPERATION", "SOAP requests must be POSTed", 405)
    try:
        root = ElementTree.fromstring(request.get_data())
    except ElementTree.ParseError as exc:
        return fault("INVALID_XML", f"could not parse the request: {exc}")
    sessions = _find(root, "sessionId")
    token = (sessions[0].text or "").strip() if sessions else ""
    if token not in emu.tokens:
        return fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
    if fault_ is not None:
        if fault_.kind == "expired_token":
            emu.tokens.discard(token)
            emu.ctx.stats.fault("salesforce", fault_.kind)
            return fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
        if fault_.kind == "server_error":
            emu.ctx.stats.fault("salesforce", fault_.kind)
            return fault("UNKNOWN_EXCEPTION", "An unexpected error occurred.")
        if fault_.kind == "unavailable":
            emu.ctx.stats.fault("salesforce", fault_.kind)
            return Response("Service Unavailable", status=503, headers={"Retry-After": str(fault_.get("retry_after", 1))})
    if not emu.spend_soap():
        return fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    calls = _find(root, "merge")
    if not calls:
        return fault("INVALID_OPERATION", "the sandbox emulates the SOAP merge() call only")
    requests = [c for c in calls[0] if _local(c.tag) == "request"]
    if len(requests) > MAX_REQUESTS:
        return fault("LIMIT_EXCEEDED", f"Too many requests: {len(requests)} (at most {MAX_REQUESTS})")
    now = emu.now()
    out = []
    for req in requests:
        masters = [c for c in req if _local(c.tag) == "masterRecord"]
        master_node = masters[0] if masters else None
        obj = next((c.text or "" for c in (master_node if master_node is not None else []) if _local(c.tag) == "type"), "")
        master = next((c.text or "" for c in (master_node if master_node is not None else []) if _local(c.tag) == "Id"), "")
        victims = [(c.text or "").strip() for c in req if _local(c.tag) == "recordToMergeIds"]
        out.append(_merge_one(emu, obj, master.strip(), victims, now))
    return _xml(f"<mergeResponse>{''.join(out)}</mergeResponse>")


def _merge_one(emu: SalesforceState, obj: str, master: str, victims: list[str], now: str) -> str:
    if obj not in MERGEABLE:
        return _result(master, [], [], ("INVALID_TYPE", f"merge() does not support {obj or 'this type'}"))
    if not victims:
        return _result(master, [], [], ("REQUIRED_FIELD_MISSING", "recordToMergeIds: at least one record"))
    if len(victims) > MAX_VICTIMS:
        return _result(master, [], [], ("LIMIT_EXCEEDED", "at most three records can be merged at a time"))
    if master in victims or len(set(victims)) != len(victims):
        return _result(master, [], [], ("INVALID_OPERATION", "a record cannot be merged with itself"))
    records = emu.org.records[obj]
    for rid in (master, *victims):
        rec = records.get(rid)
        if rec is None:
            return _result(master, [], [], ("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {rid}"))
        if rec.get("IsDeleted"):
            return _result(master, [], [], ("ENTITY_IS_DELETED", f"entity is deleted: {rid}"))
    related: list[str] = []
    for victim in victims:
        related.extend(merge_into(emu.org, obj, master, victim, now))
    emu.ctx.stats.written("salesforce", 1 + len(victims))
    return _result(master, victims, related, None)
