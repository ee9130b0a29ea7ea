from __future__ import annotations

from pathlib import Path

import numpy as np

from sluice.registry import LoadedModel
from sluice.scoring import prepare_predictor
from sluice.training import TrainedModel


def test_compiled_predictor_is_bit_identical_to_the_booster(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    model = LoadedModel(
        "m", "1", "run", trained_model.booster.model_to_string(), trained_model.contract
    )
    rng = np.random.default_rng(1)
    X = rng.normal(scale=50, size=(20_000, len(model.contract.features)))
    X[:, -1] = rng.integers(-2, 18, len(X))  # includes unseen category codes
    X[rng.random(X.shape) < 0.15] = np.nan
    compiled = prepare_predictor(model, "compiled", tmp_path)
    assert compiled.kind == "compiled"
    assert len(list(tmp_path.glob("*.so"))) == 1
    expected = trained_model.booster.predict(X)
    np.testing.assert_array_equal(compiled.build().predict(X), expected)
    np.testing.assert_array_equal(
        prepare_predictor(model, "booster", tmp_path).build().predict(X), expected
    )
    # Compiling again is a cache hit.
    assert prepare_predictor(model, "auto", tmp_path).library == compiled.library
