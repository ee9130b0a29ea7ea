"""Outcome events, arm KPIs, incidents, drift rows and the campaign report's figures.

Events arrive from providers and web analytics (the back office's ``POST /v1/events``,
``sluice events import``); KPIs, guardrail results and incidents are what the feedback
loop derives from them; :class:`ReportData` is everything the HTML campaign report shows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from sluice.contracts._base import ID_PATTERN, Contract, CustomerId, Slug
from sluice.contracts.customer import Channel


class EventType(StrEnum):
    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    CONVERSION = "conversion"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


SUPPRESSING = {
    EventType.UNSUBSCRIBE: "unsubscribed",
    EventType.BOUNCE: "bounced",
    EventType.COMPLAINT: "complained",
}
"""Event types that put the customer on the suppression list, with the entry's reason."""


class OutcomeEvent(Contract):
    """One thing that happened after (or without) a message."""

    event_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    """The sender's id for this event; a second event with the same id is a duplicate."""
    type: EventType
    customer_id: CustomerId | None = None
    """Who it concerns; may be left out when ``token`` carries it."""
    occurred_at: AwareDatetime
    """When it happened (with a time zone)."""
    run_id: str | None = Field(default=None, max_length=128)
    """The campaign run whose message it follows, when known."""
    campaign_id: Slug | None = None
    channel: Channel | None = None
    brand: Slug | None = None
    """Brand an unsubscribe applies to (default: all brands)."""
    revenue: float | None = Field(default=None, ge=0, le=1_000_000)
    """Order value of a conversion (required for conversions, refused for others)."""
    token: str | None = Field(default=None, max_length=1024)
    """A one-click unsubscribe token from a delivered message (unsubscribes only)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not 2000 <= self.occurred_at.year <= 2200:
            raise ValueError("occurred_at: must be between the years 2000 and 2200")
        if self.type is EventType.CONVERSION and self.revenue is None:
            raise ValueError("revenue: a conversion needs its revenue (0 if none)")
        if self.type is not EventType.CONVERSION and self.revenue is not None:
            raise ValueError(f"revenue: only conversions carry revenue, not {self.type.value}")
        if self.token is not None and self.type is not EventType.UNSUBSCRIBE:
            raise ValueError("token: only unsubscribe events carry a token")
        if self.customer_id is None and self.token is None:
            raise ValueError("customer_id: required (or an unsubscribe token that carries it)")
        return self


PropertyValue = str | int | float | bool | None | list[str | int | float | bool]


class CustomerEvent(Contract):
    """Something a customer did that a journey reacts to (``cart_abandoned``,
    ``purchase``, ``browse``...): any type an active journey names, with properties."""

    event_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    """The sender's id for this event; a second event with the same id is a duplicate."""
    type: Slug
    customer_id: CustomerId
    occurred_at: AwareDatetime
    properties: dict[str, PropertyValue] = Field(default_factory=dict, max_length=64)
    """What the event carries (cart id, items, value): entry properties of a journey."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not 2000 <= self.occurred_at.year <= 2200:
            raise ValueError("occurred_at: must be between the years 2000 and 2200")
        if self.type in {t.value for t in EventType}:
            raise ValueError(f"type: {self.type} is an outcome event type")
        for key, value in self.properties.items():
            if not key or len(key) > 64 or not (key[0].isalpha() or key[0] == "_"):
                raise ValueError(f"properties.{key[:64]}: not a property name")
            if isinstance(value, str) and len(value) > 1000:
                raise ValueError(f"properties.{key}: longer than 1000 characters")
            if isinstance(value, list) and len(value) > 100:
                raise ValueError(f"properties.{key}: more than 100 items")
        return self


class EventBatch(Contract):
    events: list[OutcomeEvent] = Field(min_length=1, max_length=10_000)


class EventReject(Contract):
    index: int
    field: str
    reason: str


class IngestResult(Contract):
    accepted: int
    duplicates: int
    rejected: list[EventReject] = Field(default_factory=list)
    suppressions: int = 0
    """Suppression entries created by unsubscribes, bounces and complaints."""
    incidents: list[str] = Field(default_factory=list)
    """Incidents opened by guardrails evaluated after this batch."""


class Interval(Contract):
    value: float | None
    low: float | None
    high: float | None


class ArmKpi(Contract):
    """Intention-to-treat figures of one arm (and model version) of a run."""

    arm: Literal["holdout", "canary", "main"]
    model_version: str | None
    recipients: int
    """Customers assigned to the arm (messaged or not)."""
    sent: int
    conversions: int
    revenue: float
    conversion_rate: Interval
    revenue_per_recipient: Interval
    lift_vs_holdout: Interval | None
    """Conversion rate minus the holdout's (absolute), with its interval."""
    unsubscribe_rate: Interval
    """Per message sent."""
    complaint_rate: Interval
    """Per message sent."""
    unsubscribes: int
    complaints: int


class GuardrailResult(Contract):
    name: str
    metric: str
    fired: bool
    observed: float | None
    """The compared statistic (a ratio or a lift)."""
    p_value: float | None
    detail: str


class Incident(Contract):
    incident_id: str
    campaign_id: str
    run_id: str
    arm: str
    guardrail: str
    status: Literal["open", "resolved"]
    opened_at: datetime
    evidence: dict[str, object]
    actions: list[str]
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    note: str | None = None


class DriftRow(Contract):
    variable: str
    """A feature name, or ``score``."""
    psi: float
    level: Literal["ok", "warn", "block"]


class FunnelStep(Contract):
    stage: str
    count: int


class Rejection(Contract):
    gate: str
    reason: str
    count: int


class GainsPoint(Contract):
    decile: int
    """1 = the highest scores."""
    recipients: int
    conversions: int
    cum_recipients_share: float
    cum_conversions_share: float
    lift: float | None
    """Conversion rate of the decile over the overall rate."""


class ScoreHistogram(Contract):
    edges: list[float]
    """Bin edges (one more than each arm's counts)."""
    counts: dict[str, list[int]]
    """Counts per arm."""


class ReportData(Contract):
    """Everything the campaign report shows, read from the database of one run."""

    run_id: str
    campaign_id: str
    campaign_name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    generated_at: datetime
    model_version: str
    canary_model_version: str | None
    scores: ScoreHistogram
    gains: list[GainsPoint]
    funnel: list[FunnelStep]
    rejections: list[Rejection]
    arms: list[ArmKpi]
    guardrails: list[GuardrailResult]
    drift: list[DriftRow]
    incidents: list[Incident]
