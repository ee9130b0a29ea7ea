"""The Ray Serve deployments of the decision service: Ingress, Scorer, Decider.

The graph is built in :mod:`sluice.serve.app` (``Ingress.bind(Scorer.bind(...),
Decider.bind(...))``); operating settings (replicas, autoscaling, resources, logging)
come from ``deployments/decision.yaml``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from ray import serve

from sluice.auth.keys import KeyStore
from sluice.contracts._base import Contract
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.decisions import Decision, DecisionContext
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.decisioning.rules import decide
from sluice.online.config import OnlineStoreConfig
from sluice.online.lookup import OnlineFeatures
from sluice.registry.registry import Registry
from sluice.serve.backends import ServeBackend
from sluice.serve.engine import ScoreJob, ScoreOutcome, ScoringEngine
from sluice.serve.http import create_api
from sluice.serve.metrics import RayMetrics, model_version_gauge
from sluice.settings import SluiceSettings

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids
BIG_BATCH_ROWS = 4_096
"""Batches with more rows than this predict in a worker thread, off the event loop."""


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

    def online_features(self) -> OnlineFeatures:
        """The served contract's features by id, in the store these stores name (its
        password, if any, from this replica's own environment)."""
        settings = self.settings()
        url = self.online_store_url or settings.online_store_url
        return OnlineFeatures(OnlineStoreConfig.from_url(url, settings.home_dir), PROPENSITY_V1)


class ScorerTuning(Contract):
    """The Scorer's ``user_config``: applied live through ``reconfigure``."""

    model_poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often every served alias is re-resolved in the registry."""
    max_batch_size: int = Field(default=16, ge=1, le=1024)
    """Calls (each an ingress batch) coalesced into one predict."""
    batch_wait_timeout_s: float = Field(default=0.001, ge=0, le=1)


def _request_id() -> str | None:
    try:
        from ray.serve.context import _get_serve_request_context

        rid = _get_serve_request_context().request_id
        return str(rid) if rid else None
    except Exception:
        return None


@serve.deployment(name="Scorer", max_ongoing_requests=64)
class Scorer:
    """LightGBM scoring for every served alias, with hot swaps when an alias moves."""

    async def __init__(  # type: ignore[misc]
        self,
        models: list[str],
        predictor: str,
        stores: Stores,
        tuning: dict[str, Any] | None = None,
    ) -> None:
        self.engine = ScoringEngine(
            models,
            PROPENSITY_V1,
            Registry(stores.settings()),
            predictor,  # type: ignore[arg-type]
            features=stores.online_features(),
            clock=stores.clock,
        )
        self.tuning = ScorerTuning.model_validate(tuning or {})
        self._gauge: Any = model_version_gauge()
        await asyncio.to_thread(self.engine.refresh)
        self._publish()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.tuning = ScorerTuning.model_validate(config)
        batched: Any = self.score
        batched.set_max_batch_size(self.tuning.max_batch_size)
        batched.set_batch_wait_timeout_s(self.tuning.batch_wait_timeout_s)

    def _publish(self) -> None:
        for model in self.engine.served():
            if model.version is not None:
                self._gauge.set(
                    float(model.version), tags={"model": model.name, "alias": model.alias}
                )

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.model_poll_interval_s)
            if await asyncio.to_thread(self.engine.refresh):
                self._publish()

    def check_health(self) -> None:
        if self._poller.done():
            raise RuntimeError(f"the model poller stopped: {self._poller.exception()!r}")

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.001)
    async def score(self, calls: list[list[ScoreJob]]) -> list[list[ScoreOutcome]]:
        jobs = [job for call in calls for job in call]
        rows = sum(len(j.matrix) if j.matrix is not None else len(j.ids) for j in jobs)
        outcomes = (
            await asyncio.to_thread(self.engine.score, jobs)
            if rows > BIG_BATCH_ROWS
            else self.engine.score(jobs)
        )
        out, start = [], 0
        for call in calls:
            out.append(outcomes[start : start + len(call)])
            start += len(call)
        return out

    async def served(self) -> list[Any]:
        return self.engine.served()

    async def ready(self) -> bool:
        return self.engine.ready()


@serve.deployment(name="Decider", max_ongoing_requests=128)
class Decider:
    """Next-best-offer rules over the offer catalog (pure; no I/O)."""

    def __init__(self, catalog: CatalogSource, clock: Clock) -> None:
        self.catalog = catalog
        self.clock = clock

    async def decide(
        self,
        context: DecisionContext,
        score: float,
        model_name: str,
        model_version: str,
        decision_id: str,
    ) -> Decision:
        return decide(
            context,
            score,
            self.catalog,
            decision_id=decision_id,
            model_name=model_name,
            model_version=model_version,
            now=self.clock.now(),
        )


@dataclass(frozen=True)
class IngressOptions:
    default_alias: str
    batch_size: int
    batch_wait_s: float
    api_docs: bool = False
    """Serve /docs and /redoc (see ``create_api``)."""


@serve.deployment(name="Ingress", max_ongoing_requests=128)
@serve.ingress()
class Ingress:
    """The HTTP API; its FastAPI app is built in the replica (see ``create_api``)."""

    def __init__(self, scorer: Any, decider: Any, stores: Stores, options: IngressOptions) -> None:
        self.backend = ServeBackend(
            scorer, decider, options.default_alias, options.batch_size, options.batch_wait_s
        )
        self.keys = KeyStore(Path(stores.api_keys_file))
        # Home and clock from the app; the database URL from this replica's own settings
        # (it may carry a password, which never travels as a deployment argument).
        self.settings = stores.settings()
        self.api_docs = options.api_docs

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(
            self.backend,
            self.keys,
            PROPENSITY_V1,
            RayMetrics(),
            request_id=_request_id,
            settings=self.settings,
            docs=self.api_docs,
        )
