"""The standard connector suite against the example plugin and its REST stub.

The connector class comes from the ``revsync.connectors`` entry point (the plugin is
installed, never imported by path).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from connectors.base import (
    ApiBudget,
    ConnectionSettings,
    Connector,
    RetryPolicy,
    load_connector_class,
)
from connectors.testing import Harness, connector_test_class
from mapping.canonical import ObjectType

from .mycrm_stub import CLIENT, MyCrmStub


class MyCrmHarness(Harness):
    object_type = ObjectType.ACCOUNT
    native = "Org"
    page_size = 7
    batch_limit = 50

    def __init__(self, stub: MyCrmStub) -> None:
        self.stub = stub

    def connect(self) -> Connector:
        cls = load_connector_class("mycrm")
        settings = ConnectionSettings(
            "crm2", "mycrm", options={"base_url": self.stub.url, "page_size": self.page_size},
            secrets={"client_id": CLIENT[0], "client_secret": CLIENT[1]},
        )
        return cls.from_settings(settings, budget=ApiBudget(), retry=RetryPolicy(sleep=lambda s: None))

    def seed(self, n: int, modstamp: datetime) -> list[str]:
        return [self.stub.add("orgs", {"name": f"Org {i}", "web_domain": f"org{i}.example"}, updated_at=modstamp)
                for i in range(n)]

    def delete(self, remote_id: str) -> None:
        self.stub.delete("orgs", remote_id)

    def new_fields(self, i: int) -> dict[str, Any]:
        return {"name": f"Créée {i}", "headcount": i}

    def bad_fields(self) -> dict[str, Any]:
        return {"name": "", "headcount": 3}

    def inject(self, kind: str, count: int) -> None:
        self.stub.faults.extend([kind] * count)

    def clear_faults(self) -> None:
        self.stub.faults.clear()

    def write_calls(self) -> int:
        return self.stub.write_calls


@pytest.fixture
def mycrm_harness(mycrm_installed: Any, mycrm_stub: MyCrmStub) -> MyCrmHarness:
    return MyCrmHarness(mycrm_stub)


TestMyCrmStandard = connector_test_class("mycrm_harness")


def test_given_a_repeated_page_token_when_read_then_fatal_not_a_loop(mycrm_harness: MyCrmHarness) -> None:
    """The paginator refuses a token it already followed (singer-sdk's rule)."""
    from connectors.base import FatalError

    h = mycrm_harness
    h.seed(h.page_size + 1, h.base_time())
    original = h.stub._list
    first: list[bytes] = []

    def stuck(coll: str, request: Any) -> Any:
        response = original(coll, request)
        if not first:
            first.append(response.get_data())
        response.set_data(first[0])  # page one, with the same next token, every time
        return response

    h.stub._list = stuck  # type: ignore[method-assign]
    with pytest.raises(FatalError, match="repeated page token"):
        list(h.connect().read(h.object_type))
