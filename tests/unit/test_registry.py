"""The registry against a real MLflow store (SQLite backend, local artifacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sluice.errors import InputError, ModelNotFoundError, PromotionRefusedError
from sluice.registry import CHALLENGER, CHAMPION, ModelURI, Registry
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel


def test_model_uris() -> None:
    assert ModelURI.parse("models:/sluice-propensity@champion") == ModelURI(
        "sluice-propensity", alias="champion"
    )
    assert ModelURI.parse("m/3") == ModelURI("m", version="3")
    assert str(ModelURI.parse("m/3")) == "m/3"
    for bad in ("m", "m@", "m/x", "@champion", "m@champ ion"):
        with pytest.raises(InputError, match="NAME@ALIAS") as info:
            ModelURI.parse(bad)
        assert info.value.field == "model"


def test_register_resolve_load_and_promote(
    fresh_settings: SluiceSettings, trained_model: TrainedModel, features_dir: Path
) -> None:
    registry = Registry(fresh_settings)
    first = registry.register(trained_model)
    assert first.version == "1" and CHALLENGER in first.aliases
    assert first.metrics["roc_auc"] == pytest.approx(trained_model.evaluation.roc_auc, abs=1e-6)
    assert first.tags["feature_contract"] == "propensity@1.0.0"
    assert (fresh_settings.home_dir / "mlflow.db").exists()

    with pytest.raises(ModelNotFoundError, match="no alias 'champion'"):
        registry.resolve("sluice-propensity@champion")
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        registry.resolve("sluice-propensity/7")

    with pytest.raises(PromotionRefusedError, match=r"roc_auc: .* >= 0.99 FAILS") as info:
        registry.promote("1", floors={"roc_auc": 0.99}, by="tests")
    assert info.value.status_code == 409
    registry.promote("1", by="tests")
    assert registry.resolve("sluice-propensity@champion").version == "1"

    second = registry.register(trained_model)
    registry.promote(second.version, by="tests")
    listed = {v.version: v.aliases for v in registry.versions()}
    assert listed == {"2": (CHALLENGER, CHAMPION), "1": ()}
    assert (
        registry.resolve(f"sluice-propensity/{second.version}").tags["promoted.champion_previous"]
        == "1"
    )

    loaded = registry.load("sluice-propensity@champion")
    assert loaded.version == "2" and loaded.contract == trained_model.contract
    assert loaded.reference == trained_model.reference
    X = np.random.default_rng(0).normal(size=(200, len(loaded.contract.features)))
    np.testing.assert_array_equal(loaded.booster().predict(X), trained_model.booster.predict(X))
    # A second load comes from the cache directory, unchanged.
    assert registry.load("sluice-propensity/2").model_text == loaded.model_text
