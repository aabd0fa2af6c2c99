"""``revsync.toml`` accepts a plugin's objects in ``[mapping."<kind>.<native>"]`` once
the plugin is installed, and names the bad key when one is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.registry import known_native_objects
from mapping.fieldmap import FIELD_MAPS
from sync.config import ConfigError, parse

BASE: dict[str, Any] = {"connections": {"crm2": {"kind": "mycrm", "base_url": "http://127.0.0.1:9"}}}


def _with_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, "mapping": mapping}


def test_given_the_plugin_when_registry_read_then_its_objects_and_maps_are_known(mycrm_installed: Any) -> None:
    assert known_native_objects()["mycrm"] == ("Org", "Person")
    assert FIELD_MAPS[("mycrm", "Org")].native_fields() == ("name", "web_domain", "headcount", "country_code")
    assert "stage" in FIELD_MAPS[("mycrm", "Person")].native_fields()


def test_given_a_mapping_for_a_plugin_object_when_parsed_then_accepted(mycrm_installed: Any) -> None:
    settings = parse(_with_mapping({"mycrm.Org": {"fields": {"headcount": None}}}), resolve_secrets=False)
    assert settings.mapping == {"mycrm.Org": {"fields": {"headcount": None}}}


@pytest.mark.parametrize(("mapping", "needle"), [
    ({"mycrm.Nope": {}}, "mapping.mycrm.Nope"),
    ({"mycrm.Org": {"fields": {"headcount": "no_such_field"}}}, "mapping.headcount"),
])
def test_given_a_bad_plugin_mapping_when_parsed_then_the_key_is_named(
    mycrm_installed: Any, mapping: dict[str, Any], needle: str,
) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse(_with_mapping(mapping), resolve_secrets=False)


def test_given_a_declared_picklist_when_mapped_then_read_and_written_through_it(mycrm_installed: Any) -> None:
    from mapping.fieldmap import from_entity, read_entity

    result = read_entity("mycrm", "Person", {"email": "a@b.at", "stage": "client"})
    assert result.entity.lifecycle_stage == "customer" and not result.unreadable  # type: ignore[union-attr]
    assert from_entity("mycrm", "Person", result.entity)["stage"] == "Client"
    odd = read_entity("mycrm", "Person", {"email": "a@b.at", "stage": "Prospect-ish"})
    assert [u.native for u in odd.unreadable] == ["stage"]
