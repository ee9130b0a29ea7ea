"""Training that fits its data: scaled parameters, monotone constraints from the contract,
cross-validated early stopping, and the simple baselines every run is compared with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sluice.contracts.feature_contract import (
    Direction,
    FeatureContract,
    FeatureKind,
    FeatureSpec,
)
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.errors import InputError
from sluice.training import TrainConfig, TrainedModel, fit_baselines, scaled_params, train
from sluice.training.dataset import read_labelled
from sluice.training.params import training_params

RECENCY = PROPENSITY_V1.names.index("recency_days")
GRID = np.array([0, 1, 2, 3, 5, 7, 10, 14, 20, 30, 45, 60, 90, 120, 180, 365, 730, 2000.0])


def test_parameters_scale_with_rows_and_base_rate() -> None:
    small, large = scaled_params(5_000, 0.15), scaled_params(200_000, 0.15)
    assert small["num_leaves"] < large["num_leaves"] == 63
    assert small["min_data_in_leaf"] > large["min_data_in_leaf"]
    assert small["learning_rate"] < large["learning_rate"] == 0.05
    assert small["lambda_l2"] > large["lambda_l2"] == 1.0
    # Rare positives need more rows a leaf to put a few of them in each.
    assert (
        scaled_params(50_000, 0.02)["min_data_in_leaf"]
        > scaled_params(50_000, 0.3)["min_data_in_leaf"]
    )
    # A leaf never has to be larger than the data can fill.
    tiny = scaled_params(1_000, 0.01)
    assert tiny["min_data_in_leaf"] * tiny["num_leaves"] <= 1_000
    with pytest.raises(InputError, match=r"base_rate: 0\.0 must be between 0 and 1") as info:
        scaled_params(1_000, 0.0)
    assert info.value.field == "base_rate"
    params = training_params(5_000, 0.15, PROPENSITY_V1, seed=1, threads=1)
    assert params["monotone_constraints"][RECENCY] == -1
    assert sum(abs(c) for c in params["monotone_constraints"]) == 2


def test_a_trained_model_uses_the_scaled_parameters_and_cv_trees(
    trained_model: TrainedModel, features_dir: Path
) -> None:
    y = read_labelled(features_dir / "train.parquet", PROPENSITY_V1).y
    assert len(y) == trained_model.n_train
    expected = scaled_params(len(y), float(y.mean()))
    assert {k: trained_model.params[k] for k in expected} == expected
    assert (
        expected["num_leaves"] < 63 and trained_model.params["monotone_constraints"][RECENCY] == -1
    )
    assert trained_model.cv_folds == 5
    assert 1 <= trained_model.best_iteration == trained_model.booster.num_trees() <= 80


def _recency_sweep(booster_predict: object, X: np.ndarray) -> np.ndarray:
    rows = np.repeat(X, len(GRID), axis=0)
    rows[:, RECENCY] = np.tile(GRID, len(X))
    scores = np.asarray(booster_predict(rows))  # type: ignore[operator]
    return np.diff(scores.reshape(len(X), len(GRID)), axis=1)


def test_declared_direction_holds_on_real_predictions(
    trained_model: TrainedModel, features_dir: Path
) -> None:
    X = read_labelled(features_dir / "valid.parquet", PROPENSITY_V1).X[:300]
    steps = _recency_sweep(trained_model.booster.predict, X)
    assert steps.max() <= 0.0, "a later last purchase never raises the score"
    # The same data without the constraint: the sweep does go up somewhere, so the
    # check above can fail.
    free = train(
        features_dir / "train.parquet",
        features_dir / "valid.parquet",
        TrainConfig(num_boost_round=80, params={"monotone_constraints": [0] * len(X[0])}),
    )
    assert _recency_sweep(free.booster.predict, X).max() > 0.0


def test_direction_is_a_hint_that_leaves_the_contract_identity_alone() -> None:
    stored = json.loads(PROPENSITY_V1.to_json())
    without = json.loads(PROPENSITY_V1.to_json())
    for f in without["features"]:
        f.pop("direction", None)
    old = FeatureContract.model_validate(without)  # a contract stored before directions
    assert old.monotone_constraints == [0] * len(old.features)
    assert old.digest() == PROPENSITY_V1.digest() and old.key == "propensity@1.0.0"
    # The digest propensity@1.0.0 had before directions existed (served models compare it).
    assert PROPENSITY_V1.digest() == (
        "5daf63e5f7f0e2c77015efb4c9e6ae469066ca7c5dc4f1e02915940acd85f5a5"
    )
    assert FeatureContract.from_json(json.dumps(stored)) == PROPENSITY_V1
    assert [f.get("direction") for f in stored["features"]].count("decreasing") == 2
    with pytest.raises(ValueError, match="country: direction applies to numeric features"):
        FeatureSpec(
            name="country",
            kind=FeatureKind.CATEGORY,
            description="x",
            categories=("US",),
            direction=Direction.INCREASING,
        )


def test_baselines_are_fitted_and_evaluated_on_the_same_split(
    trained_model: TrainedModel, features_dir: Path
) -> None:
    model = trained_model.evaluation
    assert [b.name for b in trained_model.baselines] == ["logit_rfm", "recency"]
    rfm, recency = trained_model.baselines
    assert rfm.features == ("recency_days", "frequency_lifetime", "monetary_lifetime")
    for b in trained_model.baselines:
        assert b.evaluation.count == model.count == trained_model.n_valid
        assert b.evaluation.base_rate == model.base_rate
        assert sum(d.positives for d in b.evaluation.lift) == sum(d.positives for d in model.lift)
        assert 0.55 < b.evaluation.roc_auc < model.roc_auc
    assert recency.evaluation.roc_auc < rfm.evaluation.roc_auc
    # Held-out customers: the baselines see the same holdout as the model.
    held = train(features_dir / "train.parquet", config=TrainConfig(num_boost_round=30))
    assert {b.evaluation.count for b in held.baselines} == {held.n_valid}


def test_a_contract_without_rfm_features_gets_a_note_not_baselines() -> None:
    other = FeatureContract(
        name="churn",
        version="1.0.0",
        features=(FeatureSpec(name="tickets_30d", kind=FeatureKind.INT, description="x"),),
    )
    X, y = np.arange(100.0).reshape(-1, 1), np.arange(100) % 2
    done, note = fit_baselines(other, X, y, X, y)
    assert done == () and note is not None
    assert "churn@1.0.0 has no feature named frequency_lifetime" in note


def test_cross_validation_needs_two_folds(features_dir: Path) -> None:
    with pytest.raises(InputError, match="label: 1-fold cross-validation needs") as info:
        train(features_dir / "train.parquet", config=TrainConfig(cv_folds=1))
    assert info.value.field == "label"
