"""Scoring and deciding in the API's own process.

:class:`LocalBackend` runs the engine and the offer rules where the request is answered:
in the Serve deployment (:class:`sluice.serve.deployments.Decisions`), in the one-process
baseline of ``sluice bench online`` and in Ray-free tests. Concurrent requests can be
coalesced into one engine call (:meth:`LocalBackend.batch`): one online-store read and
one predict per alias for all of them. Batches of many rows predict in a worker thread,
off the event loop that serves the other requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from sluice.contracts.api import ServedModel
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.decisions import Decision, DecisionContext
from sluice.decisioning.catalog import CatalogSource
from sluice.decisioning.rules import decide
from sluice.serve.engine import ScoreJob, ScoreOutcome, ScoringEngine

BIG_BATCH_ROWS = 4_096
"""Batches with more rows than this predict in a worker thread, off the event loop."""


def _rows(jobs: list[ScoreJob]) -> int:
    return sum(len(j.matrix) if j.matrix is not None else len(j.ids) for j in jobs)


class LocalBackend:
    def __init__(
        self, engine: ScoringEngine, catalog: CatalogSource, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.default_alias = engine.default_alias
        self.batched = False

    def batch(self, max_size: int, wait_s: float) -> None:
        """Coalesce up to ``max_size`` concurrent requests into one engine call, waiting
        at most ``wait_s`` for a batch to fill (``max_size`` 1: every request alone)."""
        self.batched = max_size > 1
        flush: Any = self._flush
        flush.set_max_batch_size(max(max_size, 1))
        flush.set_batch_wait_timeout_s(wait_s)

    async def _score(self, jobs: list[ScoreJob]) -> list[ScoreOutcome]:
        # A model in a deployment of its own is waited for off the event loop.
        if self.engine.remote is not None or _rows(jobs) > BIG_BATCH_ROWS:
            return await asyncio.to_thread(self.engine.score, jobs)
        return self.engine.score(jobs)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _flush(self, jobs: list[ScoreJob]) -> list[ScoreOutcome]:
        return await self._score(jobs)

    async def score(self, job: ScoreJob) -> ScoreOutcome:
        if self.batched:
            outcome: ScoreOutcome = await self._flush(job)
            return outcome
        return (await self._score([job]))[0]

    async def decide(
        self, context: DecisionContext, outcome: ScoreOutcome, decision_id: str
    ) -> Decision:
        assert outcome.scores is not None
        return decide(
            context,
            float(outcome.scores[0]),
            self.catalog,
            decision_id=decision_id,
            model_name=outcome.model_name,
            model_version=outcome.model_version,
            now=self.clock.now(),
        )

    async def models(self) -> list[ServedModel]:
        return self.engine.served()

    async def ready(self) -> bool:
        return self.engine.ready()
