"""Online stores for tests: Feast's SQLite store in a temporary directory, or its Redis
store at SLUICE_TEST_REDIS_URL under a project of the test's own (removed afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sluice.online import OnlineStoreConfig

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def online_config(kind: str, tmp: Path) -> Iterator[OnlineStoreConfig]:
    """A fresh, empty store of ``kind`` (``sqlite`` or ``redis``)."""
    if kind == "sqlite":
        yield OnlineStoreConfig.from_url(None, tmp)
        return
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI") == "true":  # CI has the server: its absence is a failure
            pytest.fail(f"Redis not reachable at {REDIS_URL} under CI: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    project = f"t{uuid.uuid4().hex[:16]}"
    base = OnlineStoreConfig.from_url(REDIS_URL, tmp)
    yield base.model_copy(update={"project": project})
    keys = list(client.scan_iter(match=f"*{project}", count=10_000))
    for i in range(0, len(keys), 1_000):
        client.delete(*keys[i : i + 1_000])
    client.close()
