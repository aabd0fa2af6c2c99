"""End-to-end: Planhat's parent company and parent removal, through the sandbox with
the real clients (simple-salesforce, hubspot-api-client, requests for Planhat).

Planhat company groups: a company names its parent by the parent's Planhat ``_id``
(``connectors.planhat.PARENT_FIELD``; see docs/hierarchies.md for what Planhat's docs
say and do not say). The steps build on each other in one sandbox and one store:

1. a six-level group made in Planhat reaches Salesforce (``ParentId``) and HubSpot
   (type-14 associations) with each system's own ids, and ``revsync explain``'s chain;
2. re-parenting made in Planhat moves the account (and its subtree) everywhere;
3. re-parenting made in Salesforce moves the Planhat company;
4. a parent removed in Salesforce (``ParentId`` null) is removed in HubSpot and
   Planhat, although ``never_blank`` is on (a removal is a change, not a blank);
5. a parent removed in HubSpot (association archived) is removed in Salesforce and
   Planhat, and one removed in Planhat (its parent field null) in the CRMs; a later
   cycle writes nothing;
6. Planhat refuses a loop and an unknown parent itself; a Planhat parent that was
   deleted is refused by revsync (one ledger entry, never written).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from sqlalchemy import select

from connectors.planhat import PARENT_FIELD
from sandbox.server import Sandbox
from sync import hierarchy
from sync import store as st
from tests.integration import e2e_support as E
from tests.integration.test_sandbox_hubspot import client as hs_client
from tests.integration.test_sandbox_planhat import client as ph_client
from tests.integration.test_sandbox_salesforce import client as sf_client

CHILD_TO_PARENT = 14


class World:
    def __init__(self, world: E.World, sf: Any, hs: Any, ph: requests.Session, ph_url: str,
                 chain: list[str], north: str) -> None:
        self.world, self.sf, self.hs, self.ph, self.ph_url = world, sf, hs, ph, ph_url
        self.chain, self.north = chain, north  # Planhat _ids

    def entity(self, ph_id: str) -> str:
        with self.world.store.session() as s:
            found = st.find_entity(s, f"planhat:{ph_id}")
        assert found is not None, ph_id
        return found[1]

    def rid(self, ph_id: str, system: str) -> str:
        cid = self.entity(ph_id)
        with self.world.store.session() as s:
            rids = st.remote_ids_for(s, "account", [cid]).get((cid, system))
        assert rids, f"no {system} record for Planhat {ph_id}"
        return rids[0]

    def ph_parent(self, ph_id: str) -> str | None:
        doc = self.ph.get(f"{self.ph_url}/companies/{ph_id}", timeout=10).json()
        return doc.get(PARENT_FIELD) or None

    def ph_put(self, ph_id: str, body: dict[str, Any]) -> requests.Response:
        return self.ph.put(f"{self.ph_url}/companies/{ph_id}", json=body, timeout=10)

    def sf_parent(self, ph_id: str) -> str | None:
        return self.sf.Account.get(self.rid(ph_id, "salesforce")).get("ParentId")

    def hs_parent(self, ph_id: str) -> str | None:
        """HubSpot's own answer: the company's type-14 (child to parent) association."""
        hid = self.rid(ph_id, "hubspot")
        page = self.hs.crm.associations.v4.batch_api.get_page(
            "companies", "companies", batch_input_public_fetch_associations_batch_request=(
                BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": hid}])))
        for res in page.results:
            for to in res.to:
                if any(t.type_id == CHILD_TO_PARENT for t in to.association_types):
                    return str(to.to_object_id)
        return None

    def parent_everywhere(self, ph_id: str) -> tuple[str | None, str | None, str | None]:
        """(Salesforce, HubSpot, Planhat) parent of the account, each in its own ids."""
        return self.sf_parent(ph_id), self.hs_parent(ph_id), self.ph_parent(ph_id)

    def ids_of(self, ph_id: str) -> tuple[str, str, str]:
        return self.rid(ph_id, "salesforce"), self.rid(ph_id, "hubspot"), ph_id

    def sync(self) -> list[Any]:
        reports = E.sync_until_quiet(self.world)
        assert all(r.status == "ok" for r in reports), E.summarize(reports)
        assert reports[-1].writes == 0, E.summarize(reports)  # it settles
        return reports


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("hier_planhat")
    with Sandbox(accounts=8, seed=9, tier="off", ca_dir=tmp / "ca") as sb:
        world = E.open_world(sb, tmp)
        ph, url = ph_client(sb)
        chain: list[str] = []
        for i in range(6):  # a group made in Planhat: one company under the other
            body: dict[str, Any] = {"name": f"Fjord Holding Tier {i}", "website": f"https://fjord-tier{i}.no"}
            if chain:
                body[PARENT_FIELD] = chain[-1]
            resp = ph.post(f"{url}/companies", json=body, timeout=10)
            assert resp.status_code == 200, resp.text
            chain.append(resp.json()["_id"])
        north = ph.post(f"{url}/companies", json={"name": "Baltic Ventures", "website": "https://baltic-ventures.lv"},
                        timeout=10).json()["_id"]
        x = World(world, sf_client(sb), hs_client(sb), ph, url, chain, north)
        x.sync()
        yield x


def test_a_six_level_group_made_in_planhat_reaches_salesforce_and_hubspot(w: World) -> None:
    assert w.parent_everywhere(w.chain[0]) == (None, None, None)
    for i in range(1, 6):
        sf, hs, ph = w.ids_of(w.chain[i - 1])
        assert w.parent_everywhere(w.chain[i]) == (sf, hs, ph), i
    with w.world.store.session() as s:
        chain = hierarchy.chain_of(s, w.entity(w.chain[5]))
    assert [c["name"] for c in chain] == [f"Fjord Holding Tier {i}" for i in range(6)]
    # Planhat derives the group's root and depth from the parent (its documented orgRootId/orgLevel)
    doc = w.ph.get(f"{w.ph_url}/companies/{w.chain[5]}", timeout=10).json()
    assert (doc["orgRootId"], doc["orgLevel"]) == (w.chain[0], 6)


def test_re_parenting_in_planhat_moves_the_account_and_its_subtree_everywhere(w: World) -> None:
    assert w.ph_put(w.chain[3], {PARENT_FIELD: w.north}).status_code == 200
    w.sync()
    assert w.parent_everywhere(w.chain[3]) == w.ids_of(w.north)
    assert w.parent_everywhere(w.chain[4]) == w.ids_of(w.chain[3])  # the subtree moves with it
    assert w.parent_everywhere(w.chain[2]) == w.ids_of(w.chain[1])
    with w.world.store.session() as s:
        prov = {p.field: p for p in st.provenance(s, "account", w.entity(w.chain[3]))}
        chain = hierarchy.chain_of(s, w.entity(w.chain[5]))
    assert (prov["parent_id"].system, prov["parent_id"].rule) == ("planhat", "latest")
    assert [c["name"] for c in chain] == ["Baltic Ventures", "Fjord Holding Tier 3", "Fjord Holding Tier 4",
                                          "Fjord Holding Tier 5"]


def test_re_parenting_in_salesforce_moves_the_planhat_company(w: World) -> None:
    w.sf.Account.update(w.rid(w.chain[5], "salesforce"), {"ParentId": w.rid(w.chain[1], "salesforce")})
    w.sync()
    assert w.parent_everywhere(w.chain[5]) == w.ids_of(w.chain[1])


def test_a_parent_removed_in_salesforce_is_removed_in_hubspot_and_planhat(w: World) -> None:
    w.sf.Account.update(w.rid(w.chain[4], "salesforce"), {"ParentId": None})
    w.sync()
    assert w.parent_everywhere(w.chain[4]) == (None, None, None)
    assert w.parent_everywhere(w.chain[5]) == w.ids_of(w.chain[1])  # the others keep theirs
    with w.world.store.session() as s:
        row = s.get(st.AccountRow, w.entity(w.chain[4]))
        prov = {p.field: p for p in st.provenance(s, "account", w.entity(w.chain[4]))}
    assert row is not None and row.parent_id is None
    assert (prov["parent_id"].system, prov["parent_id"].rule, prov["parent_id"].value) == (
        "salesforce", "latest:removed", None)


def test_a_parent_removed_in_hubspot_is_removed_in_salesforce_and_planhat(w: World) -> None:
    child, parent = w.rid(w.chain[2], "hubspot"), w.rid(w.chain[1], "hubspot")
    w.hs.crm.associations.v4.batch_api.archive("companies", "companies", batch_input_public_association_multi_archive=(
        BatchInputPublicAssociationMultiArchive(inputs=[{"from": {"id": child}, "to": [{"id": parent}]}])))
    reports = w.sync()
    assert w.parent_everywhere(w.chain[2]) == (None, None, None)
    assert w.parent_everywhere(w.chain[1]) == w.ids_of(w.chain[0])
    assert len(reports) >= 2 and reports[-1].writes == 0  # once removed, nothing flaps back


def test_a_parent_removed_in_planhat_is_removed_in_salesforce_and_hubspot(w: World) -> None:
    assert w.parent_everywhere(w.chain[5]) == w.ids_of(w.chain[1])
    assert w.ph_put(w.chain[5], {PARENT_FIELD: None}).status_code == 200
    w.sync()
    assert w.parent_everywhere(w.chain[5]) == (None, None, None)
    with w.world.store.session() as s:
        prov = {p.field: p for p in st.provenance(s, "account", w.entity(w.chain[5]))}
    assert (prov["parent_id"].system, prov["parent_id"].rule) == ("planhat", "latest:removed")


def test_planhat_refuses_a_loop_and_an_unknown_parent(w: World) -> None:
    loop = w.ph_put(w.chain[0], {PARENT_FIELD: w.chain[1]})  # Tier 1 is under Tier 0
    assert loop.status_code == 400 and "group structure" in loop.text
    self_parent = w.ph_put(w.chain[0], {PARENT_FIELD: w.chain[0]})
    assert self_parent.status_code == 400
    unknown = w.ph_put(w.chain[0], {PARENT_FIELD: "000000000000000000000000"})
    assert unknown.status_code == 400 and "parent company not found" in unknown.text
    assert w.ph_parent(w.chain[0]) is None


def test_a_deleted_planhat_parent_is_refused_with_a_ledger_entry_and_never_written(w: World) -> None:
    # a company only in Planhat's group: its parent deleted there leaves a dangling id
    lone = w.ph.post(f"{w.ph_url}/companies", json={"name": "Saimaa Tools", "website": "https://saimaa-tools.fi"},
                     timeout=10).json()["_id"]
    gone = w.ph.post(f"{w.ph_url}/companies", json={"name": "Saimaa Group", "website": "https://saimaa-group.fi"},
                     timeout=10).json()["_id"]
    assert w.ph.delete(f"{w.ph_url}/companies/{gone}", timeout=10).status_code == 200
    emu = w.world.sb.emulators["planhat"]
    with emu._lock:  # a dangling parent: Planhat kept the child's id as it was
        emu._docs["companies"][lone][PARENT_FIELD] = gone
    w.sync()
    cid = w.entity(lone)
    assert w.sf_parent(lone) is None and w.hs_parent(lone) is None
    with w.world.store.session() as s:
        row = s.get(st.AccountRow, cid)
        entries = s.scalars(select(st.ErrorLedgerRow).where(
            st.ErrorLedgerRow.direction == "hierarchy", st.ErrorLedgerRow.state == "open",
            st.ErrorLedgerRow.canonical_id == cid)).all()
    assert row is not None and row.parent_id is None
    assert [(e.system, e.remote_id) for e in entries] == [("planhat", lone)]
    assert "missing" in (entries[0].message or "")


def test_a_parent_planhat_does_not_hold_is_not_asked_of_planhat(w: World) -> None:
    """A CS system holds only some accounts (Planhat: customers; revsync creates no
    account there by default). A Planhat company whose parent lives only in the CRMs gets
    no parent in Planhat, and no write waits for a Planhat parent that will never come:
    the cycle ends ``ok`` and settles (a waiting op would leave it ``partial`` with a
    pending write every cycle)."""
    child = w.ph.post(f"{w.ph_url}/companies", json={"name": "Vänern Labs", "website": "https://vanern-labs.se"},
                      timeout=10).json()["_id"]
    made = w.sf.Account.create({"Name": "Vänern Holding AB", "Website": "https://vanern-holding.se"})
    w.sync()
    w.sf.Account.update(w.rid(child, "salesforce"), {"ParentId": made["id"]})
    w.sync()  # every cycle ok, the last writes nothing
    with w.world.store.session() as s:
        holding = st.find_entity(s, f"salesforce:{made['id']}")
        assert holding is not None
        in_planhat = st.remote_ids_for(s, "account", [holding[1]]).get((holding[1], "planhat"))
        pending = s.scalars(select(st.OutboxRow).where(st.OutboxRow.state.in_(("pending", "held")))).all()
    assert not in_planhat  # the parent is not a Planhat company
    sf, hs, ph = w.parent_everywhere(child)
    with w.world.store.session() as s:
        hs_holding = st.remote_ids_for(s, "account", [holding[1]]).get((holding[1], "hubspot"))
    assert (sf, ph) == (made["id"], None)
    assert hs_holding and hs == hs_holding[0]
    assert pending == []
