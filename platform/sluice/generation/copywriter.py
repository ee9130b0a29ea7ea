"""Briefs in, drafts out: structured generation with bounded retries and a fallback.

Each attempt renders the versioned template, asks the LLM for JSON constrained to the
channel's schema (its length limits, and a pattern that admits no digit, percent or
currency sign, slash or brace outside a declared slot) and validates the answer against
the same pydantic model and pattern. The offer's facts then fill the fact slots
(``{price}``, ``{was_price}``, ``{discount}``, ``{end_date}``, ``{offer_url}``), written
for the brief's locale, and the filled copy must still fit the channel's limits;
``{first_name}`` stays for the recipient. An invalid answer is retried with another seed,
up to ``max_attempts``;
after that, or at once when the LLM times out or is unavailable, the offer's
pre-approved copy stands in and the draft says ``fallback`` and why. Every draft records
model id, template version, prompt hash, sampling parameters and token counts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sluice.contracts.briefs import Brief
from sluice.contracts.drafts import DraftSource, MessageDraft
from sluice.generation.client import (
    Completion,
    GenerationTimeoutError,
    LLMClient,
    LLMUnavailableError,
)
from sluice.generation.slots import fill_facts
from sluice.generation.templates import (
    DEFAULT_TEMPLATE,
    OUTPUT_MODELS,
    TEMPLATES,
    copy_slots,
    output_schema,
    slot_violation,
)

DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.7, "top_p": 0.95, "max_tokens": 300}


@dataclass(frozen=True)
class DraftResult:
    prompt_key: str
    draft: MessageDraft
    reason: str
    """``ok`` for generated drafts; otherwise why the fallback stands in."""
    attempts: int


def prompt_hash(
    messages: list[dict[str, str]], sampling: dict[str, Any], schema: dict[str, Any]
) -> str:
    canonical = json.dumps(
        {"messages": messages, "sampling": sampling, "schema": schema}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def fallback_draft(
    brief: Brief, template_version: str | None = None, prompt_digest: str | None = None
) -> MessageDraft:
    """The offer's pre-approved copy for the brief's channel."""
    copy = brief.offer.approved_copy(brief.channel, brief.locale)
    if copy is None:
        raise LookupError(
            f"offer {brief.offer.offer_id} has no fallback copy for {brief.channel.value}"
        )
    return MessageDraft(
        channel=brief.channel,
        offer_id=brief.offer.offer_id,
        subject=copy.subject,
        preheader=copy.preheader,
        body=copy.body,
        cta=copy.cta,
        text=copy.text,
        source=DraftSource.FALLBACK,
        template_version=template_version,
        prompt_hash=prompt_digest,
    )


class Copywriter:
    def __init__(
        self,
        client: LLMClient,
        template: str = DEFAULT_TEMPLATE,
        max_attempts: int = 3,
        deadline_s: float = 30.0,
        sampling: dict[str, Any] | None = None,
    ) -> None:
        if template not in TEMPLATES:
            raise ValueError(f"template: unknown version {template!r}; known: {sorted(TEMPLATES)}")
        self.client = client
        self.template = TEMPLATES[template]
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.sampling = {**DEFAULT_SAMPLING, **(sampling or {})}

    def sampling_for(self, brief: Brief) -> dict[str, Any]:
        seed = int(hashlib.sha256(brief.variant.encode()).hexdigest()[:8], 16) % 10_000
        return {**self.sampling, "seed": seed}

    def prompt(self, brief: Brief) -> tuple[list[dict[str, str]], dict[str, Any], str]:
        """(messages, sampling, prompt hash) for ``brief``: what the cache is keyed on."""
        messages = self.template.render(brief)
        sampling = self.sampling_for(brief)
        return messages, sampling, prompt_hash(messages, sampling, self.schema(brief))

    def schema(self, brief: Brief) -> dict[str, Any]:
        """The JSON schema the answer for ``brief`` is constrained to."""
        return output_schema(brief.channel, copy_slots(brief.offer))

    def accept(
        self, brief: Brief, completion: Completion, params: dict[str, Any], digest: str
    ) -> MessageDraft | None:
        """The draft ``completion`` makes for ``brief``, or None when it is not valid: not
        the channel's model, a literal fact or unknown slot, or too long once the facts
        fill their slots."""
        model = OUTPUT_MODELS[brief.channel]
        try:
            answer = model.model_validate_json(completion.text)
            if slot_violation(answer, copy_slots(brief.offer), brief.channel) is not None:
                return None  # a backend that did not enforce the pattern
            facts = brief.offer.facts(brief.locale)
            copy = model.model_validate(
                {k: fill_facts(v, facts) for k, v in answer.model_dump().items()}
            ).model_dump()
            return MessageDraft(
                channel=brief.channel,
                offer_id=brief.offer.offer_id,
                **copy,
                source=DraftSource.GENERATED,
                model_id=self.client.model_id,
                template_version=self.template.version,
                prompt_hash=digest,
                sampling=params,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
            )
        except (ValidationError, ValueError):
            return None

    def attempt_params(self, sampling: dict[str, Any], attempt: int) -> dict[str, Any]:
        """Attempt ``attempt`` (from 1) samples with the next seed."""
        return {**sampling, "seed": int(sampling["seed"]) + attempt - 1}

    async def draft(self, brief: Brief) -> DraftResult:
        messages, sampling, digest = self.prompt(brief)
        schema = self.schema(brief)
        for attempt in range(1, self.max_attempts + 1):
            params = self.attempt_params(sampling, attempt)
            try:
                completion = await self.client.complete(messages, schema, params, self.deadline_s)
            except (GenerationTimeoutError, LLMUnavailableError) as exc:
                reason = "timeout" if isinstance(exc, GenerationTimeoutError) else "llm_unavailable"
                return DraftResult(
                    brief.prompt_key,
                    fallback_draft(brief, self.template.version, digest),
                    reason,
                    attempt,
                )
            draft = self.accept(brief, completion, params, digest)
            if draft is not None:
                return DraftResult(brief.prompt_key, draft, "ok", attempt)
        return DraftResult(
            brief.prompt_key,
            fallback_draft(brief, self.template.version, digest),
            "invalid_output",
            self.max_attempts,
        )
