"""Connect to Ray: the cluster at ``RAY_ADDRESS`` when set, else a local one on demand."""

from __future__ import annotations

import logging
import os
import time
from typing import Any


def ensure_ray(*, num_cpus: int | None = None, **init_kwargs: Any) -> None:
    """Initialise Ray once per process (idempotent).

    With ``RAY_ADDRESS`` set (a running cluster, or ``auto`` inside a Ray job) this
    connects to it; otherwise it starts a local cluster sized by ``num_cpus`` (default: the
    machine's cores).
    """
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        **init_kwargs,
    }
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    _wait_for_cpus(ray)


def _wait_for_cpus(ray: Any, timeout_s: float = 15.0) -> None:
    """Return once the cluster reports free CPUs (right after start-up it may not yet)."""
    deadline = time.monotonic() + timeout_s
    while not ray.available_resources().get("CPU") and time.monotonic() < deadline:
        time.sleep(0.05)
