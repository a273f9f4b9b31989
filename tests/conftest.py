"""Shared fixtures.

Every test session gets its own Redis key prefix on the real Redis (``GW_OPS_TEST_REDIS_URL``,
default ``redis://127.0.0.1:6379/0``); keys under it are deleted at the end of the
session.  Nothing ever flushes the shared server.  Area-specific fixtures (a running
GraceDB service, a broker, the Airflow stack) live in ``tests/fixtures/`` and are loaded
below.
"""
from __future__ import annotations

import os
import uuid

import pytest
import redis

from gw_ops.config import Settings, get_settings

pytest_plugins = [
    "tests.fixtures.gracedb",
    "tests.fixtures.broker",
    "tests.fixtures.stack",
    "tests.fixtures.redis_server",
    "tests.fixtures.browser",
    "tests.fixtures.kafka",
    "tests.fixtures.streams",
]

TEST_REDIS_URL = os.environ.get("GW_OPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def session_prefix() -> str:
    """Redis key prefix unique to this test session."""
    return f"gwtest:{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def redis_client(session_prefix):
    """Client of the real Redis; deletes every key of this session's prefix at the end."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.ping()
    yield client
    for key in client.scan_iter(match=session_prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory, session_prefix, redis_client) -> Settings:
    """Settings for this session: own state folder, own Redis key prefix."""
    state = tmp_path_factory.mktemp("gw-ops-state")
    return get_settings(env={}, state_dir=state, redis_url=TEST_REDIS_URL, key_prefix=session_prefix)


@pytest.fixture
def fresh_prefix_settings(base_settings, redis_client) -> Settings:
    """Settings with a prefix unique to one test, for tests that need empty streams."""
    import dataclasses
    prefix = base_settings.key_prefix + uuid.uuid4().hex[:6] + ":"
    yield dataclasses.replace(base_settings, key_prefix=prefix)
    for key in redis_client.scan_iter(match=prefix + "*", count=1000):
        redis_client.delete(key)
