"""revsync connector for MyCRM (an example of a third-party connector package)."""

from __future__ import annotations

from revsync_mycrm.connector import MyCrmConnector

__all__ = ["MyCrmConnector"]
