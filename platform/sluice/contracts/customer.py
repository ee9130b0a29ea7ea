"""Customers as the marketing cloud knows them: profile, consent, purchases, engagement."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, EmailStr, Field, model_validator

from sluice.contracts._base import (
    Contract,
    CountryCode,
    CurrencyCode,
    CustomerId,
    E164Phone,
    IanaTimeZone,
)


class Channel(StrEnum):
    """A marketing channel a customer can consent to and be reached on."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class ChannelConsent(Contract):
    """The latest consent decision of one customer for one channel."""

    channel: Channel
    """The channel this decision is for."""
    granted: bool
    """True while consent is given; False once withdrawn (withdrawal always wins)."""
    updated_at: AwareDatetime
    """When the customer gave or withdrew consent."""
    source: str = "signup"
    """Where the decision was captured (signup form, preference centre, import...)."""


class CustomerProfile(Contract):
    """One customer. Personal fields stay out of prompts and features."""

    customer_id: CustomerId
    """Opaque identifier, unique per customer."""
    email: EmailStr | None = None
    """Email address, when the customer gave one."""
    phone: E164Phone | None = None
    """Mobile number in E.164 form, when given."""
    first_name: str | None = Field(default=None, max_length=100)
    """Given name, used only to fill the ``{first_name}`` slot after generation."""
    last_name: str | None = Field(default=None, max_length=100)
    """Family name."""
    country: CountryCode
    """Country of residence."""
    time_zone: IanaTimeZone
    """IANA time zone for quiet hours and daily frequency caps."""
    locale: str = Field(default="en-US", pattern=r"^[a-z]{2}-[A-Z]{2}$")
    """Language and region for copy, such as ``de-DE``."""
    signup_date: date
    """Day the customer joined."""
    consents: tuple[ChannelConsent, ...] = ()
    """Latest consent decision per channel; no record means no consent."""

    @model_validator(mode="after")
    def _one_consent_per_channel(self) -> CustomerProfile:
        channels = [c.channel for c in self.consents]
        if len(channels) != len(set(channels)):
            raise ValueError("consents: at most one record per channel")
        return self

    def consent_for(self, channel: Channel) -> ChannelConsent | None:
        """The consent record for ``channel``, or None when there is none."""
        return next((c for c in self.consents if c.channel == channel), None)


class Transaction(Contract):
    """One purchase (or refund, with a negative amount)."""

    transaction_id: str = Field(min_length=1)
    """Unique id of the transaction."""
    customer_id: CustomerId
    """Who bought."""
    timestamp: AwareDatetime
    """When the purchase happened."""
    amount: float = Field(allow_inf_nan=False)
    """Order value in ``currency``; negative for refunds."""
    currency: CurrencyCode = "USD"
    """Currency of ``amount``."""


class EngagementKind(StrEnum):
    """Engagement signals a marketing cloud records before any model runs."""

    EMAIL_SENT = "email_sent"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    WEB_VISIT = "web_visit"


class EngagementEvent(Contract):
    """One engagement signal of one customer."""

    event_id: str = Field(min_length=1)
    """Unique id of the event."""
    customer_id: CustomerId
    """Whose event it is."""
    kind: EngagementKind
    """What happened."""
    timestamp: AwareDatetime
    """When it happened."""
