"""A configured connection: its name, its connector kind and the connector itself."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Connector


@dataclass(frozen=True)
class Connection:
    """A configured connection the engine talks to."""

    name: str
    kind: str
    connector: Connector
