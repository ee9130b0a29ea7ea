"""How the synthetic world is dated: relative to the day it is generated.

The synthetic base has an *as-of* day, its "today": the history ends the day before, the
audience is scored and decided on the as-of day, and the training and validation
cutoffs lie before it so that their 90-day labels are observed in the history. By
default the as-of day is today on Sluice's clock (``sluice data synth --as-of`` and the
demo's ``--as-of`` pick another), so the demo, the benchmarks and the tests run against a
world that is current on whatever date they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sluice.contracts.clock import Clock

LABEL_DAYS = 90
"""The label window after a cutoff (a purchase within it is a positive)."""


@dataclass(frozen=True)
class SynthCalendar:
    """The dates that follow from a synthetic world's as-of day."""

    as_of: date
    """The world's "today": the decision date of campaigns on it."""

    @classmethod
    def today(cls, clock: Clock) -> SynthCalendar:
        return cls(clock.today())

    @property
    def history_end(self) -> date:
        """Last day of recorded history (the day before ``as_of``)."""
        return self.as_of - timedelta(days=1)

    @property
    def score_cutoff(self) -> date:
        """Features for the audience: everything before the as-of day."""
        return self.as_of

    @property
    def valid_cutoff(self) -> date:
        """Validation window: its labels end the day before the as-of day."""
        return self.as_of - timedelta(days=LABEL_DAYS + 1)

    @property
    def train_cutoff(self) -> date:
        """Training window, one label window before validation."""
        return self.valid_cutoff - timedelta(days=LABEL_DAYS)
