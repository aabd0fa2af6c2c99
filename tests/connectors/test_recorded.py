"""The three connectors replayed strictly from traffic recorded against the sandbox.

The cassettes (``tests/cassettes``) are the real clients' HTTP exchanges, recorded by
``python -m tests.record`` and scrubbed (``tests/recording.py``). Each test drives the
same scenario as the recording and checks the connector's result against what the
*server* held when it was recorded (``<name>.truth.json``: the emulator's own counts),
so the figures do not come from the connector under test. Nothing here touches the
network: a request the recording does not hold fails the test.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any
from unittest.mock import ANY
from urllib.parse import parse_qs, urlsplit

import pytest
from vcr.errors import CannotOverwriteExistingCassetteException

from connectors.base import RemoteRecord, WriteResult
from mapping.canonical import ObjectType
from tests.record import NEW_KEYS, OPTIONS, RENAMED, SCENARIOS, replay_connector
from tests.recording import CASSETTES, PLACEHOLDERS, SCRUBBED, Scrubber, replay

SANDBOX_RECORDINGS = (CASSETTES / "salesforce_read_leads.truth.json").exists()


def truth(name: str) -> Mapping[str, Any]:
    """What the server held when ``name`` was recorded (the emulator's own store).

    A real org's recording (``REVSYNC_CASSETTES``) has none: every fact is then
    ``mock.ANY``, so only the structural checks bind.
    """
    path = CASSETTES / f"{name}.truth.json"
    if not path.exists():
        return defaultdict(lambda: ANY)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def run(name: str) -> tuple[Any, Any]:
    """Replay scenario ``name``; (its result, the cassette)."""
    system, scenario = SCENARIOS[name]
    with replay(name) as cassette:
        result = scenario(replay_connector(system))
    return result, cassette


def ordered(records: list[RemoteRecord]) -> bool:
    keys = [(r.modstamp, r.remote_id) for r in records]
    return keys == sorted(keys)  # type: ignore[type-var]


# --------------------------------------------------------------------------- salesforce


def test_salesforce_contacts_come_page_by_page_following_the_relative_next_url() -> None:
    system, _ = SCENARIOS["salesforce_read_contacts_paged"]
    with replay("salesforce_read_contacts_paged") as cassette:
        pages = replay_connector(system).read_pages(ObjectType.CONTACT)
        first = next(pages)
        fetched_for_first = cassette.play_count
        rest = list(pages)
    # lazy: the second page was requested only when asked for
    assert fetched_for_first == len(cassette) - 1
    sizes = [len(p) for p in [first, *rest]]
    assert len(sizes) >= 2 and sizes[0] == OPTIONS["salesforce"]["page_size"]
    records = [r for p in [first, *rest] for r in p]
    assert len(records) == len({r.remote_id for r in records}) == truth("salesforce_read_contacts_paged")["Contact"]
    assert ordered(records)  # ORDER BY SystemModstamp, Id
    assert all(r.native_type == "Contact" and r.object_type is ObjectType.CONTACT for r in records)
    assert all("attributes" not in r.fields for r in records)
    owned = [r.fields["_owner_email"] for r in records if r.fields.get("OwnerId")]
    assert owned and all(e and "@" in e for e in owned)  # owners resolved through one User query
    assert all(r.associations.get("account") == (r.fields["AccountId"],) for r in records if r.fields.get("AccountId"))
    # queryMore went to the instance host + the relative nextRecordsUrl, batch size as a hint
    more = cassette.requests[-1]
    assert more.uri.startswith(f"{PLACEHOLDERS['salesforce']}/services/data/v59.0/query/01g")
    query = next(r for r in cassette.requests if "q=SELECT" in r.uri and "FROM+Contact" in r.uri)
    assert query.headers["Sforce-Query-Options"] == "batchSize=200"


def test_salesforce_incremental_read_has_an_inclusive_lower_bound() -> None:
    (everything, since, newer), cassette = run("salesforce_read_accounts_since")
    assert len(everything) == truth("salesforce_read_accounts_since")["Account"]
    expected = {r.remote_id for r in everything if r.modstamp and r.modstamp >= since.modstamp}
    assert {r.remote_id for r in newer} == expected and 0 < len(expected) < len(everything)
    assert any(r.modstamp == since.modstamp for r in newer)  # the boundary record itself
    soql = parse_qs(urlsplit(cassette.requests[-1].uri).query)["q"][0]
    assert f"SystemModstamp >= {since.modstamp.isoformat()}" in soql and soql.endswith("ORDER BY SystemModstamp, Id")


def test_salesforce_leads_are_read_as_contacts_only_while_unconverted() -> None:
    leads, cassette = run("salesforce_read_leads")
    assert sorted(r.remote_id for r in leads) == truth("salesforce_read_leads")["unconverted_leads"]
    assert all((r.native_type, r.object_type) == ("Lead", ObjectType.CONTACT) for r in leads)
    assert all(r.fields["IsConverted"] is False for r in leads)
    soql = next(parse_qs(urlsplit(r.uri).query)["q"][0] for r in cassette.requests if "FROM+Lead" in r.uri)
    assert " FROM Lead WHERE IsConverted = false " in soql


def test_salesforce_opportunities_carry_their_account_and_contact_roles() -> None:
    opps, cassette = run("salesforce_read_opportunities")
    facts = truth("salesforce_read_opportunities")
    assert len(opps) == len({o.remote_id for o in opps}) == facts["Opportunity"]
    roles = {o.remote_id: sorted(o.associations.get("contact", ())) for o in opps if o.associations.get("contact")}
    assert roles == facts["contact_roles"]  # every role the server holds, on its opportunity
    assert all(o.associations.get("account") == (o.fields["AccountId"],) for o in opps if o.fields.get("AccountId"))
    ocr = [parse_qs(urlsplit(r.uri).query)["q"][0] for r in cassette.requests if "OpportunityContactRole" in r.uri]
    assert ocr and all("WHERE OpportunityId IN (" in q for q in ocr)


def test_salesforce_list_ids_asks_for_ids_only() -> None:
    ids, cassette = run("salesforce_list_account_ids")
    assert sorted(ids) == truth("salesforce_list_account_ids")["account_ids"]
    soql = [parse_qs(urlsplit(r.uri).query)["q"][0] for r in cassette.requests if "q=" in r.uri]
    assert soql == ["SELECT Id FROM Account ORDER BY Id"]


# --------------------------------------------------------------------------- hubspot


def test_hubspot_contacts_list_pages_then_one_association_read_and_owners() -> None:
    pages, cassette = run("hubspot_read_contacts_paged")
    records = [r for p in pages for r in p]
    assert len(pages) >= 3 and all(len(p) <= 100 for p in pages)
    assert len(records) == len({r.remote_id for r in records}) == truth("hubspot_read_contacts_paged")["contacts"]
    assert all(r.system == "hubspot" and r.native_type == "contacts" and r.modstamp for r in records)
    # every list page after the first follows the previous page's `after` cursor
    lists = [parse_qs(urlsplit(r.uri).query) for r in cassette.requests if urlsplit(r.uri).path == "/crm/v3/objects/contacts"]
    assert "after" not in lists[0] and all("after" in q for q in lists[1:])
    assert {"email", "lastmodifieddate"} <= set(lists[0]["properties"])
    # the ids of all pages fit one association read (at most 1,000 inputs)
    assoc = [r for r in cassette.requests if r.uri.endswith("/associations/contacts/companies/batch/read")]
    assert len(assoc) == 1
    assert len(json.loads(assoc[0].body)["inputs"]) == len(records)
    assert sum(1 for r in records if r.associations.get("account")) > len(records) // 2
    assert any(r.fields.get("_owner_email") for r in records)


def test_hubspot_incremental_read_searches_from_the_cursor() -> None:
    (everything, since, newer), cassette = run("hubspot_read_companies_since")
    assert len(everything) == truth("hubspot_read_companies_since")["companies"]
    expected = {r.remote_id for r in everything if r.modstamp and r.modstamp >= since.modstamp}
    assert {r.remote_id for r in newer} == expected and 0 < len(expected) < len(everything)
    search = json.loads(cassette.requests[-1].body)
    assert cassette.requests[-1].uri.endswith("/crm/v3/objects/companies/search")
    (flt,) = search["filterGroups"][0]["filters"]
    assert flt["propertyName"] == "hs_lastmodifieddate" and flt["operator"] == "GTE"
    assert int(flt["value"]) <= int(since.modstamp.timestamp() * 1000)


# --------------------------------------------------------------------------- planhat


def test_planhat_companies_page_with_limit_and_offset_each_company_once() -> None:
    pages, cassette = run("planhat_read_companies_paged")
    records = [r for p in pages for r in p]
    assert len(pages) >= 3 and all(len(p) <= OPTIONS["planhat"]["page_size"] for p in pages)
    assert len(records) == len({r.remote_id for r in records}) == truth("planhat_read_companies_paged")["companies"]
    offsets = [int(parse_qs(urlsplit(r.uri).query)["offset"][0]) for r in cassette.requests
               if urlsplit(r.uri).path == "/companies"]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert all(r.modstamp and r.native_type == "companies" for r in records)
    assert any(r.fields.get("_owner_email") for r in records)


def test_hubspot_deals_carry_company_and_contact_associations() -> None:
    deals, cassette = run("hubspot_read_deals")
    assert len(deals) == len({d.remote_id for d in deals}) == truth("hubspot_read_deals")["deals"]
    assert all(d.object_type is ObjectType.OPPORTUNITY and d.native_type == "deals" for d in deals)
    assert sum(1 for d in deals if d.associations.get("account")) > len(deals) // 2
    assert any(d.associations.get("contact") for d in deals)
    paths = [urlsplit(r.uri).path for r in cassette.requests]
    assert "/crm/v4/associations/deals/companies/batch/read" in paths
    assert "/crm/v4/associations/deals/contacts/batch/read" in paths


def test_planhat_endusers_belong_to_their_company() -> None:
    users, _ = run("planhat_read_endusers")
    expected = truth("planhat_read_endusers")["enduser_company"]
    assert {u.remote_id: u.associations.get("account", (None,))[0] for u in users} == expected
    assert all(u.object_type is ObjectType.CONTACT and "_owner_email" not in u.fields for u in users)


def test_planhat_list_ids_selects_the_id_only() -> None:
    ids, cassette = run("planhat_list_company_ids")
    assert sorted(ids) == truth("planhat_list_company_ids")["company_ids"]
    assert all(parse_qs(urlsplit(r.uri).query)["select"] == ["_id"] for r in cassette.requests)


# --------------------------------------------------------------------------- writes, all three


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "planhat"])
def test_upserts_by_external_id_create_then_update_and_read_back(system: str) -> None:
    name = f"{system}_upsert_{'accounts' if system == 'salesforce' else 'companies'}"
    (results, after), cassette = run(name)
    results = list(results)
    assert all(isinstance(r, WriteResult) for r in results)
    assert [r.success for r in results] == [True, True, True], [r.message for r in results]
    assert [r.created for r in results] == [True, True, False]
    assert all(r.remote_id for r in results) and len({r.remote_id for r in results}) == 3
    by_id = {r.remote_id: r for r in after}
    # the server's count grew by the two creates, and the read-back holds every write
    assert len(after) == truth(name)["Account" if system == "salesforce" else "companies"]
    name_field = "Name" if system == "salesforce" else "name"
    renamed = RENAMED[system][name_field]
    assert by_id[results[2].remote_id].fields[name_field] == renamed
    assert by_id[results[1].remote_id].fields[name_field] == renamed
    assert by_id[results[0].remote_id].fields[name_field] == "Recorded Widgets Ltd"
    # the creates carried the revsync id as the external id
    sent = " ".join(str(r.body) for r in cassette.requests if r.method in ("POST", "PATCH", "PUT"))
    assert all(k in sent for k in NEW_KEYS)


# --------------------------------------------------------------------------- strictness and scrubbing


def test_no_socket_opens_during_a_replay() -> None:
    import requests

    with pytest.raises(AssertionError, match="network access during a replay"):
        requests.get("https://127.0.0.1:9/", timeout=1)


def test_a_request_the_recording_does_not_hold_fails() -> None:
    with pytest.raises(CannotOverwriteExistingCassetteException), replay("planhat_read_companies_paged"):
        list(replay_connector("planhat").read(ObjectType.CONTACT))  # endusers were never recorded


def test_a_recorded_exchange_never_requested_fails() -> None:
    with pytest.raises(AssertionError, match="never requested"), replay("planhat_read_companies_paged"):
        pages = replay_connector("planhat").read_pages(ObjectType.ACCOUNT)
        next(pages)  # stop after the first page


@pytest.mark.skipif(not SANDBOX_RECORDINGS, reason="a real org's recording: its secrets are not known here")
def test_cassettes_hold_no_secret_no_local_host_and_no_auth_header() -> None:
    from sandbox.server import make_credentials

    secrets = [v for d in make_credentials(11).values() for v in d.values() if isinstance(v, str) and len(v) >= 8]
    cassettes = sorted(CASSETTES.glob("*.yaml"))
    assert len(cassettes) == len(SCENARIOS)
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        assert not [s for s in secrets if s in text], path.name
        assert "127.0.0.1" not in text and "localhost" not in text, path.name
        assert "Authorization" not in text and "Bearer " not in text, path.name


def test_scrubber_on_a_real_org_token_reply_and_form() -> None:
    """Shapes from Salesforce's OAuth docs, as a real org answers them."""

    class Req:
        def __init__(self) -> None:
            self.uri = "https://login.salesforce.com/services/oauth2/token"
            self.headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer x"}
            self.body: Any = (b"grant_type=refresh_token&client_id=3MVG9real&client_secret=ABCD1234"
                              b"&refresh_token=5Aep861real")

    # the config names only the login host; the org's instance is learnt from the token reply
    s = Scrubber({"https://login.salesforce.com": PLACEHOLDERS["salesforce"]})
    req = s.request(Req())
    assert req.uri == f"{PLACEHOLDERS['salesforce']}/services/oauth2/token"
    assert "Authorization" not in req.headers
    assert parse_qs(req.body.decode()) == {"grant_type": ["refresh_token"], "client_id": [SCRUBBED],
                                           "client_secret": [SCRUBBED], "refresh_token": [SCRUBBED]}
    reply = {
        "access_token": "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog.39AsX.LVpxezPwuX5VAIrrbbHMuol7P",
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS",
        "token_type": "Bearer", "issued_at": "1278448101416", "signature": "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",
    }
    out = s.response({"status": {"code": 200}, "headers": {"Content-Type": ["application/json"], "Set-Cookie": ["sid=1"]},
                      "body": {"string": json.dumps(reply).encode()}})
    body = json.loads(out["body"]["string"])
    assert body == {"access_token": SCRUBBED, "instance_url": PLACEHOLDERS["salesforce"], "id": SCRUBBED,
                    "token_type": "Bearer", "issued_at": "1278448101416", "signature": SCRUBBED}
    assert "Set-Cookie" not in out["headers"]
    later = s.text("https://acme.my.salesforce.com/services/data/v59.0/query/01gRO0000016PIAYA2-2000")
    assert later == f"{PLACEHOLDERS['salesforce']}/services/data/v59.0/query/01gRO0000016PIAYA2-2000"
    # an org id anywhere else in a body is replaced too
    assert "00Dxx0000001gPL" not in s.text("see /id/00Dxx0000001gPLEAY/ for the org")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Replays never open a socket: a connection attempt fails the test."""
    import socket

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError(f"network access during a replay: {a!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield

