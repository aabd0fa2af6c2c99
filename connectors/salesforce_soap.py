"""Salesforce ``merge()``: the one call revsync needs that exists only in the SOAP API.

simple-salesforce speaks REST (and SOAP only to log in), so the envelope is built here
and sent on the client's own session (same TLS, timeout, call metering and token).
Partner WSDL, ``POST {instance}/services/Soap/u/{version}``:
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_merge.htm

- A ``MergeRequest`` is a master record plus at most two records to merge into it
  (``MAX_VICTIMS``); more records are merged by successive requests with the same
  master. At most ``MAX_REQUESTS`` requests per call, each its own transaction.
- Each ``MergeResult`` has ``success``, ``id`` (the master), ``mergedRecordIds``,
  ``updatedRelatedIds`` (re-parented children) and ``errors``
  (``statusCode``/``message``/``fields``).
- A refused call is a SOAP fault (HTTP 500): ``faultcode`` ``sf:INVALID_SESSION_ID``,
  ``sf:REQUEST_LIMIT_EXCEEDED`` …
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree

#: records merged into the master per MergeRequest (three records in all)
MAX_VICTIMS = 2
#: MergeRequests per SOAP call
MAX_REQUESTS = 200
MERGEABLE = frozenset({"Account", "Contact", "Lead"})

_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_PARTNER = "urn:partner.soap.sforce.com"
_SOBJECT = "urn:sobject.partner.soap.sforce.com"


@dataclass(frozen=True)
class MergeRequest:
    native: str
    master: str
    victims: tuple[str, ...]


@dataclass(frozen=True)
class MergeResult:
    success: bool
    master: str | None
    merged: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    # (statusCode, message, fields)
    errors: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default_factory=tuple)


class SoapFault(Exception):
    """A refused SOAP call: ``code`` without its ``sf:`` prefix."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def requests_for(native: str, master: str, victims: Sequence[str]) -> list[MergeRequest]:
    """Successive requests merging ``victims`` into ``master``, two at a time."""
    vs = [v for v in victims if v != master]
    return [MergeRequest(native, master, tuple(vs[i : i + MAX_VICTIMS])) for i in range(0, len(vs), MAX_VICTIMS)]


def merge_envelope(session_id: str, requests: Sequence[MergeRequest]) -> str:
    """The ``merge`` call's SOAP envelope."""
    if len(requests) > MAX_REQUESTS:
        raise ValueError(f"at most {MAX_REQUESTS} merge requests per call")
    body = []
    for req in requests:
        if len(req.victims) > MAX_VICTIMS or not req.victims:
            raise ValueError("a merge request merges one or two records into its master")
        victims = "".join(f"<urn:recordToMergeIds>{escape(v)}</urn:recordToMergeIds>" for v in req.victims)
        body.append(
            "<urn:request><urn:masterRecord>"
            f"<urn1:type>{escape(req.native)}</urn1:type><urn1:Id>{escape(req.master)}</urn1:Id>"
            f"</urn:masterRecord>{victims}</urn:request>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_ENV}" xmlns:urn="{_PARTNER}" xmlns:urn1="{_SOBJECT}">'
        f"<soapenv:Header><urn:SessionHeader><urn:sessionId>{escape(session_id)}</urn:sessionId>"
        "</urn:SessionHeader></soapenv:Header>"
        f"<soapenv:Body><urn:merge>{''.join(body)}</urn:merge></soapenv:Body></soapenv:Envelope>"
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(node: Any, name: str) -> list[Any]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: Any, name: str) -> str | None:
    found = _children(node, name)
    return (found[0].text or "") if found else None


def parse_fault(text: str, status: int) -> SoapFault:
    """The SOAP fault of a refused call (``sf:`` prefix dropped)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return SoapFault("", f"HTTP {status}: {text[:200]}", status)
    for node in root.iter():
        if _local(node.tag) == "Fault":
            code = (_text(node, "faultcode") or "").rpartition(":")[2]
            return SoapFault(code, _text(node, "faultstring") or "", status)
    return SoapFault("", f"HTTP {status} without a SOAP fault", status)


def parse_merge_response(text: str) -> list[MergeResult]:
    """The ``MergeResult`` list of a ``mergeResponse``, in request order."""
    root = ElementTree.fromstring(text)
    out: list[MergeResult] = []
    for node in root.iter():
        if _local(node.tag) != "result":
            continue
        errors = tuple(
            (_text(e, "statusCode") or "", _text(e, "message") or "",
             tuple((f.text or "") for f in _children(e, "fields")))
            for e in _children(node, "errors")
        )
        out.append(MergeResult(
            success=(_text(node, "success") or "").strip() == "true",
            master=_text(node, "id") or None,
            merged=tuple((c.text or "") for c in _children(node, "mergedRecordIds")),
            related=tuple((c.text or "") for c in _children(node, "updatedRelatedIds")),
            errors=errors,
        ))
    return out
