"""Without the plugin on the path, its objects are unknown (nothing is left behind by
the modules that installed it)."""

from __future__ import annotations

import pytest

from connectors.registry import known_native_objects
from sync.config import ConfigError, parse


def test_given_no_plugin_when_parsed_then_its_mapping_is_refused() -> None:
    assert "mycrm" not in known_native_objects()
    with pytest.raises(ConfigError, match="mycrm"):
        parse({"mapping": {"mycrm.Org": {}}}, resolve_secrets=False)
