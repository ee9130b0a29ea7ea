"""Where scoring and deciding happen behind the HTTP API.

:class:`LocalBackend` runs the engine and the rules in the API's own process (the
in-process baseline of ``sluice bench online`` and Ray-free tests). :class:`ServeBackend`
calls the Scorer and Decider deployments through handles; concurrent requests on one
ingress replica are coalesced into one Scorer call (``@serve.batch`` at the edge), and
the Scorer coalesces calls from every ingress replica again into one predict.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from sluice.contracts.api import ServedModel
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.decisions import Decision, DecisionContext
from sluice.decisioning.catalog import CatalogSource
from sluice.decisioning.rules import decide
from sluice.serve.engine import ScoreJob, ScoreOutcome, ScoringEngine


class LocalBackend:
    def __init__(
        self, engine: ScoringEngine, catalog: CatalogSource, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.default_alias = engine.default_alias

    async def score(self, job: ScoreJob) -> ScoreOutcome:
        return self.engine.score([job])[0]

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


class ServeBackend:
    def __init__(
        self, scorer: Any, decider: Any, default_alias: str, batch_size: int, batch_wait_s: float
    ) -> None:
        self.scorer = scorer
        self.decider = decider
        self.default_alias = default_alias
        batched: Any = self._flush
        batched.set_max_batch_size(batch_size)
        batched.set_batch_wait_timeout_s(batch_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0005, max_concurrent_batches=4)
    async def _flush(self, jobs: list[ScoreJob]) -> list[ScoreOutcome]:
        outcomes: list[ScoreOutcome] = await self.scorer.score.remote(jobs)
        return outcomes

    async def score(self, job: ScoreJob) -> ScoreOutcome:
        outcome: ScoreOutcome = await self._flush(job)
        return outcome

    async def decide(
        self, context: DecisionContext, outcome: ScoreOutcome, decision_id: str
    ) -> Decision:
        assert outcome.scores is not None
        decision: Decision = await self.decider.decide.remote(
            context,
            float(outcome.scores[0]),
            outcome.model_name,
            outcome.model_version,
            decision_id,
        )
        return decision

    async def models(self) -> list[ServedModel]:
        served: list[ServedModel] = await self.scorer.served.remote()
        return served

    async def ready(self) -> bool:
        ready: bool = await self.scorer.ready.remote()
        return ready
