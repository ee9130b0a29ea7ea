"""Message copy, as the copywriter proposes it."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from sluice.contracts._base import Contract, Slug
from sluice.contracts.customer import Channel


class DraftSource(StrEnum):
    """Where a draft's copy came from."""

    GENERATED = "generated"
    """Written by the LLM and validated against the draft schema."""
    FALLBACK = "fallback"
    """Generation failed or timed out; the offer's pre-approved copy stands in."""
    FIXED = "fixed"
    """The campaign uses pre-approved copy only."""


class MessageDraft(Contract):
    """Copy for one offer on one channel, with how it was made."""

    channel: Channel
    """Channel the copy is written for."""
    offer_id: Slug
    """Offer the copy promotes."""
    subject: str | None = Field(default=None, max_length=150)
    """Email subject."""
    preheader: str | None = Field(default=None, max_length=200)
    """Email preview text."""
    body: str | None = Field(default=None, max_length=10_000)
    """Email body."""
    cta: str | None = Field(default=None, max_length=60)
    """Email call to action."""
    text: str | None = Field(default=None, max_length=1_000)
    """SMS or push text."""
    source: DraftSource
    """Generated, fallback or fixed."""
    model_id: str | None = None
    """LLM that wrote it (generated drafts)."""
    template_version: str | None = None
    """Prompt template version."""
    prompt_hash: str | None = None
    """SHA-256 of the rendered prompt and sampling parameters."""
    sampling: dict[str, float | int | str] = Field(default_factory=dict)
    """Sampling parameters of the generation."""
    prompt_tokens: int = Field(default=0, ge=0)
    """Tokens in the prompt."""
    completion_tokens: int = Field(default=0, ge=0)
    """Tokens generated."""

    @model_validator(mode="after")
    def _fields_for_channel(self) -> Self:
        if self.channel is Channel.EMAIL:
            absent = [f for f in ("subject", "body", "cta") if not getattr(self, f)]
            if absent:
                raise ValueError(f"{', '.join(absent)}: required for email")
        elif not self.text:
            raise ValueError(f"text: required for {self.channel.value}")
        return self
