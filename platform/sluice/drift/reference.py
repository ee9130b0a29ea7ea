"""Reference distributions stored with a model, and the population stability index.

At registration a model stores, per feature and for its score, decile bin edges taken
from its training data and the share of rows in each bin (plus a missing bucket).
Scoring runs bin their own rows with the same edges; :func:`psi` compares the two.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from sluice.contracts._base import Contract
from sluice.contracts.feature_contract import FeatureContract, FeatureKind


class Binning(Contract):
    """How one variable is bucketed, and the reference share of each bucket."""

    name: str
    """Feature name, or ``score``."""
    kind: Literal["numeric", "category"]
    """Numeric values are cut at ``edges``; category codes count per category."""
    edges: tuple[float, ...] = ()
    """Inner cut points of numeric bins (``len(edges) + 1`` bins)."""
    categories: int = 0
    """Number of categories of a category feature."""
    proportions: tuple[float, ...] = Field(min_length=1)
    """Reference share per bucket; the last bucket holds missing values."""

    def histogram(self, values: np.ndarray) -> np.ndarray:
        """Shares of ``values`` per bucket (same layout as ``proportions``)."""
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        present = values[~missing]
        if self.kind == "numeric":
            counts = np.bincount(
                np.searchsorted(self.edges, present, side="right"), minlength=len(self.edges) + 1
            )
        else:
            codes = present.astype(np.int64)
            counts = np.bincount(
                codes[(codes >= 0) & (codes < self.categories)], minlength=self.categories
            )
        full = np.append(counts, missing.sum()).astype(np.float64)
        total = full.sum()
        return full / total if total else full


class Reference(Contract):
    """Training-time distributions of every feature and of the score."""

    contract: str
    """Feature contract key the reference was built under."""
    rows: int
    """Rows the reference was computed from."""
    features: tuple[Binning, ...]
    score: Binning


def _numeric(name: str, values: np.ndarray, bins: int) -> Binning:
    present = values[~np.isnan(values)]
    if len(present):
        qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
        edges = tuple(float(x) for x in np.unique(qs))
    else:
        edges = ()
    draft = Binning(name=name, kind="numeric", edges=edges, proportions=(1.0,))
    return draft.model_copy(
        update={"proportions": tuple(float(x) for x in draft.histogram(values))}
    )


def _category(name: str, values: np.ndarray, categories: int) -> Binning:
    draft = Binning(name=name, kind="category", categories=categories, proportions=(1.0,))
    return draft.model_copy(
        update={"proportions": tuple(float(x) for x in draft.histogram(values))}
    )


def build_reference(
    contract: FeatureContract, X: np.ndarray, scores: np.ndarray, bins: int = 10
) -> Reference:
    """Decile binnings of every feature column of ``X`` and of ``scores``."""
    features = []
    for j, spec in enumerate(contract.features):
        col = X[:, j]
        if spec.kind is FeatureKind.CATEGORY:
            features.append(_category(spec.name, col, len(spec.categories)))
        else:
            features.append(_numeric(spec.name, col, bins))
    return Reference(
        contract=contract.key,
        rows=len(X),
        features=tuple(features),
        score=_numeric("score", scores, bins),
    )


def psi(expected: np.ndarray | tuple[float, ...], actual: np.ndarray, floor: float = 1e-4) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))``, shares floored at ``floor``."""
    e = np.clip(np.asarray(expected, dtype=np.float64), floor, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), floor, None)
    return float(np.sum((a - e) * np.log(a / e)))
