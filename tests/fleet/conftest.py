"""Fixtures of the fleet tests: a Redis URL (``scripts/with-redis`` sets it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_ENV = "REVSYNC_TEST_REDIS_URL"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database emptied before and after the test (skips without one)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set (CI sets it; see .ci/run and scripts/with-redis)")
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url
    r.flushdb()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
