"""Salesforce merge() over the SOAP API (partner WSDL), strict replay of recorded
envelopes in the documented shapes (tests/fixtures/salesforce/soap_*.xml)."""

from __future__ import annotations

import pytest
import responses
from defusedxml import ElementTree
from responses import matchers

from connectors.base import ErrorCategory, OpKind, RetriableError, WriteOp
from connectors.salesforce_soap import (
    MergeRequest,
    merge_envelope,
    parse_fault,
    parse_merge_response,
    requests_for,
)
from mapping.canonical import ObjectType
from tests.connectors.test_salesforce_support import (
    INSTANCE,
    NEW_TOKEN,
    OLD_TOKEN,
    TOKEN_URL,
    load,
    make_auth,
    make_connector,
    mock,
)

SOAP = f"{INSTANCE}/services/Soap/u/59.0"
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "p": "urn:partner.soap.sforce.com",
      "o": "urn:sobject.partner.soap.sforce.com"}


def _merge_op(master: str, *others: str, native: str = "Account") -> WriteOp:
    ot = ObjectType.ACCOUNT if native == "Account" else ObjectType.CONTACT
    return WriteOp(OpKind.MERGE, ot, key="k", remote_id=master, merge_from=others, native_type=native)


def test_requests_merge_two_records_at_a_time_into_the_same_master() -> None:
    reqs = requests_for("Account", "A", ["B", "C", "A", "D"])
    assert reqs == [MergeRequest("Account", "A", ("B", "C")), MergeRequest("Account", "A", ("D",))]
    with pytest.raises(ValueError, match="one or two records"):
        merge_envelope("t", [MergeRequest("Account", "A", ("B", "C", "D"))])


def test_envelope_carries_session_master_type_and_victims_escaped() -> None:
    xml = merge_envelope("00D!a<b", [MergeRequest("Contact", "003A", ("003B",))])
    root = ElementTree.fromstring(xml)
    assert root.find("s:Header/p:SessionHeader/p:sessionId", NS).text == "00D!a<b"
    req = root.find("s:Body/p:merge/p:request", NS)
    assert req.find("p:masterRecord/o:type", NS).text == "Contact"
    assert req.find("p:masterRecord/o:Id", NS).text == "003A"
    assert [e.text for e in req.findall("p:recordToMergeIds", NS)] == ["003B"]


def test_given_mixed_results_when_merge_then_each_op_gets_its_outcome() -> None:
    conn = make_connector()
    ops = [_merge_op("0015g00000Acc00AAA", "0015g00000Acc00BAA", "0015g00000Acc00CAA", "0015g00000Acc00DAA"),
           _merge_op("0015g00000Acc00EAA", "0015g00000Acc00FAA")]
    with mock() as rsps:
        rsps.add(responses.POST, SOAP, body=load("soap_merge_mixed.xml"), content_type="text/xml",
                 match=[matchers.header_matcher({"SOAPAction": '""', "Content-Type": "text/xml; charset=UTF-8"})])
        results = conn.write(ObjectType.ACCOUNT, ops)
        sent = ElementTree.fromstring(rsps.calls[0].request.body)
    # one call, three requests: A←B,C then A←D (successive, same master), E←F
    requests = sent.findall("s:Body/p:merge/p:request", NS)
    assert [(r.find("p:masterRecord/o:Id", NS).text, [v.text for v in r.findall("p:recordToMergeIds", NS)])
            for r in requests] == [
        ("0015g00000Acc00AAA", ["0015g00000Acc00BAA", "0015g00000Acc00CAA"]),
        ("0015g00000Acc00AAA", ["0015g00000Acc00DAA"]),
        ("0015g00000Acc00EAA", ["0015g00000Acc00FAA"]),
    ]
    assert sent.find("s:Header/p:SessionHeader/p:sessionId", NS).text == OLD_TOKEN
    assert results[0].success and results[0].remote_id == "0015g00000Acc00AAA"
    assert not results[1].success and results[1].category is ErrorCategory.NOT_FOUND
    assert "ENTITY_IS_DELETED" in (results[1].message or "") and "0015g00000Acc00FAA" in (results[1].message or "")


def test_given_expired_session_when_merge_then_token_refreshed_and_call_repeated() -> None:
    conn = make_connector(auth=make_auth())
    with mock() as rsps:
        rsps.add(responses.POST, SOAP, status=500, body=load("soap_fault_invalid_session.xml"),
                 content_type="text/xml")
        rsps.add(responses.POST, TOKEN_URL, json=load("token.json"))
        rsps.add(responses.POST, SOAP, body=load("soap_merge_one.xml"), content_type="text/xml")
        [result] = conn.write(ObjectType.CONTACT, [_merge_op("0035g00000Con00AAA", "0035g00000Con00BAA",
                                                            native="Contact")])
        second = ElementTree.fromstring(rsps.calls[2].request.body)
    assert result.success and result.remote_id == "0035g00000Con00AAA"
    assert second.find("s:Header/p:SessionHeader/p:sessionId", NS).text == NEW_TOKEN


def test_given_server_errors_when_merge_then_retried_then_retriable_error() -> None:
    conn = make_connector()
    with mock() as rsps:
        for _ in range(conn.retry.attempts):
            rsps.add(responses.POST, SOAP, status=503, body="Service Unavailable")
        with pytest.raises(RetriableError, match="merge"):
            conn.write(ObjectType.ACCOUNT, [_merge_op("0015g00000Acc00AAA", "0015g00000Acc00BAA")])


def test_an_opportunity_merge_is_refused_without_a_call() -> None:
    conn = make_connector()
    op = WriteOp(OpKind.MERGE, ObjectType.OPPORTUNITY, key="k", remote_id="006A", merge_from=("006B",),
                 native_type="Opportunity")
    with mock():
        [result] = conn.write(ObjectType.OPPORTUNITY, [op])
    assert not result.success and result.category is ErrorCategory.VALIDATION


def test_parsers_read_the_documented_shapes() -> None:
    fault = parse_fault(load("soap_fault_invalid_session.xml"), 500)
    assert fault.code == "INVALID_SESSION_ID" and "Illegal Session" in fault.message
    results = parse_merge_response(load("soap_merge_mixed.xml"))
    assert [r.success for r in results] == [True, True, False]
    assert results[0].merged == ("0015g00000Acc00BAA", "0015g00000Acc00CAA")
    assert results[0].related == ("0035g00000Con001AAA",)
    assert results[2].errors == (("ENTITY_IS_DELETED", "entity is deleted", ()),)
