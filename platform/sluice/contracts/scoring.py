"""Model outputs."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from sluice.contracts._base import Contract, CustomerId


class Score(Contract):
    """One customer's propensity from one concrete model version."""

    customer_id: CustomerId
    """Whose score it is."""
    score: float = Field(ge=0.0, le=1.0)
    """Probability of a purchase within the model's horizon."""
    model_name: str
    """Registered model name."""
    model_version: str
    """The concrete version that produced the score (never an alias)."""
    scored_at: AwareDatetime
    """When the score was computed."""
