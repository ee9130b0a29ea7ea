"""The offer catalog: what the decider may propose, and its pre-approved copy."""

from __future__ import annotations

from datetime import date
from typing import Self

from pydantic import Field, HttpUrl, model_validator

from sluice.contracts._base import Contract, CountryCode, CurrencyCode, Slug
from sluice.contracts.customer import Channel


class FixedCopy(Contract):
    """Pre-approved copy for one channel: used as-is or as the LLM fallback."""

    subject: str | None = Field(default=None, max_length=150)
    """Email subject line."""
    preheader: str | None = Field(default=None, max_length=200)
    """Email preview text."""
    body: str | None = Field(default=None, max_length=10_000)
    """Email body (plain text; slots such as ``{first_name}`` are filled at send time)."""
    cta: str | None = Field(default=None, max_length=60)
    """Email call to action."""
    text: str | None = Field(default=None, max_length=1_000)
    """SMS or push text."""


class Offer(Contract):
    """One offer with its facts and the rules that decide who may get it."""

    offer_id: Slug
    """Stable identifier."""
    name: str = Field(min_length=1, max_length=200)
    """Internal name."""
    product: str = Field(min_length=1, max_length=200)
    """What is offered, as copy may name it."""
    value: float = Field(gt=0, allow_inf_nan=False)
    """Expected margin of one conversion in the catalog's reporting currency; ranks offers."""
    currency: CurrencyCode = "USD"
    """Currency of ``price`` (what copy may state)."""
    price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Price after discount, when copy may state one."""
    discount_pct: float | None = Field(default=None, gt=0, le=100)
    """Discount in percent, when copy may state one."""
    valid_from: date
    """First day the offer may be sent."""
    valid_until: date
    """Last day the offer is valid (copy may state this date)."""
    url: HttpUrl
    """Landing page; the only link copy may contain besides the unsubscribe link."""
    channels: tuple[Channel, ...] = Field(min_length=1)
    """Channels this offer may go out on, in order of preference."""
    countries: tuple[CountryCode, ...] = ()
    """Countries where the offer is available; empty means everywhere."""
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    """Lowest propensity at which the offer is worth sending."""
    consent_required: bool = True
    """Whether the customer must have consented to the channel (marketing always does)."""
    exclusive_group: Slug | None = None
    """A customer holds at most one offer of a group; held groups exclude the offer."""
    priority: int = 0
    """Breaks ties in expected value (higher first), before the offer id."""
    fallback_copy: dict[Channel, FixedCopy] = Field(default_factory=dict)
    """Pre-approved copy per channel, used when generation fails or as fixed copy."""

    @model_validator(mode="after")
    def _dates_and_copy(self) -> Self:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until: is before valid_from")
        missing = [c.value for c in self.fallback_copy if c not in self.channels]
        if missing:
            raise ValueError(f"fallback_copy: channels {missing} are not in channels")
        return self
