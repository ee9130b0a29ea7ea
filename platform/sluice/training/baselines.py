"""Simple baselines every training run is measured against, on the same split.

* ``logit_rfm``: logistic regression on log-transformed recency, frequency and monetary
  value;
* ``recency``: logistic regression on log-transformed recency alone.

The built-in contract's features that mean these are :data:`RFM_FEATURES`; a contract
without features of those names gets no baselines, and the reason is returned as a note.
Missing values (recency of a customer who never bought) are filled with the training
set's largest value and flagged by an indicator column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sluice.contracts.feature_contract import FeatureContract
from sluice.training.metrics import Evaluation, evaluate

RFM_FEATURES: dict[str, str] = {
    "recency": "recency_days",
    "frequency": "frequency_lifetime",
    "monetary": "monetary_lifetime",
}
"""Feature of each RFM role (the built-in ``propensity`` contract's names)."""

BASELINES: dict[str, tuple[str, ...]] = {
    "logit_rfm": ("recency", "frequency", "monetary"),
    "recency": ("recency",),
}
"""Each baseline and the roles it reads."""


@dataclass(frozen=True)
class BaselineResult:
    """One baseline, fitted on the training rows and evaluated on the validation rows."""

    name: str
    features: tuple[str, ...]
    evaluation: Evaluation


def fit_baseline(
    columns: list[int],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
) -> Evaluation:
    """Fit logistic regression on log-transformed ``columns``; evaluate on the validation set."""
    train_cols = X_train[:, columns]
    with np.errstate(all="ignore"):
        largest = np.nanmax(np.where(np.isnan(train_cols), -np.inf, train_cols), axis=0)
    fill = np.where(np.isfinite(largest), largest, 0.0)
    has_missing = np.isnan(train_cols).any(axis=0) | np.isnan(X_valid[:, columns]).any(axis=0)

    def design(X: np.ndarray) -> np.ndarray:
        cols = X[:, columns]
        missing = np.isnan(cols)
        logged = np.log1p(np.clip(np.where(missing, fill, cols), 0.0, None))
        return np.hstack([logged, missing[:, has_missing].astype(np.float64)])

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    model.fit(design(X_train), y_train)
    p = np.asarray(model.predict_proba(design(X_valid))[:, 1], dtype=np.float64)
    return evaluate(y_valid, p)


def fit_baselines(
    contract: FeatureContract,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
) -> tuple[tuple[BaselineResult, ...], str | None]:
    """Every baseline the contract allows, and a note on those it does not."""
    names = contract.names
    absent = sorted(f for f in RFM_FEATURES.values() if f not in names)
    if absent:
        return (), (
            f"baselines skipped: contract {contract.key} has no feature named "
            + ", ".join(absent)
            + " (the recency, frequency and monetary features baselines read)"
        )
    out = []
    for name, roles in BASELINES.items():
        features = tuple(RFM_FEATURES[r] for r in roles)
        columns = [names.index(f) for f in features]
        ev = fit_baseline(columns, X_train, y_train, X_valid, y_valid)
        out.append(BaselineResult(name, features, ev))
    return tuple(out), None
