"""Planhat readiness: the token works and each model revsync syncs can be read.

Planhat needs nothing provisioned: revsync keys its records on the built-in
``sourceId`` ("id from an integration", unique per model), which every model has.
https://www.planhat.com/developers/api/bulk-upsert
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import AuthError, Connector, ConnectorError
from connectors.planhat import PlanhatConnector
from connectors.readiness import FAIL, OK, Change, Finding

#: the keyable revsync writes its canonical id into
EXTERNAL_ID_KEY = "sourceId"
#: models read besides the synced ones (owners are matched by email)
EXTRA_MODELS = ("users",)


class PlanhatReadiness:
    """Checks for one Planhat connection (``setup`` has nothing to create)."""

    def __init__(self, connector: PlanhatConnector, *, name: str = "planhat") -> None:
        self.ph = connector
        self.name = name

    def models(self) -> list[str]:
        return [m for natives in self.ph.objects.values() for m in natives] + list(EXTRA_MODELS)

    def check(self, mapped: Mapping[str, Sequence[tuple[str, bool]]]) -> list[Finding]:
        """A one-record read of each model."""
        out: list[Finding] = []
        for i, model in enumerate(self.models()):
            try:
                # GET /{model}?limit=1 https://docs.planhat.com
                self.ph._call(f"check {model}", lambda m=model: self.ph.client.list_page(  # type: ignore[misc]
                    m, offset=0, limit=1, select=("_id",)))
            except AuthError as exc:
                return [Finding(self.name, "credentials", FAIL, f"Planhat rejected the API token ({exc}); "
                                "create a service-account token with read/write on companies and end users")]
            except ConnectorError as exc:
                out.append(Finding(self.name, "access", FAIL, f"cannot read {model} ({exc}); give the service "
                                   f"account read/write on {model}"))
                continue
            if i == 0:
                out.append(Finding(self.name, "credentials", OK, "token accepted"))
            out.append(Finding(self.name, "access", OK, f"{model} readable"))
        out.append(Finding(self.name, "external_id", OK, f"revsync keys Planhat records on the built-in "
                           f"{EXTERNAL_ID_KEY} (nothing to create)"))
        return out

    def setup(self, *, apply: bool) -> list[Change]:
        return [Change(self.name, f"key {EXTERNAL_ID_KEY}", "exists", "built in; nothing to create")]


def readiness_for(connector: Connector, *, name: str, options: Mapping[str, Any]) -> PlanhatReadiness:
    """The checker ``Connector.readiness`` builds (``readiness_factory``)."""
    return PlanhatReadiness(connector, name=name)  # type: ignore[arg-type]
