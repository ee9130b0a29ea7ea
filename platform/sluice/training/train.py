"""Fit the LightGBM propensity model: parameters scaled to the data, the number of trees
chosen by early stopping on stratified cross-validation folds of the training rows, a
refit on all of them, then one evaluation on the validation rows (held-out customers or a
later cutoff) beside the simple baselines fitted on the same split."""

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
from sluice.drift.reference import Reference, build_reference
from sluice.errors import InputError
from sluice.hashing import unit_hash
from sluice.training.baselines import BaselineResult, fit_baselines
from sluice.training.dataset import LabelledSet, read_labelled, table_contract
from sluice.training.metrics import Evaluation, evaluate
from sluice.training.params import training_params


@dataclass(frozen=True)
class TrainConfig:
    """How to train."""

    num_boost_round: int = 600
    """Most trees; cross-validation usually stops earlier."""
    early_stopping_rounds: int = 40
    """Rounds without a better mean log loss over the folds before stopping."""
    cv_folds: int = 5
    """Stratified cross-validation folds of the training rows that choose the trees."""
    valid_fraction: float = 0.2
    """Share of customers held out (by a salted hash of the id) when no validation file is given."""
    seed: int = 42
    params: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the scaled parameters (:func:`sluice.training.params.training_params`)."""


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
    cv_folds: int = 0
    """Cross-validation folds the number of trees was chosen on."""
    baselines: tuple[BaselineResult, ...] = ()
    """Simple baselines fitted on the same training rows, evaluated on the same validation."""
    baseline_note: str | None = None
    """Why there are no baselines, when there are none."""


def _split(data: LabelledSet, fraction: float, seed: int) -> tuple[LabelledSet, LabelledSet]:
    if not 0 < fraction < 1:
        raise InputError("valid_fraction: must be between 0 and 1", field="valid_fraction")
    held = unit_hash(data.ids.to_pylist(), f"sluice-valid-{seed}") < fraction

    def take(mask: np.ndarray) -> LabelledSet:
        return LabelledSet(data.ids.filter(mask), data.X[mask], data.y[mask], 0, data.cutoff)

    return take(~held), take(held)


def _fit(
    data: LabelledSet, contract: FeatureContract, cfg: TrainConfig
) -> tuple[lgb.Booster, dict[str, Any], int]:
    """Scaled parameters, trees chosen on CV folds, then a refit on every training row."""
    minority = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    if cfg.cv_folds < 2 or minority < 2 * cfg.cv_folds:
        raise InputError(
            f"label: {cfg.cv_folds}-fold cross-validation needs at least 2 folds and "
            f"{2 * cfg.cv_folds} training rows of each class (the rarer has {minority})",
            field="label",
        )
    base_rate = float(data.y.mean())
    params = {
        **training_params(len(data.y), base_rate, contract, cfg.seed, os.cpu_count() or 1),
        **cfg.params,
    }

    # One Dataset, binned once, for the cross-validation and the refit.
    ds = lgb.Dataset(
        data.X,
        data.y,
        feature_name=list(contract.names),
        categorical_feature=contract.categorical_indices,
        free_raw_data=False,
    )
    history = lgb.cv(
        params,
        ds,
        num_boost_round=cfg.num_boost_round,
        nfold=cfg.cv_folds,
        stratified=True,
        shuffle=True,
        seed=cfg.seed,
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    curve = next(v for k, v in history.items() if k.endswith("-mean"))  # cut at the best round
    best = max(1, len(curve) if isinstance(curve, list) else 0)
    fitted = lgb.train(params, ds, num_boost_round=best)
    # A booster of its own text: no training data attached, the same for every consumer.
    return lgb.Booster(model_str=fitted.model_to_string()), params, best


def train(
    features: Path,
    valid_features: Path | None = None,
    config: TrainConfig | None = None,
    contract: FeatureContract | None = None,
) -> TrainedModel:
    """Train on ``features`` under ``contract`` (default: the built-in contract the table
    was built under, else ``propensity@1.0.0``); validate on ``valid_features`` or on
    held-out customers. The contract is kept with the model."""
    cfg = config or TrainConfig()
    started = time.perf_counter()
    contract = contract or table_contract(features)
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

    booster, params, best = _fit(train_set, contract, cfg)
    p_valid = np.asarray(booster.predict(valid_set.X), dtype=np.float64)
    sample = train_set.X[: min(len(train_set.X), 200_000)]
    p_train_sample = np.asarray(booster.predict(sample), dtype=np.float64)
    baselines, note = fit_baselines(contract, train_set.X, train_set.y, valid_set.X, valid_set.y)
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
        cv_folds=cfg.cv_folds,
        baselines=baselines,
        baseline_note=note,
    )
