"""What the copywriter is told: offer facts, brand voice and segment-level attributes.

Nothing personal is in a brief: :class:`SegmentProfile` is the allow-list of what a
prompt may say about the audience, and it forbids every other field. Personal values
reach copy only through declared slots filled after generation (:data:`SLOTS`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from sluice.contracts._base import Contract, CountryCode, Slug
from sluice.contracts.customer import Channel
from sluice.contracts.offers import Offer

SLOTS: tuple[str, ...] = ("first_name",)
"""Placeholders copy may contain, such as ``{first_name}``; filled per recipient later."""


class PropensityTier(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Lifecycle(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    LAPSING = "lapsing"
    DORMANT = "dormant"


class SegmentProfile(Contract):
    """Segment-level attributes a prompt may mention (the allow-list)."""

    tier: PropensityTier
    """Propensity band of the segment."""
    lifecycle: Lifecycle
    """Where the segment is in its relationship with the brand."""
    country: CountryCode
    """Country of the segment (currency, spelling)."""

    @property
    def key(self) -> str:
        return f"{self.tier.value}-{self.lifecycle.value}-{self.country}"


class BrandVoice(Contract):
    """How the brand speaks."""

    brand: str = Field(default="Sluice Outdoors", min_length=1, max_length=60)
    tone: str = Field(
        default="warm, concise, outdoorsy; no exclamation marks in subjects", max_length=200
    )
    avoid: tuple[str, ...] = ("competitor names", "invented prices or dates", "personal details")


class Brief(Contract):
    """One prompt's worth of instructions: the unit the cache and fan-out work on."""

    offer: Offer
    channel: Channel
    locale: str = Field(default="en-US", pattern=r"^[a-z]{2}-[A-Z]{2}$")
    segment: SegmentProfile
    voice: BrandVoice = BrandVoice()
    variant: Slug = "a"
    """A/B variant of the copy (different sampling seed and framing)."""

    @property
    def prompt_key(self) -> str:
        """segment x offer x channel x locale x variant."""
        parts = (
            self.segment.key,
            self.offer.offer_id,
            self.channel.value,
            self.locale,
            self.variant,
        )
        return "|".join(parts)
