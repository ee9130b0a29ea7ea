"""What a gate says about one message."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, model_validator

from sluice.contracts._base import Contract, Slug


class GateOutcome(StrEnum):
    """A gate's answer. Only ``pass`` from every gate lets a message out."""

    PASS = "pass"
    FAIL = "fail"
    REVIEW = "review"
    """A person decides (review queue)."""
    DEFER = "defer"
    """Not now: retry at ``defer_until`` (quiet hours)."""


class GateVerdict(Contract):
    """One gate's verdict on one message."""

    gate: Slug
    """Name of the gate."""
    outcome: GateOutcome
    """pass, fail, review or defer."""
    reason_code: Slug = "ok"
    """Machine-readable reason, such as ``consent_withdrawn``."""
    detail: str = ""
    """Human-readable explanation."""
    defer_until: AwareDatetime | None = None
    """When a deferred message may go out."""

    @model_validator(mode="after")
    def _defer_has_time(self) -> Self:
        if (self.outcome is GateOutcome.DEFER) != (self.defer_until is not None):
            raise ValueError("defer_until: required exactly when the outcome is defer")
        return self
