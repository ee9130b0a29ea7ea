"""The delivery ledger's record of one message."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from sluice.contracts._base import Contract, CustomerId, Slug
from sluice.contracts.customer import Channel


class DeliveryState(StrEnum):
    """``reserved -> sent | failed | deferred | suppressed | expired | withdrawn`` (a
    deferred row becomes ``reserved`` again when it is due)."""

    RESERVED = "reserved"
    SENT = "sent"
    FAILED = "failed"
    DEFERRED = "deferred"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    """The offer ended before the message could go out (checked at send time)."""
    WITHDRAWN = "withdrawn"
    """Its journey instance exited before the message went out."""


class DeliveryRecord(Contract):
    """One row per (run, customer, channel), keyed by its idempotency key."""

    idempotency_key: str = Field(min_length=16, max_length=128)
    """Deterministic key of (run id, customer id, channel); unique in the ledger."""
    run_id: Slug
    """Campaign run this delivery belongs to."""
    campaign_id: Slug
    """Campaign the run executes."""
    customer_id: CustomerId
    """Recipient."""
    channel: Channel
    """Channel of the message."""
    decision_id: str | None = None
    """Decision this message carries out (audit link)."""
    state: DeliveryState
    """Current state."""
    reserved_at: AwareDatetime
    """When the send was reserved."""
    updated_at: AwareDatetime
    """Last state change."""
    send_after: AwareDatetime | None = None
    """Earliest send time of a deferred message."""
    provider_message_id: str | None = None
    """The channel provider's id (SMTP Message-ID, webhook receipt, outbox file)."""
    attempts: int = Field(default=0, ge=0)
    """Delivery attempts so far."""
    error: str | None = None
    """Last error, when failed."""
