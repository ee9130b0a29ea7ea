"""Training of the LightGBM propensity model, its baselines and its evaluation."""

from sluice.training.baselines import BaselineResult, fit_baselines
from sluice.training.metrics import Evaluation, evaluate
from sluice.training.params import BASE_PARAMS, scaled_params, training_params
from sluice.training.train import TrainConfig, TrainedModel, train

__all__ = [
    "BASE_PARAMS",
    "BaselineResult",
    "Evaluation",
    "TrainConfig",
    "TrainedModel",
    "evaluate",
    "fit_baselines",
    "scaled_params",
    "train",
    "training_params",
]
