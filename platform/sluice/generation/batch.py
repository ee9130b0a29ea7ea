"""Copy for a whole campaign: each distinct prompt generated once, then fanned out.

Briefs are de-duplicated by prompt key and looked up in the :class:`DraftCache`; the
missing ones go through a Ray Data job whose actor calls the LLM deployment with at most
``max_in_flight`` requests at once. A generation that fails in any way (invalid output
after retries, deadline, deployment gone, anything unexpected) yields the offer's
fallback copy with the reason, for that prompt only; after ``breaker_after`` consecutive
timeouts or unavailability errors the remaining prompts skip the LLM, so a dead
deployment costs seconds, not a deadline per prompt.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sluice.contracts.briefs import Brief
from sluice.contracts.drafts import DraftSource, MessageDraft
from sluice.generation.cache import DraftCache
from sluice.generation.client import OpenAIChatClient
from sluice.generation.copywriter import Copywriter, DraftResult, fallback_draft
from sluice.generation.processor import ProcessorSettings, generate_with_processor
from sluice.generation.templates import DEFAULT_TEMPLATE

BREAKER_REASONS = frozenset({"timeout", "llm_unavailable"})


@dataclass(frozen=True)
class GenerationConfig:
    base_url: str
    """OpenAI-compatible base URL of the LLM deployment, e.g. http://127.0.0.1:8000/llm/v1."""
    model_id: str = "smollm2-135m-instruct"
    template: str = DEFAULT_TEMPLATE
    max_in_flight: int = 4
    """Generations in flight. On CPU, vLLM gains little from batching, so more in flight
    only makes each one slower; raise it on a GPU."""
    deadline_s: float = 60.0
    max_attempts: int = 3
    breaker_after: int = 3
    egress: tuple[str, ...] | None = None
    """For a URL from a campaign spec: connect through the egress guard, these hosts
    allowed although not globally routable (``copy.allow_hosts``); None: as the URL says."""
    processor: ProcessorSettings | None = None
    """Generate through ``ray.data.llm`` with this engine when at least
    ``processor_min_prompts`` prompts miss the cache (:mod:`sluice.generation.processor`)."""
    processor_min_prompts: int = 64
    api_key_env: str | None = None
    """Environment variable holding the LLM app's API key, read by the generating worker
    (an app that requires keys refuses requests without one); None or unset: no key."""

    def client(self) -> OpenAIChatClient:
        """The OpenAI client these settings describe, with the key from this process's
        environment."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return OpenAIChatClient(
            self.base_url, self.model_id, api_key=key or "not-needed", egress=self.egress
        )


@dataclass
class GenerationReport:
    prompts: int = 0
    """Distinct prompt keys asked for."""
    cached: int = 0
    """Of those, answered from the draft cache (LLM drafts of earlier runs)."""
    generated: int = 0
    """Generated now: the LLM's answer was valid."""
    fallback: int = 0
    """No valid answer now: approved copy stands in (why: ``reasons``)."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Why each prompt generated now ended as it did (``ok``, ``invalid_output``...)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    engine: str = "serve"
    """What generated: the Serve app (``serve``) or a ``ray.data.llm`` processor."""
    llm_drafts: int = 0
    """LLM drafts judged by the content gates before use (generated plus cached)."""
    passed: int = 0
    """Of those, drafts that passed every content gate and are used."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Drafts a content gate failed or sent to review (``gate:reason``); approved copy
    stands in for them."""

    @property
    def pass_share(self) -> float | None:
        """The share of LLM drafts that passed every content gate."""
        return round(self.passed / self.llm_drafts, 4) if self.llm_drafts else None

    def figures(self) -> dict[str, object]:
        """The report as JSON-ready figures, ``pass_share`` included."""
        return {**self.__dict__, "pass_share": self.pass_share}


class GenerateDrafts:
    """Ray Data callable class: one copywriter (and one event loop) per actor."""

    def __init__(self, config: GenerationConfig) -> None:
        self.config = config
        self.copywriter = Copywriter(
            config.client(),
            config.template,
            config.max_attempts,
            config.deadline_s,
        )
        self.loop = asyncio.new_event_loop()
        self.consecutive_failures = 0

    async def _one(self, brief: Brief, gate: asyncio.Semaphore) -> DraftResult:
        version = self.copywriter.template.version
        async with gate:  # the breaker is checked once a slot is free, not before
            if self.consecutive_failures >= self.config.breaker_after:
                return DraftResult(
                    brief.prompt_key, fallback_draft(brief, version), "circuit_open", 0
                )
            try:
                result = await self.copywriter.draft(brief)
            except Exception as exc:  # one bad generation never fails the batch
                return DraftResult(
                    brief.prompt_key,
                    fallback_draft(brief, version),
                    f"error: {type(exc).__name__}",
                    0,
                )
        self.consecutive_failures = (
            self.consecutive_failures + 1 if result.reason in BREAKER_REASONS else 0
        )
        return result

    async def _all(self, briefs: list[Brief]) -> list[DraftResult]:
        gate = asyncio.Semaphore(self.config.max_in_flight)
        return list(await asyncio.gather(*(self._one(b, gate) for b in briefs)))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        briefs = [Brief.model_validate_json(b) for b in batch["brief"]]
        results = self.loop.run_until_complete(self._all(briefs))
        return {
            "prompt_key": [r.prompt_key for r in results],
            "draft": [r.draft.model_dump_json() for r in results],
            "reason": [r.reason for r in results],
        }


def _dedupe(briefs: Sequence[Brief]) -> dict[str, Brief]:
    unique: dict[str, Brief] = {}
    for b in briefs:
        unique.setdefault(b.prompt_key, b)
    return unique


def generate_drafts(
    briefs: Sequence[Brief], config: GenerationConfig, cache: DraftCache
) -> tuple[dict[str, MessageDraft], GenerationReport]:
    """A draft for every distinct prompt key among ``briefs``; see the module docstring."""
    import ray.data

    from sluice.runtime import ensure_ray

    started = time.perf_counter()
    unique = _dedupe(briefs)
    client = OpenAIChatClient(config.base_url, config.model_id, egress=config.egress)
    planner = Copywriter(client, config.template)
    keys = {
        pk: (planner.prompt(b)[2], config.model_id, planner.template.version)
        for pk, b in unique.items()
    }
    hits = cache.get_many(list(keys.values()))
    drafts = {pk: hits[k] for pk, k in keys.items() if k in hits}
    report = GenerationReport(prompts=len(unique), cached=len(drafts))
    missing = [b for pk, b in unique.items() if pk not in drafts]
    reasons: Counter[str] = Counter()
    fresh: list[MessageDraft] = []
    if missing and config.processor and len(missing) >= config.processor_min_prompts:
        for result in generate_with_processor(missing, config.processor):
            drafts[result.prompt_key] = result.draft
            reasons[result.reason] += 1
            fresh.append(result.draft)
        cache.put_many(fresh)
        report.engine = "ray.data.llm"
    elif missing:
        ensure_ray()
        ds = ray.data.from_items(
            [{"brief": b.model_dump_json()} for b in missing], override_num_blocks=1
        )
        out = ds.map_batches(
            GenerateDrafts,
            fn_constructor_kwargs={"config": config},
            batch_size=len(missing),
            concurrency=1,
            num_cpus=0.25,
        )
        for row in out.take_all():
            draft = MessageDraft.model_validate_json(row["draft"])
            drafts[str(row["prompt_key"])] = draft
            reasons[str(row["reason"])] += 1
            fresh.append(draft)
        cache.put_many(fresh)
    for d in fresh:
        if d.source is DraftSource.GENERATED:
            report.generated += 1
            report.prompt_tokens += d.prompt_tokens
            report.completion_tokens += d.completion_tokens
        else:
            report.fallback += 1
    report.reasons = dict(reasons)
    report.seconds = round(time.perf_counter() - started, 3)
    return drafts, report
