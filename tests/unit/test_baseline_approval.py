"""Baselines recorded with the version (MLflow), printed by `sluice train`, and the
approval margin over the best of them (SLUICE_PROMOTION_MIN_LIFT_OVER_BASELINE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sluice.approval import approve
from sluice.errors import PromotionRefusedError
from sluice.registry import CHAMPION, Registry
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel


def _best(trained: TrainedModel) -> tuple[str, float]:
    best = max(trained.baselines, key=lambda b: b.evaluation.roc_auc)
    return best.name, best.evaluation.roc_auc


def test_baselines_and_chosen_settings_are_recorded_with_the_version(
    fresh_settings: SluiceSettings, trained_model: TrainedModel
) -> None:
    registry = Registry(fresh_settings)
    info = registry.register(trained_model)
    for b in trained_model.baselines:
        for metric, value in b.evaluation.scalars().items():
            assert info.baselines[b.name][metric] == pytest.approx(value, abs=1e-6)
    assert info.tags["baseline.logit_rfm.features"] == (
        "recency_days,frequency_lifetime,monetary_lifetime"
    )
    run = registry.client.get_run(info.run_id)
    assert run.data.metrics["baseline.recency.roc_auc"] == pytest.approx(
        trained_model.baselines[1].evaluation.roc_auc
    )
    assert run.data.metrics["roc_auc"] == pytest.approx(trained_model.evaluation.roc_auc)
    params = run.data.params
    for key in ("num_leaves", "min_data_in_leaf", "learning_rate", "lambda_l2"):
        assert params[f"lgb.{key}"] == str(trained_model.params[key])
    assert params["lgb.monotone_constraints"] == str(trained_model.params["monotone_constraints"])
    assert params["cv_folds"] == "5" and params["baselines"] == "logit_rfm,recency"


def test_approval_requires_the_margin_over_the_best_baseline(
    fresh_settings: SluiceSettings, trained_model: TrainedModel
) -> None:
    name, baseline_auc = _best(trained_model)
    gap = trained_model.evaluation.roc_auc - baseline_auc
    assert gap > 0.02, "on the synthetic base the model beats its baselines"
    strict = Registry(
        fresh_settings.model_copy(update={"promotion_min_lift_over_baseline": gap + 0.01})
    )
    version = strict.register(trained_model).version
    with pytest.raises(PromotionRefusedError) as info:
        approve(version, "ana", registry=strict)
    err = info.value
    assert err.field == "promotion_min_lift_over_baseline" and err.status_code == 409
    assert "SLUICE_PROMOTION_MIN_LIFT_OVER_BASELINE" in err.message
    assert f"roc_auc {trained_model.evaluation.roc_auc:.4f}" in err.message
    assert f"({name}, roc_auc {baseline_auc:.4f})" in err.message
    assert err.detail["baseline"] == name
    with pytest.raises(Exception, match="no alias 'champion'"):
        strict.resolve(f"sluice-propensity@{CHAMPION}")

    lenient = Registry(
        fresh_settings.model_copy(update={"promotion_min_lift_over_baseline": gap - 0.01})
    )
    done = approve(version, "ana", registry=lenient)
    assert done.baseline is not None and done.baseline.baseline == name
    assert lenient.resolve(f"sluice-propensity@{CHAMPION}").version == version
    assert "ok" in lenient.resolve(f"sluice-propensity/{version}").tags["approval.baseline"]

    # No baselines recorded: the margin cannot be shown, so the version is refused;
    # without the setting the same version is approved as before.
    bare = lenient.register(replace(trained_model, baselines=(), baseline_note="none here"))
    with pytest.raises(PromotionRefusedError, match="has no baseline metrics") as refused:
        approve(bare.version, "ben", registry=lenient)
    assert refused.value.field == "promotion_min_lift_over_baseline"
    assert approve(bare.version, "ben", registry=Registry(fresh_settings)).baseline is None


def test_sluice_train_prints_the_baselines_beside_the_model(
    features_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "SLUICE_HOME": str(tmp_path), "COLUMNS": "160"}
    args = ["train", "--features", str(features_dir / "train.parquet")]
    args += ["--valid-features", str(features_dir / "valid.parquet"), "--num-boost-round", "40"]
    done = subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    header = next(line for line in done.stdout.splitlines() if "logit_rfm" in line)
    assert "model" in header and "recency" in header
    assert any(line.lstrip("│ ").startswith("ROC AUC") for line in done.stdout.splitlines())
    assert "min_data_in_leaf" in done.stdout and "recency_days -" in done.stdout
    assert set(figures["baselines"]) == {"logit_rfm", "recency"}
    assert set(figures["baselines"]["logit_rfm"]) == {
        "roc_auc",
        "pr_auc",
        "log_loss",
        "top_decile_lift",
    }
    best = max(figures["baselines"], key=lambda n: figures["baselines"][n]["roc_auc"])
    assert figures["best_baseline"] == best
    assert figures["roc_auc_over_best_baseline"] == pytest.approx(
        figures["roc_auc"] - figures["baselines"][best]["roc_auc"], abs=2e-6
    )
    assert figures["monotone"] == {"recency_days": -1, "days_since_engagement": -1}
    assert figures["params"]["num_leaves"] < 63 and figures["cv_folds"] == 5
    settings = SluiceSettings(
        home=tmp_path,
        tracking_uri=None,
        registry_uri=None,
        artifact_location=None,
        database_url=None,
    )
    recorded = Registry(settings).resolve(f"sluice-propensity/{figures['version']}").baselines
    assert recorded["recency"]["roc_auc"] == pytest.approx(
        figures["baselines"]["recency"]["roc_auc"], abs=2e-6
    )
