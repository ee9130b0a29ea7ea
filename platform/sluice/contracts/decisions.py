"""Next-best-offer decisions: the context a decision is made in and what it says."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from sluice.contracts._base import Contract, CountryCode, CurrencyCode, CustomerId, Slug
from sluice.contracts.customer import Channel
from sluice.contracts.offers import Offer


class OfferCatalog(Contract):
    """The offers a decider may choose from."""

    name: Slug = "default"
    """Catalog name, recorded with decisions."""
    reporting_currency: CurrencyCode = "USD"
    """Currency of every offer's ``value``, so expected values compare."""
    offers: tuple[Offer, ...] = Field(min_length=1)
    """Every offer; ids must be unique."""

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [o.offer_id for o in self.offers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"offers: duplicate offer_id {dupes}")
        return self

    def get(self, offer_id: str) -> Offer | None:
        return next((o for o in self.offers if o.offer_id == offer_id), None)


class DecisionContext(Contract):
    """What the decider knows about the customer besides the score."""

    customer_id: CustomerId
    """Opaque customer id."""
    country: CountryCode
    """Country of residence (offer availability)."""
    consents: dict[Channel, bool] = Field(default_factory=dict)
    """Latest consent per channel: true granted, false withdrawn; absent means no record,
    which means no consent."""
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
    """Channels the customer can be reached on now (has an address, app installed...)."""
    held_offers: tuple[Slug, ...] = ()
    """Offers the customer already holds; they and their exclusive groups are excluded."""
    at: AwareDatetime | None = None
    """When the decision applies (offer validity); default now."""


class ExclusionRule(StrEnum):
    """Why an offer was not eligible."""

    VALIDITY = "validity"
    COUNTRY = "country"
    MIN_SCORE = "min_score"
    CHANNEL = "channel"
    CONSENT = "consent"
    ALREADY_HELD = "already_held"
    EXCLUSIVITY = "exclusivity"


class Exclusion(Contract):
    """One offer left out, and the rule that left it out."""

    offer_id: Slug
    rule: ExclusionRule
    detail: str


class RankedOffer(Contract):
    """An eligible offer with its expected value and the channel it would use."""

    offer_id: Slug
    channel: Channel
    expected_value: float
    """Propensity times the offer's value."""


class Decision(Contract):
    """The next best offer for one customer, with the reasons behind it."""

    decision_id: str = Field(min_length=8, max_length=64)
    """Identifier that delivery and audit records refer to."""
    customer_id: CustomerId
    offer_id: Slug | None
    """The chosen offer; None when no offer is eligible."""
    channel: Channel | None
    """Channel for the chosen offer."""
    score: float = Field(ge=0, le=1)
    """The propensity the decision used."""
    model_name: str
    model_version: str
    """The concrete model version that produced the score."""
    expected_value: float | None
    """Expected value of the chosen offer."""
    ranked: tuple[RankedOffer, ...]
    """Every eligible offer, best first."""
    excluded: tuple[Exclusion, ...]
    """Every ineligible offer and why."""
    catalog: Slug
    """Catalog the offers came from."""
    decided_at: AwareDatetime
    features_at: AwareDatetime | None = None
    """The feature timestamp of the online-store row the score used (None: the request
    gave the features)."""
    stale_features: bool = False
    """That row was older than the contract's freshness limit, used because the request
    allowed it."""
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    """The W3C trace id of the request that asked for the decision (online decisions)."""
