"""What the API hands the scoring engine and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from sluice.errors import SluiceError


@dataclass(frozen=True)
class ScoreJob:
    """One request: its rows already validated and encoded (``matrix``), or customer ids
    whose features the engine looks up in the online store; and the alias to use."""

    matrix: np.ndarray | None = None
    alias: str | None = None
    ids: tuple[str, ...] = ()
    """Customer ids to look up (when ``matrix`` is None)."""
    at: datetime | None = None
    """The request's time: no feature dated after it is used (default: now)."""
    allow_stale: bool = False
    """Use rows older than the contract's freshness limit, flagged, instead of a 409."""
    return_rows: bool = False
    """Send the looked-up feature rows back (a decision by id alone needs the country)."""
    features_at: tuple[datetime | None, ...] = ()
    """Filled in by the lookup: each row's feature timestamp."""
    stale: tuple[bool, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ScoreOutcome:
    scores: np.ndarray | None = None
    model_name: str = ""
    model_version: str = ""
    error: SluiceError | None = field(default=None)
    features_at: tuple[datetime | None, ...] = ()
    """Per row, the feature timestamp of an online-store row (empty for given features)."""
    stale: tuple[bool, ...] = ()
    """Per row, whether that row was older than the contract allows (used on request)."""
    rows: tuple[dict[str, Any], ...] = ()

    def unwrap(self) -> ScoreOutcome:
        if self.error is not None:
            raise self.error
        return self
