"""What a training run records in MLflow: parameters, metrics and version tags.

The model's validation metrics are run metrics (``roc_auc``, ...) and version tags
(``metric.roc_auc``); each baseline's are run metrics and version tags named
``baseline.<name>.<metric>`` (``baseline.logit_rfm.roc_auc``), so that approval can
compare a version with the baselines it was trained beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.training.train import TrainedModel

BASELINE_PREFIX = "baseline."


def run_params(trained: TrainedModel) -> dict[str, Any]:
    """The run's parameters: every LightGBM setting chosen (``lgb.*``) and the data."""
    return {
        **{f"lgb.{k}": v for k, v in trained.params.items()},
        "best_iteration": trained.best_iteration,
        "cv_folds": trained.cv_folds,
        "n_train": trained.n_train,
        "n_valid": trained.n_valid,
        "quarantined": trained.quarantined,
        "validation": trained.validation,
        "train_cutoff": trained.train_cutoff,
        "valid_cutoff": trained.valid_cutoff,
        "feature_contract": trained.contract.key,
        "baselines": ",".join(b.name for b in trained.baselines) or "none",
    }


def run_metrics(trained: TrainedModel) -> dict[str, float]:
    """The model's validation metrics and each baseline's, on the same rows."""
    out = dict(trained.evaluation.scalars())
    for b in trained.baselines:
        out.update({f"{BASELINE_PREFIX}{b.name}.{k}": v for k, v in b.evaluation.scalars().items()})
    return out


def version_tags(trained: TrainedModel) -> dict[str, str]:
    """Tags of the registered version: contract, metrics and baselines."""
    tags = {
        "feature_contract": trained.contract.key,
        "feature_contract_digest": trained.contract.digest(),
        **{f"metric.{k}": f"{v:.6f}" for k, v in trained.evaluation.scalars().items()},
    }
    for b in trained.baselines:
        tags[f"{BASELINE_PREFIX}{b.name}.features"] = ",".join(b.features)
        for k, v in b.evaluation.scalars().items():
            tags[f"{BASELINE_PREFIX}{b.name}.{k}"] = f"{v:.6f}"
    if trained.baseline_note:
        tags[f"{BASELINE_PREFIX}note"] = trained.baseline_note[:500]
    return tags


def recorded_baselines(tags: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Baseline metrics recorded with a version: ``{name: {metric: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in tags.items():
        if not key.startswith(BASELINE_PREFIX):
            continue
        name, _, metric = key.removeprefix(BASELINE_PREFIX).partition(".")
        if not metric or metric == "features":
            continue
        try:
            out.setdefault(name, {})[metric] = float(value)
        except ValueError:
            continue
    return out
