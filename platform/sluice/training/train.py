"""Fit the LightGBM propensity model with early stopping on held-out customers."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.drift.reference import Reference, build_reference
from sluice.errors import InputError
from sluice.hashing import unit_hash
from sluice.training.dataset import LabelledSet, read_labelled
from sluice.training.metrics import Evaluation, evaluate

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "verbose": -1,
}


@dataclass(frozen=True)
class TrainConfig:
    """How to train."""

    num_boost_round: int = 600
    early_stopping_rounds: int = 40
    valid_fraction: float = 0.2
    """Share of customers held out (by a salted hash of the id) when no validation file is given."""
    seed: int = 42
    params: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of :data:`DEFAULT_PARAMS`."""


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model, its validation and everything registration needs."""

    booster: lgb.Booster
    contract: FeatureContract
    params: dict[str, Any]
    evaluation: Evaluation
    reference: Reference
    best_iteration: int
    n_train: int
    n_valid: int
    quarantined: int
    train_cutoff: str | None
    valid_cutoff: str | None
    validation: str
    """``holdout`` (held-out customers) or ``later-cutoff`` (a separate validation file)."""
    seconds: float


def _split(data: LabelledSet, fraction: float, seed: int) -> tuple[LabelledSet, LabelledSet]:
    if not 0 < fraction < 1:
        raise InputError("valid_fraction: must be between 0 and 1", field="valid_fraction")
    held = unit_hash(data.ids.to_pylist(), f"sluice-valid-{seed}") < fraction

    def take(mask: np.ndarray) -> LabelledSet:
        return LabelledSet(data.ids.filter(mask), data.X[mask], data.y[mask], 0, data.cutoff)

    return take(~held), take(held)


def train(
    features: Path,
    valid_features: Path | None = None,
    config: TrainConfig | None = None,
    contract: FeatureContract = PROPENSITY_V1,
) -> TrainedModel:
    """Train on ``features``; validate on ``valid_features`` or on held-out customers."""
    cfg = config or TrainConfig()
    started = time.perf_counter()
    data = read_labelled(features, contract)
    quarantined = data.quarantined
    if valid_features is not None:
        train_set, valid_set = data, read_labelled(valid_features, contract)
        quarantined += valid_set.quarantined
        validation = "later-cutoff"
    else:
        train_set, valid_set = _split(data, cfg.valid_fraction, cfg.seed)
        validation = "holdout"
    for name, part in (("training", train_set), ("validation", valid_set)):
        if len(part.y) < 50 or len(np.unique(part.y)) < 2:
            raise InputError(
                f"label: the {name} set needs at least 50 rows and both classes", field="label"
            )

    params = {**DEFAULT_PARAMS, "seed": cfg.seed, "num_threads": os.cpu_count() or 1, **cfg.params}
    cats = contract.categorical_indices
    dtrain = lgb.Dataset(
        train_set.X,
        train_set.y,
        feature_name=list(contract.names),
        categorical_feature=cats,
        free_raw_data=True,
    )
    dvalid = lgb.Dataset(valid_set.X, valid_set.y, reference=dtrain, categorical_feature=cats)
    fitted = lgb.train(
        params,
        dtrain,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    best = fitted.best_iteration or fitted.current_iteration()
    # Keep only the trees up to the best iteration, so every consumer predicts the same thing.
    booster = lgb.Booster(model_str=fitted.model_to_string(num_iteration=best))
    p_valid = np.asarray(booster.predict(valid_set.X), dtype=np.float64)
    sample = train_set.X[: min(len(train_set.X), 200_000)]
    p_train_sample = np.asarray(booster.predict(sample), dtype=np.float64)
    return TrainedModel(
        booster=booster,
        contract=contract,
        params=params,
        evaluation=evaluate(valid_set.y, p_valid),
        reference=build_reference(contract, train_set.X[: len(p_train_sample)], p_train_sample),
        best_iteration=best,
        n_train=len(train_set.y),
        n_valid=len(valid_set.y),
        quarantined=quarantined,
        train_cutoff=train_set.cutoff,
        valid_cutoff=valid_set.cutoff,
        validation=validation,
        seconds=time.perf_counter() - started,
    )
