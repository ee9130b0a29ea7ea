"""Batch scoring on Ray Data, and the predictors it shares with online serving."""

from sluice.scoring.batch import ROW_SCHEMA, ScoringTask, score_batch
from sluice.scoring.job import ScoreReport, ScoreRequest, run_scoring
from sluice.scoring.predictor import Predictor, PredictorSpec, prepare_predictor

__all__ = [
    "ROW_SCHEMA",
    "Predictor",
    "PredictorSpec",
    "ScoreReport",
    "ScoreRequest",
    "ScoringTask",
    "prepare_predictor",
    "run_scoring",
    "score_batch",
]
