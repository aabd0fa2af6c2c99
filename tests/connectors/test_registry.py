"""Connectors are found through the revsync.connectors entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from connectors import base
from connectors.base import Connector, UnknownConnectorError, known_connectors, load_connector_class


def test_the_three_builtin_connectors_are_registered() -> None:
    assert {"salesforce", "hubspot", "planhat"} <= set(known_connectors())
    for name in ("salesforce", "hubspot", "planhat"):
        cls = load_connector_class(name)
        assert issubclass(cls, Connector)
        assert cls.objects  # declares its native objects


def test_an_unknown_name_is_a_clear_lookup_error() -> None:
    with pytest.raises(UnknownConnectorError, match=r"no connector named 'zendesk'.*known: .*hubspot") as e:
        load_connector_class("zendesk")
    assert isinstance(e.value, LookupError)


def test_a_third_party_connector_plugs_in_without_touching_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="mycrm", value="tests.connectors.test_registry:MyCrm", group=base.ENTRY_POINT_GROUP)
    real = base.entry_points
    monkeypatch.setattr(base, "entry_points", lambda group: [*real(group=group), ep])
    assert load_connector_class("mycrm") is MyCrm
    assert "mycrm" in known_connectors()


def test_an_entry_point_that_is_not_a_connector_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="bad", value="tests.connectors.test_registry:NotAConnector", group=base.ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "entry_points", lambda group: [ep])
    with pytest.raises(TypeError, match="does not point to a Connector subclass"):
        load_connector_class("bad")


class NotAConnector:
    pass


class MyCrm(Connector):
    name = "mycrm"
    objects = {}

    def read_pages(self, object_type, *, since=None, native=None):  # type: ignore[override]
        return iter(())

    def write(self, object_type, ops):  # type: ignore[override]
        return []

    @classmethod
    def from_settings(cls, settings, *, budget, retry=None):  # type: ignore[override]
        return cls()
