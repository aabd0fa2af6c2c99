"""End-to-end: account hierarchies through the sandbox with the real clients.

Salesforce ``Account.ParentId`` ↔ HubSpot company → company associations (type 14,
"child to parent company", v4 batch endpoints). One sandbox, one store; the steps
build on each other: a six-level chain made in Salesforce reaches HubSpot with
HubSpot's own ids, a re-parenting made in HubSpot moves the account in Salesforce,
a cycle made in HubSpot is refused (never written, one ledger entry), and a parent
and its subsidiary sharing a domain stay two accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import select

from sandbox.server import Sandbox
from sync import hierarchy
from sync import store as st
from tests.integration import e2e_support as E
from tests.integration.test_sandbox_hubspot import client as hs_client
from tests.integration.test_sandbox_salesforce import client as sf_client

CHILD_TO_PARENT = 14


class Hier:
    def __init__(self, world: E.World, sf: Any, hs: Any, chain: list[str], other: str,
                 group: str, nordics: str) -> None:
        self.world, self.sf, self.hs = world, sf, hs
        self.chain, self.other, self.group, self.nordics = chain, other, group, nordics

    def entity(self, sf_id: str) -> str:
        with self.world.store.session() as s:
            found = st.find_entity(s, f"salesforce:{sf_id}")
        assert found is not None, sf_id
        return found[1]

    def hs_id(self, sf_id: str) -> str:
        cid = self.entity(sf_id)
        with self.world.store.session() as s:
            rids = st.remote_ids_for(s, "account", [cid]).get((cid, "hubspot"))
        assert rids, f"no HubSpot company for {sf_id}"
        return rids[0]

    def hs_parents(self, ids: list[str]) -> dict[str, str | None]:
        """HubSpot's own answer: each company's type-14 (parent) association."""
        page = self.hs.crm.associations.v4.batch_api.get_page(
            "companies", "companies", batch_input_public_fetch_associations_batch_request=(
                BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in ids])))
        out: dict[str, str | None] = dict.fromkeys(ids)
        for res in page.results:
            for to in res.to:
                if any(t.type_id == CHILD_TO_PARENT for t in to.association_types):
                    out[str(res._from.id)] = str(to.to_object_id)
        return out

    def sf_parent(self, sf_id: str) -> str | None:
        return self.sf.Account.get(sf_id).get("ParentId")

    def sync(self) -> None:
        reports = E.sync_until_quiet(self.world)
        assert all(r.status == "ok" for r in reports), E.summarize(reports)


@pytest.fixture(scope="module")
def hier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hier]:
    tmp: Path = tmp_path_factory.mktemp("hier")
    with Sandbox(accounts=12, seed=5, tier="off", ca_dir=tmp / "ca") as sb:
        world = E.open_world(sb, tmp)
        sf, hs = sf_client(sb), hs_client(sb)
        chain: list[str] = []
        for i in range(6):
            body: dict[str, Any] = {"Name": f"Tiered Holding L{i}", "Website": f"https://tiered-holding-l{i}.com"}
            if chain:
                body["ParentId"] = chain[-1]
            chain.append(sf.Account.create(body)["id"])
        other = sf.Account.create({"Name": "Northwind Group", "Website": "https://northwind-group.com"})["id"]
        group = sf.Account.create({"Name": "Contoso Group", "Website": "https://www.contoso-group.com"})["id"]
        nordics = sf.Account.create({"Name": "Contoso Group Nordics", "Website": "https://contoso-group.com/se",
                                     "ParentId": group})["id"]
        h = Hier(world, sf, hs, chain, other, group, nordics)
        h.sync()
        yield h


def test_a_six_level_chain_reaches_hubspot_with_hubspot_ids(hier: Hier) -> None:
    hs_ids = [hier.hs_id(i) for i in hier.chain]
    parents = hier.hs_parents(hs_ids)
    assert parents[hs_ids[0]] is None
    for i in range(1, 6):
        assert parents[hs_ids[i]] == hs_ids[i - 1], i
    with hier.world.store.session() as s:
        chain = hierarchy.chain_of(s, hier.entity(hier.chain[5]))
    assert [c["name"] for c in chain] == [f"Tiered Holding L{i}" for i in range(6)], chain


def test_a_shared_domain_does_not_fuse_a_parent_and_its_subsidiary(hier: Hier) -> None:
    group, nordics = hier.entity(hier.group), hier.entity(hier.nordics)
    assert group != nordics
    with hier.world.store.session() as s:
        row = s.get(st.AccountRow, nordics)
        assert row is not None and row.parent_id == group
    assert hier.hs_parents([hier.hs_id(hier.nordics)]) == {hier.hs_id(hier.nordics): hier.hs_id(hier.group)}


def test_salesforce_refuses_a_hierarchy_loop_and_a_self_parent(hier: Hier) -> None:
    for parent in (hier.chain[5], hier.chain[0]):
        with pytest.raises(SalesforceMalformedRequest) as exc:
            hier.sf.Account.update(hier.chain[0], {"ParentId": parent})
        assert exc.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
        assert "hierarchy" in exc.value.content[0]["message"]


def test_re_parenting_in_hubspot_moves_the_account_in_salesforce(hier: Hier) -> None:
    v4 = hier.hs.crm.associations.v4.batch_api
    l2, l3, north = hier.hs_id(hier.chain[2]), hier.hs_id(hier.chain[3]), hier.hs_id(hier.other)
    v4.archive("companies", "companies", batch_input_public_association_multi_archive=(
        BatchInputPublicAssociationMultiArchive(inputs=[{"from": {"id": l3}, "to": [{"id": l2}]}])))
    v4.create("companies", "companies", batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": l3}, "to": {"id": north},
                 "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CHILD_TO_PARENT}]}]))
    hier.sync()
    assert hier.sf_parent(hier.chain[3]) == hier.other
    assert hier.sf_parent(hier.chain[4]) == hier.chain[3]  # the subtree moves with it
    assert hier.sf_parent(hier.chain[2]) == hier.chain[1]
    with hier.world.store.session() as s:
        chain = hierarchy.chain_of(s, hier.entity(hier.chain[5]))
        prov = {p.field: p for p in st.provenance(s, "account", hier.entity(hier.chain[3]))}
    assert [c["name"] for c in chain] == ["Northwind Group", "Tiered Holding L3", "Tiered Holding L4",
                                          "Tiered Holding L5"]
    assert (prov["parent_id"].system, prov["parent_id"].rule) == ("hubspot", "latest")


def test_re_parenting_in_salesforce_replaces_the_hubspot_parent_link(hier: Hier) -> None:
    hier.sf.Account.update(hier.chain[5], {"ParentId": hier.group})
    hier.sync()
    l5, l4, group = hier.hs_id(hier.chain[5]), hier.hs_id(hier.chain[4]), hier.hs_id(hier.group)
    assert hier.hs_parents([l5]) == {l5: group}
    # the old link is gone, not kept beside the new one: L4 lists L5 no more as a child
    page = hier.hs.crm.associations.v4.batch_api.get_page(
        "companies", "companies", batch_input_public_fetch_associations_batch_request=(
            BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": l4}, {"id": l5}])))
    links = {str(r._from.id): sorted((str(t.to_object_id), a.type_id) for t in r.to for a in t.association_types)
             for r in page.results}
    assert links[l5] == [(group, CHILD_TO_PARENT)]
    assert (l5, 13) not in links.get(l4, [])
    hier.sf.Account.update(hier.chain[5], {"ParentId": hier.chain[4]})  # back, for the next step
    hier.sync()
    assert hier.hs_parents([l5]) == {l5: l4}


def test_a_cycle_made_in_hubspot_is_refused_and_never_written(hier: Hier) -> None:
    v4 = hier.hs.crm.associations.v4.batch_api
    north, l5 = hier.hs_id(hier.other), hier.hs_id(hier.chain[5])
    # Northwind (now L3's parent, so an ancestor of L5) under L5: a loop
    v4.create("companies", "companies", batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": north}, "to": {"id": l5},
                 "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CHILD_TO_PARENT}]}]))
    hier.sync()
    assert hier.sf_parent(hier.other) is None  # never written to Salesforce
    cid = hier.entity(hier.other)
    with hier.world.store.session() as s:
        row = s.get(st.AccountRow, cid)
        assert row is not None and row.parent_id is None
        entries = s.scalars(select(st.ErrorLedgerRow).where(
            st.ErrorLedgerRow.direction == "hierarchy", st.ErrorLedgerRow.state == "open")).all()
    assert [(e.canonical_id, e.system, e.remote_id) for e in entries] == [(cid, "hubspot", north)]
    assert "cycle" in (entries[0].message or "")
