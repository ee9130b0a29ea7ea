"""Versioned prompt templates and the JSON schema of each channel's draft.

A template version is part of every draft's record and of the cache key: changing the
wording of a prompt means a new version, never an edit in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from sluice.contracts._base import Contract
from sluice.contracts.briefs import SLOTS, Brief
from sluice.contracts.customer import Channel


class EmailCopy(Contract):
    """What the LLM must return for an email."""

    subject: str = Field(min_length=5, max_length=78)
    preheader: str = Field(min_length=5, max_length=110)
    body: str = Field(min_length=20, max_length=700)
    cta: str = Field(min_length=2, max_length=30)


class SmsCopy(Contract):
    """What the LLM must return for an SMS (one GSM-7 segment)."""

    text: str = Field(min_length=10, max_length=160)


class PushCopy(Contract):
    """What the LLM must return for a push notification."""

    text: str = Field(min_length=10, max_length=120)


OUTPUT_MODELS: dict[Channel, type[Contract]] = {
    Channel.EMAIL: EmailCopy,
    Channel.SMS: SmsCopy,
    Channel.PUSH: PushCopy,
}


def output_schema(channel: Channel) -> dict[str, Any]:
    """The JSON schema vLLM constrains generation to for ``channel``."""
    return OUTPUT_MODELS[channel].model_json_schema()


EXAMPLES: dict[Channel, dict[str, str]] = {
    Channel.EMAIL: {
        "subject": "{first_name}, the Ridge tent is 15% off",
        "preheader": "Now 254.99 USD until 2026-09-30",
        "body": "Hi {first_name}, the Ridge two-person tent is 15% off: 254.99 USD until "
        "2026-09-30. Light, quick to pitch, ready for your next trip.",
        "cta": "See the tent",
    },
    Channel.SMS: {
        "text": "Ridge tent 15% off, now 254.99 USD until 2026-09-30: https://shop.example.com/tents/ridge"
    },
    Channel.PUSH: {"text": "{first_name}, the Ridge tent is 15% off until 2026-09-30"},
}
"""One worked example per channel (a different product), so a small model sees the shape."""


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str

    def render(self, brief: Brief) -> list[dict[str, str]]:
        """Chat messages for ``brief``: offer facts, voice and segment only, no personal data."""
        offer = brief.offer
        facts = [f"Product: {offer.product}"]
        if offer.discount_pct is not None:
            facts.append(f"Discount: {offer.discount_pct:g}%")
        if offer.price is not None:
            facts.append(f"Price after discount: {offer.price:.2f} {offer.currency}")
        facts += [f"Valid until: {offer.valid_until.isoformat()}", f"Link: {offer.url}"]
        limits = OUTPUT_MODELS[brief.channel].model_json_schema()["properties"]
        sizes = ", ".join(
            f"{name} at most {spec['maxLength']} characters" for name, spec in limits.items()
        )
        values = {
            "brand": brief.voice.brand,
            "tone": brief.voice.tone,
            "avoid": "; ".join(brief.voice.avoid),
            "channel": brief.channel.value,
            "locale": brief.locale,
            "tier": brief.segment.tier.value,
            "lifecycle": brief.segment.lifecycle.value,
            "country": brief.segment.country,
            "facts": "; ".join(facts),
            "sizes": sizes,
            "slots": ", ".join("{" + s + "}" for s in SLOTS),
            "variant": "lead with the benefit" if brief.variant == "a" else "lead with the saving",
            "example": json.dumps(EXAMPLES[brief.channel]),
        }
        return [
            {"role": "system", "content": self.system.format(**values)},
            {"role": "user", "content": self.user.format(**values)},
        ]


TEMPLATES: dict[str, PromptTemplate] = {
    "copy-v1": PromptTemplate(
        version="copy-v1",
        system=(
            "You write {channel} marketing copy for {brand}. Tone: {tone}. Never use: {avoid}. "
            "Use only the facts given: no other prices, percentages, dates, names or links. "
            "Answer with JSON only.\n"
            "Example, for the facts Product: Ridge tent; Discount: 15%; Price after discount: "
            "254.99 USD; Valid until: 2026-09-30; Link: https://shop.example.com/tents/ridge:\n"
            "{example}"
        ),
        user=(
            "Facts: {facts}.\n"
            "Write the {channel} in {locale} for {lifecycle} customers in {country} with {tier} "
            "purchase propensity; {variant}. You may greet the reader with {slots}. "
            "Keep {sizes}."
        ),
    ),
}
DEFAULT_TEMPLATE = "copy-v1"
