"""Governance rules, schema pre-flight and handoff data: the pure parts (issue 15)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from mapping.canonical import Account, Opportunity
from sync.config import ConfigError, parse
from sync.governance import DEFAULT_RULES, Governance, HandoffSettings, RequiredRule
from sync.handoff import COMPANY, completeness, handoff_data, license_items
from sync.preflight import Preflight


def _gov(table: dict[str, Any]) -> Governance:
    return parse({"governance": table}, resolve_secrets=False).governance


def test_defaults_are_account_owner_and_industry_and_closed_won_terms() -> None:
    gov = _gov({})
    assert gov.required == DEFAULT_RULES
    assert [(r.object, r.stage, r.fields, r.block) for r in gov.required] == [
        ("account", None, ("owner_email", "industry"), False),
        ("opportunity", "closed_won", ("amount", "close_date", "contract_start", "renewal_date"), False)]
    assert gov.preflight is True and gov.handoff.system is None  # the customer-success connector's


@pytest.mark.parametrize(("table", "message"), [
    ({"required": [{"object": "account", "fields": ["industy"]}]},
     "governance.required[0].fields: unknown account field 'industy'"),
    ({"required": [{"object": "account", "fields": ["name"], "stage": "closed_won"}]},
     "governance.required[0].stage: only an opportunity rule has a stage"),
    ({"required": [{"object": "opportunity", "fields": ["amount"], "stage": "Closed Won"}]},
     "governance.required[0].stage: unknown stage value 'Closed Won'"),
    ({"required": [{"object": "account", "fields": ["name"], "block": "yes"}]},
     "governance.required[0].block: must be true or false"),
    ({"required": [{"object": "account", "fields": ["name"], "block": True, "systems": ["zendesk"]}]},
     "governance.required[0].systems: unknown system 'zendesk'"),
    ({"required": {"object": "account"}}, "governance.required: must be an array of tables"),
    ({"required": [{"object": "lead", "fields": ["name"]}]}, "governance.required[0].object: must be one of"),
    ({"handoff": {"required": ["owner", "nps"]}}, "governance.handoff.required: unknown handoff item 'nps'"),
    ({"handoff": {"system": "gainsight"}}, "governance.handoff.system: unknown system 'gainsight'"),
    ({"preflight": "on"}, "governance.preflight: must be true or false"),
    ({"hierarchy": {}}, "governance.hierarchy: unknown key"),
])
def test_bad_governance_config_is_one_clear_message(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _gov(table)
    assert str(e.value).startswith(message), str(e.value)


def test_bad_governance_config_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "revsync.toml").write_text('[[governance.required]]\nobject = "account"\nfields = ["industy"]\n')
    r = CliRunner().invoke(app, ["quality"])
    assert r.exit_code == 2
    assert "governance.required[0].fields: unknown account field 'industy'" in r.output
    assert "Traceback" not in r.output


def test_a_rule_at_a_stage_reads_extras_and_applies_only_at_that_stage() -> None:
    rule = RequiredRule("opportunity", ("amount", "contract_start", "extras.renewal_date"), stage="closed_won",
                        block=True, systems=("planhat",))
    won = Opportunity(stage="closed_won", amount=Decimal("10"), extras={"contract_start": "2026-01-01"})
    assert rule.missing(won) == ["extras.renewal_date"]
    assert rule.missing(won.replace(stage="proposal", amount=None)) == []  # not at the stage
    assert rule.missing(won.replace(extras={"contract_start": " ", "renewal_date": "2027-01-01"})) == \
        ["contract_start"]
    assert rule.blocks("planhat") and not rule.blocks("hubspot")


class _Conn:
    def __init__(self, schema: dict[str, dict[str, Any]] | Exception | None) -> None:
        self.connector = SimpleNamespace(live_schema=self._live) if schema is not None else SimpleNamespace()
        self.schema, self.calls = schema, 0

    def _live(self, native: str) -> dict[str, dict[str, Any]]:
        self.calls += 1
        if isinstance(self.schema, Exception):
            raise self.schema
        assert isinstance(self.schema, dict)
        return self.schema


def _f(type_: str, *, updateable: bool = True, picklist: list[str] | None = None) -> dict[str, Any]:
    return {"type": type_, "updateable": updateable, "createable": updateable, "picklist": picklist}


def test_preflight_names_each_field_the_live_schema_refuses() -> None:
    sf = _Conn({"Name": _f("string"), "NumberOfEmployees": _f("boolean"), "AnnualRevenue": _f("currency"),
                "Rating": _f("picklist", picklist=["Hot", "Warm"]), "Site": _f("string", updateable=False),
                "CloseDate": _f("date"), "Revsync_Id__c": _f("string")})
    pre = Preflight({"salesforce": sf})
    fields = {"Name": "Ünïcode «Ltd»", "NumberOfEmployees": 250, "AnnualRevenue": "1.5E6", "Rating": "Cold",
              "Site": "HQ", "Industry": "Biotechnology", "CloseDate": "2026-02-30x", "_owner_email": "a@b.c"}
    got = dict(pre.check("salesforce", "Account", "update", fields))
    assert got == {
        "NumberOfEmployees": "type changed: salesforce Account.NumberOfEmployees is boolean; 250 does not fit",
        "Rating": "picklist value Cold missing: salesforce Account.Rating has no such value",
        "Site": "read-only: salesforce Account.Site cannot be written",
        "Industry": "field deleted: salesforce Account has no field Industry",
    }
    # values that fit pass, and the schema is read once per cycle (per native object)
    assert list(pre.check("salesforce", "Account", "create", {"Rating": "Warm", "AnnualRevenue": 12,
                                                               "CloseDate": "2026-02-28"})) == []
    assert sf.calls == 1


def test_preflight_never_holds_without_a_schema() -> None:
    pre = Preflight({"planhat": _Conn(None), "hubspot": _Conn(TimeoutError("read timed out"))})
    assert list(pre.check("planhat", "companies", "update", {"anything": 1})) == []
    assert list(pre.check("hubspot", "companies", "update", {"gone": 1})) == []
    assert pre.notes == ["hubspot: schema pre-flight skipped for companies (TimeoutError: read timed out)"]


def _acct(**kw: Any) -> Account:
    return Account(**{"id": "a1", "owner_email": "ae@example.org", **kw})


def _opp(**kw: Any) -> Opportunity:
    base: dict[str, Any] = {"id": "o1", "name": "Expansion", "stage": "closed_won", "amount": Decimal("90000"),
                            "currency": "EUR", "owner_email": "ae@example.org"}
    return Opportunity(**{**base, **kw})


def test_handoff_data_lists_missing_items_with_owners() -> None:
    hs = HandoffSettings(csm_by_owner={"ae@example.org": "csm@example.org"})
    contact = SimpleNamespace(email="buyer@client.example")
    data, missing, owners = handoff_data(_acct(renewal_date=date(2027, 1, 31)), _opp(), [contact], None, hs,
                                         system="cs-crm")
    assert data["csm"] == "csm@example.org" and data["arr"] == "90000"
    assert data["renewal_date"] == "2027-01-31" and data["products"] == ["Subscription"]
    assert missing == ["contract_start", COMPANY]
    assert owners == {"contract_start": "ae@example.org", COMPANY: "revsync (account not in cs-crm yet)"}
    assert completeness(hs, missing) == round(1 - 1 / 7, 4)
    # no owner, no CSM rule, no contacts: the gaps name who must act
    _, missing, owners = handoff_data(_acct(owner_email=None), _opp(owner_email=None), [], "c1",
                                      HandoffSettings(default_product=None))  # type: ignore[arg-type]
    assert {"owner", "csm", "products", "key_contacts"} <= set(missing)
    assert owners["csm"] == "revops (assign a CSM)" and owners["owner"].startswith("unassigned")


def test_license_items_split_the_arr_over_the_products() -> None:
    extras = {"contract_start": "2026-04-01", "renewal_date": "2027-03-31", "products": "Core, Add-on;Core"}
    data, missing, _ = handoff_data(_acct(), _opp(extras=extras), [SimpleNamespace(email="x@y.z")], "c9",
                                    HandoffSettings(default_csm="cs@example.org"))
    assert missing == []
    items = license_items(data)
    assert [(i["product"], i["mrr"], i["fromDate"], i["toDate"], i["_currency"], i["companyId"]) for i in items] == [
        ("Core", 3750.0, "2026-04-01", "2027-03-31", "EUR", "c9"),
        ("Add-on", 3750.0, "2026-04-01", "2027-03-31", "EUR", "c9")]
    assert {i["externalId"] for i in items} == {"revsync-o1-0", "revsync-o1-1"}


class _Licenses:
    """A CS connector's license calls, in memory: counts calls, refuses one company."""

    def __init__(self, refuse: str) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.refuse = refuse

    def licenses(self, external_ids: Any) -> dict[str, dict[str, Any]]:
        self.calls.append("list")
        want = set(external_ids)
        return {k: dict(v) for k, v in self.docs.items() if k in want}

    def write_licenses(self, items: Any) -> list[str | None]:
        self.calls.append(f"bulk {len(items)}")
        out: list[str | None] = []
        for i in items:
            if i["companyId"] == self.refuse:
                out.append("companyId: permission denied")
            else:
                self.docs[i["externalId"]] = {**i, "_id": f"lic-{len(self.docs)}"}
                out.append(None)
        return out


def test_batched_license_writes_fail_only_the_handoff_whose_item_failed(db_url: str) -> None:
    from datetime import UTC, datetime

    from sync import store as st
    from sync.handoff import COMPLETE, WAITING, _complete
    from sync.migrate import upgrade

    upgrade(db_url)
    store = st.Store.from_url(db_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ready = []
    with store.session() as s:
        for n in range(4):
            data = {"opportunity": f"o{n}", "products": ["A", "B"] if n % 2 else ["A"], "arr": "1200",
                    "currency": "EUR", "contract_start": "2026-01-01", "renewal_date": "2026-12-31",
                    "company_id": f"c{n}"}
            s.add(st.HandoffRow(account_id=f"a{n}", opportunity_id=f"o{n}", system="cs", state=WAITING,
                                missing=[], owners={}, data=data, completeness=1.0, first_completeness=1.0,
                                detected_at=now, updated_at=now))
            ready.append((f"a{n}", data))
    cs = _Licenses(refuse="c2")
    # one license is already there as wanted: it is not written again
    first = license_items(ready[0][1])[0]
    cs.docs[first["externalId"]] = {**first, "_id": "lic-old"}
    conn = SimpleNamespace(name="cs", connector=cs)
    counts = {"completed": 0, "waiting": 0, "failed": 0}
    _complete(store, conn, ready, now, counts)
    assert cs.calls == ["list", "bulk 5", "list"]  # 4 handoffs, 6 licenses: 3 calls
    assert counts == {"completed": 3, "waiting": 1, "failed": 1}
    with store.session() as s:
        rows = {r.account_id: r for r in s.query(st.HandoffRow)}
        assert rows["a0"].state == COMPLETE and rows["a0"].data["licenses"] == ["lic-old"]
        assert rows["a3"].state == COMPLETE and len(rows["a3"].data["licenses"]) == 2
        assert rows["a2"].state == WAITING and rows["a2"].missing == ["licenses"]
        assert "permission denied" in rows["a2"].owners["licenses"]
