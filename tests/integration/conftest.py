"""Fixtures for tests that run the real clients against the local sandbox.

- ``sandbox``: one small seeded sandbox for the whole session (30 accounts, seed 7,
  tier "off", all three systems). Tests that change its fault spec must restore it
  (``sandbox.ctx.faults.set_spec(None)``); tests that need their own data, tier or
  faults use ``make_sandbox``.
- ``make_sandbox(**kwargs)``: a factory with ``Sandbox``'s keyword arguments
  (defaults: accounts=30, seed=7, tier="off"); every sandbox it made is stopped at
  the end of the test.
- ``sandbox_http(sb)``: a ``requests.Session`` that trusts the sandbox's CA. It sets
  ``trust_env = False`` because ``REQUESTS_CA_BUNDLE`` in the environment would
  otherwise override ``session.verify``.

Every test collected under this directory is marked ``integration``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import Sandbox

HERE = Path(__file__).resolve().parent
DEFAULTS: dict[str, Any] = {"accounts": 30, "seed": 7, "tier": "off"}

MakeSandbox = Callable[..., Sandbox]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in tests/integration as ``integration``."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def https_session(sb: Sandbox) -> requests.Session:
    """A requests session that verifies TLS against the sandbox's throwaway CA."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sb.info["ca_cert"])
    return session


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The shared small seeded sandbox (all three systems, no rate limits)."""
    with Sandbox(**DEFAULTS) as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[MakeSandbox]:
    """Start sandboxes with custom arguments; all are stopped after the test."""
    made: list[Sandbox] = []

    def factory(**kwargs: Any) -> Sandbox:
        args = {**DEFAULTS, **kwargs}
        if "data_dir" in args:
            args.pop("accounts", None)
        sb = Sandbox(**args)
        made.append(sb)
        return sb.start()

    yield factory
    for sb in reversed(made):
        sb.stop()


@pytest.fixture
def sandbox_http() -> Callable[[Sandbox], requests.Session]:
    """Build a CA-verifying requests session for a given sandbox."""
    return https_session
