"""Unit tier: no Ray. Any attempt to start or join a cluster fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import k8s_support
import pytest
from egress_support import Recorder


@pytest.fixture(autouse=True)
def _forbid_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)


# k8s/ manifest tests: one parameter per overlay, and per environment.
@pytest.fixture(params=k8s_support.overlay_dirs(), ids=k8s_support.overlay_id)
def overlay(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


@pytest.fixture(params=k8s_support.environments())
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Egress-guard tests: a real HTTP server on 127.0.0.1 that records what reaches it.
@pytest.fixture
def server() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()
