"""Confidence: decisions the model is unsure of go to a person.

A propensity score inside ``score_band`` (low, high), or an expected offer value inside
``margin_band``, turns the message into a ``review`` verdict: it waits in the review
queue instead of going out on a coin flip.
"""

from __future__ import annotations

import numpy as np

from sluice.gates.base import REVIEW, GateContext, MessageBatch, Verdicts


def in_band(values: np.ndarray, band: tuple[float, float] | None) -> np.ndarray:
    if band is None:
        return np.zeros(len(values), bool)
    x = np.asarray([np.nan if v is None else float(v) for v in values], np.float64)
    return (x >= band[0]) & (x <= band[1])


class ConfidenceGate:
    name = "confidence"

    def __init__(
        self, score_band: tuple[float, float] | None, margin_band: tuple[float, float] | None
    ) -> None:
        self.score_band, self.margin_band = score_band, margin_band

    def evaluate(self, batch: MessageBatch, ctx: GateContext) -> Verdicts:
        v = Verdicts.passing(self.name, len(batch))
        score = in_band(batch.col("score"), self.score_band)
        v.set(score, REVIEW, "ambiguous_score", f"score in {self.score_band}")
        if batch.has("expected_value"):
            margin = in_band(batch.col("expected_value"), self.margin_band) & ~score
            v.set(margin, REVIEW, "ambiguous_margin", f"expected value in {self.margin_band}")
        return v
