"""The offer catalog: what the decider may propose, and its pre-approved copy."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Self

from pydantic import Field, HttpUrl, ValidationInfo, field_validator, model_validator

from sluice.contracts._base import Contract, CountryCode, CurrencyCode, Slug
from sluice.contracts.customer import Channel
from sluice.contracts.localefmt import DEFAULT_LOCALE, long_date, money, percent


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


FACT_SLOTS: tuple[str, ...] = ("price", "was_price", "discount", "end_date", "offer_url")
"""Placeholders copy may hold for the offer's own facts: approved copy, so that copy written
once stays true whatever dates the offer is resolved to (``until {end_date}``), and
generated copy, which may state a fact in no other way. Filled from :meth:`Offer.facts`,
written for the recipient's locale (:mod:`sluice.contracts.localefmt`)."""
_FACT = re.compile(r"\{(" + "|".join(FACT_SLOTS) + r")\}")
_NEEDS = {
    "price": "price",
    "was_price": "price and discount_pct",
    "discount": "discount_pct",
    "end_date": "valid_until",
    "offer_url": "url",
}

RELATIVE_DAY = re.compile(r"^\s*\+\s*(\d{1,4})\s*d(?:ays?)?\s*$")
"""A day relative to the decision date: ``+0d`` is the decision date, ``+90d`` ninety days
after it."""
ANCHOR = "decision_date"
"""Validation-context key holding the date relative offer days count from."""


def resolve_day(value: Any, info: ValidationInfo) -> Any:
    """``+Nd`` becomes the decision date plus N days; anything else is left to pydantic."""
    if not isinstance(value, str):
        return value
    match = RELATIVE_DAY.match(value)
    if match is None:
        return value
    anchor = (info.context or {}).get(ANCHOR)
    if not isinstance(anchor, date):
        raise ValueError(
            f"{value!r} is relative to the decision date, and none was given "
            "(load the catalog for a decision date)"
        )
    return anchor + timedelta(days=int(match.group(1)))


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
    """First day the offer may be sent: a date, or ``+Nd`` (N days after the decision
    date, which the catalog is loaded for)."""
    valid_until: date
    """Last day the offer is valid (copy may state this date); a date or ``+Nd``."""
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

    @property
    def was_price(self) -> float | None:
        """The price before the discount, when the offer states both."""
        if self.price is None or self.discount_pct is None or self.discount_pct >= 100:
            return None
        return round(self.price / (1 - self.discount_pct / 100), 2)

    def facts(self, locale: str = DEFAULT_LOCALE) -> dict[str, str]:
        """The value each fact slot takes for this offer, written for ``locale`` (absent
        facts are left out: no ``price`` without a price, no ``was_price`` or ``discount``
        without a discount)."""
        out = {
            "end_date": long_date(self.valid_until, locale),
            "offer_url": str(self.url),
        }
        if self.price is not None:
            out["price"] = money(self.price, self.currency, locale)
        if self.was_price is not None:
            out["was_price"] = money(self.was_price, self.currency, locale)
        if self.discount_pct is not None:
            out["discount"] = percent(self.discount_pct, locale)
        return out

    def approved_copy(self, channel: Channel, locale: str = DEFAULT_LOCALE) -> FixedCopy | None:
        """The pre-approved copy for ``channel`` with the offer's fact slots filled for
        ``locale``."""
        copy = self.fallback_copy.get(channel)
        if copy is None:
            return None
        facts = self.facts(locale)

        def fill(text: str | None) -> str | None:
            if text is None:
                return None
            return _FACT.sub(lambda m: facts.get(m.group(1), m.group(0)), text)

        return copy.model_copy(update={f: fill(getattr(copy, f)) for f in FixedCopy.model_fields})

    _relative_days = field_validator("valid_from", "valid_until", mode="before")(resolve_day)

    @model_validator(mode="after")
    def _dates_and_copy(self) -> Self:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until: is before valid_from")
        missing = [c.value for c in self.fallback_copy if c not in self.channels]
        if missing:
            raise ValueError(f"fallback_copy: channels {missing} are not in channels")
        facts = self.facts()
        for channel, copy in self.fallback_copy.items():
            for name in FixedCopy.model_fields:
                for slot in _FACT.findall(getattr(copy, name) or ""):
                    if slot not in facts:
                        raise ValueError(
                            f"fallback_copy.{channel.value}.{name}: {{{slot}}} needs the "
                            f"offer's {_NEEDS[slot]}"
                        )
        return self
