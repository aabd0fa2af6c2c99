"""The standard connector suite (``connectors.testing``) for the three built-ins, each
against its sandbox emulator with the real client: the same tests the example plugin
passes against its stub."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from connectors.base import ApiBudget, ConnectionSettings, Connector, OpKind, RetryPolicy, WriteOp
from connectors.hubspot import HubSpotConnector
from connectors.planhat import PlanhatConnector
from connectors.salesforce import SalesforceConnector
from connectors.testing import Harness, connector_test_class
from mapping.canonical import ObjectType
from sandbox.server import Sandbox

NO_WAIT = RetryPolicy(attempts=8, sleep=lambda s: None)


class SandboxHarness(Harness):
    system: ClassVar[str]

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.emu: Any = sb.emulators[self.system]

    def delete(self, remote_id: str) -> None:
        op = WriteOp(OpKind.DELETE, self.object_type, "", remote_id=remote_id, native_type=self.native)
        assert self.connect().write(self.object_type, [op])[0].success

    def inject(self, kind: str, count: int) -> None:
        self.sb.ctx.faults.set_spec({"script": [{
            "system": self.system, "kind": kind, "nth": 1, "count": count, "write": False,
            "params": {"retry_after": 0},
        }]})

    def clear_faults(self) -> None:
        self.sb.ctx.faults.set_spec(None)


class SalesforceHarness(SandboxHarness):
    system = "salesforce"
    object_type = ObjectType.ACCOUNT
    native = "Account"
    page_size = 200  # the smallest SOQL batch Salesforce honours
    batch_limit = 200  # sObject Collections; the emulator refuses more

    def connect(self) -> Connector:
        base, cred = self.sb.urls["salesforce"], self.sb.info["credentials"]["salesforce"]
        settings = ConnectionSettings("sf", "salesforce", options={
            "instance_url": base, "token_url": f"{base}/services/oauth2/token",
            "ca_bundle": str(self.sb.info["ca_cert"]), "timeout": 10, "page_size": self.page_size,
        }, secrets={k: cred[k] for k in ("client_id", "client_secret", "refresh_token")})
        return SalesforceConnector.from_settings(settings, budget=ApiBudget(), retry=NO_WAIT)

    def seed(self, n: int, modstamp: datetime) -> list[str]:
        stamp = modstamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return [self.emu.add("Account", {"Name": f"Tied {i} Sàrl", "SystemModstamp": stamp,
                                         "LastModifiedDate": stamp})["Id"] for i in range(n)]

    def new_fields(self, i: int) -> dict[str, Any]:
        return {"Name": f"Suite Account {i}", "NumberOfEmployees": i}

    def bad_fields(self) -> dict[str, Any]:
        return {"Name": "x" * 300}  # Name takes 255 characters: STRING_TOO_LONG


class SmallPages(HubSpotConnector):
    LIST_PAGE: ClassVar[int] = 4
    SEARCH_PAGE: ClassVar[int] = 4


class HubSpotHarness(SandboxHarness):
    system = "hubspot"
    object_type = ObjectType.ACCOUNT
    native = "companies"
    page_size = 4
    batch_limit = 100  # batch endpoints take 100 inputs; the emulator refuses more

    def connect(self) -> Connector:
        creds = self.sb.info["credentials"]["hubspot"]
        settings = ConnectionSettings("hs", "hubspot", options={
            "host": self.sb.urls["hubspot"], "ca_bundle": str(self.sb.info["ca_cert"]), "timeout": 10,
        }, secrets={k: creds[k] for k in ("client_id", "client_secret", "refresh_token")})
        return SmallPages.from_settings(settings, budget=ApiBudget(), retry=NO_WAIT)

    def seed(self, n: int, modstamp: datetime) -> list[str]:
        stamp = modstamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return [self.emu.add("companies", {"properties": {"name": f"Tied {i} GmbH"},
                                           "createdAt": stamp, "updatedAt": stamp}) for i in range(n)]

    def new_fields(self, i: int) -> dict[str, Any]:
        return {"name": f"Suite Company {i}", "numberofemployees": str(i)}

    def bad_fields(self) -> dict[str, Any]:
        return {"name": "Bad One", "numberofemployees": "many"}  # not a number: VALIDATION_ERROR


class PlanhatHarness(SandboxHarness):
    system = "planhat"
    object_type = ObjectType.ACCOUNT
    native = "companies"
    page_size = 60  # more than the 50 records re-read at each page boundary
    batch_limit = 20
    since_filters = False  # Planhat has no modified-since filter: it lists everything
    reports_deletes = False  # a deleted company is absent from the next full listing
    refreshes_auth = False  # a static API token: an expired one is AuthError, one clear line

    def connect(self) -> Connector:
        settings = ConnectionSettings("ph", "planhat", options={
            "base_url": self.sb.urls["planhat"], "ca_bundle": str(self.sb.info["ca_cert"]), "timeout": 10,
            "page_size": self.page_size, "bulk_size": self.batch_limit,
        }, secrets={"api_token": self.sb.info["credentials"]["planhat"]["api_token"]})
        return PlanhatConnector.from_settings(settings, budget=ApiBudget(), retry=NO_WAIT)

    def seed(self, n: int, modstamp: datetime) -> list[str]:
        stamp = modstamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return [self.emu.add("companies", {"name": f"Tied {i} AB", "lastUpdated": stamp,
                                           "createDate": stamp})["_id"] for i in range(n)]

    def new_fields(self, i: int) -> dict[str, Any]:
        return {"name": f"Suite Company {i}", "country": "Sweden"}

    def bad_fields(self) -> dict[str, Any]:
        return {"name": ""}  # a company needs a name


@pytest.fixture(scope="module")
def suite_sandbox() -> Iterator[Sandbox]:
    with Sandbox(accounts=5, seed=3, tier="off") as sb:
        yield sb


@pytest.fixture
def salesforce_harness(suite_sandbox: Sandbox) -> Iterator[SalesforceHarness]:
    yield SalesforceHarness(suite_sandbox)
    suite_sandbox.ctx.faults.set_spec(None)


@pytest.fixture
def hubspot_harness(suite_sandbox: Sandbox) -> Iterator[HubSpotHarness]:
    yield HubSpotHarness(suite_sandbox)
    suite_sandbox.ctx.faults.set_spec(None)


@pytest.fixture
def planhat_harness(suite_sandbox: Sandbox) -> Iterator[PlanhatHarness]:
    yield PlanhatHarness(suite_sandbox)
    suite_sandbox.ctx.faults.set_spec(None)


TestSalesforceStandard = connector_test_class("salesforce_harness")
TestHubSpotStandard = connector_test_class("hubspot_harness")
TestPlanhatStandard = connector_test_class("planhat_harness")
