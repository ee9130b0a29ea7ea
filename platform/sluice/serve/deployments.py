"""The Ray Serve deployments: ``Decisions`` (the decision app) and ``BackOffice``.

A decision is answered by the replica that receives it: the API, the scoring engine and
the offer rules run in-process, with no hop to another deployment (a single LightGBM row
costs microseconds; a hop costs a millisecond). The back office is an app of its own, so
reviews, events and unsubscribes never take a decision replica's time. The apps are
built in :mod:`sluice.serve.app`; operating settings (replicas, autoscaling, resources,
logging) come from ``deployments/decision.yaml``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field
from ray import serve

from sluice.auth.keys import KeyStore
from sluice.contracts._base import Contract
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feature_contract import FeatureContract
from sluice.decisioning.catalog import CatalogSource
from sluice.online.config import OnlineStoreConfig
from sluice.online.lookup import OnlineFeatures
from sluice.registry.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.serve.metrics import RayMetrics, model_version_gauge
from sluice.serve.model_server import RemotePredictor
from sluice.settings import SluiceSettings

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids

GAUGE_REFRESH_S = 5.0  # well inside Ray's gauge TTL (two metrics export intervals)


@dataclass(frozen=True)
class Stores:
    """Where replicas find the registry and the keys file (resolved by the app builder)."""

    home: str
    tracking_uri: str
    registry_uri: str | None
    api_keys_file: str
    clock: Clock = SYSTEM_CLOCK
    """Business time for decisions, reviews and events (the builder's settings)."""
    online_store_url: str | None = None
    """The online feature store, when the app's args name one (without a password); else
    the replica's own ``SLUICE_ONLINE_STORE_URL``, else SQLite under home."""

    def settings(self) -> SluiceSettings:
        return SluiceSettings(
            home=Path(self.home),
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            clock_offset=self.clock.offset,
        )

    def online_features(self, contract: FeatureContract) -> OnlineFeatures:
        """The served contract's features by id, in the store these stores name (its
        password, if any, from this replica's own environment)."""
        settings = self.settings()
        url = self.online_store_url or settings.online_store_url
        return OnlineFeatures(OnlineStoreConfig.from_url(url, settings.home_dir), contract)


class DecisionTuning(Contract):
    """The decision deployment's ``user_config``: applied live through ``reconfigure``."""

    model_poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often every served alias is re-resolved in the registry (hot swaps)."""
    max_batch_size: int = Field(default=1, ge=1, le=1024)
    """Concurrent requests of one replica coalesced into one engine call (1: none; one-row
    requests gain nothing from it, measured with ``sluice bench online``; many-row or
    by-id requests may)."""
    batch_wait_timeout_s: float = Field(default=0.0, ge=0, le=1)
    """How long a batch waits to fill (0: it takes the requests already waiting)."""


def _request_id() -> str | None:
    try:
        from ray.serve.context import _get_serve_request_context

        rid = _get_serve_request_context().request_id
        return str(rid) if rid else None
    except Exception:
        return None


@dataclass(frozen=True)
class DecisionOptions:
    models: tuple[str, ...]
    predictor: str
    catalog: CatalogSource
    contract: FeatureContract
    """What requests are validated against; every served version must have been trained
    on it (a version on another contract is refused, and ``/v1/models`` says why)."""
    api_docs: bool = False
    """Serve /docs and /redoc (see ``create_api``)."""


@serve.deployment(name="Decisions", max_ongoing_requests=128)
@serve.ingress()
class Decisions:
    """The decision service in one deployment: the HTTP API, scoring with every served
    alias (compiled trees for LightGBM, the flavour's own predict for the others; hot
    swaps when an alias moves) and the offer rules, in the replica that answers the
    request; scaled by replicas."""

    async def __init__(  # type: ignore[misc]
        self,
        options: DecisionOptions,
        stores: Stores,
        tuning: dict[str, Any] | None = None,
        model: Any = None,
    ) -> None:
        """``model``: the handle of the app's ``Model`` deployment, when the model runs
        in one of its own (see :mod:`sluice.serve.model_server`)."""
        # Serve's router serves handles on this event loop; the engine's worker threads
        # hand their calls to it.
        remote = (
            None
            if model is None
            else partial(
                RemotePredictor,
                model.options(method_name="predict"),
                asyncio.get_running_loop(),
            )
        )
        self.engine = ScoringEngine(
            options.models,
            options.contract,
            Registry(stores.settings()),
            options.predictor,  # type: ignore[arg-type]
            features=stores.online_features(options.contract),
            clock=stores.clock,
            remote=remote,
        )
        self.tuning = DecisionTuning.model_validate(tuning or {})
        self.backend = LocalBackend(self.engine, options.catalog, stores.clock)
        self.backend.batch(self.tuning.max_batch_size, self.tuning.batch_wait_timeout_s)
        self.keys = KeyStore(Path(stores.api_keys_file))
        self.api_docs = options.api_docs
        self.contract = options.contract
        self._gauge: Any = model_version_gauge()
        await asyncio.to_thread(self.engine.refresh)
        self._publish()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.tuning = DecisionTuning.model_validate(config)
        self.backend.batch(self.tuning.max_batch_size, self.tuning.batch_wait_timeout_s)

    def _publish(self) -> None:
        for model in self.engine.served():
            if model.version is not None:
                self._gauge.set(
                    float(model.version), tags={"model": model.name, "alias": model.alias}
                )

    async def _poll(self) -> None:
        # Ray ages out a gauge series that is not set again within about two export
        # intervals, so the served versions are published on every tick, changed or not.
        due = time.monotonic() + self.tuning.model_poll_interval_s
        while True:
            await asyncio.sleep(min(self.tuning.model_poll_interval_s, GAUGE_REFRESH_S))
            if time.monotonic() >= due:
                await asyncio.to_thread(self.engine.refresh)
                due = time.monotonic() + self.tuning.model_poll_interval_s
            self._publish()

    def check_health(self) -> None:
        if self._poller.done():
            raise RuntimeError(f"the model poller stopped: {self._poller.exception()!r}")

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(
            self.backend,
            self.keys,
            self.contract,
            RayMetrics(),
            request_id=_request_id,
            docs=self.api_docs,
        )


@serve.deployment(name="BackOffice", max_ongoing_requests=64)
@serve.ingress()
class BackOffice:
    """Reviews, events, unsubscribes, journey entries and incidents (see
    :mod:`sluice.serve.backoffice_api`); the heavy work they trigger is the orchestrator's."""

    def __init__(self, stores: Stores, api_docs: bool = False) -> None:
        self.keys = KeyStore(Path(stores.api_keys_file))
        # Home and clock from the app; the database URL from this replica's own settings
        # (it may carry a password, which never travels as a deployment argument).
        self.settings = stores.settings()
        self.api_docs = api_docs

    def __serve_build_asgi_app__(self) -> Any:
        return create_backoffice_api(
            self.keys,
            self.settings,
            RayMetrics(),
            request_id=_request_id,
            docs=self.api_docs,
        )
