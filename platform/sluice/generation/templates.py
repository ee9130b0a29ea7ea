"""Versioned prompt templates and the JSON schema of each channel's draft.

A template version is part of every draft's record and of the cache key: changing the
wording of a prompt means a new version, never an edit in place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from sluice.contracts._base import Contract
from sluice.contracts.briefs import SLOTS, Brief
from sluice.contracts.customer import Channel
from sluice.contracts.offers import FACT_SLOTS, Offer


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


def copy_slots(offer: Offer) -> tuple[str, ...]:
    """The slots generated copy for ``offer`` may hold: the fact slots the offer has a
    value for (no ``{price}`` without a price), then the personal ones (``{first_name}``)."""
    facts = offer.facts()
    return (*(s for s in FACT_SLOTS if s in facts), *SLOTS)


FORBIDDEN = "0-9%$€£¥/\\\\{}<>@"
"""What generated text may not hold itself (a regex character class body): digits, percent
and currency signs, slashes and ``@`` (no literal price, percentage, date, link, address or
phone number) and the characters of slots and markup outside a slot."""


SMS_CHARS = "A-Za-z !\"&'()*+,.:;=?_-"
"""What an SMS may hold besides slots: letters and plain punctuation of the GSM-7 basic
set (no digit, no sign above), so a generated SMS is never a UCS-2 one (70 characters
a segment): curly quotes and emoji are out."""


def text_pattern(slots: tuple[str, ...], channel: Channel | None = None) -> str:
    """The regex every generated field must match: allowed characters, or one of ``slots``
    written in braces. Plain groups and a character class only, so that every structured
    output backend of vLLM compiles it; anchored at both ends."""
    chars = "[" + SMS_CHARS + "]" if channel is Channel.SMS else "[^" + FORBIDDEN + "]"
    return "^(" + chars + "|\\{(" + "|".join(slots) + ")\\})*$"


def output_schema(channel: Channel, slots: tuple[str, ...] = SLOTS) -> dict[str, Any]:
    """The JSON schema vLLM constrains generation to for ``channel``: the channel's draft
    model with :func:`text_pattern` on every field, so facts can only come through slots."""
    schema = OUTPUT_MODELS[channel].model_json_schema()
    pattern = text_pattern(slots, channel)
    for spec in schema["properties"].values():
        spec["pattern"] = pattern
    return schema


def slot_violation(
    copy: Contract, slots: tuple[str, ...], channel: Channel | None = None
) -> str | None:
    """The first field of ``copy`` that does not match :func:`text_pattern` (an answer
    from a backend that did not enforce the schema), or None."""
    pattern = re.compile(text_pattern(slots, channel))
    for name, value in copy.model_dump().items():
        if isinstance(value, str) and pattern.fullmatch(value) is None:
            return name
    return None


SLOT_MEANINGS = {
    "price": "the price after the discount",
    "was_price": "the price before the discount",
    "discount": "the discount",
    "end_date": "the last day of the offer",
    "offer_url": "the link to the offer",
    "first_name": "the reader's first name",
}

EXAMPLES: dict[Channel, tuple[dict[str, str], dict[str, str]]] = {
    Channel.EMAIL: (
        {
            "subject": "{first_name}, the Ridge tent is {discount} off",
            "preheader": "Now {price} instead of {was_price}, until {end_date}",
            "body": "Hi {first_name}, the Ridge two-person tent is {discount} off: {price} "
            "until {end_date}. Light, quick to pitch, ready for your next trip.",
            "cta": "See the tent",
        },
        {
            "subject": "{first_name}, free tent care with every Ridge tent",
            "preheader": "Until {end_date}, on every Ridge tent",
            "body": "Hi {first_name}, every Ridge two-person tent comes with a free care kit "
            "until {end_date}. Light, quick to pitch, ready for your next trip.",
            "cta": "See the tent",
        },
    ),
    Channel.SMS: (
        {"text": "Ridge tent {discount} off, now {price} until {end_date}: {offer_url}"},
        {"text": "Free care kit with every Ridge tent until {end_date}: {offer_url}"},
    ),
    Channel.PUSH: (
        {"text": "{first_name}, the Ridge tent is {discount} off until {end_date}"},
        {"text": "{first_name}, a free care kit with every Ridge tent until {end_date}"},
    ),
}
"""One worked example per channel (a different product), with and without a price, so a
small model sees the shape and the slots in use."""


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str

    def render(self, brief: Brief) -> list[dict[str, str]]:
        """Chat messages for ``brief``: the product, which fact slots it has, voice and
        segment; no personal data and no fact values (those fill the slots later)."""
        offer = brief.offer
        slots = copy_slots(offer)
        limits = OUTPUT_MODELS[brief.channel].model_json_schema()["properties"]
        sizes = ", ".join(
            f"{name} at most {spec['maxLength']} characters" for name, spec in limits.items()
        )
        priced, plain = EXAMPLES[brief.channel]
        values = {
            "brand": brief.voice.brand,
            "tone": brief.voice.tone,
            "avoid": "; ".join(brief.voice.avoid),
            "channel": brief.channel.value,
            "locale": brief.locale,
            "tier": brief.segment.tier.value,
            "lifecycle": brief.segment.lifecycle.value,
            "country": brief.segment.country,
            "product": offer.product,
            "slots": "; ".join("{" + s + "} for " + SLOT_MEANINGS[s] for s in slots),
            "sizes": sizes,
            "variant": "lead with the benefit" if brief.variant == "a" else "lead with the saving",
            "example": json.dumps(priced if "price" in slots else plain),
        }
        return [
            {"role": "system", "content": self.system.format(**values)},
            {"role": "user", "content": self.user.format(**values)},
        ]


TEMPLATES: dict[str, PromptTemplate] = {
    "copy-v2": PromptTemplate(
        version="copy-v2",
        system=(
            "You write {channel} marketing copy for {brand}. Tone: {tone}. Never use: {avoid}. "
            "Never write a number, price, percentage, date or link yourself: write a slot in "
            "braces instead, and the exact value is filled in later. Answer with JSON only.\n"
            "Example, for another product (the Ridge tent):\n{example}"
        ),
        user=(
            "Product: {product}. Slots: {slots}.\n"
            "Write the {channel} in {locale} for {lifecycle} customers in {country} with {tier} "
            "purchase propensity; {variant}. Keep {sizes}."
        ),
    ),
}
"""Prompt templates by version. ``copy-v1`` (the facts' values in the prompt, literal
prices and dates in the copy) is retired: facts enter copy only through slots."""
DEFAULT_TEMPLATE = "copy-v2"
