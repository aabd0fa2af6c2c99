"""What ``revsync check`` and ``revsync setup`` report: findings and changes.

Each connector kind has a module that inspects a live connection
(``connectors/salesforce_setup.py``, ``hubspot_setup.py``, ``planhat_setup.py``) and
returns ``Finding``s — one line each, saying what is wrong and what to do — and, for
``setup``, ``Change``s it would make or made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK = "ok"
WARN = "warn"
FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One check of one connection. ``fixable``: ``revsync setup --apply`` fixes it."""

    connection: str
    check: str  # credentials | api_version | access | scopes | external_id | headroom
    level: str  # ok | warn | fail
    message: str
    fixable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.connection}: {self.check}: {self.message}"


@dataclass(frozen=True)
class Change:
    """One thing ``setup`` creates or grants. ``state``: missing (dry run), created,
    exists (nothing to do), manual (an admin must do it), failed."""

    connection: str
    what: str
    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.connection}: {self.what}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings that stop a sync."""
    return [f for f in findings if f.level == FAIL]
