"""Training of the LightGBM propensity model and its evaluation."""

from sluice.training.metrics import Evaluation, evaluate
from sluice.training.train import DEFAULT_PARAMS, TrainConfig, TrainedModel, train

__all__ = ["DEFAULT_PARAMS", "Evaluation", "TrainConfig", "TrainedModel", "evaluate", "train"]
