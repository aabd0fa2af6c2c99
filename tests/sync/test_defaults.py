"""Default policies, the starter config and the handoff's CS system come from what the
connectors declare, never from vendor names in sync/ or mapping/."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from connectors import registry
from connectors.base import CUSTOMER_SUCCESS
from mapping.canonical import ObjectType
from mapping.defaults import default_policies, default_source_priority
from sync import config as cfg
from sync.governance import HandoffSettings
from sync.handoff import handoff_connection
from sync.reconcile import FieldPolicy

# what the defaults were when sync/defaults.py spelled them out, plus an account's parent
# (the sandbox's ground truth is computed from them: the built-ins' declarations must give
# exactly these)
BUILT_IN_DEFAULTS = {
    "account": {"default": "source_priority", "source_priority": ["salesforce", "hubspot", "planhat"],
                "never_blank": True,
                "fields": {"health": "prefer:planhat", "arr": "prefer:planhat", "renewal_date": "prefer:planhat",
                           "customer_status": "prefer:planhat", "lifecycle_stage": "latest",
                           "parent_id": "latest"}},
    "contact": {"default": "source_priority", "source_priority": ["salesforce", "hubspot", "planhat"],
                "never_blank": True, "fields": {"lifecycle_stage": "latest", "title": "latest", "phone": "latest"}},
    "opportunity": {"default": "source_priority", "source_priority": ["salesforce", "hubspot"],
                    "never_blank": True, "fields": {"stage": "latest", "close_date": "latest"}},
}


def test_the_built_ins_declarations_give_the_defaults_as_before() -> None:
    assert default_policies() == BUILT_IN_DEFAULTS
    assert FieldPolicy().source_priority == ("salesforce", "hubspot", "planhat")
    assert cfg.known_kinds() == ("salesforce", "hubspot", "planhat")


class _Decl:
    """The declarations ``mapping.defaults`` reads, without a connector behind them."""

    default_rank: ClassVar[int | None] = None
    objects: ClassVar[Mapping[ObjectType, tuple[str, ...]]] = {}
    authoritative_for: ClassVar[Mapping[str, tuple[str, ...]]] = {}


class _Books(_Decl):
    default_rank = 5
    objects = {ObjectType.ACCOUNT: ("Customer",), ObjectType.OPPORTUNITY: ("Invoice",)}
    authoritative_for = {"account": ("arr",), "opportunity": ("amount",)}


class _Success(_Decl):
    default_rank = 1
    objects = {ObjectType.ACCOUNT: ("Org",), ObjectType.CONTACT: ("Person",)}
    authoritative_for = {"account": ("health", "arr")}


class _Unranked(_Decl):
    objects = {ObjectType.ACCOUNT: ("Thing",)}
    authoritative_for = {"account": ("industry",)}


def test_defaults_follow_other_declarations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "connector_classes",
                        lambda: {"books": _Books, "success": _Success, "misc": _Unranked})
    assert default_source_priority() == ("success", "books")
    pol = default_policies()
    # only the ranked connectors that read an object are in its order
    assert pol["account"]["source_priority"] == ["success", "books"]
    assert pol["contact"]["source_priority"] == ["success"]
    assert pol["opportunity"]["source_priority"] == ["books"]
    # a field two systems claim goes to the better ranked; an unranked one claims nothing
    assert pol["account"]["fields"] == {"health": "prefer:success", "arr": "prefer:success",
                                        "lifecycle_stage": "latest", "parent_id": "latest"}
    assert pol["opportunity"]["fields"] == {"amount": "prefer:books", "stage": "latest", "close_date": "latest"}
    pol["account"]["fields"].clear()  # a fresh copy each time
    assert default_policies()["account"]["fields"]["arr"] == "prefer:success"


def test_the_starter_config_is_built_from_the_declarations() -> None:
    text = cfg.starter_config(urls={"hubspot": "https://127.0.0.1:9999"}, ca_bundle="ca.pem",
                              secrets_file="s.toml", database_url="sqlite:///x.db", limits={"max_creates": 7})
    doc = tomllib.loads(text)
    conns = doc["connections"]
    assert list(conns) == ["salesforce", "hubspot", "planhat"]
    assert conns["hubspot"]["host"] == "https://127.0.0.1:9999"
    assert conns["salesforce"]["token_url"] == "https://127.0.0.1:8441/services/oauth2/token"
    assert conns["planhat"]["base_url"] == "https://127.0.0.1:8443" and conns["planhat"]["ca_bundle"] == "ca.pem"
    for name, cls in registry.connector_classes().items():
        if name in conns:
            assert conns[name].get("secrets", {}) == dict(cls.secret_env)
    assert doc["limits"]["max_creates"] == 7 and doc["limits"]["max_deletes"] == 100
    assert doc["policies"]["account"]["fields"] == {
        f: r for f, r in default_policies()["account"]["fields"].items() if r.startswith("prefer:")}
    assert doc["database"]["url"] == "sqlite:///x.db" and doc["secrets"]["file"] == "s.toml"
    assert cfg.STARTER == cfg.starter_config()


def _conn(name: str, roles: frozenset[str] = frozenset()) -> Any:
    return SimpleNamespace(name=name, connector=SimpleNamespace(roles=roles))


def test_the_handoff_goes_to_the_connection_declaring_the_customer_success_role() -> None:
    conns = {"crm": _conn("crm"), "cs": _conn("cs", frozenset({CUSTOMER_SUCCESS})), "other": _conn("other")}
    assert handoff_connection(conns, HandoffSettings()).name == "cs"
    assert handoff_connection(conns, HandoffSettings(system="other")).name == "other"  # the config wins
    assert handoff_connection({"crm": _conn("crm")}, HandoffSettings()) is None
    assert CUSTOMER_SUCCESS in registry.connector_classes()["planhat"].roles
